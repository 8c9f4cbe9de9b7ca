"""Chunk chunk_records: the durable record of one finished chunk, and a cell's record assembled from them.

A chunk record (``chunks/<cell_id>/<start>-<stop>.json``, written atomically after the chunk's images are on disk)
holds what the chunk cost and what produced it: sample range, batch size, NFE, seconds per phase, peak memory, the
fingerprint, library versions, machine, host, process and thread count, start and end times, and the sha256 of
every image it saved. A chunk record is *current* while its fingerprint, batch size and library versions equal today's;
anything else is generated again. When every chunk of a cell has a current chunk_record, the cell's record is assembled:
per-device throughput from the summed phase seconds, and the wall-clock figure across processes from the union of
the chunk records' busy intervals.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lcm_bench.core.images import image_grid
from lcm_bench.core.io import write_json
from lcm_bench.core.spec import CellSpec, TimingPolicy
from lcm_bench.records.cell_record import CellRecord
from lcm_bench.records.fingerprints import fingerprint_value
from lcm_bench.records.store import RunDir, image_name
from lcm_bench.run.sharding import Chunk, cell_chunks
from lcm_bench.run.writer import encode_png, write_file

FRAGMENT_SCHEMA = 1
GRID_IMAGES = 16
GRID_COLUMNS = 4


class ChunkStore:
    """Chunk records and leases of one run directory."""

    def __init__(self, run: RunDir):
        self.run = run

    def leases(self, cell_id: str) -> Path:
        return self.run.cell_leases(cell_id)

    def chunk_record_path(self, chunk: Chunk) -> Path:
        return self.run.chunk_record_path(chunk.cell_id, chunk.name)

    def read(self, chunk: Chunk) -> dict | None:
        """The chunk's record, or None when absent or unreadable (a torn or foreign file counts as unfinished)."""
        try:
            chunk_record = json.loads(self.chunk_record_path(chunk).read_text())
        except (OSError, ValueError):
            return None
        ok = isinstance(chunk_record, dict) and chunk_record.get("schema_version") == FRAGMENT_SCHEMA
        return (
            chunk_record
            if ok and (chunk_record.get("start"), chunk_record.get("stop")) == (chunk.start, chunk.stop)
            else None
        )

    def damaged(self, chunk: Chunk) -> bool:
        """A chunk record file exists but does not read as this chunk's record (torn by a crash of the machine)."""
        return self.chunk_record_path(chunk).is_file() and self.read(chunk) is None

    def write(self, chunk: Chunk, chunk_record: dict) -> None:
        write_json(self.chunk_record_path(chunk), {"schema_version": FRAGMENT_SCHEMA, **chunk_record})

    def timing_path(self, cell_id: str) -> Path:
        return self.run.timing_path(cell_id)

    def read_timing(self, cell_id: str) -> dict | None:
        """The cell's timing (fingerprint, batch size, provenance and the ``timing`` itself), None when absent."""
        try:
            timing = json.loads(self.timing_path(cell_id).read_text())
        except (OSError, ValueError):
            return None
        return timing if isinstance(timing, dict) and timing.get("schema_version") == FRAGMENT_SCHEMA else None

    def timing_for(self, cell_id: str, chunk_record: dict) -> dict | None:
        """The cell's timing when it was measured by what made ``chunk_record`` (fingerprint, batch size, library
        versions), else None."""
        stored = self.read_timing(cell_id)
        versions = (chunk_record.get("provenance") or {}).get("versions")
        current = is_current(stored, chunk_record["fingerprint"], chunk_record["batch_size"], versions)
        return stored["timing"] if current else None

    def write_timing(self, cell_id: str, timing: dict) -> None:
        write_json(self.timing_path(cell_id), {"schema_version": FRAGMENT_SCHEMA, **timing})


def skipped_entry(cell: CellSpec, reason: str) -> dict[str, Any]:
    """A cell this machine cannot run, as ``results.csv`` and the report list it."""
    return {
        "cell_id": cell.cell_id,
        "status": "skipped",
        "reason": reason,
        "spec": cell.canonical(),
        "sampler_label": cell.sampler.label,
    }


