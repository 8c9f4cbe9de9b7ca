"""Throughput measurement: synchronised phase timers, peak memory (CUDA allocator or the process's peak RSS), timed
repeats (a cell's generation batches, then, for a cell with too few of them, repeats in interleaved rounds until
the timing policy is met, pytest-benchmark style), the median's distribution-free interval and the machine's load
while timing."""

from __future__ import annotations

import os
import resource
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass
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


def reset_rss_peak() -> bool:
    """Set the kernel's peak resident set size of this process (``VmHWM``) to its current size (``5`` written to
    ``/proc/self/clear_refs``, Linux >= 4.0); False where the kernel offers no such reset."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def rss_peak_bytes() -> int:
    """The kernel's peak resident set size of this process since it started or since ``reset_rss_peak``."""
    with open("/proc/self/status") as f:
        kib = next(line for line in f if line.startswith("VmHWM:")).split()[1]
    return int(kib) * 1024


class PeakMemory:
    """Peak memory over a block: ``torch.cuda.max_memory_allocated`` on CUDA; on a CPU the kernel's peak RSS of the
    process, reset when the block starts (``reset_rss_peak``: exact, and no thread competes with the block for the
    cores; a sampling thread every 5 ms cost one 512-image cell about a tenth of its time on 2 cores), else the RSS
    sampled every ``interval`` seconds. The reset is process-wide: after a block, ``VmHWM`` is the block's peak."""

    def __init__(self, device: str, interval: float = 0.005):
        self.device = device
        self.interval = interval
        self.peak_bytes = 0
        self.kind = "cuda_max_allocated" if device.startswith("cuda") else "process_rss"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_bytes = max(self.peak_bytes, current_rss_bytes())

    def __enter__(self) -> PeakMemory:
        if self.kind == "cuda_max_allocated":
            import torch

            torch.cuda.reset_peak_memory_stats(self.device)
        elif not reset_rss_peak():
            self.peak_bytes = current_rss_bytes()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.kind == "cuda_max_allocated":
            import torch

            self.peak_bytes = torch.cuda.max_memory_allocated(self.device)
        elif self._thread is None:
            self.peak_bytes = rss_peak_bytes()
        else:
            self._stop.set()
            self._thread.join()
            self.peak_bytes = max(self.peak_bytes, current_rss_bytes())


def policy_met(policy: TimingPolicy, samples: list[float], spent: float, contended: bool = False) -> bool:
    """Whether timing may stop: at least ``min_repeats`` samples, and the median's interval (at ``policy.level``)
    within ``precision`` of it, or ``max_repeats`` samples, or ``max_seconds`` spent, or the repeats so far taken
    while other processes used the CPU (``contended``: more repeats under load buy no precision, only cost; such a
    cell is marked and never gated)."""
    if len(samples) < policy.min_repeats:
        return False
    if contended or len(samples) >= policy.max_repeats or spent >= policy.max_seconds:
        return True
    median, low, high = median_interval(samples, policy.level)
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


def fewest_repeats(level: float) -> int:
    """The fewest samples whose range covers the median with probability ``level`` (``1 - 2^(1-n) >= level``)."""
    n = 1
    while 1 - 2.0 ** (1 - n) < level:
        n += 1
    return n


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


def timed_repeat(run: Callable[[PhaseTimer], Any], images: int, device: str) -> tuple[Any, dict[str, Any]]:
    """Run one batch of ``images`` images and return what ``run`` returned and the repeat: when it started, its
    seconds per image per phase and the machine's load over it (``MachineLoad.sample``)."""
    timer = PhaseTimer(device)
    started = time.time()
    with MachineLoad() as load:
        out = run(timer)
    phases = {phase: seconds / images for phase, seconds in timer.seconds.items()}
    return out, {"images": images, "started": started, "phases": phases, "load": load.sample}


def repeat_seconds(repeat: dict[str, Any]) -> float:
    return sum(repeat["phases"].values())


def _done(policy: TimingPolicy, repeats: list[dict[str, Any]]) -> bool:
    contended = bool(combined_load([r["load"] for r in repeats])["contended"])
    spent = sum(r["load"]["seconds"] for r in repeats)
    return policy_met(policy, [repeat_seconds(r) for r in repeats], spent, contended)


def time_interleaved(
    jobs: dict[str, TimedJob],
    policy: TimingPolicy,
    device: str,
    prior: dict[str, list[dict[str, Any]]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Time every job in rounds, each round running every job not yet done once, until each meets ``policy``
    counting its ``prior`` repeats (the batches that generated its images, ``timed_repeat``'s records).

    Interleaving spreads a job's repeats over the whole pass, so a burst of other activity (a few seconds on a
    shared or virtual machine) slows a few repeats of many jobs, which their medians ignore, instead of all the
    repeats of one job, which its interval would not show. Per job: ``timing_of`` its prior and new repeats."""
    prior = prior or {}
    repeats = {name: list(prior.get(name, [])) for name in jobs}
    pending = [name for name in jobs if not _done(policy, repeats[name])]
    while pending:
        for name in pending:
            job = jobs[name]
            repeats[name].append(timed_repeat(job.run, job.images, device)[1])
        pending = [name for name in pending if not _done(policy, repeats[name])]
    return {name: timing_of(repeats[name], policy, len(prior.get(name, []))) for name in jobs}


def timing_of(repeats: list[dict[str, Any]], policy: TimingPolicy, from_generation: int) -> dict[str, Any]:
    """A cell's timing from its repeats, the first ``from_generation`` of them the batches that generated its
    images: every repeat's seconds per image, in total and per phase, its batch size, when it started, and the
    machine's load over them all."""
    return {
        "batch_images": repeats[0]["images"] if repeats else 0,
        "seconds_per_image": [repeat_seconds(r) for r in repeats],
        "phases": [r["phases"] for r in repeats],
        "started": [r["started"] for r in repeats],
        "from_generation": from_generation,
        "policy": asdict(policy),
        "load": combined_load([r["load"] for r in repeats]),
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
        loads.append(load.sample)
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
    busy time from ``/proc/stat`` less this process's own), in cores, and the 1-minute load average. ``sample`` is
    the block's raw figures (what records keep), ``result`` their ``combined_load``."""

    def __enter__(self) -> MachineLoad:
        self._start = (_busy_cpu_seconds(), time.process_time(), time.perf_counter())
        return self

    def __exit__(self, *exc) -> None:
        busy, own, wall = _busy_cpu_seconds(), time.process_time(), time.perf_counter()
        busy0, own0, wall0 = self._start
        other = None if busy is None or busy0 is None else max(0.0, (busy - busy0) - (own - own0))
        self.sample = {
            "seconds": max(wall - wall0, 1e-9),
            "other_seconds": other,
            "loadavg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        }
        self.result = combined_load([self.sample])


def combined_load(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The load over several blocks (``MachineLoad.sample``): other processes' CPU time over the blocks' summed wall
    time, in cores (a block slowed by a burst weighs by its length), the highest load average, and whether that is
    contention."""
    known = [s for s in samples if s.get("other_seconds") is not None]
    others = sum(s["other_seconds"] for s in known) / sum(s["seconds"] for s in known) if known else None
    averages = [s["loadavg_1m"] for s in samples if s.get("loadavg_1m") is not None]
    return {
        "other_cores": None if others is None else round(others, 3),
        "loadavg_1m": round(max(averages), 2) if averages else None,
        "contended": others is not None and others > CONTENDED_CORES,
    }
