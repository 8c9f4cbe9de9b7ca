"""Work chunks: a cell split into chunks of whole batches, and a deterministic share of them per shard.

Chunk boundaries depend on the cell spec alone (``num_images``, ``batch_size``, ``chunk_size``), never on how many
processes share the work, so every batch, and so every image, is the same however the chunks are spread. Shards take
contiguous runs of the chunks in (model, hardware, steps) order, balanced by estimated network evaluations, as Slurm
job arrays and Kubernetes indexed jobs expect: shard ``I`` of ``N`` computes the same share on any machine.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from lcm_bench.core.errors import UserError
from lcm_bench.core.spec import CellSpec
from lcm_bench.sampling.guidance import auto_guidance, nfe_per_image


@dataclass(frozen=True)
class Chunk:
    """Images ``start`` .. ``stop - 1`` of one cell (whole batches, except a cell's last)."""

    cell_id: str
    index: int
    start: int
    stop: int

    @property
    def images(self) -> int:
        return self.stop - self.start

    @property
    def name(self) -> str:
        return f"{self.start:07d}-{self.stop:07d}"

    def batches(self, batch_size: int) -> list[range]:
        return [range(i, min(i + batch_size, self.stop)) for i in range(self.start, self.stop, batch_size)]


def cell_chunks(cell: CellSpec) -> list[Chunk]:
    """The cell's chunks: ``chunk_size`` images rounded down to whole batches (at least one batch each)."""
    per_chunk = max(1, cell.chunk_size // cell.batch_size) * cell.batch_size
    starts = range(0, cell.num_images, per_chunk)
    return [Chunk(cell.cell_id, i, s, min(s + per_chunk, cell.num_images)) for i, s in enumerate(starts)]


def estimated_nfe(cell: CellSpec) -> int:
    """Network evaluations per image as the spec alone suggests (guidance ``auto`` counted as classifier-free):
    the weight that balances shards, known before any model is resolved."""
    mode = auto_guidance(("cfg",), False) if cell.sampler.guidance == "auto" else cell.sampler.guidance
    return nfe_per_image(cell.sampler.name, cell.steps, mode, cell.guidance_scale)


def work_order(cells: list[CellSpec]) -> list[CellSpec]:
    """Cells grouped so that consecutive ones share a loaded pipeline: model, hardware, then steps (students of
    guided distillation have one UNet per step count)."""
    return sorted(cells, key=lambda c: (c.model.name, c.hardware.name, c.steps, c.cell_id))


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def assign(cells: list[CellSpec], count: int) -> list[list[Chunk]]:
    """Every chunk of ``cells`` in exactly one of ``count`` shards: contiguous runs of the work order, cut where the
    cumulative estimated NFE crosses each ``k / count`` of the total (a chunk goes where its midpoint falls)."""
    ordered = [(chunk, chunk.images * estimated_nfe(cell)) for cell in work_order(cells) for chunk in cell_chunks(cell)]
    total = sum(cost for _, cost in ordered) or 1
    shares: list[list[Chunk]] = [[] for _ in range(count)]
    done = 0
    for chunk, cost in ordered:
        shares[min(count - 1, int(count * (done + cost / 2) / total))].append(chunk)
        done += cost
    return shares


SHARD = re.compile(r"^(\d+)/(\d+)$")


def parse_shard(text: str | None, env: Mapping[str, str] = os.environ) -> Shard | None:
    """``I/N`` (0-based), or ``auto``: a Slurm job array (``SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN`` of
    ``SLURM_ARRAY_TASK_COUNT``) or a Kubernetes indexed job (``JOB_COMPLETION_INDEX`` of ``LCM_BENCH_SHARDS``)."""
    if text is None:
        return None
    if text == "auto":
        return _shard_from_env(env)
    match = SHARD.match(text)
    if not match:
        raise UserError(f"--shard: expected I/N (such as 0/4) or auto, got '{text}'")
    index, count = int(match[1]), int(match[2])
    if count < 1 or not 0 <= index < count:
        raise UserError(f"--shard: index must be in 0..N-1 and N >= 1, got '{text}'")
    return Shard(index, count)


def _shard_from_env(env: Mapping[str, str]) -> Shard:
    def number(name: str) -> int:
        try:
            return int(env[name])
        except ValueError:
            raise UserError(f"--shard auto: ${name} is not an integer ('{env[name]}')") from None

    if "SLURM_ARRAY_TASK_ID" in env:
        if "SLURM_ARRAY_TASK_COUNT" not in env:
            raise UserError("--shard auto: $SLURM_ARRAY_TASK_ID is set but $SLURM_ARRAY_TASK_COUNT is not")
        index = number("SLURM_ARRAY_TASK_ID") - number("SLURM_ARRAY_TASK_MIN") if "SLURM_ARRAY_TASK_MIN" in env else 0
        shard = Shard(index, number("SLURM_ARRAY_TASK_COUNT"))
        source = "Slurm array (--array must be contiguous, step 1)"
    elif "JOB_COMPLETION_INDEX" in env:
        if "LCM_BENCH_SHARDS" not in env:
            raise UserError("--shard auto: $JOB_COMPLETION_INDEX is set; set $LCM_BENCH_SHARDS to the completions")
        shard = Shard(number("JOB_COMPLETION_INDEX"), number("LCM_BENCH_SHARDS"))
        source = "Kubernetes indexed job"
    else:
        raise UserError(
            "--shard auto: no job array found (set SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT, or "
            "JOB_COMPLETION_INDEX/LCM_BENCH_SHARDS), or give --shard I/N"
        )
    if shard.count < 1 or not 0 <= shard.index < shard.count:
        raise UserError(f"--shard auto: {source} gives shard {shard}, outside 0..N-1")
    return shard
