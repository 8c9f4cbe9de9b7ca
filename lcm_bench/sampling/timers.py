"""Throughput measurement: synchronised phase timers, peak memory (CUDA allocator or sampled process RSS), the
timing policy (repeats until a stated precision, pytest-benchmark style) taken in interleaved rounds, the median's
distribution-free interval and the machine's load while timing."""

from __future__ import annotations

import os
import resource
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

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


def policy_met(policy: TimingPolicy, samples: list[float], spent: float, contended: bool = False) -> bool:
    """Whether timing may stop: at least ``min_repeats`` samples, and the median's 95 % interval within
    ``precision`` of it, or ``max_repeats`` samples, or ``max_seconds`` spent, or the repeats so far taken while
    other processes used the CPU (``contended``: more repeats under load buy no precision, only cost; such a cell
    is marked and never gated)."""
    if len(samples) < policy.min_repeats:
        return False
    if contended or len(samples) >= policy.max_repeats or spent >= policy.max_seconds:
        return True
    median, low, high = median_interval(samples)
    return (high - low) / 2 <= policy.precision * median


def median_rank(n: int, level: float = 0.95) -> tuple[int, float]:
    """The distribution-free interval of a median from ``n`` samples (Conover, *Practical Nonparametric
    Statistics*, 3.2): the largest rank k whose order statistics ``[x_(k), x_(n+1-k)]`` cover the median with
    probability ``1 - 2 P(B <= k-1)``, B ~ Binomial(n, 1/2), at least ``level``, and that coverage. Below six
    samples no such k exists at 95 %: k is 1 (the range) and its coverage is smaller."""
    from scipy.stats import binom

    k = 1
    while k < (n + 1) // 2 and 1 - 2 * binom.cdf(k, n, 0.5) >= level:
        k += 1
    return k, float(1 - 2 * binom.cdf(k - 1, n, 0.5))


def median_interval(samples, level: float = 0.95) -> tuple[float, float, float]:
    """The median and its distribution-free interval (``median_rank``): no assumption on the shape of the
    times, which are skewed (a repeat is only ever slowed down)."""
    import numpy as np

    values = np.sort(np.asarray(samples, np.float64))
    k, _ = median_rank(len(values), level)
    return float(np.median(values)), float(values[k - 1]), float(values[len(values) - k])


@dataclass
class TimedJob:
    """One cell's timed unit of work: ``run(timer)`` generates a batch of ``images`` images and discards them."""

    run: Callable[[PhaseTimer], Any]
    images: int


@dataclass
class _Repeats:
    seconds_per_image: list[float] = field(default_factory=list)
    phases: list[dict[str, float]] = field(default_factory=list)
    started: list[float] = field(default_factory=list)
    loads: list[MachineLoad] = field(default_factory=list)
    spent: float = 0.0


def _done(policy: TimingPolicy, state: _Repeats) -> bool:
    contended = bool(combined_load(state.loads)["contended"])
    return policy_met(policy, state.seconds_per_image, state.spent, contended)


def time_interleaved(jobs: dict[str, TimedJob], policy: TimingPolicy, device: str) -> dict[str, dict[str, Any]]:
    """Time every job in rounds, each round running every job not yet done once, until each meets ``policy``.

    Interleaving spreads a job's repeats over the whole pass, so a burst of other activity (a few seconds on a
    shared or virtual machine) slows a few repeats of many jobs, which their medians ignore, instead of all the
    repeats of one job, which its interval would not show. Per job: every repeat's seconds per image, in total
    and per phase, when it started, and the machine's load over its repeats."""
    repeats = {name: _Repeats() for name in jobs}
    pending = list(jobs)
    while pending:
        for name in pending:
            job, state = jobs[name], repeats[name]
            timer = PhaseTimer(device)
            state.started.append(time.time())
            with MachineLoad() as load:
                job.run(timer)
            per_image = {phase: seconds / job.images for phase, seconds in timer.seconds.items()}
            state.seconds_per_image.append(sum(per_image.values()))
            state.phases.append(per_image)
            state.loads.append(load)
            state.spent += load.seconds
        pending = [n for n in pending if not _done(policy, repeats[n])]
    return {
        name: {
            "batch_images": jobs[name].images,
            "seconds_per_image": state.seconds_per_image,
            "phases": state.phases,
            "started": state.started,
            "policy": asdict(policy),
            "load": combined_load(state.loads),
        }
        for name, state in repeats.items()
    }


