"""Scores finished cells from their saved images: features (cached per cell) -> statistics -> metric.

Every cache is keyed by content: per-cell features by the cell's fingerprint and the extractor's weights digest,
reference features by the extractor's digest and the reference set's content hash. A metric result records the
digest and hash it was computed with; a stored result whose inputs differ from today's is recomputed.

Each metric result records its value, direction, sample count, extractor and preprocessing mode, reference set,
and its uncertainty: a bootstrap interval for per-image metrics, the spread over K disjoint subsets for
Fréchet distances, and the noise floor (reference against an independent second draw of real images for the same
prompts) where the reference set can be drawn again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import UserError
from ..execute.chunks import ChunkStore, expected_images
from ..execute.leases import held
from ..faults import reached
from ..prompts import read_prompts
from ..spec import MetricSpec, ReferenceSpec
from ..store import RunDir
from . import METRICS, result_inputs
from .clip import clip_score_value, cosine_scores
from .distances import bootstrap_ci, cmmd, feature_stats, frechet_distance, kernel_inception_distance, subset_spread
from .extractors import Extractor, build_extractor, extractor_digest
from .references import (
    GENERATORS,
    ReferenceSet,
    cached,
    folder_reference,
    parquet_reference,
    reference_features,
    stream_features,
)


def _request_key(metric: MetricSpec) -> str:
    name, options = _extractor_request(metric)
    return repr((name, sorted(options.items())))


def _extractor_request(metric: MetricSpec) -> tuple[str, dict[str, Any]]:
    options = dict(metric.options)
    if metric.name == "fid":
        return "inception", {"mode": options["mode"]}
    if metric.name in ("cmmd", "clip_score"):
        return "clip", {"model": options["model"], "pretrained": options["pretrained"]}
    return options["extractor"], options


def attribute_accuracy(judge, images, prompts: list[str]) -> dict[str, Any]:
    """Share of images whose every attribute (and each attribute group) the judge reads as the caption says."""
    from ..domain.shapes import HEADS, labels, parse
    from ..train.judge import accuracy, predict

    scenes = [parse(p) for p in prompts]
    if any(s is None for s in scenes):
        raise UserError("metrics: attribute_accuracy needs prompts of the shapes domain")
    images = np.stack(list(images))
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


def _label(name: str, label: str, extractor: Extractor) -> str:
    """FID and KID only for Inception features; other extractors name themselves (FD-EffNetLite0, KID-...)."""
    if name == "fd":
        return extractor.label
    if name == "kid" and not extractor.key.startswith("inception"):
        return extractor.label.replace("FD", "KID", 1)
    return label


def load_images(run: RunDir, cell_id: str, n: int, expected: dict[str, str] | None = None):
    """The cell's saved images in order, each checked against the sha256 its chunk recorded: a damaged image stops
    scoring in one line and its record is set aside, so the next run generates the chunk again."""
    import hashlib
    import io

    from PIL import Image

    folder = run.images_dir(cell_id)
    for i in range(n):
        path = folder / f"{i:05d}.png"
        if not path.is_file():
            raise UserError(f"cell {cell_id}: image {path} is missing; metrics need save_images: all")
        data = path.read_bytes()
        if expected and path.name in expected and hashlib.sha256(data).hexdigest() != expected[path.name]:
            run.discard_record(cell_id)
            path.unlink()
            raise UserError(
                f"cell {cell_id}: image {path} differs from the checksum its chunk recorded (damaged); it was removed "
                "and the cell's record set aside: run the same command again to generate its chunk anew"
            )
        yield np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


class Scorer:
    """Holds loaded extractors and reference features across the cells of a run."""

    def __init__(self, run: RunDir, references: dict[str, ReferenceSpec | None], device: str = "cpu"):
        self.run = run
        self.reference_specs = references
        self.device = device
        self._extractors: dict[str, Extractor] = {}
        self._references: dict[str, ReferenceSet] = {}
        self._floors: dict[tuple, np.ndarray] = {}
        self._floor_values: dict[tuple, float] = {}
        self._digests: dict[str, str] = {}

    def extractor(self, metric: MetricSpec, field: str) -> Extractor:
        name, options = _extractor_request(metric)
        key = _request_key(metric)
        if key not in self._extractors:
            self._extractors[key] = build_extractor(name, options, self.device, field)
        return self._extractors[key]

    def extractor_digest(self, metric: MetricSpec, field: str) -> str:
        """The extractor's weights digest without loading it (built only when its weights are not on disk yet)."""
        name, options = _extractor_request(metric)
        key = _request_key(metric)
        if key not in self._digests:
            self._digests[key] = extractor_digest(name, options) or self.extractor(metric, field).digest
        return self._digests[key]

    def inputs(self, record: dict, metric: MetricSpec, field: str) -> dict[str, str | None]:
        """Today's ``result_inputs`` for a metric of ``record``: extractor weights digest, reference content hash."""
        reference = None
        if METRICS.get(metric.name).needs_reference:
            reference = self.reference(record["spec"]["prompts"]).content_hash
        return {"extractor_digest": self.extractor_digest(metric, field), "reference_hash": reference}

    def reference(self, prompt_spec: dict) -> ReferenceSet:
        name = prompt_spec["name"]
        if name not in self._references:
            spec = self.reference_specs.get(name)
            if spec is None:
                raise UserError(f"prompts: prompt set '{name}' has no reference images")
            options = dict(spec.options)
            if spec.kind == "folder":
                ref = folder_reference(Path(spec.source), f"prompts[{name}].references")
            elif spec.kind == "parquet":
                ref = parquet_reference(Path(spec.source), options["column"], f"prompts[{name}].references")
            else:
                prompts = read_prompts(Path(prompt_spec["source"]), prompt_spec["format"], prompt_spec["column"])
                ref = GENERATORS.get(spec.source)(prompts, **options)
            self._references[name] = ref
        return self._references[name]

    def cell_features(self, record: dict, extractor: Extractor) -> np.ndarray:
        cell_id, n = record["cell_id"], record["spec"]["num_images"]
        cell = (record.get("fingerprint") or {}).get("value", "unknown")[:12]
        name = f"{extractor.key}-{extractor.mode}-w{extractor.digest[:12]}-c{cell}.safetensors"
        path = self.run.path / "features" / cell_id / name
        if not path.is_file():
            for stale in path.parent.glob(f"{extractor.key}-{extractor.mode}-*.safetensors"):
                stale.unlink()
        expected = expected_images(self.run, record)
        return cached(path, lambda: stream_features(load_images(self.run, cell_id, n, expected), extractor))

    def noise_floor(
        self, metric: MetricSpec, reference: ReferenceSet, extractor: Extractor, prompts: list[str], distance
    ) -> float | None:
        """``distance`` between the reference and a second draw of real images for the same prompts."""
        if reference.render is None:
            return None
        key = (extractor.key, reference.content_hash, tuple(prompts))
        if key not in self._floors:
            self._floors[key] = stream_features(reference.render(prompts, 1), extractor)
        value_key = (metric.metric_id, *key)
        if value_key not in self._floor_values:
            self._floor_values[value_key] = distance(self._floors[key])
        return self._floor_values[value_key]

    def invalid(self, record: dict, metric: MetricSpec, field: str) -> dict[str, Any]:
        """The result of a metric over images that hold NaN or inf: no value, the reason, today's inputs."""
        definition = METRICS.get(metric.name)
        bad, n = len(record["nonfinite_images"]), record["spec"]["num_images"]
        inputs = self.inputs(record, metric, field)
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

    def score(self, record: dict, metric: MetricSpec, field: str) -> dict[str, Any]:
        if record.get("nonfinite_images"):
            return self.invalid(record, metric, field)
        definition = METRICS.get(metric.name)
        options = dict(metric.options)
        extractor = self.extractor(metric, field)
        generated = self.cell_features(record, extractor)
        prompt_spec = record["spec"]["prompts"]
        all_prompts = read_prompts(Path(prompt_spec["source"]), prompt_spec["format"], prompt_spec["column"])
        prompts = [all_prompts[s["prompt_index"]] for s in record["samples"]]
        result: dict[str, Any] = {
            "metric": metric.name,
            "label": _label(metric.name, definition.label, extractor),
            "higher_is_better": definition.higher_is_better,
            "n": len(generated),
            "extractor": extractor.key,
            "extractor_digest": extractor.digest,
            "mode": extractor.mode,
            "options": options,
        }
        if metric.name == "attribute_accuracy":
            return {
                **result,
                **attribute_accuracy(
                    extractor.judge,
                    load_images(self.run, record["cell_id"], len(generated), expected_images(self.run, record)),
                    prompts,
                ),
            }
        if metric.name == "clip_score":
            with torch.inference_mode():
                text, truncated = extractor.clip.text_features(prompts)
            per_image = cosine_scores(generated, text.cpu().numpy())
            low, high = bootstrap_ci(per_image)
            result.update(
                value=clip_score_value(per_image),
                ci95=[max(low, 0.0), max(high, 0.0)],
                per_image=[round(float(v), 4) for v in per_image],
                truncated_captions=truncated,
            )
            return result
        reference = self.reference(prompt_spec)
        ref_features = reference_features(reference, extractor)
        result["reference"] = {"name": reference.name, "n": reference.size, "hash": reference.content_hash}
        if metric.name in ("fid", "fd"):
            ref_stats = feature_stats(ref_features)

            def distance(features):
                return frechet_distance(feature_stats(features), ref_stats)

            k = int(options.get("subsets", 5))
            if k > 1 and len(generated) >= 4 * k:
                spread = subset_spread(generated, ref_stats, k)
                result["subsets"] = {"k": k, "values": spread, "std": float(np.std(spread, ddof=1))}
        elif metric.name == "kid":
            kwargs = {"num_subsets": int(options["num_subsets"]), "max_subset_size": int(options["max_subset_size"])}

            def distance(features):
                return kernel_inception_distance(features, ref_features, **kwargs)
        else:
            unbiased = bool(options.get("unbiased", True))

            def distance(features):
                return cmmd(features, ref_features, unbiased=unbiased)

        result["value"] = distance(generated)
        if metric.name in ("fid", "fd") and len(generated) <= extractor.dim:
            result["note"] = f"N = {len(generated)} <= feature dim {extractor.dim}: singular covariance, biased FD"
        floor = self.noise_floor(metric, reference, extractor, prompts, distance)
        if floor is not None:
            result["noise_floor"] = floor
        return result


