"""Runs a suite: check before compute -> claim, generate chunks (lcm_bench.run.executor) -> assemble records -> score.

A finished cell (record with today's fingerprint) is never recomputed; an interrupted cell resumes at its first
unfinished chunk. With ``shard`` this process generates only its share of the chunks and leaves scoring to
``merge_run``, which assembles every cell once all shards are done.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lcm_bench.core.errors import UserError
from lcm_bench.core.hardware import pin_threads, unavailable_reason
from lcm_bench.core.io import on_terminal, remove_orphaned_temporaries, warn, write_json
from lcm_bench.core.spec import CellSpec, ModelSpec, Suite, TimingPolicy
from lcm_bench.models.resolve import ResolvedModel, resolve_model
from lcm_bench.models.runtimes import check_runtime, runtime_unavailable
from lcm_bench.records.cell_record import CellRecord
from lcm_bench.records.fingerprints import fingerprint_value
from lcm_bench.records.store import RunDir, write_category_csv, write_results_csv
from lcm_bench.run.chunks import ChunkStore, record_meets, skipped_entry, verify_chunks, wall_clock
from lcm_bench.run.executor import Executor, GenerationPlan
from lcm_bench.run.launcher import Coordinator, World, check_devices, check_shared, select_device
from lcm_bench.run.leases import held
from lcm_bench.run.preflight import preflight, resolve_all
from lcm_bench.run.sharding import Chunk, Shard, assign, cell_chunks, work_order
from lcm_bench.run.writer import ImageWriter, writes_in_background

if TYPE_CHECKING:
    from lcm_bench.run.scoring import ScoringPlan


@dataclass
class RunSummary:
    run_dir: Path
    computed: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    recomputed: dict[str, str] = field(default_factory=dict)
    scored: int = 0
    chunks: int = 0
    pending: list[str] = field(default_factory=list)
    wall: dict = field(default_factory=dict)
    contended: list[str] = field(default_factory=list)
    """Cells computed in this session whose timing ran while other processes used the CPU."""

    def recompute_note(self) -> str:
        """``3 cells: weights of m changed (unet)``: how many stale cells, grouped by reason."""
        from collections import Counter

        counts = Counter(self.recomputed.values())
        reasons = "; ".join(f"{r} [{n}]" if len(counts) > 1 else r for r, n in counts.items())
        n = len(self.recomputed)
        return f"{n} cell{'s' if n != 1 else ''}: {reasons}"


def fingerprints(
    cells: list[CellSpec], resolved: dict[ModelSpec, ResolvedModel] | None = None
) -> tuple[dict[str, dict], dict[ModelSpec, ResolvedModel]]:
    """Every cell's content fingerprint; models are resolved (not loaded) on the way, students by their key."""
    from lcm_bench.core.digests import digest_cache
    from lcm_bench.run.cell_fingerprint import cell_fingerprint

    resolved = {} if resolved is None else resolved
    memo: dict = {}
    out = {}
    for cell in cells:
        if not cell.model.distill and cell.model not in resolved:
            resolved[cell.model] = resolve_model(cell.model, f"models[{cell.model.name}]")
        model = resolved.get(cell.model)
        if model is not None:
            model.unet_for(cell.steps, f"models[{cell.model.name}] at steps: {cell.steps}")
            if ("checked", cell.runtime, model.pipeline_path) not in memo:
                check_runtime(cell.runtime, model.pipeline_path, f"runtimes[{cell.runtime.name}]")
                memo["checked", cell.runtime, model.pipeline_path] = True
        out[cell.cell_id] = cell_fingerprint(cell, model, memo)
    digest_cache().flush()
    return out, resolved


def stale_cells(
    run: RunDir, cells: list[CellSpec], current: dict[str, dict], policy: TimingPolicy | None = None
) -> tuple[list, list, dict[str, str]]:
    """(cells to compute, finished cell ids to reuse, why each recorded cell must be recomputed)."""
    from lcm_bench.records.fingerprints import describe_change

    records = run.records()
    todo, reused, reasons = [], [], {}
    for cell in cells:
        record = records.get(cell.cell_id)
        if record is None:
            todo.append(cell)
        elif fingerprint_value(record) == current[cell.cell_id]["value"]:
            if policy is None or record_meets(record, policy):
                reused.append(cell.cell_id)
                continue
            reasons[cell.cell_id] = "latency or peak throughput not measured yet (timing only)"
            todo.append(cell)
        else:
            old = CellRecord.read(record).fingerprint
            reasons[cell.cell_id] = describe_change(cell.model.name, cell.sampler.label, old, current[cell.cell_id])
            todo.append(cell)
    return todo, reused, reasons


