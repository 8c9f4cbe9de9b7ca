"""Leases on work chunks: an OS file lock per chunk under ``<run>/.leases``.

The kernel drops a process's locks when it dies (SIGKILL included), so a dead process's chunk is free to reclaim at
once, with no heartbeat or expiry to tune. This needs a filesystem whose locks work across the machines that share
the run directory (local disks, NFSv4, Lustre and GPFS with locking on); ``flock``-less mounts are not supported.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout


class Lease:
    """Exclusive claim on one name in ``folder``: ``try_take`` returns at once, ``take`` waits."""

    def __init__(self, folder: Path, name: str):
        folder.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(folder / f"{name}.lock"), thread_local=False)

    def try_take(self) -> bool:
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            return False
        return True

    def take(self) -> None:
        self._lock.acquire()

    def release(self) -> None:
        self._lock.release()


@contextmanager
def held(folder: Path, name: str):
    """Wait for and hold a lease for the body of a ``with`` block."""
    lease = Lease(folder, name)
    lease.take()
    try:
        yield
    finally:
        lease.release()
