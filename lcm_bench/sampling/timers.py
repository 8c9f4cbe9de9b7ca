"""Throughput measurement: synchronised phase timers, peak memory (CUDA allocator or sampled process RSS), the
timing policy (repeats until a stated precision, pytest-benchmark style) and the machine's load while timing."""

from __future__ import annotations

import os
import resource
import threading
import time
from collections import defaultdict
from contextlib import contextmanager

from lcm_bench.core.spec import TimingPolicy


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


def policy_met(policy: TimingPolicy, samples: list[float], spent: float) -> bool:
    """Whether timing may stop: at least ``min_repeats`` samples, and the median's 95 % interval within
    ``precision`` of it, or ``max_repeats`` samples, or ``max_seconds`` spent."""
    if len(samples) < policy.min_repeats:
        return False
    if len(samples) >= policy.max_repeats or spent >= policy.max_seconds:
        return True
    median, low, high = median_interval(samples)
    return (high - low) / 2 <= policy.precision * median


def median_interval(samples, level: float = 0.95, resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """The median and its percentile bootstrap interval (seeded, so a record is reproducible from its samples)."""
    import numpy as np

    values = np.asarray(samples, np.float64)
    rng = np.random.default_rng(seed)
    medians = np.median(values[rng.integers(0, len(values), size=(resamples, len(values)))], axis=1)
    alpha = (1 - level) / 2
    return float(np.median(values)), float(np.quantile(medians, alpha)), float(np.quantile(medians, 1 - alpha))


CONTENDED_CORES = 0.25
"""Other processes' CPU use, in cores, above which a timing counts as taken under contention."""


def _busy_cpu_seconds() -> float | None:
    """CPU seconds every process of the machine has spent busy since boot (``/proc/stat``), None where absent."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class MachineLoad:
    """How busy the rest of the machine was over a block: the CPU time other processes used (all of the machine's
    busy time from ``/proc/stat`` less this process's own), in cores, and the 1-minute load average."""

    def __enter__(self) -> MachineLoad:
        self._start = (_busy_cpu_seconds(), time.process_time(), time.perf_counter())
        return self

    def __exit__(self, *exc) -> None:
        busy, own, wall = _busy_cpu_seconds(), time.process_time(), time.perf_counter()
        busy0, own0, wall0 = self._start
        elapsed = max(wall - wall0, 1e-9)
        others = None if busy is None or busy0 is None else max(0.0, (busy - busy0) - (own - own0)) / elapsed
        self.result = {
            "other_cores": None if others is None else round(others, 3),
            "loadavg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
            "contended": others is not None and others > CONTENDED_CORES,
        }
