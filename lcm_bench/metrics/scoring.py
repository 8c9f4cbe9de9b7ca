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

from lcm_bench.core.errors import UserError
from lcm_bench.core.spec import MetricSpec, ReferenceSpec
from lcm_bench.domain.prompts import read_prompts
from lcm_bench.metrics.catalogue import METRICS
from lcm_bench.metrics.clip_score import clip_score_value, cosine_scores
from lcm_bench.metrics.distances import (
    bootstrap_ci,
    cmmd,
    feature_stats,
    frechet_distance,
    kernel_inception_distance,
    subset_spread,
)
from lcm_bench.metrics.extractors import Extractor, build_extractor, extractor_digest
from lcm_bench.metrics.references import (
    GENERATORS,
    ReferenceSet,
    cached,
    folder_reference,
    parquet_reference,
    reference_features,
    stream_features,
)
from lcm_bench.records.store import RunDir
from lcm_bench.run.chunks import expected_images


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
    from lcm_bench.domain.judge import accuracy, predict
    from lcm_bench.domain.shapes import HEADS, labels, parse

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
