"""Paired metrics: each image of a cell against the image a reference method of the suite drew for the same prompt
and seed (``lcm_bench.suite.pairs`` pairs the cells; the scorer hands over the reference cell's features and
images). Per-image metrics (PSNR, SSIM, LPIPS, cosine-T) with a percentile bootstrap interval over pairs; set
distances (FD-T, Patch FD-T) with a delete-a-group jackknife interval over pairs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from lcm_bench.metrics.entry import CellInputs, pixels_only, register_metric

SSIM_BORDERS = ("valid", "reflect")
SSIM_RADIUS = 5
"""Half the Gaussian window (11 px): a pixel's window lies inside the image from this far from every border."""


def _bootstrap_result(per_pair: np.ndarray, value: float | None = None) -> dict[str, Any]:
    from lcm_bench.metrics.distances import bootstrap_ci

    finite = per_pair[np.isfinite(per_pair)]
    infinite = {"infinite_pairs": int(len(per_pair) - len(finite))} if len(finite) < len(per_pair) else {}
    if not len(finite):
        return {"value": None, "note": "no finite value: every pair is identical", **infinite}
    return {
        "value": float(finite.mean()) if value is None else value,
        "ci95": list(bootstrap_ci(finite)),
        "per_image": [round(float(v), 4) if np.isfinite(v) else None for v in per_pair],
        **infinite,
    }


def _pixel_pairs(inputs: CellInputs, score: Callable[[Any, Any], Any]) -> np.ndarray:
    """``score(a, b)`` of each image against its reference-method pair, in batches of float tensors in [0, 1]."""
    import itertools

    import torch

    values, mine, theirs = [], inputs.images(), inputs.paired_images()
    while batch := list(itertools.islice(zip(mine, theirs, strict=True), 64)):
        a = torch.from_numpy(np.stack([x for x, _ in batch])).permute(0, 3, 1, 2).double() / 255
        b = torch.from_numpy(np.stack([y for _, y in batch])).permute(0, 3, 1, 2).double() / 255
        values.append(score(a, b).reshape(-1).numpy())
    return np.concatenate(values)


@register_metric(
    "psnr",
    label="PSNR",
    higher_is_better=True,
    kind="paired",
    measures="fidelity",
    defaults={"reference": ""},
    description="peak signal-to-noise ratio (dB) of each image against the reference method's image of the same "
    "prompt and seed (torchmetrics); mean over pairs with a bootstrap interval",
    per_image=True,
    extractor=pixels_only,
    tolerance={"rel": 0.05, "abs": 0.0, "noise_k": 2.0},
)
def psnr(inputs: CellInputs) -> dict[str, Any]:
    from torchmetrics.functional.image import peak_signal_noise_ratio

    def per_pair(a, b):
        return peak_signal_noise_ratio(a, b, data_range=1.0, reduction="none", dim=(1, 2, 3))

    return _bootstrap_result(_pixel_pairs(inputs, per_pair))


