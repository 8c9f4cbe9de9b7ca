"""LPIPS (Zhang et al. 2018) as torchmetrics implements it (``_LPIPS``: its ImageNet backbone slices, the
unit-normalised activations, the learned linear heads it ships), with the backbone's ImageNet weights read from a
local file instead of torchvision's download, so it runs offline; registered as the extractor ``lpips``, whose
features (for caching, and for FD or cosine distances if wanted) are the backbone's last slice, averaged over space.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lcm_bench.core.errors import UserError
from lcm_bench.core.paths import cache_dir, find_weights, offline
from lcm_bench.metrics.extraction import EXTRACTORS, Extractor, ExtractorDef, missing_weights, state_dict_file

BACKBONES = {
    "alex": ("alexnet", "alexnet-owt-7be5be79.pth"),
    "vgg": ("vgg16", "vgg16-397923af.pth"),
    "squeeze": ("squeezenet1_1", "squeezenet1_1-b8a52dc0.pth"),
}
DOWNLOADS = "https://download.pytorch.org/models/"


@dataclass
class LpipsExtractor(Extractor):
    """The backbone's pooled features, with the LPIPS network kept for image pairs."""

    lpips: Any = None


def _backbone_file(options: dict[str, Any], field: str, weights) -> Path:
    """The backbone's weights: ``weights:`` as given, else torchvision's file in the weights folders (torch hub's
    checkpoints among them), else downloaded into the cache when online."""
    if options.get("weights"):
        path = Path(options["weights"]).expanduser()
        if not path.is_file():
            raise UserError(f"{field}.weights: '{path}' does not exist")
        return path
    filename = BACKBONES[_net(options, field)][1]
    path = find_weights(filename, weights)
    if path is None and not offline():
        import torch

        target = cache_dir() / "weights"
        target.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(DOWNLOADS + filename, str(target / filename), progress=False)
            path = target / filename
        except Exception:  # noqa: BLE001 - any failed download means the same to the user
            path = None
    if path is None:
        raise missing_weights(filename, DOWNLOADS + filename, field, weights)
    return path


def _net(options: dict[str, Any], field: str) -> str:
    net = options.get("net", "alex")
    if net not in BACKBONES:
        raise UserError(f"{field}.net: '{net}' is not one of {list(BACKBONES)}")
    return net


def lpips_network(net: str, backbone_file: Path, field: str):
    """torchmetrics' LPIPS with its linear heads and the backbone's weights from ``backbone_file``."""
    import torchvision
    from torchmetrics.functional.image.lpips import _LPIPS

    model = _LPIPS(pretrained=True, net=net, pnet_rand=True)
    backbone = getattr(torchvision.models, BACKBONES[net][0])(weights=None)
    try:
        backbone.load_state_dict(state_dict_file(backbone_file))
    except RuntimeError as exc:
        raise UserError(
            f"{field}.weights: '{backbone_file}' does not fit torchvision's {BACKBONES[net][0]} "
            f"({str(exc).splitlines()[0]})"
        ) from None
    for part in model.net.children():
        for index, layer in part.named_children():
            layer.load_state_dict(backbone.features[int(index)].state_dict())
    return model.eval()


def lpips_extractor(options: dict[str, Any], device: str, field: str, weights=()) -> LpipsExtractor:
    net = _net(options, field)
    model = lpips_network(net, _backbone_file(options, field, weights), field).to(device)

    def pooled(x):
        return model.net(model.scaling_layer(x / 127.5 - 1))[-1].mean(dim=(2, 3))

    label, dim = f"FD-LPIPS{net.capitalize()}", model.chns[-1]
    return LpipsExtractor(f"lpips-{net}", label, "native", dim, lambda x: x, pooled, device, lpips=model)


def lpips_sources(options: dict[str, Any], weights) -> list[Path | str] | None:
    """The backbone file and torchmetrics' linear heads."""
    import importlib.util

    net = options.get("net", "alex")
    path = Path(options["weights"]).expanduser() if options.get("weights") else None
    path = path if path and path.is_file() else find_weights(BACKBONES.get(net, BACKBONES["alex"])[1], weights)
    spec = importlib.util.find_spec("torchmetrics")
    heads = Path(spec.origin).parent / "functional" / "image" / "lpips_models" / f"{net}.pth" if spec else None
    return [path, heads] if path and heads and heads.is_file() else None


EXTRACTORS.register(
    "lpips",
    ExtractorDef(
        lpips_extractor,
        lpips_sources,
        "LPIPS's ImageNet backbone (alex, vgg, squeeze; torchvision weights from a local file), pooled",
        frozenset({"net", "weights"}),
        weights="torchvision's ImageNet backbone file, e.g. alexnet-owt-7be5be79.pth, or weights: PATH",
    ),
)