def generation_repeats(cell: CellSpec, chunk_records: list[dict]) -> list[dict]:
    """The batches that generated the cell's images, each timed as it ran, as timing repeats: whole batches only (a
    cell's last, shorter batch costs another amount per image); none for chunks from before they were timed."""
    whole = min(cell.batch_size, cell.num_images)
    return [r for f in chunk_records for r in f.get("repeats") or [] if r["images"] == whole]


def generation_timing(cell: CellSpec, chunk_records: list[dict], policy: TimingPolicy) -> dict | None:
    """The cell's timing from its generation batches alone, unless the policy tops it up (``TimingPolicy.tops_up``)."""
    from lcm_bench.sampling.timers import timing_of

    repeats = generation_repeats(cell, chunk_records)
    return None if policy.tops_up(len(repeats)) else timing_of(repeats, policy, len(repeats))


def timing_meets(timing: dict, policy: TimingPolicy) -> bool:
    """Whether a stored timing holds the latency and peak-throughput measurements ``policy`` asks for."""
    return figures_meet(latency_figures(timing), policy)


def record_meets(record: dict, policy: TimingPolicy) -> bool:
    """Whether a cell's record holds the latency and peak-throughput figures ``policy`` asks for."""
    return figures_meet(CellRecord.read(record).throughput, policy)


def figures_meet(figures: Mapping, policy: TimingPolicy) -> bool:
    queries = figures.get("latency_queries") or 0
    return queries >= policy.latency_queries and (not policy.peak_throughput or "peak_stopped_by" in figures)


def damaged_image(folder: Path, images: dict[str, list]) -> str | None:
    """The first image a chunk record lists that is missing or no longer what was written: size first, the sha256 only
    when the modification time moved (a crash truncates, a copy rewrites)."""
    import hashlib

    for name, (sha256, size, mtime_ns) in images.items():
        try:
            stat = (folder / name).stat()
        except OSError:
            return name
        if stat.st_size != size:
            return name
        if stat.st_mtime_ns != mtime_ns and hashlib.sha256((folder / name).read_bytes()).hexdigest() != sha256:
            return name
    return None


def verify_chunks(run: RunDir, cells: list[CellSpec]) -> list[str]:
    """Discard every chunk (and its cell's record) whose images are missing or damaged, so the run generates it
    again; returns one line per discarded chunk."""
    from lcm_bench.run.leases import Lease

    store, notes = ChunkStore(run), []
    for cell in cells:
        folder = run.images_dir(cell.cell_id)
        for chunk in cell_chunks(cell):
            chunk_record = store.read(chunk)
            if store.damaged(chunk):
                bad = str(run.chunk_record_path(cell.cell_id, chunk.name).relative_to(run.path))
            else:
                bad = chunk_record and damaged_image(folder, chunk_record.get("images") or {})
            if not bad:
                continue
            lease = Lease(store.leases(cell.cell_id), chunk.name)
            if not lease.try_take():
                continue
            try:
                run.discard_record(cell.cell_id)
                store.chunk_record_path(chunk).unlink(missing_ok=True)
            finally:
                lease.release()
            notes.append(
                f"cell {cell.cell_id}: {bad} is missing or damaged; images {chunk.start}..{chunk.stop - 1} will be "
                "generated again"
            )
    return notes


def expected_images(run: RunDir, cell_id: str, chunks: tuple[tuple[int, int], ...]) -> dict[str, str]:
    """``{file name: sha256}`` of a cell's saved images, from the records of its ``chunks`` (each a (start, stop)
    sample range; none for older runs)."""
    store = ChunkStore(run)
    out = {}
    for i, (start, stop) in enumerate(chunks):
        chunk_record = store.read(Chunk(cell_id, i, start, stop)) or {}
        out.update({name: entry[0] for name, entry in (chunk_record.get("images") or {}).items()})
    return out


def is_current(chunk_record: dict | None, fingerprint: dict, batch_size: int, versions: dict) -> bool:
    """Made by what would make it now: same fingerprint, batch composition and library versions."""
    return (
        chunk_record is not None
        and fingerprint_value(chunk_record) == fingerprint["value"]
        and chunk_record.get("batch_size") == batch_size
        and (chunk_record.get("provenance") or {}).get("versions") == versions
    )


