"""Metric definitions: what each metric needs, its options with defaults, and its direction.

Light on purpose (no torch): suites validate metric specs against this registry; ``scoring`` computes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lcm_bench.core.registry import Registry


@dataclass(frozen=True)
class MetricDef:
    label: str
    higher_is_better: bool
    needs_reference: bool
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    tolerance: dict[str, float] = field(default_factory=lambda: {"rel": 0.1, "abs": 0.0, "noise_k": 2.0})
    """The gate's default margin: max(rel x |baseline|, abs, noise_k x noise)."""


METRICS: Registry[MetricDef] = Registry("metric")
METRICS.register(
    "fid",
    MetricDef(
        "FID",
        False,
        True,
        {"mode": "clean", "subsets": 5},
        "Fréchet Inception distance through clean-fid (modes clean, legacy_tensorflow, legacy_pytorch)",
    ),
)
METRICS.register(
    "fd",
    MetricDef(
        "FD",
        False,
        True,
        {"extractor": "effnet-lite0", "subsets": 5},
        "Fréchet distance in another extractor's features (effnet-lite0, clip, dinov2, inception)",
    ),
)
METRICS.register(
    "kid",
    MetricDef(
        "KID",
        False,
        True,
        {"extractor": "inception", "mode": "clean", "num_subsets": 100, "max_subset_size": 1000},
        "kernel inception distance (clean-fid's estimator, seeded)",
    ),
)
METRICS.register(
    "cmmd",
    MetricDef(
        "CMMD",
        False,
        True,
        {"model": "ViT-L-14-336", "pretrained": "openai", "unbiased": True},
        "MMD on CLIP embeddings, Gaussian kernel sigma 10, x1000 (Jayasumana et al. 2024)",
    ),
)
METRICS.register(
    "clip_score",
    MetricDef(
        "CLIP score",
        True,
        False,
        {"model": "ViT-g-14", "pretrained": "laion2b_s34b_b88k"},
        "100 x cosine(image, caption) averaged, clamped at 0 (torchmetrics' formula), open_clip backbone",
    ),
)
METRICS.register(
    "attribute_accuracy",
    MetricDef(
        "attribute accuracy",
        True,
        False,
        {"extractor": "shapes-judge"},
        "GenEval-style: the embedded judge reads every attribute a shapes caption names; overall and per attribute",
        tolerance={"rel": 0.0, "abs": 0.03, "noise_k": 2.0},
    ),
)


def metric_of(metric_id: str, result: dict) -> MetricDef:
    """The definition behind a stored result (its ``metric`` field; older results by the longest name prefix)."""
    name = result.get("metric") or max((n for n in METRICS if metric_id.startswith(n)), key=len, default=None)
    return METRICS.get(name or metric_id)


def result_inputs(result: dict) -> dict[str, str | None]:
    """What a stored metric result was computed with besides its cell's images: the extractor's weights digest and
    the reference set's content hash (None for metrics without a reference)."""
    return {
        "extractor_digest": result.get("extractor_digest"),
        "reference_hash": (result.get("reference") or {}).get("hash"),
    }


EXTRACTOR_OPTIONS = {"mode", "model", "pretrained", "weights", "arch"}
EXTRACTOR_NAMES = ("inception", "effnet-lite0", "clip", "dinov2", "shapes-judge")
INCEPTION_MODES = ("clean", "legacy_tensorflow", "legacy_pytorch")
