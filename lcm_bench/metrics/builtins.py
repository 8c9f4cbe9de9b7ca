"""The metric entries (``lcm_bench.metrics.entry`` says what an entry is): Fréchet distances, FD∞, KID, CMMD, CLIP
score and attribute accuracy here; precision, recall, density, coverage and Vendi in ``manifold``; the paired
metrics in ``paired``. Importing this module registers them all, and it re-exports the registry and its helpers, so
the scorer, the suite parser, the report and the gate never branch on a metric's name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from lcm_bench.core.errors import UserError
from lcm_bench.metrics import manifold, paired, preference
from lcm_bench.metrics.clip_score import clip_score_value
from lcm_bench.metrics.distances import CMMD_ESTIMATORS
from lcm_bench.metrics.entry import (
    CLIP_RESIZES,
    EXTRACTOR_OPTIONS,
    KINDS,
    MEASURES,
    METRICS,
    CellInputs,
    MetricDef,
    check_images,
    clip_extractor,
    inception_extractor,
    metric_name_of,
    metric_of,
    per_category,
    pixels_only,
    register_metric,
    result_inputs,
)

__all__ = [
    "EXTRACTOR_OPTIONS",
    "KINDS",
    "MEASURES",
    "METRICS",
    "CellInputs",
    "MetricDef",
    "check_images",
    "manifold",
    "metric_name_of",
    "metric_of",
    "paired",
    "per_category",
    "pixels_only",
    "preference",
    "register_metric",
    "result_inputs",
]


def frechet(inputs: CellInputs) -> dict[str, Any]:
    """FD = |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2) (Heusel et al. 2017) against the reference, with the
    spread over K disjoint subsets of the cell's images and the noise floor."""
    from lcm_bench.metrics.distances import feature_stats, frechet_distance, subset_spread

    generated, ref_stats = inputs.features, feature_stats(inputs.reference_features)

    def distance(features: np.ndarray) -> float:
        return frechet_distance(feature_stats(features), ref_stats)

    out: dict[str, Any] = {"value": distance(generated)}
    k = int(inputs.options.get("subsets", 5))
    if k > 1 and len(generated) >= 4 * k:
        spread = subset_spread(generated, ref_stats, k)
        out["subsets"] = {"k": k, "values": spread, "std": float(np.std(spread, ddof=1))}
    if len(generated) <= inputs.extractor.dim:
        out["note"] = f"N = {len(generated)} <= feature dim {inputs.extractor.dim}: singular covariance, biased FD"
    return _with_floor(out, inputs, distance)


def _with_floor(out: dict[str, Any], inputs: CellInputs, distance: Callable[[np.ndarray], float]) -> dict[str, Any]:
    floor = inputs.noise_floor(distance)
    return {**out, "noise_floor": floor} if floor is not None else out


register_metric(
    "fid",
    label="FID",
    higher_is_better=False,
    kind="distribution",
    defaults={"mode": "clean", "subsets": 5},
    description="Fréchet Inception distance through clean-fid (modes clean, legacy_tensorflow, legacy_pytorch)",
    extractor=inception_extractor,
)(frechet)
register_metric(
    "fd",
    label="FD",
    higher_is_better=False,
    kind="distribution",
    defaults={"extractor": "effnet-lite0", "subsets": 5},
    description="Fréchet distance in another extractor's features (effnet-lite0, clip, dinov2, inception)",
    label_for=lambda extractor: extractor.label,
)(frechet)


FD_INFINITY_DRAWS = ("fresh", "nested")


