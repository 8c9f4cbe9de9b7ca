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

from lcm_bench.core.faults import reached
from lcm_bench.metrics.catalogue import METRICS, result_inputs
from lcm_bench.metrics.references import (
    reference_features,
)
from lcm_bench.metrics.scoring import Scorer
from lcm_bench.records.store import RunDir
from lcm_bench.run.chunks import ChunkStore
from lcm_bench.run.leases import held


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

    from lcm_bench.core.digests import digest_cache

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
