"""Scores a finished cell from its images: features (cached per cell) -> statistics -> metric (torch-fidelity's input ->
features -> statistics -> metric), each metric computed by its registry entry.

The scorer is handed an ``ImageSource`` (where a cell's images and feature files are; ``lcm_bench.run.scoring`` gives
the run directory's) and each cell as a ``ScoredCell`` (``lcm_bench.metrics.scored_cell``); it never reaches into a run
directory or a record. Every cache is keyed by content: a cell's features by its fingerprint and the extractor's weights
digest, reference features by the extractor's digest and the reference set's content hash. A metric result records the
digest and hash it was computed with; a stored result whose inputs differ from today's is recomputed.

Each metric result records its value, direction, sample count, extractor and preprocessing mode, reference set, and its
uncertainty: a bootstrap interval for per-image metrics, the spread over K disjoint subsets for Fréchet distances, and
the noise floor (reference against an independent second draw of real images for the same prompts) where the reference
set can be drawn again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from lcm_bench.core.errors import UserError
from lcm_bench.core.registry import Registry
from lcm_bench.core.spec import MetricSpec, PromptSetSpec, ReferenceSpec, stable_hash
from lcm_bench.domain.prompts import prompt_categories
from lcm_bench.metrics.builtins import METRICS, CellInputs, check_images, per_category
from lcm_bench.metrics.extractors import Extractor, build_extractor, extractor_digest
from lcm_bench.metrics.references import (
    GENERATORS,
    ReferenceSet,
    cached,
    dataset_reference,
    folder_reference,
    parquet_reference,
    reference_features,
    stream_features,
)
from lcm_bench.metrics.scored_cell import PromptSource, ScoredCell


def centre_crop(image: np.ndarray, side: int) -> np.ndarray:
    """The central ``side`` x ``side`` pixels of an HxWx3 image."""
    top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    return image[top : top + side, left : left + side]


def _generated(spec: ReferenceSpec, prompts: PromptSource, field: str) -> ReferenceSet:
    return GENERATORS.get(spec.source)(prompts.read(), **dict(spec.options))


REFERENCE_KINDS: Registry[Callable[[ReferenceSpec, PromptSource, str], ReferenceSet]] = Registry("reference kind")
REFERENCE_KINDS.register("folder", lambda spec, prompts, field: folder_reference(Path(spec.source), field))
REFERENCE_KINDS.register(
    "parquet",
    lambda spec, prompts, field: parquet_reference(Path(spec.source), dict(spec.options)["column"], field),
)
REFERENCE_KINDS.register("dataset", lambda spec, prompts, field: dataset_reference(Path(spec.source), field))
REFERENCE_KINDS.register("generator", _generated)


class ImageSource(Protocol):
    """Where a cell's images and cached features are."""

    def images(self, cell: ScoredCell) -> Iterator[np.ndarray]:
        """The cell's images (uint8 HxWx3) in sample order."""

    def features_file(self, cell: ScoredCell, prefix: str, name: str) -> Path:
        """The file caching the cell's features named ``name``; files of other ``name``s with ``prefix`` are stale."""


def extractor_request(metric: MetricSpec) -> tuple[str, dict[str, Any]]:
    """The extractor a metric needs and its options, as its registry entry says."""
    return METRICS.get(metric.name).extractor(dict(metric.options))


def _request_key(metric: MetricSpec) -> str:
    name, options = extractor_request(metric)
    return repr((name, sorted(options.items())))