@register_metric(
    "ssim",
    label="SSIM",
    higher_is_better=True,
    kind="paired",
    measures="fidelity",
    defaults={"reference": "", "border": "valid"},
    choices={"border": SSIM_BORDERS},
    description="structural similarity (Wang et al. 2004; Gaussian window 11, sigma 1.5) of each image against the "
    "reference method's image of the same prompt and seed; border valid (the SSIM map's mean over pixels whose "
    "window lies inside the image, as Wang et al.'s code and scikit-image) or reflect (torchmetrics' default: every "
    "pixel, the image reflected at its borders)",
    per_image=True,
    extractor=pixels_only,
    tolerance={"rel": 0.0, "abs": 0.03, "noise_k": 2.0},
)
def ssim(inputs: CellInputs) -> dict[str, Any]:
    """torchmetrics' SSIM map, averaged over the pixels the ``border`` option keeps."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    border = inputs.options.get("border", "valid")

    def per_pair(a, b):
        if border == "reflect":
            return structural_similarity_index_measure(a, b, data_range=1.0, reduction="none")
        _, full = structural_similarity_index_measure(a, b, data_range=1.0, reduction="none", return_full_image=True)
        inside = full[..., SSIM_RADIUS:-SSIM_RADIUS, SSIM_RADIUS:-SSIM_RADIUS]
        return inside.mean(dim=(1, 2, 3))

    return {**_bootstrap_result(_pixel_pairs(inputs, per_pair)), "border": border}


@register_metric(
    "lpips",
    label="LPIPS",
    higher_is_better=False,
    kind="paired",
    measures="fidelity",
    defaults={"extractor": "lpips", "net": "alex", "reference": ""},
    description="learned perceptual distance (Zhang et al. 2018; torchmetrics' network, backbone weights from a "
    "local file) of each image to the reference method's image of the same prompt and seed",
    per_image=True,
    label_for=lambda extractor: f"LPIPS-{extractor.key.split('-', 1)[1]}",
    tolerance={"rel": 0.1, "abs": 0.01, "noise_k": 2.0},
)
def lpips(inputs: CellInputs) -> dict[str, Any]:
    network, device = inputs.extractor.lpips, inputs.extractor.device

    def per_pair(a, b):
        return network(a.float().to(device), b.float().to(device), normalize=True).double().cpu()

    return _bootstrap_result(_pixel_pairs(inputs, per_pair))


@register_metric(
    "cosine_t",
    label="cosine-T",
    higher_is_better=False,
    kind="paired",
    measures="fidelity",
    defaults={"extractor": "effnet-lite0", "reference": ""},
    description="1 - cosine similarity of each image's features and its reference-method pair's (same prompt "
    "and seed), in any extractor's features",
    per_image=True,
    label_for=lambda extractor: extractor.label.replace("FD", "cos", 1) + "-T",
    tolerance={"rel": 0.1, "abs": 0.005, "noise_k": 2.0},
)
def cosine_t(inputs: CellInputs) -> dict[str, Any]:
    a, b = (np.asarray(x, np.float64) for x in (inputs.features, inputs.paired_features))
    a /= np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b /= np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return _bootstrap_result(1 - (a * b).sum(axis=1))


@register_metric(
    "fd_t",
    label="FD-T",
    higher_is_better=False,
    kind="paired",
    measures="fidelity",
    defaults={"extractor": "inception", "mode": "clean", "reference": "", "groups": 10},
    description="Fréchet distance to the reference method's images of the same prompts and seeds (FID-T of "
    "SenseFlow: distance to the teacher, in Inception features by default, as its tables), in any extractor's "
    "features; jackknife interval over pairs",
    label_for=lambda extractor: extractor.label + "-T",
)
def fd_t(inputs: CellInputs) -> dict[str, Any]:
    """FD of the cell's features to its reference method's, with a 95 % interval from the delete-a-group
    jackknife over pairs (a bootstrap resample repeats pairs, which biases a set distance upward)."""
    from lcm_bench.metrics.distances import feature_stats, frechet_distance, jackknife_interval

    mine, theirs = inputs.features, inputs.paired_features

    def distance(kept: np.ndarray) -> float:
        return frechet_distance(feature_stats(mine[kept]), feature_stats(theirs[kept]))

    value = distance(np.arange(len(mine)))
    out = {"value": value, "ci95": list(jackknife_interval(distance, len(mine), value, int(inputs.options["groups"])))}
    if len(mine) <= inputs.extractor.dim:
        out["note"] = f"N = {len(mine)} <= feature dim {inputs.extractor.dim}: singular covariance, biased FD"
    return out


register_metric(
    "patch_fd_t",
    label="Patch FD-T",
    higher_is_better=False,
    kind="paired",
    measures="fidelity",
    defaults={"extractor": "inception", "mode": "clean", "reference": "", "groups": 10},
    description="FD-T on centre crops of the extractor's input size taken at full resolution (Patch FID-T: fine "
    "detail a resize to the extractor's input would hide); images must be larger than the crop",
    label_for=lambda extractor: f"Patch {extractor.label}-T",
    crop=True,
)(fd_t)
