"""The scoring step of a run: every metric of the suite on every finished cell whose stored result is missing or
was computed from other inputs, one cell's record at a time under its lease (concurrent runs never score twice).

The run directory is the scorer's image source: a cell's images are checked against the sha256 its chunks recorded
(a damaged image stops scoring in one line and sets its record aside, so the next run generates the chunk again),
and its features are cached under ``features/<cell_id>/``.
"""

from __future__ import annotations

import hashlib
import io
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from lcm_bench.core.errors import MissingResourceError, UserError, raise_missing
from lcm_bench.core.faults import reached
from lcm_bench.core.hardware import pin_threads
from lcm_bench.core.io import on_terminal
from lcm_bench.core.spec import MetricSpec, PromptSetSpec, ReferenceSpec
from lcm_bench.metrics.builtins import METRICS, result_inputs
from lcm_bench.metrics.cell_scoring import ImageSource, Scorer
from lcm_bench.metrics.references import reference_features
from lcm_bench.metrics.scored_cell import PromptSource, ScoredCell
from lcm_bench.records.cell_record import scored_cell
from lcm_bench.records.fingerprints import fingerprint_value
from lcm_bench.records.store import RunDir, image_name, metric_result, with_prompt_files
from lcm_bench.run.chunks import ChunkStore, expected_images
from lcm_bench.run.leases import held


class RunImages:
    """A run directory as the scorer's ImageSource."""

    def __init__(self, run: RunDir):
        self.run = run

    def images(self, cell: ScoredCell) -> Iterator[np.ndarray]:
        """The cell's saved images in order, each checked against the sha256 its chunk recorded."""
        from PIL import Image

        cell_id, n = cell.cell_id, cell.num_images
        expected = expected_images(self.run, cell_id, cell.chunks)
        folder = self.run.images_dir(cell_id)
        for i in range(n):
            path = folder / image_name(i)
            if not path.is_file():
                raise UserError(f"cell {cell_id}: image {path} is missing; metrics need save_images: all")
            data = path.read_bytes()
            if expected and path.name in expected and hashlib.sha256(data).hexdigest() != expected[path.name]:
                self.run.discard_record(cell_id)
                path.unlink()
                raise UserError(
                    f"cell {cell_id}: image {path} differs from the checksum its chunk recorded (damaged); it was "
                    "removed and the cell's record set aside: run the same command again to generate its chunk anew"
                )
            yield np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))

    def features_file(self, cell: ScoredCell, prefix: str, name: str) -> Path:
        content = (cell.fingerprint_value or "unknown")[:12]
        path = self.run.features_dir(cell.cell_id) / f"{name}-c{content}.safetensors"
        if not path.is_file():
            for stale in path.parent.glob(f"{prefix}-*.safetensors"):
                stale.unlink()
        return path


@dataclass(frozen=True)
class ScoringPlan:
    """What a run scores, decided once from its suite and handed to each scoring step: the metrics, the reference
    sets, the prompt sets by name (each with the file it is read from on this machine) and, for paired metrics, the
    cell each cell is compared with (``lcm_bench.suite.pairs``), and the extra folders metric weights are looked
    for in."""

    metrics: tuple[MetricSpec, ...]
    references: Mapping[str, ReferenceSpec | None]
    prompt_sets: Mapping[str, PromptSetSpec]
    pairs: Mapping[tuple[str, str], str]
    weights: tuple[Path, ...] = ()

    @classmethod
    def of(cls, suite, weights: Sequence[Path] = ()) -> ScoringPlan:
        from lcm_bench.suite.pairs import reference_pairs

        cells = list(suite.cells)
        prompt_sets = {c.prompts.name: c.prompts for c in cells}
        pairs = reference_pairs(suite.metrics, cells)
        return cls(tuple(suite.metrics), suite.references, prompt_sets, pairs, tuple(weights))

    @property
    def prompt_files(self) -> dict[str, str]:
        """The file each prompt set is read from on this machine."""
        return {name: spec.source for name, spec in self.prompt_sets.items()}

    def scorer(self, images: ImageSource | None, device: str | None, cells: Mapping | None = None) -> Scorer:
        """The scorer of this plan, reading images from ``images``; a paired metric finds its reference among
        ``cells`` (ScoredCells by id; None until that cell is finished)."""
        finished: Mapping[str, ScoredCell] = cells or {}

        def paired(cell: ScoredCell, method: str) -> ScoredCell | None:
            return finished.get(self.pairs.get((cell.cell_id, method), ""))

        return Scorer(images, dict(self.references), device, self.weights, dict(self.prompt_sets), paired)


