"""Throughput measurement: synchronised phase timers and peak memory (CUDA allocator or sampled process RSS)."""

from __future__ import annotations

import os
import resource
import threading
import time
from collections import defaultdict
from contextlib import contextmanager


def synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    elif device.startswith("mps"):
        torch.mps.synchronize()


class PhaseTimer:
    """Accumulates wall time per phase; the device is synchronised at both ends of each phase."""

    def __init__(self, device: str):
        self.device = device
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, phase: str):
        synchronize(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            synchronize(self.device)
            self.seconds[phase] += time.perf_counter() - start


def current_rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMemory:
    """Peak memory over a block: ``torch.cuda.max_memory_allocated`` on CUDA, else RSS sampled every 5 ms."""

    def __init__(self, device: str, interval: float = 0.005):
        self.device = device
        self.interval = interval
        self.peak_bytes = 0
        self.kind = "cuda_max_allocated" if device.startswith("cuda") else "process_rss"
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_bytes = max(self.peak_bytes, current_rss_bytes())

    def __enter__(self) -> PeakMemory:
        if self.kind == "cuda_max_allocated":
            import torch

            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.peak_bytes = current_rss_bytes()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.kind == "cuda_max_allocated":
            import torch

            self.peak_bytes = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()
            self.peak_bytes = max(self.peak_bytes, current_rss_bytes())