class Scorer:
    """Holds loaded extractors and reference features across the cells of a run; ``weights`` are extra folders to
    find metric weights in (``--weights-dir``); ``device`` None picks CUDA when there is one, when first needed."""

    def __init__(
        self,
        source: ImageSource | None,
        references: dict[str, ReferenceSpec | None],
        device: str | None = "cpu",
        weights: Sequence[Path] = (),
        prompt_sets: dict[str, PromptSetSpec] | None = None,
        paired: Callable[[ScoredCell, str], ScoredCell | None] = lambda cell, method: None,
    ):
        self.source = source
        self.paired = paired
        self.reference_specs = references
        self.prompt_sets = prompt_sets or {}
        self._labels: dict[str, dict[str, list[str]]] = {}
        self._prompt_files: dict[tuple, tuple[str, ...]] = {}
        self._device = device
        self.weights = tuple(weights)
        self._extractors: dict[str, Extractor] = {}
        self._references: dict[str, ReferenceSet] = {}
        self._floors: dict[tuple, np.ndarray] = {}
        self._floor_values: dict[tuple, float] = {}
        self._digests: dict[str, str] = {}
        self._memos: dict[tuple, dict] = {}

    @property
    def device(self) -> str:
        """The device extractors run on: as given, else CUDA when there is one (torch is imported only then)."""
        if self._device is None:
            import torch

            self._device = "cuda" if torch.cuda.is_available() else "cpu"
        return self._device

    def extractor(self, metric: MetricSpec, field: str) -> Extractor:
        key = _request_key(metric)
        if key not in self._extractors:
            name, options = extractor_request(metric)
            self._extractors[key] = build_extractor(name, options, self.device, field, self.weights)
        return self._extractors[key]

    def extractor_digest(self, metric: MetricSpec, field: str) -> str:
        """The extractor's weights digest without loading it (built only when its weights are not on disk yet)."""
        key = _request_key(metric)
        if key not in self._digests:
            name, options = extractor_request(metric)
            digest = extractor_digest(name, options, self.weights)
            self._digests[key] = digest or self.extractor(metric, field).digest
        return self._digests[key]

    def inputs(self, cell: ScoredCell, metric: MetricSpec, field: str) -> dict[str, Any]:
        """Today's ``result_inputs`` for a metric of ``cell``: extractor weights digest, reference content hash,
        categories hash, the metric's options."""
        reference, labels, definition = None, None, METRICS.get(metric.name)
        if definition.needs_reference:
            reference = self.reference(cell.prompts).content_hash
        else:
            reference = self._paired_hash(cell, metric) if definition.paired else None
            labels = self.category_labels(cell) if definition.by_image else None
        return {
            "extractor_digest": self.extractor_digest(metric, field),
            "reference_hash": reference,
            "categories_hash": stable_hash(labels, 16) if labels else None,
            "options": dict(metric.options),
        }

    def _paired(self, cell: ScoredCell, metric: MetricSpec) -> ScoredCell | None:
        return self.paired(cell, dict(metric.options)["reference"])

    def _paired_hash(self, cell: ScoredCell, metric: MetricSpec) -> str | None:
        """What a paired result depends on besides the cell: its reference cell's id and fingerprint."""
        paired = self._paired(cell, metric)
        return stable_hash([paired.cell_id, paired.fingerprint], 16) if paired else None

    def can_score(self, cell: ScoredCell, metric: MetricSpec) -> bool:
        """False for a paired metric whose reference cell is not finished (or is the cell's own method)."""
        return not METRICS.get(metric.name).paired or self._paired(cell, metric) is not None

    def prompts_of(self, cell: ScoredCell) -> list[str]:
        """The caption of each of a cell's images (each prompt file read once while this scorer lives)."""
        source = cell.prompts
        key = (source.source, source.format, source.column)
        if key not in self._prompt_files:
            self._prompt_files[key] = source.read()
        return [self._prompt_files[key][i] for i in cell.prompt_indices]

    def category_labels(self, cell: ScoredCell) -> dict[str, list[str]]:
        """Each category column's label for every image of ``cell`` (empty when its prompt set has none)."""
        spec = self.prompt_sets.get(cell.prompts.name)
        if spec is None or not (spec.categories or spec.annotator):
            return {}
        if spec.name not in self._labels:
            self._labels[spec.name] = prompt_categories(spec)
        return {column: [labels[i] for i in cell.prompt_indices] for column, labels in self._labels[spec.name].items()}

    def reference(self, prompts: PromptSource) -> ReferenceSet:
        if prompts.name not in self._references:
            self._references[prompts.name] = self._load_reference(prompts)
        return self._references[prompts.name]

    def _load_reference(self, prompts: PromptSource) -> ReferenceSet:
        name = prompts.name
        spec = self.reference_specs.get(name)
        if spec is None:
            raise UserError(f"prompts: prompt set '{name}' has no reference images")
        return REFERENCE_KINDS.get(spec.kind)(spec, prompts, f"prompts[{name}].references")

    def cell_features(self, cell: ScoredCell, extractor: Extractor, crop: int | None = None) -> np.ndarray:
        """The cell's features (cached), of centre crops of side ``crop`` when given."""
        prefix = (f"centre{crop}-" if crop else "") + f"{extractor.key}-{extractor.mode}"
        path = self.source.features_file(cell, prefix, f"{prefix}-w{extractor.digest[:12]}")
        images = self.source.images(cell) if not crop else (centre_crop(i, crop) for i in self.source.images(cell))
        prompts = self.prompts_of(cell) if extractor.conditioned else None
        return cached(path, lambda: stream_features(images, extractor, prompts=prompts))

    def _crop(self, cell: ScoredCell, extractor: Extractor, metric: MetricSpec, field: str) -> int | None:
        """The crop side a cropping metric takes (the extractor's input size), checked against the images."""
        if not METRICS.get(metric.name).crop:
            return None
        side, (height, width) = extractor.input_size, self._image_size(cell)
        if side is None or min(height, width) <= side:
            raise UserError(
                f"{field}: {metric.name} crops the extractor's input size ({side or 'none: it takes any size'}) "
                f"from full-resolution images, which must be larger; these are {width}x{height}"
            )
        return side

    def _image_size(self, cell: ScoredCell) -> tuple[int, int]:
        """The cell's image size as its record gives it, else read from its first image."""
        return cell.size or next(iter(self.source.images(cell))).shape[:2]

    def noise_floor(self, metric: MetricSpec, reference: ReferenceSet, extractor: Extractor, prompts: list[str]):
        """``noise_floor(distance)`` for CellInputs: the distance between the reference and a second draw of real
        images for the same prompts (features drawn once per extractor, value once per metric)."""

        def floor(distance) -> float | None:
            if reference.render is None:
                return None
            key = (extractor.key, reference.content_hash, tuple(prompts))
            if key not in self._floors:
                self._floors[key] = stream_features(reference.render(prompts, 1), extractor)
            value_key = (metric.metric_id, *key)
            if value_key not in self._floor_values:
                self._floor_values[value_key] = distance(self._floors[key])
            return self._floor_values[value_key]

        return floor

    def _memo(self, *key) -> dict:
        """What metrics of one cell (or one reference) in one extractor's features share while this scorer lives."""
        return self._memos.setdefault(key, {})

    def invalid(self, cell: ScoredCell, metric: MetricSpec, field: str) -> dict[str, Any]:
        """The result of a metric over images that hold NaN or inf: no value, the reason, today's inputs."""
        definition = METRICS.get(metric.name)
        bad, n = cell.nonfinite_images, cell.num_images
        inputs = self.inputs(cell, metric, field)
        return {
            "metric": metric.name,
            "label": definition.label,
            "higher_is_better": definition.higher_is_better,
            "value": None,
            "invalid": f"{bad} of {n} images hold NaN or inf (an fp16 VAE overflow? try an fp32 VAE or bf16)",
            "extractor_digest": inputs["extractor_digest"],
            "options": dict(metric.options),
            **({"reference": {"hash": inputs["reference_hash"]}} if inputs["reference_hash"] else {}),
        }

    def score(self, cell: ScoredCell, metric: MetricSpec, field: str) -> dict[str, Any]:
        """The metric's result for one finished cell: what its entry computes, with what it was computed from."""
        if cell.nonfinite_images:
            return self.invalid(cell, metric, field)
        definition = METRICS.get(metric.name)
        extractor = self.extractor(metric, field)
        crop = self._crop(cell, extractor, metric, field)
        check_images(definition, cell.num_images, extractor.dim, field, dict(metric.options))
        inputs = CellInputs(
            self.cell_features(cell, extractor, crop),
            self.prompts_of(cell),
            extractor,
            dict(metric.options),
            lambda: self.source.images(cell),
            memo=self._memo("cell", cell.cell_id, stable_hash(cell.fingerprint, 16), extractor.key, extractor.digest),
        )
        result: dict[str, Any] = {
            "metric": metric.name,
            "label": definition.column_label(extractor),
            "higher_is_better": definition.higher_is_better,
            "n": len(inputs.features),
            "extractor": extractor.key,
            "extractor_digest": extractor.digest,
            "mode": extractor.mode,
            "options": inputs.options,
        }
        if definition.needs_reference:
            result["reference"] = self._with_reference(cell, metric, inputs)
        if definition.paired:
            result["reference"] = self._with_pairs(cell, metric, inputs, crop, field)
        out = {**result, **definition.compute(inputs)}
        labels = self.category_labels(cell) if definition.by_image else {}
        if labels:
            values = out.get("per_image")
            groups = per_category(values, labels, definition.aggregate) if values and None not in values else {}
            out["per_category"] = {"hash": stable_hash(labels, 16), "columns": groups}
        return out

    def _with_reference(self, cell: ScoredCell, metric: MetricSpec, inputs: CellInputs) -> dict[str, Any]:
        """Hand a distribution metric the reference set's features and noise floor; what the result records of it."""
        extractor = inputs.extractor
        reference = self.reference(cell.prompts)
        inputs.reference_features = reference_features(reference, extractor)
        inputs.noise_floor = self.noise_floor(metric, reference, extractor, inputs.prompts)
        inputs.reference_memo = self._memo("reference", reference.content_hash, extractor.key, extractor.digest)
        return {
            "name": reference.name,
            "n": reference.size,
            "hash": reference.content_hash,
            "preprocessing": reference.preprocessing,
        }

    def _with_pairs(
        self, cell: ScoredCell, metric: MetricSpec, inputs: CellInputs, crop: int | None, field: str
    ) -> dict[str, Any]:
        """Hand a paired metric its reference cell's features and images; what the result records of it."""
        paired = self._paired(cell, metric)
        inputs.paired_features = self.cell_features(paired, inputs.extractor, crop)
        inputs.paired_images = lambda: self.source.images(paired)
        if len(inputs.paired_features) != len(inputs.features):
            raise UserError(
                f"{field}: cell {cell.cell_id} has {len(inputs.features)} images and its reference "
                f"{paired.cell_id} {len(inputs.paired_features)}; paired metrics need the same number"
            )
        method = dict(metric.options)["reference"]
        return {
            "name": f"{method}, paired",
            "n": len(inputs.paired_features),
            "preprocessing": "the same prompts and seeds",
            "method": method,
            "cell_id": paired.cell_id,
            "hash": self._paired_hash(cell, metric),
        }