def percentile(values, q: float) -> float:
    """The nearest-rank percentile (MLPerf's: the smallest latency at or above which ``q`` % of queries fall)."""
    import numpy as np

    return float(np.percentile(np.asarray(values, np.float64), q, method="inverted_cdf"))


def latency_distribution(query: Callable[[int, PhaseTimer], Any], queries: int, device: str) -> dict[str, Any]:
    """MLPerf SingleStream: ``queries`` queries of one image each, issued one after another, each query's wall time
    from its prompt to its decoded image; its mean, p50, p90 and p99 (nearest rank) and the machine's load."""
    seconds, loads = [], []
    for i in range(queries):
        timer = PhaseTimer(device)
        with MachineLoad() as load:
            query(i, timer)
        seconds.append(sum(timer.seconds.values()))
        loads.append(load)
    return {
        "queries": queries,
        "seconds": seconds,
        "mean": sum(seconds) / queries,
        **{f"p{q}": percentile(seconds, q) for q in (50, 90, 99)},
        "load": combined_load(loads),
    }


def release_device_memory(device: str) -> None:
    """Give a GPU's cached blocks back after a failed batch (an out-of-memory leaves them held)."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _out_of_memory(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc) or "can't allocate" in str(exc)


def peak_throughput(
    batch: Callable[[int, PhaseTimer], Any], max_batch: int, device: str, repeats: int = 3, gain: float = 1.05
) -> dict[str, Any]:
    """MLPerf Offline's peak throughput from a batch-size sweep: batch sizes 1, 2, 4 ... up to ``max_batch``, each
    warmed once and timed ``repeats`` times (best images/s), until memory runs out or a doubling raises
    throughput by less than ``gain``."""

    sweep, stopped, size = [], "max_batch_size", 1
    while size <= max_batch:
        try:
            batch(size, PhaseTimer(device))
            times = []
            for _ in range(repeats):
                timer = PhaseTimer(device)
                batch(size, timer)
                times.append(sum(timer.seconds.values()))
        except (RuntimeError, MemoryError) as exc:
            if not _out_of_memory(exc):
                raise
            release_device_memory(device)
            stopped = "memory"
            break
        sweep.append({"batch_size": size, "images_per_s": size / min(times)})
        if len(sweep) > 1 and sweep[-1]["images_per_s"] < gain * max(s["images_per_s"] for s in sweep[:-1]):
            stopped = "no gain"
            break
        size *= 2
    best = max(sweep, key=lambda s: s["images_per_s"]) if sweep else None
    return {"sweep": sweep, "stopped_by": stopped, **(best or {})}


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
        self.seconds = max(wall - wall0, 1e-9)
        self.other_seconds = None if busy is None or busy0 is None else max(0.0, (busy - busy0) - (own - own0))
        self.loadavg_1m = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        self.result = combined_load([self])


def combined_load(loads: list[MachineLoad]) -> dict[str, Any]:
    """The load over several blocks: other processes' CPU time over their summed wall time, in cores (a block
    slowed by a burst weighs by its length), the highest load average, and whether that is contention."""
    known = [load for load in loads if load.other_seconds is not None]
    others = sum(load.other_seconds for load in known) / sum(load.seconds for load in known) if known else None
    averages = [load.loadavg_1m for load in loads if load.loadavg_1m is not None]
    return {
        "other_cores": None if others is None else round(others, 3),
        "loadavg_1m": round(max(averages), 2) if averages else None,
        "contended": others is not None and others > CONTENDED_CORES,
    }
