"""Metric entries (lm-evaluation-harness's ``MetricSpec``): each carries its label, direction, kind, what it
measures, the extractor it needs, its options with defaults, the gate's tolerance and its compute function, so the
scorer, the suite parser, the report and the gate never branch on a metric's name.

Light on purpose (numpy, no torch at import): suites validate metric specs against this registry. A compute
function takes the cell's ``CellInputs`` and returns the fields it adds to the stored result (``value`` at least).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lcm_bench.core.errors import UserError
from lcm_bench.core.registry import Registry
from lcm_bench.metrics.clip_score import clip_score_value

KINDS = ("distribution", "per-image")
MEASURES = ("fidelity", "text-alignment", "attributes")
EXTRACTOR_OPTIONS = {"mode", "model", "pretrained", "weights", "arch"}


@dataclass
class CellInputs:
    """What a metric is computed from: the cell's features in the metric's extractor, the caption of each image, the
    built extractor, the metric's options, the cell's images again (in order), and for distribution metrics the
    reference set's features and its noise floor (``noise_floor(distance)``: the distance between the reference and
    a second draw of real images for the same prompts, None where the reference cannot be drawn again)."""

    features: np.ndarray
    prompts: list[str]
    extractor: Any
    options: dict[str, Any]
    images: Callable[[], Iterator[np.ndarray]]
    reference_features: np.ndarray | None = None
    noise_floor: Callable[[Callable[[np.ndarray], float]], float | None] = lambda distance: None


def _own_extractor(options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return options["extractor"], options


def _clip_extractor(options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return "clip", {"model": options["model"], "pretrained": options["pretrained"]}


def _inception_extractor(options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return "inception", {"mode": options["mode"]}


@dataclass(frozen=True)
class MetricDef:
    """A registered metric. ``extractor(options)`` names the extractor and its options; ``label_for(extractor)``
    the column label; ``kind`` distribution (needs reference images) or per-image; ``measures`` what a report plots
    it as."""

    label: str
    higher_is_better: bool
    kind: str
    compute: Callable[[CellInputs], dict[str, Any]]
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    measures: str = "fidelity"
    extractor: Callable[[dict[str, Any]], tuple[str, dict[str, Any]]] = _own_extractor
    label_for: Callable[[Any], str] | None = None
    tolerance: dict[str, float] = field(default_factory=lambda: {"rel": 0.1, "abs": 0.0, "noise_k": 2.0})
    """The gate's default margin: max(rel x |baseline|, abs, noise_k x noise)."""
    aggregate: Callable[[np.ndarray], float] = lambda values: float(np.mean(values))
    """How a per-image metric's values make one number (per category as overall)."""

    @property
    def needs_reference(self) -> bool:
        return self.kind == "distribution"

    def column_label(self, extractor) -> str:
        return self.label_for(extractor) if self.label_for else self.label


METRICS: Registry[MetricDef] = Registry("metric")


def register_metric(name: str, **definition) -> Callable:
    """Decorator: register the decorated compute function as metric ``name`` with the MetricDef fields given."""

    def wrap(compute: Callable[[CellInputs], dict[str, Any]]) -> Callable:
        METRICS.register(name, MetricDef(compute=compute, **definition))
        return compute

    return wrap


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
    extractor=_inception_extractor,
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
    defaults={"model": "ViT-L-14-336", "pretrained": "openai", "unbiased": True},
    description="MMD on CLIP embeddings, Gaussian kernel sigma 10, x1000 (Jayasumana et al. 2024)",
    extractor=_clip_extractor,
)
def cmmd(inputs: CellInputs) -> dict[str, Any]:
    from lcm_bench.metrics.distances import cmmd as cmmd_distance

    unbiased = bool(inputs.options.get("unbiased", True))

    def distance(features: np.ndarray) -> float:
        return cmmd_distance(features, inputs.reference_features, unbiased=unbiased)

    return _with_floor({"value": distance(inputs.features)}, inputs, distance)


@register_metric(
    "clip_score",
    label="CLIP score",
    higher_is_better=True,
    kind="per-image",
    measures="text-alignment",
    defaults={"model": "ViT-g-14", "pretrained": "laion2b_s34b_b88k"},
    description="100 x cosine(image, caption) averaged, clamped at 0 (torchmetrics' formula), open_clip backbone",
    extractor=_clip_extractor,
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


def metric_of(metric_id: str, result: dict) -> MetricDef:
    """The definition behind a stored result (its ``metric`` field; older results by the longest name prefix)."""
    name = result.get("metric") or max((n for n in METRICS if metric_id.startswith(n)), key=len, default=None)
    return METRICS.get(name or metric_id)


def result_inputs(result: dict) -> dict[str, str | None]:
    """What a stored metric result was computed with besides its cell's images: the extractor's weights digest,
    the reference set's content hash (None for metrics without a reference) and the hash of the categories its
    images were grouped by (None without categories)."""
    return {
        "extractor_digest": result.get("extractor_digest"),
        "reference_hash": (result.get("reference") or {}).get("hash"),
        "categories_hash": (result.get("per_category") or {}).get("hash"),
    }


def per_category(values, labels: dict[str, list[str]], aggregate: Callable[[np.ndarray], float]) -> dict[str, Any]:
    """Per-image values grouped by each category column: the aggregate, a 95 % percentile bootstrap interval of
    the mean (its bounds through the aggregate too, e.g. CLIP score's clamp at 0) and N for every category, in
    name order."""
    from lcm_bench.metrics.distances import bootstrap_ci

    values = np.asarray(values, np.float64)
    columns = {}
    for column, column_labels in labels.items():
        groups, chosen_labels = {}, np.asarray(column_labels)
        for label in sorted(set(column_labels)):
            chosen = values[chosen_labels == label]
            interval = [aggregate(np.array([bound])) for bound in bootstrap_ci(chosen)]
            groups[label] = {"value": aggregate(chosen), "ci95": interval, "n": int(len(chosen))}
        columns[column] = groups
    return columns
