"""The local executor: claims chunks through leases, generates the chunks of one pipeline in rounds that take turns
batch by batch (each batch timed as it runs: the cell's repeats), times again only the cells with too few batches
(interleaved rounds, ``lcm_bench.sampling.timers.time_interleaved``), and assembles a cell's record once all of
its chunks and its timing are durable.

Chunks this process cannot claim at once (another process holds them) are set aside and waited for at the end: a
chunk whose holder finished is skipped, one whose holder died (the kernel released its lock) is generated here. Two
processes never generate the same chunk, and a record is written under the cell's own lease.
"""

from __future__ import annotations

import os
import socket
import time
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from lcm_bench.core.faults import reached
from lcm_bench.core.hardware import torch_dtype
from lcm_bench.core.spec import CellSpec, TimingPolicy
from lcm_bench.domain.prompts import read_prompts, select
from lcm_bench.models.families import FAMILIES
from lcm_bench.models.loading import load_pipeline
from lcm_bench.models.resolve import ResolvedModel
from lcm_bench.models.runtimes import Deployment, RuntimeUnavailable, deploy
from lcm_bench.records.fingerprints import fingerprint_value
from lcm_bench.records.store import RunDir
from lcm_bench.run.chunks import (
    GRID_IMAGES,
    ChunkStore,
    generation_repeats,
    generation_timing,
    is_current,
    record_meets,
    skipped_entry,
    timing_meets,
    write_cell_record,
)
from lcm_bench.run.leases import Lease, held
from lcm_bench.run.sharding import Chunk, cell_chunks
from lcm_bench.run.writer import ImageWriter
from lcm_bench.sampling.guidance import GUIDANCE


def default_resolution(pipe, family: str) -> tuple[int, int]:
    """The image size the model was built for: its pipeline's default sample size (FLUX), else its denoiser's."""
    size = getattr(pipe, "default_sample_size", None) or FAMILIES.get(family).network(pipe).config.sample_size
    size = size if isinstance(size, (list, tuple)) else (size, size)
    return size[0] * pipe.vae_scale_factor, size[1] * pipe.vae_scale_factor


def _settings(cell: CellSpec, pipe, mode: str, family: str):
    from lcm_bench.sampling.loop import GenerationSettings

    height, width = (cell.height, cell.width) if cell.height else default_resolution(pipe, family)
    dtype = torch_dtype(cell.hardware)
    scale = cell.guidance_scale
    device = cell.hardware.device
    return GenerationSettings(
        cell.steps,
        scale,
        mode,
        height,
        width,
        cell.negative_prompt,
        device,
        dtype,
        cell.text_length,
        cell.resolution_binning,
        sampler=cell.sampler,
    )


@dataclass
class CellSampler:
    """Batches of one cell: each image's prompt (a seeded choice of the cell's prompt set) and its own seed; sample
    indices past the cell's images (a throughput sweep's larger batches) reuse its prompts with their own seeds."""

    cell: CellSpec
    resolved: ResolvedModel
    deployment: Deployment

    def __post_init__(self):
        spec = self.cell.prompts
        self.prompts = read_prompts(Path(spec.source), spec.format, spec.column, "prompts")
        self.indices = select(self.prompts, self.cell.num_images, self.cell.seed)

    def generate(self, batch: range, settings, timer):
        """The ``GeneratedBatch`` of the batch's sample indices (its ``nonfinite`` positions within the batch)."""
        from lcm_bench.sampling.loop import Samples, generate_batch, sample_seed

        texts = [self.prompts[self.indices[i % len(self.indices)]] for i in batch]
        samples = Samples(texts, [sample_seed(self.cell.seed, i) for i in batch])
        with self.deployment.active():
            return generate_batch(self.deployment.pipe, self.resolved.family, settings, samples, timer)


def _kept(cell: CellSpec, batch: range) -> int:
    """How many of a batch's images are saved: all, those inside the grid, or none."""
    if cell.save_images == "none":
        return 0
    return len(batch) if cell.save_images == "all" else max(0, min(len(batch), GRID_IMAGES - batch.start))