def split_available(cells: list[CellSpec]) -> tuple[list[CellSpec], list[dict]]:
    """(cells this machine can run, a skipped entry with its reason for each of the others); each hardware entry and
    runtime is probed once."""
    runnable, skipped, reasons = [], [], {}
    for cell in cells:
        if (cell.hardware, cell.runtime) not in reasons:
            why = unavailable_reason(cell.hardware) or runtime_unavailable(cell.runtime, cell.hardware)
            reasons[cell.hardware, cell.runtime] = why
        reason = reasons[cell.hardware, cell.runtime]
        if reason:
            skipped.append(skipped_entry(cell, reason))
        else:
            runnable.append(cell)
    return runnable, skipped


def chunks_of(cells: list[CellSpec], shard: Shard | None) -> list[Chunk]:
    """This process's chunks in work order: all of them, or the shard's share of the whole suite's chunks (the
    same share whatever is already done, so shards never disagree)."""
    if shard is None:
        return [u for c in work_order(cells) for u in cell_chunks(c)]
    return assign(cells, shard.count)[shard.index]


def record_wall_clock(run: RunDir, cells: list[CellSpec], seconds: dict[str, float] | None = None) -> dict:
    """Store the run's wall-clock throughput across processes in the manifest (under a lease: shards finish at
    once) and return it; with ``seconds``, also this session's ``generation_seconds`` and ``scoring_seconds``
    (wall clock of the main process; a session that computed nothing keeps the last ones)."""
    store = ChunkStore(run)
    chunk_records = [f for c in cells for u in cell_chunks(c) if (f := store.read(u)) is not None]
    wall = wall_clock(chunk_records) if chunk_records else {}
    with held(run.leases_dir, "manifest"):
        manifest = run.manifest()
        if manifest is not None:
            phases = {k: round(v, 3) for k, v in seconds.items()} if seconds else {}
            write_json(run.manifest_path, {**manifest, "throughput": wall, **phases})
    return wall


@dataclass(frozen=True)
class RunOptions:
    """How a process takes part in a run: progress output, its shard, torch threads, pinned GPUs under a launcher,
    and extra folders holding metric weights."""

    progress: bool = True
    shard: Shard | None = None
    threads: int | None = None
    pin_devices: bool = False
    weights: tuple[Path, ...] = ()


def run_suite(
    suite: Suite,
    out: str | Path,
    provenance: Callable[[], dict],
    options: RunOptions = RunOptions(),
    world: World | None = None,
) -> RunSummary:
    """Run every unfinished or stale chunk of ``suite`` (or of ``shard``'s share) into ``out``; records are
    assembled as cells complete, and scored unless this is a shard. ``provenance()`` describes this session; it
    is called only when something is generated. Under a launcher (``world``) every rank
    takes chunks from the whole suite through the leases; see lcm_bench.run.launcher."""
    if world is not None and options.shard is not None:
        raise UserError("--shard: not under torchrun or accelerate, whose ranks already share the chunks")
    if Path(out).is_dir():
        remove_orphaned_temporaries(Path(out))
    coordinator = Coordinator(world) if world is not None else None
    try:
        summary = _run(suite, RunDir(out), provenance, options, coordinator)
        if coordinator is not None:
            coordinator.barrier()
        return summary
    finally:
        if coordinator is not None:
            coordinator.close()