def prepare_references(suite, device: str = "cpu"):
    """Compute and cache the reference features of every (metric, prompt set) pair the suite's metrics need, so that
    processes scoring in parallel find them on disk. Yields ``(metric, prompt set name, reference, features)``."""
    scorer = Scorer(RunDir("."), suite.references, device)
    prompt_sets = {c.prompts.name: c.prompts for c in suite.cells}
    for i, metric in enumerate(suite.metrics):
        if not METRICS.get(metric.name).needs_reference:
            continue
        extractor = scorer.extractor(metric, f"metrics[{i}]")
        for name, spec in prompt_sets.items():
            source = {"name": name, "source": spec.source, "format": spec.format, "column": spec.column}
            reference = scorer.reference(source)
            yield metric, name, reference, reference_features(reference, extractor)


def score_run(run: RunDir, suite, cell_ids: list[str], progress: bool = True, device: str | None = None) -> int:
    """Add every missing metric of ``suite`` to the finished cells ``cell_ids``; returns how many were computed."""
    import sys

    import torch
    from tqdm import tqdm

    from ..digests import digest_cache

    if not suite.metrics:
        return 0
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    scorer = Scorer(run, suite.references, device)
    records = run.records()
    sources = {c.prompts.name: c.prompts.source for c in suite.cells}
    for record in records.values():
        prompts = record["spec"]["prompts"]
        prompts["source"] = sources.get(prompts["name"], prompts["source"])
    todo = []
    for index, metric in enumerate(suite.metrics):
        for cell_id in cell_ids:
            record = records.get(cell_id)
            if record is None:
                continue
            stored = record.get("metrics", {}).get(metric.metric_id)
            inputs = scorer.inputs(record, metric, f"metrics[{index}]")
            if stored is None or result_inputs(stored) != inputs:
                todo.append((record, index, metric))
    digest_cache().flush()
    computed = 0
    for record, index, metric in tqdm(
        todo, desc="scoring", unit="metric", disable=not progress or not todo, file=sys.stderr, dynamic_ncols=True
    ):
        with held(ChunkStore(run).leases(record["cell_id"]), "record"):
            fresh = run.record(record["cell_id"])
            if fresh is None or (fresh.get("fingerprint") or {}).get("value") != (record.get("fingerprint") or {}).get(
                "value"
            ):
                continue
            fresh["spec"]["prompts"]["source"] = record["spec"]["prompts"]["source"]
            stored = fresh.get("metrics", {}).get(metric.metric_id)
            if stored is not None and result_inputs(stored) == scorer.inputs(fresh, metric, f"metrics[{index}]"):
                continue
            fresh.setdefault("metrics", {})[metric.metric_id] = scorer.score(fresh, metric, f"metrics[{index}]")
            run.write_record({k: v for k, v in fresh.items() if k != "schema_version"})
            computed += 1
        reached("metric")
    return computed