def fd_infinity_sizes(n: int, points: int, draws: str) -> np.ndarray:
    """The subset sizes FD is fitted over: dgm-eval's ``linspace(min(5000, max(N // 10, 2)), N, points)`` for fresh
    draws; N/5 .. N for nested prefixes."""
    if draws == "nested":
        return np.unique(np.linspace(n // 5, n, points).astype(int))
    return np.linspace(min(5000, max(n // 10, 2)), n, points).astype(np.int32)


@register_metric(
    "fd_inf",
    label="FD∞",
    higher_is_better=False,
    kind="distribution",
    defaults={"extractor": "effnet-lite0", "points": 15, "draws": "fresh"},
    choices={"draws": FD_INFINITY_DRAWS},
    description="FD extrapolated to infinitely many images (Chong & Forsyth 2020): FD at `points` subset sizes, a "
    "line in 1/N, its intercept; draws fresh (a new random subset per size from min(5000, N/10) to N, as dgm-eval "
    "and FID_Infinity) or nested (prefixes of one permutation from N/5); the fit's residual beside it",
    label_for=lambda extractor: extractor.label + "∞",
    needs_images=lambda dim, options: (5 if options.get("draws") == "nested" else 10) * (dim + 1),
)
def fd_infinity(inputs: CellInputs) -> dict[str, Any]:
    """dgm-eval's ``compute_FD_infinity`` with its random generator seeded (seed 0): each size draws its subset
    without replacement from the cell's features, one after another from one generator."""
    from lcm_bench.metrics.distances import feature_stats, frechet_distance

    features, n, draws = inputs.features, len(inputs.features), inputs.options.get("draws", "fresh")
    reference = feature_stats(inputs.reference_features)
    sizes = fd_infinity_sizes(n, int(inputs.options["points"]), draws)
    rng = np.random.default_rng(0)
    if draws == "fresh":
        subsets = [rng.choice(features, size, replace=False) for size in sizes]
    else:
        shuffled = features[rng.permutation(n)]
        subsets = [shuffled[:size] for size in sizes]
    values = np.array([frechet_distance(feature_stats(subset), reference) for subset in subsets])
    slope, intercept = np.polyfit(1 / sizes, values, 1)
    residual = float(np.sqrt(np.mean((values - (intercept + slope / sizes)) ** 2)))
    fit = {"sizes": sizes.tolist(), "values": values.tolist(), "slope": float(slope), "residual": residual}
    return {"value": float(intercept), "fit": fit, "draws": draws}


def _kid_label(extractor) -> str:
    """KID for Inception features; another extractor names itself (KID-EffNetLite0, ...)."""
    return "KID" if extractor.key.startswith("inception") else extractor.label.replace("FD", "KID", 1)


@register_metric(
    "kid",
    label="KID",
    higher_is_better=False,
    kind="distribution",
    defaults={"extractor": "inception", "mode": "clean", "num_subsets": 100, "max_subset_size": 1000},
    description="kernel inception distance (clean-fid's estimator, seeded)",
    label_for=_kid_label,
)
def kid(inputs: CellInputs) -> dict[str, Any]:
    from lcm_bench.metrics.distances import kernel_inception_distance

    subsets = {
        "num_subsets": int(inputs.options["num_subsets"]),
        "max_subset_size": int(inputs.options["max_subset_size"]),
    }

    def distance(features: np.ndarray) -> float:
        return kernel_inception_distance(features, inputs.reference_features, **subsets)

    return _with_floor({"value": distance(inputs.features)}, inputs, distance)


@register_metric(
    "cmmd",
    label="CMMD",
    higher_is_better=False,
    kind="distribution",
    defaults={"model": "ViT-L-14-336", "pretrained": "openai", "estimator": "biased"},
    choices={"estimator": CMMD_ESTIMATORS},
    description="MMD on CLIP embeddings, Gaussian kernel sigma 10, x1000 (Jayasumana et al. 2024); estimator biased "
    "(google-research/cmmd's, as published) or unbiased",
    extractor=clip_extractor,
)
def cmmd(inputs: CellInputs) -> dict[str, Any]:
    from lcm_bench.metrics.distances import cmmd as cmmd_distance

    estimator = inputs.options.get("estimator", "biased")

    def distance(features: np.ndarray) -> float:
        return cmmd_distance(features, inputs.reference_features, estimator=estimator)

    return _with_floor({"value": distance(inputs.features), "estimator": estimator}, inputs, distance)


@register_metric(
    "clip_score",
    label="CLIP score",
    higher_is_better=True,
    kind="per-image",
    measures="text-alignment",
    defaults={"model": "ViT-g-14", "pretrained": "laion2b_s34b_b88k", "resize": "crop"},
    choices={"resize": CLIP_RESIZES},
    description="100 x cosine(image, caption) averaged, clamped at 0 (torchmetrics' formula), open_clip backbone; "
    "images resized on their shortest side and centre-cropped as torchmetrics' CLIP processor does (resize: squash "
    "resizes the whole image, lcm-bench's computation before 2026-12-07)",
    extractor=clip_extractor,
    aggregate=clip_score_value,
)
def clip_score(inputs: CellInputs) -> dict[str, Any]:
    import torch

    from lcm_bench.metrics.clip_score import clip_score_value, cosine_scores
    from lcm_bench.metrics.distances import bootstrap_ci

    with torch.inference_mode():
        text, truncated = inputs.extractor.clip.text_features(inputs.prompts)
    per_image = cosine_scores(inputs.features, text.cpu().numpy())
    low, high = bootstrap_ci(per_image)
    return {
        "value": clip_score_value(per_image),
        "ci95": [max(low, 0.0), max(high, 0.0)],
        "per_image": [round(float(v), 4) for v in per_image],
        "truncated_captions": truncated,
    }


@register_metric(
    "attribute_accuracy",
    label="attribute accuracy",
    higher_is_better=True,
    kind="per-image",
    measures="attributes",
    defaults={"extractor": "shapes-judge"},
    description=(
        "GenEval-style: the embedded judge reads every attribute a shapes caption names; overall and per attribute"
    ),
    tolerance={"rel": 0.0, "abs": 0.03, "noise_k": 2.0},
)
def attribute_accuracy(inputs: CellInputs) -> dict[str, Any]:
    """Share of images whose every attribute (and each attribute group) the judge reads as the caption says."""
    from lcm_bench.domain.judge import accuracy, predict
    from lcm_bench.domain.shapes import HEADS, labels, parse
    from lcm_bench.metrics.distances import bootstrap_ci

    scenes = [parse(p) for p in inputs.prompts]
    if any(s is None for s in scenes):
        raise UserError("metrics: attribute_accuracy needs prompts of the shapes domain")
    judge, images = inputs.extractor.judge, np.stack(list(inputs.images()))
    truth = {k: np.array([labels(s)[k] for s in scenes]) for k in HEADS}
    groups = accuracy(judge, images, truth)
    pred = predict(judge, images)
    correct = np.logical_and.reduce([pred[k] == truth[k] for k in HEADS]).astype(np.float64)
    low, high = bootstrap_ci(correct)
    return {
        "value": groups["all"],
        "per_attribute": groups,
        "ci95": [low, high],
        "per_image": correct.astype(int).tolist(),
    }