def busy_seconds(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of ``[start, end]`` intervals: wall time during which any process was generating."""
    total, reach = 0.0, -math.inf
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def wall_clock(chunk_records: list[dict]) -> dict[str, Any]:
    """The run's images/s across processes: images over the union of busy intervals (idle gaps between sessions
    left out), with the number of processes and their thread counts."""
    images = sum(f["stop"] - f["start"] for f in chunk_records)
    seconds = busy_seconds([(f["started"], f["finished"]) for f in chunk_records])
    processes = {f["process"]["id"]: f["process"]["threads"] for f in chunk_records}
    return {
        "images": images,
        "busy_seconds": seconds,
        "images_per_s": images / seconds if seconds > 0 else None,
        "processes": len(processes),
        "threads_per_process": sorted(set(processes.values())),
    }


def compose_grid(run: RunDir, cell: CellSpec) -> None:
    """``images/<cell_id>.grid.png`` from the cell's first images (removed again when only the grid is kept). A
    process killed after the grid was written and some of those images removed left the grid whole: it is kept."""
    import numpy as np
    from PIL import Image

    if cell.save_images == "none":
        return
    folder = run.images_dir(cell.cell_id)
    paths = [folder / image_name(i) for i in range(min(GRID_IMAGES, cell.num_images))]
    grid_path = run.grid_path(cell.cell_id)
    if not (grid_path.is_file() and not all(p.is_file() for p in paths)):
        shown = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
        write_file(grid_path, encode_png(image_grid(shown, min(len(shown), GRID_COLUMNS))))
    if cell.save_images == "grid":
        for path in paths:
            path.unlink(missing_ok=True)
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


PHASES = ("text_encoding", "denoising", "vae_decoding")


def throughput(cell: CellSpec, chunk_records: list[dict], timing: dict | None = None) -> dict[str, Any]:
    """NFE, peak memory and the bulk generation's seconds per image over every chunk; the time per image, its phases
    and images/s from the cell's ``timing`` (median of the timed repeats, its interval and the machine's load;
    older runs kept it in the first chunk), or from the bulk generation for runs from before timings."""
    from lcm_bench.sampling.timers import median_interval, median_rank

    n = sum(f["stop"] - f["start"] for f in chunk_records)
    nfe = sum(f["nfe"] for f in chunk_records)
    seconds = Counter()
    for f in chunk_records:
        seconds.update(f["seconds"])
    phases = {p: seconds[p] / n for p in PHASES}
    timing = timing or next((f["timing"] for f in chunk_records if f.get("timing")), None)
    out: dict[str, Any] = {"bulk_seconds_per_image": sum(seconds.values()) / n}
    if timing:
        repeats = len(timing["seconds_per_image"])
        level = timing["policy"].get("level", 0.95)
        median, low, high = median_interval(timing["seconds_per_image"], level)
        phases = {p: median_interval([r.get(p, 0.0) for r in timing["phases"]])[0] for p in PHASES}
        started = timing.get("started") or [0.0]
        out |= {
            "seconds_per_image_ci": [low, high],
            "seconds_per_image_ci_level": round(median_rank(repeats, level)[1], 4),
            "timing_repeats": repeats,
            "timing_repeats_from_generation": timing.get("from_generation", 0),
            "timing_spread_s": max(started) - min(started),
            "timed_batch_images": timing["batch_images"],
            "load": timing["load"],
            "contended": bool(timing["load"].get("contended")),
        }
    else:
        median = out["bulk_seconds_per_image"]
    out |= latency_figures(timing or {})
    processes = Counter(f["process"]["id"] for f in chunk_records)
    compiled = [f["compile_seconds"] for f in chunk_records if f.get("compile_seconds") is not None]
    out |= {"compile_seconds": compiled[0]} if compiled else {}
    return {
        "nfe_per_image": nfe / n,
        "images_per_s": 1.0 / median,
        "seconds_per_image": median,
        "seconds_per_nfe": phases["denoising"] / (nfe / n),
        **{f"{p}_s_per_image": phases[p] for p in PHASES},
        "peak_memory_mb": max(f["peak_memory_bytes"] for f in chunk_records) / 2**20,
        "memory_kind": chunk_records[0]["memory_kind"],
        "warmup_batches": cell.warmup,
        "processes": len(processes),
        "threads": max(f["process"]["threads"] for f in chunk_records),
        **out,
    }


def latency_figures(timing: dict) -> dict[str, Any]:
    """The timing's latency distribution (SingleStream) and peak throughput (Offline) as throughput figures."""
    out: dict[str, Any] = {}
    latency = timing.get("latency")
    if latency:
        out |= {f"latency_{k}_s": latency[k] for k in ("mean", "p50", "p90", "p99")}
        out |= {"latency_queries": latency["queries"], "latency_contended": bool(latency["load"].get("contended"))}
    peak = timing.get("peak")
    if peak:
        out |= {"peak_sweep": peak["sweep"], "peak_stopped_by": peak["stopped_by"]}
    if peak and peak["sweep"]:
        out |= {"peak_images_per_s": peak["images_per_s"], "peak_batch_size": peak["batch_size"]}
    return out