def _cell_fields(cell: CellSpec, resolved: ResolvedModel, pipe, settings, schedule: dict) -> dict[str, Any]:
    """What every chunk of a cell records alike: guidance as it ran, resolution, the model and the schedule."""
    mode = settings.guidance_mode
    return {
        "guidance_mode": GUIDANCE.get(mode).recorded(mode, cell.guidance_scale),
        "guidance": {
            "diffusers_guidance_scale": cell.guidance_scale,
            "paper_w": cell.paper_w if GUIDANCE.get(mode).uses_w else None,
        },
        "height": settings.height,
        "width": settings.width,
        "model": {
            "pipeline_path": str(resolved.pipeline_path),
            "family": resolved.family,
            "pipeline_class": type(pipe).__name__,
            "guidance_embedding": resolved.guidance_embedding,
        },
        "schedule": schedule,
    }


def warm_up(sampler: CellSampler, batch: range, settings, warmup: int) -> float | None:
    """Run ``warmup`` untimed 1-step batches; where the runtime compiles, at least two, and return its compile time
    for this input shape: what compiling ahead took (once per loaded pipeline) and the seconds the first batch
    took beyond the second; else None."""
    from lcm_bench.sampling.timers import PhaseTimer

    warm, deployment = replace(settings, steps=1), sampler.deployment
    seconds = []
    for _ in range(max(warmup, 2) if deployment.compiles else warmup):
        timer = PhaseTimer(settings.device)
        sampler.generate(batch, warm, timer)
        seconds.append(sum(timer.seconds.values()))
    return deployment.take_setup_seconds() + max(0.0, seconds[0] - seconds[1]) if deployment.compiles else None


@dataclass
class ChunkJob:
    """One chunk's generation, a batch at a time (``step``), so that the chunks of one pipeline take turns: every
    batch is timed as it runs (``timed_repeat``), its peak memory taken, its kept images handed to the writer."""

    run: RunDir
    cell: CellSpec
    chunk: Chunk
    sampler: CellSampler
    settings: Any
    writer: ImageWriter
    on_images: Callable[[int], None] = lambda n: None

    def __post_init__(self):
        self.pending = list(reversed(self.chunk.batches(self.cell.batch_size)))
        self.started = time.time()
        self.repeats: list[dict] = []
        self.nonfinite: list[int] = []
        self.evaluations, self.schedule, self.peak_bytes, self.memory_kind = 0, {}, 0, None
        self.compile_seconds: float | None = None
        self.warmup = 0

    @property
    def done(self) -> bool:
        return not self.pending

    def warm(self, warmup: int) -> None:
        """``warmup`` untimed 1-step batches of the chunk's first batch before its first timed one."""
        self.warmup = warmup
        if warmup:
            self.compile_seconds = warm_up(self.sampler, self.pending[-1], self.settings, warmup)

    def step(self) -> None:
        """Generate, time and hand over the chunk's next batch."""
        from lcm_bench.sampling.timers import PeakMemory, timed_repeat

        batch = self.pending.pop()
        run = partial(self.sampler.generate, batch, self.settings)
        with PeakMemory(self.settings.device) as memory:
            generated, repeat = timed_repeat(run, len(batch), self.settings.device)
        images, self.schedule = generated.images, generated.schedule
        self.repeats.append(repeat)
        self.evaluations += generated.evaluations
        self.nonfinite.extend(batch.start + i for i in generated.nonfinite)
        self.peak_bytes, self.memory_kind = max(self.peak_bytes, memory.peak_bytes), memory.kind
        kept = _kept(self.cell, batch)
        if kept:
            self.writer.submit(self.run.images_dir(self.cell.cell_id), batch.start, images[:kept])
        self.on_images(len(batch))

    def chunk_record(self) -> dict[str, Any]:
        """The chunk's record once its images are on disk: NFE, seconds per phase, every batch's timed repeat,
        peak memory, compile seconds where the runtime compiles, and the sha256 of each saved image."""
        self.writer.flush()
        cell, chunk = self.cell, self.chunk
        seconds: dict[str, float] = {}
        for repeat in self.repeats:
            for phase, per_image in repeat["phases"].items():
                seconds[phase] = seconds.get(phase, 0.0) + per_image * repeat["images"]
        folder, pipe = self.run.images_dir(cell.cell_id), self.sampler.deployment.pipe
        saved = self.writer.take_digests(folder, range(chunk.start, chunk.stop)) if cell.save_images == "all" else {}
        return {
            "cell_id": cell.cell_id,
            "chunk": chunk.index,
            "start": chunk.start,
            "stop": chunk.stop,
            "batch_size": cell.batch_size,
            "cell": _cell_fields(cell, self.sampler.resolved, pipe, self.settings, self.schedule),
            "nfe": self.evaluations,
            "nonfinite_images": self.nonfinite,
            "seconds": seconds,
            "repeats": self.repeats,
            "peak_memory_bytes": self.peak_bytes,
            "memory_kind": self.memory_kind,
            "warmup_batches": self.warmup,
            "compile_seconds": self.compile_seconds,
            "images": saved,
        }


