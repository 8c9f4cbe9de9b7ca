"""What a metric entry is (lm-evaluation-harness's ``MetricSpec``): its label, direction, kind, what it measures,
the extractor it needs, its options with defaults, the gate's tolerance and its compute function, and the registry
that holds them; the entries themselves are in ``catalogue`` (and the modules it imports).

Light on purpose (numpy, no torch at import): suites validate metric specs against the registry. A compute
function takes the cell's ``CellInputs`` and returns the fields it adds to the stored result (``value`` at least).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lcm_bench.core.errors import UserError
from lcm_bench.core.registry import Registry

KINDS = ("distribution", "set", "per-image", "paired")
"""distribution: the cell's images against the prompt set's reference images; set: the cell's images alone;
per-image: one value per image, then aggregated; paired: each image against the image a reference method of the
suite drew for the same prompt and seed (its option ``reference`` names the method)."""
MEASURES = ("fidelity", "diversity", "text-alignment", "attributes", "preference")
EXTRACTOR_OPTIONS = {
    *("mode", "model", "pretrained", "weights", "arch", "net"),
    *("checkpoint", "config", "tokenizer", "processor", "head"),
}


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
    memo: dict[Any, Any] = field(default_factory=dict)
    """What one metric of this cell computed for another in the same features (e.g. its k-NN indicators)."""
    reference_memo: dict[Any, Any] = field(default_factory=dict)
    """What a metric derived from the reference features (e.g. their k-NN radii), shared by every cell."""
    paired_features: np.ndarray | None = None
    """For paired metrics: the reference method's features of the same prompts and seeds, row for row."""
    paired_images: Callable[[], Iterator[np.ndarray]] | None = None


def own_extractor(options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return options["extractor"], options


CLIP_RESIZES = ("crop", "squash")
"""How the ``clip`` extractor brings an image to the model's side: the shortest side resized and a centre crop, as
CLIP's processors do (CLIP score's reference, torchmetrics), or clean-fid's resize of the whole image to a square
(the extractor's default, for CLIP-FD and CMMD)."""


def clip_extractor(options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    resize = {"resize": options["resize"]} if "resize" in options else {}
    return "clip", {"model": options["model"], "pretrained": options["pretrained"], **resize}


def pixels_only(options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Pixel metrics read images, not features: the featureless ``pixels`` extractor."""
    return "pixels", {}


def inception_extractor(options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
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
    extractor: Callable[[dict[str, Any]], tuple[str, dict[str, Any]]] = own_extractor
    label_for: Callable[[Any], str] | None = None
    tolerance: dict[str, float] = field(default_factory=lambda: {"rel": 0.1, "abs": 0.0, "noise_k": 2.0})
    """The gate's default margin: max(rel x |baseline|, abs, noise_k x noise)."""
    aggregate: Callable[[np.ndarray], float] = lambda values: float(np.mean(values))
    """How a per-image metric's values make one number (per category as overall)."""
    crop: bool = False
    """Whether its extractor sees a centre crop of its input size at full resolution (Patch FID) rather than the
    resized image."""
    needs_images: Callable[[int, dict[str, Any]], int] = lambda dim, options: 1
    """The fewest images a cell needs, given the extractor's feature width and the metric's options."""
    per_image: bool | None = None
    """Whether it gives one value per image (and so per category); by default, per-image metrics do."""
    takes: frozenset[str] = frozenset()
    """Options a suite may give it beyond its defaults (without a default: e.g. a checkpoint path)."""
    choices: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Options whose value is one of a few named computations (e.g. CMMD's estimator), the reference's first."""

    @property
    def by_image(self) -> bool:
        return self.kind == "per-image" if self.per_image is None else self.per_image

    @property
    def needs_reference(self) -> bool:
        return self.kind == "distribution"

    @property
    def paired(self) -> bool:
        return self.kind == "paired"

    def default_extractor(self) -> str | None:
        """The extractor it uses with its default options; None for metrics that read pixels only."""
        return None if self.extractor is pixels_only else self.extractor({"extractor": "?", **self.defaults})[0]

    def needs(self, weights: str = "") -> str:
        """What computing it takes besides the cell's images: its extractor by default (and where that extractor's
        ``weights`` come from), reference images, a reference method."""
        extractor = self.default_extractor()
        parts = [f"extractor {extractor}" + (f" (weights {weights})" if weights else "")] if extractor else []
        parts += ["the prompt set's reference images"] if self.needs_reference else []
        parts += ["a reference method of the suite (option reference)"] if self.paired else []
        return ", ".join(parts)

    def column_label(self, extractor) -> str:
        return self.label_for(extractor) if self.label_for else self.label


METRICS: Registry[MetricDef] = Registry("metric")


def register_metric(name: str, **definition) -> Callable:
    """Decorator: register the decorated compute function as metric ``name`` with the MetricDef fields given."""

    def wrap(compute: Callable[[CellInputs], dict[str, Any]]) -> Callable:
        METRICS.register(name, MetricDef(compute=compute, **definition))
        return compute

    return wrap


def check_images(definition: MetricDef, n: int, dim: int | None, field: str, options: dict[str, Any]) -> None:
    """One line where a metric needs more images than a cell has, for its extractor's feature width."""
    needed = definition.needs_images(dim, options) if dim is not None else 0
    if n < needed:
        raise UserError(
            f"{field}: {definition.label} needs at least {needed} images per cell with "
            f"features of width {dim} (the smallest of its subsets must exceed the width); num_images is {n}"
        )


def metric_name_of(metric_id: str, result: dict) -> str:
    """The registered metric behind a stored result (its ``metric`` field; older results by the longest name
    prefix)."""
    return result.get("metric") or max((n for n in METRICS if metric_id.startswith(n)), key=len, default=metric_id)


def metric_of(metric_id: str, result: dict) -> MetricDef:
    """The definition behind a stored result."""
    return METRICS.get(metric_name_of(metric_id, result))


def result_inputs(result: dict) -> dict[str, Any]:
    """What a stored metric result was computed with besides its cell's images: the extractor's weights digest,
    the reference set's content hash (None for metrics without a reference), the hash of the categories its
    images were grouped by (None without categories) and the metric's options (an estimator, a k, a border)."""
    return {
        "extractor_digest": result.get("extractor_digest"),
        "reference_hash": (result.get("reference") or {}).get("hash"),
        "categories_hash": (result.get("per_category") or {}).get("hash"),
        "options": result.get("options"),
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