def assemble_record(
    cell: CellSpec, chunks: list[Chunk], chunk_records: list[dict], timing: dict | None
) -> dict[str, Any]:
    """The cell's record from one current chunk_record per chunk (in chunk order) and its timing."""
    from lcm_bench.domain.prompts import read_prompts, select
    from lcm_bench.sampling.generation import sample_seed

    first = chunk_records[0]
    n = sum(f["stop"] - f["start"] for f in chunk_records)
    spec = cell.prompts
    prompts = read_prompts(Path(spec.source), spec.format, spec.column, "prompts")
    indices = select(prompts, cell.num_images, cell.seed)
    return {
        "cell_id": cell.cell_id,
        "config_key": cell.config_key,
        "status": "ok",
        "spec": cell.canonical(),
        "sampler_label": cell.sampler.label,
        **first["cell"],
        "fingerprint": first["fingerprint"],
        "provenance": first["provenance"],
        "samples": [{"index": i, "prompt_index": indices[i], "seed": sample_seed(cell.seed, i)} for i in range(n)],
        "chunks": [{"start": f["start"], "stop": f["stop"], "process": f["process"]["id"]} for f in chunk_records],
        "nonfinite_images": [i for f in chunk_records for i in f.get("nonfinite_images", [])],
        "throughput": throughput(cell, chunk_records, timing),
        **authors_settings(cell),
    }


def authors_settings(cell: CellSpec) -> dict[str, Any]:
    """Which of the cell's settings came from its checkpoint's card, where they were read and whether its step count
    is one the authors trained for (nothing for a cell whose model has no registered settings)."""
    if cell.card is None:
        return {}
    card = cell.card
    return {
        "authors_settings": {
            "source": card.source,
            "from_card": list(card.fields),
            "trained_steps": list(card.trained_steps),
            "at_trained_steps": not card.untrained(cell.steps),
        }
    }


def write_cell_record(
    run: RunDir, cell: CellSpec, chunk_records: list[dict], suite: dict, timing: dict | None = None
) -> dict:
    """Compose the cell's grid and write its record from its chunk records (one per ``cell_chunks(cell)``, in
    order) and timing (callers hold the cell's record lease)."""
    compose_grid(run, cell)
    record = assemble_record(cell, cell_chunks(cell), chunk_records, timing)
    record["suite"] = suite
    run.write_record(record)
    return record


def consistency_error(cell: CellSpec, chunk_records: list[dict]) -> str | None:
    """Why a cell's chunk_records cannot form one record: made from different weights or by different libraries."""
    values = Counter(fingerprint_value(f) for f in chunk_records)
    if len(values) > 1:
        return f"cell {cell.cell_id}: its chunks were generated from {len(values)} different fingerprints"
    versions = Counter(json.dumps((f.get("provenance") or {}).get("versions"), sort_keys=True) for f in chunk_records)
    if len(versions) > 1:
        found = [json.loads(v) for v in versions]
        differing = sorted(k for k in set().union(*found) if len({json.dumps(v.get(k)) for v in found}) > 1)
        detail = ", ".join(f"{k} {' / '.join(sorted({str(v.get(k)) for v in found}))}" for k in differing)
        return f"cell {cell.cell_id}: its chunks were generated with different library versions ({detail})"
    return None
