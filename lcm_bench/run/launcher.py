"""Runs under torchrun or ``accelerate launch``: one process per device, a gloo group for coordination only.

Work is never divided by rank: every rank walks all chunks (starting at its own offset) and claims chunks through the
same leases shards use, so results do not depend on the number of processes, a rank that dies leaves its chunk to
whoever comes next, and an elastic restart resumes without redoing a finished chunk. The gloo group carries
barriers and small objects (the shared-directory nonce); rank 0 writes the manifest, computes reference statistics
before work fans out, and writes results and the report; scoring is spread across ranks by cell.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from lcm_bench.core.errors import UserError

COORDINATION_TIMEOUT = timedelta(hours=12)
"""Ranks wait at barriers while others generate or score: as long as a long cell may take."""


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    local_rank: int
    local_size: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def mine(self, items: list) -> list:
        """This rank's share of a list of independent items (round robin)."""
        return items[self.rank :: self.size]

    def rotate(self, items: list) -> list:
        """``items`` starting at this rank's ``1 / size`` offset: ranks start on different chunks, meet at the end."""
        start = len(items) * self.rank // self.size
        return items[start:] + items[:start]


def launched(env: Mapping[str, str] = os.environ) -> World | None:
    """The world a launcher (torchrun, accelerate) set up in the environment, or None for a plain process."""
    if "RANK" not in env or "WORLD_SIZE" not in env:
        return None
    try:
        world = World(
            int(env["RANK"]),
            int(env["WORLD_SIZE"]),
            int(env.get("LOCAL_RANK", "0")),
            int(env.get("LOCAL_WORLD_SIZE", "1")),
        )
    except ValueError:
        raise UserError("$RANK, $WORLD_SIZE, $LOCAL_RANK and $LOCAL_WORLD_SIZE must be integers") from None
    return world if world.size > 1 else None


class Coordinator:
    """A gloo process group over the launcher's rendezvous (``MASTER_ADDR``/``MASTER_PORT``), its keys prefixed by
    the elastic attempt so a restarted group never reads the addresses of the ranks it replaced."""

    def __init__(self, world: World):
        import torch.distributed as dist

        self.world = world
        self._dist = dist
        if not dist.is_initialized():
            store, rank, size = next(dist.rendezvous("env://", timeout=COORDINATION_TIMEOUT))
            attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
            store = dist.PrefixStore(f"lcm-bench/attempt-{attempt}", store)
            dist.init_process_group("gloo", store=store, rank=rank, world_size=size, timeout=COORDINATION_TIMEOUT)

    def barrier(self) -> None:
        self._dist.barrier()

    def broadcast(self, obj):
        holder = [obj]
        self._dist.broadcast_object_list(holder, src=0)
        return holder[0]

    def gather(self, obj) -> list:
        out = [None] * self.world.size
        self._dist.all_gather_object(out, obj)
        return out

    def close(self) -> None:
        """Tear the group down; after a run every rank first meets at a barrier (a rank that destroys its group
        while a peer still talks to it can abort in gloo's threads)."""
        if self._dist.is_initialized():
            self._dist.destroy_process_group()


def check_shared(coordinator: Coordinator, leases_dir: Path) -> None:
    """Rank 0 writes a nonce into the run directory; every rank must read it back, else the directory is not shared
    by every node (results would be scattered)."""
    from lcm_bench.core.io import write_atomic

    path = leases_dir / "nonce"
    nonce = None
    if coordinator.world.is_main:
        nonce = uuid.uuid4().hex
        write_atomic(path, nonce.encode())
    nonce = coordinator.broadcast(nonce)
    try:
        seen = path.read_text() == nonce
    except OSError:
        seen = False
    answers = coordinator.gather((seen, socket.gethostname(), coordinator.world.rank))
    blind = [(host, rank) for ok, host, rank in answers if not ok]
    if blind:
        host, rank = blind[0]
        raise UserError(
            f"--out: run directory '{leases_dir.parent}' is not shared: rank {rank} on {host} cannot read what rank 0 "
            f"wrote there ({len(blind)} rank{'s' * (len(blind) > 1)} in all); give a directory every node mounts"
        )


def check_devices(cells, world: World, pin: bool) -> None:
    """Under a launcher each rank uses its own GPU (``cuda:LOCAL_RANK``); an entry that names one is refused unless
    pinning was asked for."""
    if pin:
        return
    for cell in cells:
        if ":" in cell.hardware.device:
            raise UserError(
                f"hardware: '{cell.hardware.name}' pins {cell.hardware.device}, but under a launcher each of the "
                f"{world.size} ranks uses its own device (cuda:LOCAL_RANK); use "
                f"'{cell.hardware.device.split(':')[0]}-{cell.hardware.dtype}' or pass --pin-devices"
            )


def select_device(world: World) -> None:
    """Make ``cuda`` mean this rank's GPU (``cuda:LOCAL_RANK``)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.set_device(world.local_rank % torch.cuda.device_count())
