"""Merging a sharded run: assemble every cell whose chunks are all done (refusing chunks of one cell made from
different weights or library versions), list the chunks still missing, and score the run once nothing is missing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lcm_bench.core.errors import UserError
from lcm_bench.core.spec import CellSpec, Suite
from lcm_bench.records.fingerprints import fingerprint_value
from lcm_bench.records.store import RunDir
from lcm_bench.run.chunks import ChunkStore, consistency_error, generation_timing
from lcm_bench.run.leases import held
from lcm_bench.run.runner import record_wall_clock, write_results
from lcm_bench.run.sharding import Chunk, cell_chunks, work_order


@dataclass
class MergeSummary:
    assembled: list[str] = field(default_factory=list)
    missing: dict[str, list[Chunk]] = field(default_factory=dict)
    scored: int = 0
    wall: dict = field(default_factory=dict)


def _merged_suite(run: RunDir, run_dir: str | Path) -> tuple[Suite, dict]:
    """The suite a run was made from and the run's manifest: the suite file must still be there, unchanged."""
    from lcm_bench.suite.load import load_suite

    manifest = run.manifest()
    if manifest is None:
        raise UserError(f"merge: '{run_dir}' has no manifest.json (is it an lcm-bench run directory?)")
    source = manifest["suite"]["source"]
    if not source or not Path(source).is_file():
        raise UserError(f"merge: the run's suite file '{source}' is gone; merge needs it (for the metrics)")
    suite = load_suite(source)
    if suite.suite_hash != manifest["suite"]["hash"]:
        raise UserError(
            f"merge: suite file '{source}' changed since the run (hash {manifest['suite']['hash']} -> "
            f"{suite.suite_hash}); restore it or rerun the shards"
        )
    return suite, manifest


def _ready_cells(run: RunDir, store: ChunkStore, cells: list[CellSpec], summary: MergeSummary) -> list[tuple]:
    """The cells whose chunks are all done and whose record is missing or stale, with their chunk records; the
    cells with chunks still missing go to ``summary.missing``. Chunks of one cell made from different weights or
    library versions are refused in one line."""
    errors, ready = [], []
    for cell in cells:
        chunks = cell_chunks(cell)
        chunk_records = [store.read(u) for u in chunks]
        record = run.record(cell.cell_id)
        if not any(chunk_records) and record is not None:
            continue
        absent = [
            u for u, f in zip(chunks, chunk_records, strict=True) if f is None or f["batch_size"] != cell.batch_size
        ]
        if absent:
            summary.missing[cell.cell_id] = absent
            continue
        error = consistency_error(cell, chunk_records)
        if error:
            errors.append(error)
            continue
        if record is None or fingerprint_value(record) != chunk_records[0]["fingerprint"]["value"]:
            ready.append((cell, chunk_records))
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise UserError(
            f"merge: {errors[0]}{more}; remove those cells' chunks under chunks/ and run them again with one "
            "environment"
        )
    return ready


def merge_run(run_dir: str | Path, progress: bool = True, weights: tuple[Path, ...] = ()) -> MergeSummary:
    """Assemble every cell whose chunks are all done (``_ready_cells``), list the chunks still missing, and score the
    run once nothing is missing."""
    from lcm_bench.run.chunks import write_cell_record

    run = RunDir(run_dir)
    suite, manifest = _merged_suite(run, run_dir)
    skipped_ids = {s["cell_id"] for s in manifest.get("skipped", [])}
    cells = [c for c in work_order(suite.cells) if c.cell_id not in skipped_ids]
    store, summary = ChunkStore(run), MergeSummary()
    suite_id = {"name": suite.name, "hash": suite.suite_hash}
    for cell, chunk_records in _ready_cells(run, store, cells, summary):
        with held(store.leases(cell.cell_id), "record"):
            timing = store.timing_for(cell.cell_id, chunk_records[0])
            timing = timing or generation_timing(cell, chunk_records, suite.timing)
            write_cell_record(run, cell, chunk_records, suite_id, timing)
        summary.assembled.append(cell.cell_id)
    summary.wall = record_wall_clock(run, cells)
    if not summary.missing:
        from lcm_bench.run.scoring import ScoringPlan, score_run

        plan, cell_ids = ScoringPlan.of(suite, weights), [c.cell_id for c in suite.cells]
        summary.scored = score_run(run, plan, cell_ids, progress=progress)
    write_results(run, suite, manifest.get("skipped", []))
    return summary