def prepare_references(plan: ScoringPlan, device: str = "cpu"):
    """Compute and cache the reference features of every (metric, prompt set) pair the plan's metrics need, so that
    processes scoring in parallel find them on disk. Yields ``(metric, prompt set name, reference, features)``."""
    raise_missing([MissingResourceError(p.missing) for p in plan.prompt_sets.values() if p.missing])
    scorer = plan.scorer(None, device)
    for i, metric in enumerate(plan.metrics):
        if not METRICS.get(metric.name).needs_reference:
            continue
        extractor = scorer.extractor(metric, f"metrics[{i}]")
        for name, spec in plan.prompt_sets.items():
            reference = scorer.reference(PromptSource(name, spec.source, spec.format, spec.column))
            yield metric, name, reference, reference_features(reference, extractor)


class Pending(NamedTuple):
    """One metric result to compute: the cell's record, the metric's index in the suite and the metric."""

    record: dict
    index: int
    metric: MetricSpec


def _todo(
    scorer: Scorer, records: dict[str, dict], cells: dict[str, ScoredCell], plan: ScoringPlan, cell_ids: list[str]
) -> list[Pending]:
    """Every stored result that is missing or stale; ``cells`` are the records' ``scored_cell``s."""
    todo = []
    for index, metric in enumerate(plan.metrics):
        for cell_id in (c for c in cell_ids if c in records):
            record, cell = records[cell_id], cells[cell_id]
            if not scorer.can_score(cell, metric):
                continue
            stored = metric_result(record, metric.metric_id)
            if stored is None or result_inputs(stored) != scorer.inputs(cell, metric, f"metrics[{index}]"):
                todo.append(Pending(record, index, metric))
    return todo


def _score_one(run: RunDir, scorer: Scorer, pending: Pending, threads: dict[str, int]) -> bool:
    """Score one metric of one cell under the cell's record lease (the result records the torch and BLAS thread
    count it was computed with); False when another process already did, or the cell changed meanwhile."""
    record, metric = pending.record, pending.metric
    field, cell = f"metrics[{pending.index}]", scored_cell(record)
    with held(ChunkStore(run).leases(cell.cell_id), "record"):
        fresh = run.record(cell.cell_id)
        if fresh is None or fingerprint_value(fresh) != cell.fingerprint_value:
            return False
        cell = scored_cell(with_prompt_files(fresh, {cell.prompts.name: cell.prompts.source}))
        stored = metric_result(fresh, metric.metric_id)
        if stored is not None and result_inputs(stored) == scorer.inputs(cell, metric, field):
            return False
        run.write_metric_result(fresh, metric.metric_id, {**scorer.score(cell, metric, field), "threads": threads})
        return True


def score_run(
    run: RunDir, plan: ScoringPlan, cell_ids: list[str], progress: bool = True, threads: int | None = None
) -> int:
    """Add every missing metric of ``plan`` to the finished cells ``cell_ids`` with torch on ``threads`` threads
    (``pin_threads``' rule when None), on the device each metric picks; returns how many were computed."""
    from tqdm import tqdm

    from lcm_bench.core.digests import digest_cache

    if not plan.metrics:
        return 0
    files = plan.prompt_files
    records = {cell_id: with_prompt_files(record, files) for cell_id, record in run.records().items()}
    cells = {cell_id: scored_cell(record) for cell_id, record in records.items()}
    scorer = plan.scorer(RunImages(run), None, cells)
    todo = _todo(scorer, records, cells, plan, cell_ids)
    digest_cache().flush()
    if not todo:
        return 0
    computed = 0
    bar = tqdm(todo, desc="scoring", unit="metric", disable=not on_terminal(progress), file=sys.stderr)
    pin_threads(threads)
    with scoring_threads() as counts:
        for pending in bar:
            computed += _score_one(run, scorer, pending, counts)
            reached("metric")
    return computed


BLAS_THREADS = 1


@contextmanager
def scoring_threads() -> Iterator[dict[str, int]]:
    """BLAS (numpy, scipy) pinned to one thread while scoring, as torch's threads are pinned: scoring's linear
    algebra is many eigenvalue problems of a few hundred to 2,048 dimensions, which two threads speed up by 1.6x at
    most alone, while on a machine another process shares, spinning BLAS threads made them ten times slower
    (docs/metrics.md). Yields the thread counts each result records."""
    import torch
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=BLAS_THREADS, user_api="blas"):
        yield {"torch": torch.get_num_threads(), "blas": BLAS_THREADS}