@contextmanager
def frozen_heap():
    """Python's cyclic collector spares what exists when the block starts (``gc.freeze``) until it ends: the loaded
    pipelines and every import are not walked again at each full collection while batches run. Measured on one
    512-image cell at batch 128 (benchmarks/whole_run.py, 4 ABBA rounds each): harness / bare seconds per image 1.08
    with it, 1.23 without."""
    import gc

    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def take_turns(jobs: list[ChunkJob], on_failure: Callable[[ChunkJob, RuntimeError], None]):
    """Round robin over the jobs, one batch each per turn, yielding each job when its last batch is done; a job
    whose batch fails inside the model goes to ``on_failure`` and leaves the round."""
    active = list(jobs)
    while active:
        for job in list(active):
            try:
                job.step()
            except RuntimeError as exc:
                active.remove(job)
                on_failure(job, exc)
                continue
            if job.done:
                active.remove(job)
                yield job


def pipeline_rounds(chunks: list[Chunk], key: Callable[[Chunk], Any]) -> list[list[Chunk]]:
    """The chunks as rounds: grouped by the pipeline they load (in order of first appearance), and within a group
    each cell's first chunk in the given order, then its second, and so on, each round in the given order (so a
    launcher's ranks, which start at different chunks, still start apart)."""
    groups: dict[Any, list[list[Chunk]]] = {}
    seen: Counter = Counter()
    for chunk in chunks:
        rounds = groups.setdefault(key(chunk), [])
        turn = seen[chunk.cell_id]
        seen[chunk.cell_id] += 1
        if turn == len(rounds):
            rounds.append([])
        rounds[turn].append(chunk)
    return [turn for rounds in groups.values() for turn in rounds]


def cell_line(cell: CellSpec, throughput: dict) -> str:
    """A finished cell in the log: method, prompt set, seed, steps and its time with interval, NFE and load."""
    ms = throughput["seconds_per_image"] * 1e3
    low, high = (v * 1e3 for v in throughput.get("seconds_per_image_ci", [ms / 1e3, ms / 1e3]))
    load = throughput.get("load") or {}
    busy = f", under load ({load['other_cores']:.2f} other cores)" if throughput.get("contended") else ""
    return (
        f"  {cell.method_label} | {cell.prompts.name} | seed {cell.seed} | {cell.steps} steps: {ms:.3g} ms/img "
        f"[{low:.3g}, {high:.3g}], NFE {throughput['nfe_per_image']:g}{busy}"
    )


@dataclass(frozen=True)
class GenerationPlan:
    """What a process generates: its ``cells`` by id, their ``resolved`` models, guidance ``modes`` and content
    ``fingerprints``, and the ``suite`` they belong to (name and hash)."""

    cells: dict[str, CellSpec]
    resolved: dict
    modes: dict[str, str]
    fingerprints: dict[str, dict]
    suite: dict