def _select_work(run: RunDir, runnable: list[CellSpec], options, world, summary: RunSummary, resolved: dict, policy):
    """This process's chunks and cells: those not finished with today's fingerprint and the timing ``policy`` asks
    for (stale records set aside)."""
    shard = options.shard
    current, resolved = fingerprints(runnable, resolved)
    todo, summary.reused, recomputed = stale_cells(run, runnable, current, policy)
    todo_ids = {c.cell_id for c in todo}
    chunks = [u for u in chunks_of(runnable, shard) if u.cell_id in todo_ids]
    chunks = world.rotate(chunks) if world else chunks
    chunk_cells = {u.cell_id for u in chunks}
    mine = [c for c in todo if c.cell_id in chunk_cells]
    summary.recomputed = {k: v for k, v in recomputed.items() if k in chunk_cells}
    for cell_id in summary.recomputed:
        with held(ChunkStore(run).leases(cell_id), "record"):
            record = run.record(cell_id)
            if record and fingerprint_value(record) != current[cell_id]["value"]:
                run.discard_record(cell_id)
    return todo, chunks, mine, current, resolved


def _gather(coordinator: Coordinator, summary: RunSummary) -> None:
    """Every rank's assembled cells, chunks and scored values, summed on each rank."""
    gathered = coordinator.gather((summary.computed, summary.chunks, summary.scored))
    summary.computed = [c for computed, _, _ in gathered for c in computed]
    summary.chunks = sum(chunks for _, chunks, _ in gathered)
    summary.scored = sum(scored for *_, scored in gathered)


def _prepare(run: RunDir, runnable: list[CellSpec], coordinator: Coordinator | None, options: RunOptions) -> None:
    """Under a launcher: each rank's device and the shared run directory checked; damaged chunks set aside once."""
    world = coordinator.world if coordinator else None
    if coordinator:
        check_devices(runnable, world, options.pin_devices)
        select_device(world)
        check_shared(coordinator, run.leases_dir)
    if world is None or world.is_main:
        for note in verify_chunks(run, runnable):
            warn(note)
    if coordinator:
        coordinator.barrier()


def _checked(mine: list[CellSpec], resolved: dict, progress: bool) -> dict[str, str]:
    """Every check before compute; students the suite distils are trained between the two rounds of checks (their
    configs exist only then). Returns each cell's guidance kind."""
    from lcm_bench.run.students import ensure_students

    resolved, modes = preflight([c for c in mine if not c.model.distill], resolved)
    ensure_students({c.model for c in mine}, progress=progress)
    modes.update(preflight([c for c in mine if c.model.distill], resolved)[1])
    return modes


def _progress_bar(chunks: list[Chunk], options: RunOptions, world: World | None):
    from tqdm import tqdm

    main = world is None or world.is_main
    return tqdm(
        total=sum(u.images for u in chunks),
        unit="img",
        disable=not on_terminal(options.progress and main and bool(chunks)),
        file=sys.stderr,
        dynamic_ncols=True,
        desc=f"shard {options.shard}" if options.shard else (f"rank 0 of {world.size}" if world else None),
    )


def _generate(executor: Executor, chunks: list[Chunk], mine: list[CellSpec], coordinator, summary: RunSummary) -> None:
    """Every chunk of this process, then (under a launcher) each rank assembles its share of the cells; cells whose
    runtime turned out not to run here join the skipped ones."""
    try:
        executor.work(chunks)
    finally:
        summary.skipped += executor.skipped
    if coordinator:
        coordinator.barrier()
        for cell in coordinator.world.mine(work_order(mine)):
            executor.assemble(cell)
        coordinator.barrier()


def _score(run: RunDir, suite: Suite, plan: ScoringPlan, options: RunOptions, world: World | None) -> int:
    """This process's share of the scoring (none for a shard: merge scores)."""
    if options.shard is not None:
        return 0
    cell_ids = [c.cell_id for c in suite.cells]
    cell_ids = world.mine(cell_ids) if world else cell_ids
    progress = options.progress and (world is None or world.is_main)
    from lcm_bench.run.scoring import score_run

    return score_run(run, plan, cell_ids, progress=progress, threads=options.threads)