@dataclass
class Executor:
    """Generates chunks of one run directory in this process, one loaded pipeline at a time: ``plan``'s cells, with
    this session's ``provenance`` and torch ``threads``."""

    run: RunDir
    plan: GenerationPlan
    provenance: dict
    threads: int
    writer: ImageWriter
    on_images: Callable[[int], None] = lambda n: None
    say: Callable[[str], None] = lambda line: None
    policy: TimingPolicy = field(default_factory=TimingPolicy)
    generated: list[dict] = field(default_factory=list)
    assembled: list[str] = field(default_factory=list)
    _deployment: Any = None
    _loaded: Any = None
    _warmed: set = field(default_factory=set)
    _untimed: list[str] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)

    def __post_init__(self):
        self.store = ChunkStore(self.run)
        self.process = {
            "id": f"{socket.gethostname()}:{os.getpid()}",
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "threads": self.threads,
            "rank": int(os.environ.get("RANK", "0")),
            "attempt": int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")),
        }

    def current(self, cell: CellSpec, chunk_record: dict | None) -> bool:
        versions = self.provenance.get("versions")
        return is_current(chunk_record, self.plan.fingerprints[cell.cell_id], cell.batch_size, versions)

    def _key(self, cell: CellSpec) -> tuple:
        """What identifies the pipeline a cell runs on: model, hardware, runtime and, for students, the UNet."""
        model = self.plan.resolved[cell.model]
        return (cell.model, cell.hardware, cell.runtime, model.unet_for(cell.steps, "steps"))

    def _pipeline(self, cell: CellSpec):
        """The cell's pipeline, loaded unless it is the one in memory; the cells waiting to be timed on the one in
        memory are timed before it goes."""
        key = self._key(cell)
        if key != self._loaded:
            self.time_pending()
            self._deployment, self._loaded = None, None
            model = self.plan.resolved[cell.model]
            pipe = load_pipeline(model, cell.hardware, cell.steps)
            self._deployment = deploy(pipe, FAMILIES.get(model.family), cell.runtime, cell.hardware)
            self._loaded, self._warmed = key, set()
        return self._deployment

    def _warm_key(self, cell: CellSpec, settings, batch: range) -> tuple:
        """What a warm-up serves on the loaded pipeline: a batch shape (images, size, guidance, text length); a
        runtime that compiles warms every cell, for its compile time."""
        if self._deployment.compiles:
            return (cell.cell_id,)
        return (
            len(batch),
            settings.height,
            settings.width,
            settings.guidance_mode,
            cell.text_length,
            cell.resolution_binning,
        )

    def _generate_round(self, chunks: list[Chunk]) -> None:
        """Generate the round's chunks not yet current, taking turns batch by batch; each chunk record is written once
        its chunk's images are on disk. A cell whose runtime cannot run here, or whose model failed inside it (a
        kernel or dtype this device lacks, out of memory), is skipped with the reason; the chunks already written
        stay and the rest of the suite runs."""
        jobs = [job for job in map(self._start, chunks) if job is not None]
        with frozen_heap():
            for job in take_turns(jobs, lambda job, exc: self._fail(job.cell, exc)):
                self._write_chunk_record(job)

    def _start(self, chunk: Chunk) -> ChunkJob | None:
        """The chunk's job, warmed up, on its pipeline; None when it is current or its cell is skipped."""
        cell = self.plan.cells[chunk.cell_id]
        if self.current(cell, self.store.read(chunk)) or cell.cell_id in {s["cell_id"] for s in self.skipped}:
            return None
        try:
            deployment = self._pipeline(cell)
            sampler, settings = self._loaded_sampler(cell)
            job = ChunkJob(self.run, cell, chunk, sampler, settings, self.writer, self.on_images)
            warm = self._warm_key(cell, settings, job.pending[-1])
            job.warm(0 if warm in self._warmed else max(cell.warmup, int(deployment.compiles)))
        except RuntimeUnavailable as exc:
            self._skip(cell, f"runtime '{cell.runtime.name}': {exc}")
            return None
        except RuntimeError as exc:
            self._fail(cell, exc)
            return None
        self._warmed.add(warm)
        return job

    def _fail(self, cell: CellSpec, exc: RuntimeError) -> None:
        from lcm_bench.sampling.timers import release_device_memory

        release_device_memory(cell.hardware.device)
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        self._skip(cell, f"failed on {cell.hardware.name} ({type(exc).__name__}: {first})")

    def _skip(self, cell: CellSpec, reason: str) -> None:
        self.skipped.append(skipped_entry(cell, reason))
        self.say(f"  {cell.method_label}: skipped, {reason}")

    def _write_chunk_record(self, job: ChunkJob) -> None:
        cell = job.cell
        chunk_record = job.chunk_record()
        chunk_record.update(
            fingerprint=self.plan.fingerprints[cell.cell_id],
            provenance=self.provenance,
            process={**self.process, "device": cell.hardware.device},
            started=job.started,
            finished=time.time(),
        )
        self.store.write(job.chunk, chunk_record)
        self.generated.append(chunk_record)
        reached("chunk")

    def _chunk_records(self, cell: CellSpec) -> list[dict] | None:
        """The cell's chunk_records when every one is current, else None."""
        chunk_records = [self.store.read(u) for u in cell_chunks(cell)]
        return chunk_records if all(self.current(cell, f) for f in chunk_records) else None

    def _timing(self, cell: CellSpec, chunk_records: list[dict]) -> dict | None:
        timing = chunk_records[0].get("timing") or self.store.timing_for(cell.cell_id, chunk_records[0])
        return timing if timing and timing_meets(timing, self.policy) else None

    def _assembled(self, cell: CellSpec) -> bool:
        record = self.run.record(cell.cell_id)
        current = fingerprint_value(record) == self.plan.fingerprints[cell.cell_id]["value"]
        return current and record_meets(record, self.policy)

    def finish(self, cell: CellSpec) -> None:
        """Assemble the cell when its images are all generated: timed by the batches that generated them, or, with
        too few of those (or latency asked for), queued for the timing rounds of its pipeline."""
        chunk_records = self._chunk_records(cell)
        if chunk_records is None or self._assembled(cell) or self._timing(cell, chunk_records):
            self.assemble(cell)
            return
        timing = None if self.policy.measures_latency else generation_timing(cell, chunk_records, self.policy)
        if timing is not None:
            self._write_timing(cell.cell_id, chunk_records[0], timing, cell.hardware.device)
            reached("timing")
            self.assemble(cell)
            return
        self._pipeline(cell)
        self._untimed.append(cell.cell_id)

    def time_pending(self) -> None:
        """Time the queued cells (all on the pipeline in memory) in interleaved rounds, store each one's timing and
        assemble them. A cell another process is timing is left to it."""
        cells, self._untimed = [self.plan.cells[c] for c in dict.fromkeys(self._untimed)], []
        leases = [Lease(self.store.leases(cell.cell_id), "timing") for cell in cells]
        taken = [(cell, lease) for cell, lease in zip(cells, leases, strict=True) if lease.try_take()]
        try:
            self._time_cells([cell for cell, _ in taken])
        finally:
            for _, lease in taken:
                lease.release()
        for cell in cells:
            self.assemble(cell)

    def _time_cells(self, cells: list[CellSpec]) -> None:
        """Time again, in interleaved rounds, the cells the policy tops up (``TimingPolicy.tops_up``: their batches
        count as repeats), then add the latency measurements asked for."""
        from lcm_bench.sampling.timers import time_interleaved, timing_of

        jobs, firsts, prior, timings = {}, {}, {}, {}
        for cell in cells:
            chunk_records = self._chunk_records(cell)
            if chunk_records is None or self._timing(cell, chunk_records):
                continue
            repeats, firsts[cell.cell_id] = generation_repeats(cell, chunk_records), chunk_records[0]
            if self.policy.tops_up(len(repeats)) or len(repeats) >= self.policy.min_repeats:
                prior[cell.cell_id] = repeats
                jobs[cell.cell_id] = self._timed_job(cell, warm=len(repeats) < self.policy.min_repeats)
            else:
                timings[cell.cell_id] = timing_of(repeats, self.policy, len(repeats))
        short = sum(len(repeats) < self.policy.min_repeats for repeats in prior.values())
        if short:
            self.say(f"  timing {short} cells with fewer than {self.policy.min_repeats} batches in interleaved rounds")
        if not firsts:
            return
        device = cells[0].hardware.device
        timings |= time_interleaved(jobs, self.policy, device, prior) if jobs else {}
        for cell_id, timing in timings.items():
            timing |= self._latency(self.plan.cells[cell_id])
            self._write_timing(cell_id, firsts[cell_id], timing, device)
            reached("timing")

    def _loaded_sampler(self, cell: CellSpec):
        """The cell's sampler and generation settings on the pipeline in memory."""
        resolved = self.plan.resolved[cell.model]
        sampler = CellSampler(cell, resolved, self._deployment)
        return sampler, _settings(cell, self._deployment.pipe, self.plan.modes[cell.cell_id], resolved.family)

    def _latency(self, cell: CellSpec) -> dict[str, Any]:
        """The cell's latency distribution at batch 1 and its peak throughput over batch sizes, as asked."""
        from lcm_bench.sampling.timers import PhaseTimer, latency_distribution, peak_throughput

        if not self.policy.measures_latency:
            return {}
        sampler, settings = self._loaded_sampler(cell)
        out: dict[str, Any] = {}
        if self.policy.latency_queries:
            self.say(f"  {cell.method_label}: {self.policy.latency_queries} single-image queries")
            sampler.generate(range(1), settings, PhaseTimer(settings.device))
            query = lambda i, timer: sampler.generate(range(i, i + 1), settings, timer)  # noqa: E731
            out["latency"] = latency_distribution(query, self.policy.latency_queries, settings.device)
        if self.policy.peak_throughput:
            self.say(f"  {cell.method_label}: batch-size sweep up to {self.policy.max_batch_size}")
            batch = lambda size, timer: sampler.generate(range(size), settings, timer)  # noqa: E731
            out["peak"] = peak_throughput(batch, self.policy.max_batch_size, settings.device)
        return out

    def _timed_job(self, cell: CellSpec, warm: bool):
        """The cell's first batch as a timed job (its per-image cost is that of the batch size the cell generated
        with), warmed up once per process when it will run."""
        from lcm_bench.sampling.timers import PhaseTimer, TimedJob

        sampler, settings = self._loaded_sampler(cell)
        batch = cell_chunks(cell)[0].batches(cell.batch_size)[0]
        run = partial(sampler.generate, batch, settings)
        key = self._warm_key(cell, settings, batch)
        if warm and key not in self._warmed:
            run(PhaseTimer(settings.device))
            self._warmed.add(key)
        return TimedJob(run, len(batch))

    def _write_timing(self, cell_id: str, first: dict, timing: dict, device: str) -> None:
        self.store.write_timing(
            cell_id,
            {
                "cell_id": cell_id,
                "fingerprint": first["fingerprint"],
                "batch_size": first["batch_size"],
                "provenance": self.provenance,
                "process": {**self.process, "device": device},
                "timing": timing,
            },
        )

    def assemble(self, cell: CellSpec) -> bool:
        """Write the cell's record when every chunk has a current chunk_record, the cell has its timing and no current
        record exists yet."""
        with held(self.store.leases(cell.cell_id), "record"):
            if self._assembled(cell):
                return False
            chunk_records = self._chunk_records(cell)
            timing = chunk_records and self._timing(cell, chunk_records)
            if not timing:
                return False
            record = write_cell_record(self.run, cell, chunk_records, self.plan.suite, timing)
            reached("record")
        self.assembled.append(cell.cell_id)
        self.say(cell_line(cell, record["throughput"]))
        return True

    def work(self, chunks: list[Chunk]) -> None:
        """Generate every chunk not yet current, claiming each through its lease, in rounds per pipeline; after a
        cell's last chunk here, time it if it needs more repeats and assemble its record. A run stopped by an error
        still times and records the cells whose images are all generated."""
        try:
            self._work(chunks)
        except Exception:
            if self._untimed:
                with suppress(Exception):
                    self.time_pending()
            raise
        self.time_pending()

    def _work(self, chunks: list[Chunk]) -> None:
        remaining = Counter(u.cell_id for u in chunks)
        waiting: list[tuple[Lease, Chunk]] = []
        for turn in pipeline_rounds(chunks, lambda u: self._key(self.plan.cells[u.cell_id])):
            taken = []
            for chunk in turn:
                lease = Lease(self.store.leases(chunk.cell_id), chunk.name)
                (taken if lease.try_take() else waiting).append((lease, chunk))
            try:
                self._generate_round([chunk for _, chunk in taken])
            finally:
                for lease, _ in taken:
                    lease.release()
            for chunk in turn:
                remaining[chunk.cell_id] -= 1
                if not remaining[chunk.cell_id]:
                    self.finish(self.plan.cells[chunk.cell_id])
        for lease, chunk in waiting:
            self.say(f"  waiting for {chunk.cell_id} images {chunk.start}..{chunk.stop - 1} (held by another process)")
            lease.take()
            try:
                self._generate_round([chunk])
            finally:
                lease.release()
        for cell_id in dict.fromkeys(u.cell_id for _, u in waiting):
            self.finish(self.plan.cells[cell_id])