def _run(suite: Suite, run: RunDir, describe: Callable[[], dict], options: RunOptions, coordinator) -> RunSummary:
    world = coordinator.world if coordinator else None
    main = world is None or world.is_main
    summary = RunSummary(run.path)
    runnable, summary.skipped = split_available(suite.cells)
    _prepare(run, runnable, coordinator, options)
    resolved = resolve_all(runnable, metrics=suite.metrics, weights=options.weights)
    todo, chunks, mine, current, resolved = _select_work(run, runnable, options, world, summary, resolved, suite.timing)
    threads = pin_threads(options.threads) if chunks else 0
    provenance = session_provenance(run, describe, bool(chunks))
    if summary.recomputed and options.progress and main:
        print(f"recomputing {summary.recompute_note()}", file=sys.stderr)
    modes = _checked(mine, resolved, options.progress)
    if main:
        write_manifest(run, suite, summary.skipped, provenance)
    from lcm_bench.run.scoring import ScoringPlan, prepare_references

    scoring = ScoringPlan.of(suite, options.weights)
    if coordinator:
        if main and todo and scoring.metrics:
            for _ in prepare_references(scoring):
                pass
        coordinator.barrier()
    background = writes_in_background({c.hardware.device for c in mine}, threads)
    bar, writer = _progress_bar(chunks, options, world), ImageWriter(background=background)
    say = (lambda line: bar.write(line, file=sys.stderr)) if options.progress and main else (lambda line: None)
    suite_id = {"name": suite.name, "hash": suite.suite_hash}
    plan = GenerationPlan({c.cell_id: c for c in mine}, resolved, modes, current, suite_id)
    executor = Executor(run, plan, provenance, threads, writer, on_images=bar.update, say=say, policy=suite.timing)
    try:
        started = time.perf_counter()
        _generate(executor, chunks, mine, coordinator, summary)
        generated = time.perf_counter()
        summary.computed, summary.chunks = executor.assembled, len(executor.generated)
        finished = run.records()
        summary.pending = [c.cell_id for c in mine if c.cell_id not in finished]
        summary.contended = [c for c in summary.computed if CellRecord.read(finished[c]).contended]
        bar.close()
        summary.scored = _score(run, suite, scoring, options, world)
        seconds = {"generation_seconds": generated - started, "scoring_seconds": time.perf_counter() - generated}
        if coordinator:
            _gather(coordinator, summary)
        if main:
            summary.wall = record_wall_clock(run, runnable, seconds if chunks or summary.scored else None)
    finally:
        bar.close()
        writer.close()
        if main:
            write_results(run, suite, summary.skipped)
    return summary


def session_provenance(run: RunDir, describe: Callable[[], dict], working: bool) -> dict:
    """This session's provenance (``describe()``: git, versions, the machine, which imports torch), or, when it
    generates nothing, the provenance of the session that made the run directory's results."""
    previous = (run.manifest() or {}).get("provenance")
    return describe() if working or previous is None else previous


SESSION_KEYS = ("throughput", "generation_seconds", "scoring_seconds")


def write_manifest(run: RunDir, suite: Suite, skipped: list[dict], provenance: dict) -> None:
    """The run's manifest (kept: the wall-clock throughput and phase seconds of earlier sessions)."""
    previous = run.manifest() or {}
    run.write_manifest(
        {
            "suite": {
                "name": suite.name,
                "source": suite.source,
                "hash": suite.suite_hash,
                "description": suite.description,
                "published": suite.published,
            },
            "cells": [c.cell_id for c in suite.cells],
            "metrics": [{"id": m.metric_id, "name": m.name, "options": dict(m.options)} for m in suite.metrics],
            "skipped": skipped,
            "provenance": provenance,
            **{k: previous[k] for k in SESSION_KEYS if k in previous},
        }
    )


def record_skipped(run: RunDir, skipped: list[dict]) -> None:
    """The manifest's skipped cells as the run ended: those this machine could not start and those that failed
    inside (a kernel, a dtype, out of memory)."""
    manifest = run.manifest()
    if manifest is not None and manifest.get("skipped") != skipped:
        run.write_manifest({**manifest, "skipped": skipped})


def write_results(run: RunDir, suite: Suite, skipped: list[dict]) -> None:
    """results.csv and results_by_category.csv from the finished records, and the skipped cells beside them (in
    results.csv and the manifest)."""
    record_skipped(run, skipped)
    finished = run.records()
    records = [finished[c.cell_id] for c in suite.cells if c.cell_id in finished]
    if records or skipped:
        write_results_csv(run.results_csv, records + skipped)
        write_category_csv(run.results_by_category_csv, records)
