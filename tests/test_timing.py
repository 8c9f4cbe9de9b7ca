"""Timing as a measurement: repeats of whole batches until a stated precision or a cap, a median with its interval,
the machine's load sampled while timing, cells timed under load marked, counted and never gated, and logs that
read well in a file."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from contextlib import contextmanager

import numpy as np
import pytest
from conftest import write_suite

from lcm_bench.cli.main import main
from lcm_bench.core.spec import TimingPolicy
from lcm_bench.sampling import timers
from lcm_bench.sampling.timers import (
    MachineLoad,
    PeakMemory,
    TimedJob,
    median_interval,
    median_rank,
    policy_met,
    time_interleaved,
)

SUITE = """
version: 1
methods:
  - {name: ddim, model: tiny-sd, sampler: ddim, guidance_scale: 3.0}
  - {name: lcm, model: tiny-lcm, sampler: lcm, guidance_scale: 3.0}
steps: [1, 2]
prompts: [shapes-mini]
num_images: 8
batch_size: 4
timing: {min_repeats: 3, max_repeats: 6, precision: 0.05, max_seconds: 2, top_up: 1}
"""


def test_the_policy_stops_at_its_precision_or_its_caps():
    policy = TimingPolicy(min_repeats=3, max_repeats=6, precision=0.05, max_seconds=10)
    assert not policy_met(policy, [1.0, 1.0], 0.1), "fewer than min_repeats"
    assert policy_met(policy, [1.0, 1.01, 0.99], 0.1), "tight samples meet 5 %"
    assert not policy_met(policy, [1.0, 2.0, 0.5], 0.1), "scattered samples do not"
    assert policy_met(policy, [1.0, 2.0, 0.5, 1.5, 0.7, 1.9], 0.1), "max_repeats"
    assert policy_met(policy, [1.0, 2.0, 0.5], 11.0), "max_seconds"


def test_the_median_interval_takes_the_order_statistics_of_its_binomial_coverage():
    assert median_rank(5)[0] == 1 and median_rank(5)[1] == pytest.approx(1 - 2 / 32), "too few: the range"
    assert median_rank(6) == (1, pytest.approx(1 - 2 / 64))
    assert median_rank(10)[0] == 2 and median_rank(20)[0] == 6, "as scipy.stats.quantile_test's interval"
    samples = [3.1, 2.9, 3.0, 3.4, 2.8, 3.05, 3.2, 2.95, 3.3, 3.15]
    assert median_interval(samples) == (pytest.approx(3.075), 2.9, 3.3)


def test_the_median_interval_covers_the_median_of_skewed_times_at_its_level():
    rng = np.random.default_rng(7)
    true_median = 1.0 + np.log(2) / 10
    for n in (6, 10, 25):
        covered = [lo <= true_median <= hi for _, lo, hi in map(median_interval, 1.0 + rng.exponential(0.1, (2000, n)))]
        assert 0.95 <= np.mean(covered) <= 0.995, (n, np.mean(covered))


def test_interleaved_rounds_spread_each_jobs_repeats_over_the_pass():
    policy = TimingPolicy(min_repeats=6, max_repeats=6, precision=0.0, max_seconds=60)
    jobs = {name: TimedJob(lambda timer: time.sleep(0.001), 4) for name in "abc"}
    timings = time_interleaved(jobs, policy, "cpu")
    starts = sorted((t, name) for name, timing in timings.items() for t in timing["started"])
    assert [name for _, name in starts] == list("abc") * 6, "round after round, every job once per round"
    assert all(len(t["seconds_per_image"]) == 6 and t["batch_images"] == 4 for t in timings.values())


@contextmanager
def cpu_burner():
    """Another process spinning one core."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        yield
    finally:
        proc.kill()
        proc.wait()


def test_machine_load_sees_another_process_using_the_cpu():
    with cpu_burner(), MachineLoad() as load:
        time.sleep(1.0)
    assert load.result["contended"] and load.result["other_cores"] > 0.5, load.result


@pytest.mark.parametrize("kernel_reset", [True, False], ids=["kernel-peak", "sampled"])
def test_peak_memory_is_each_blocks_own_peak(monkeypatch, kernel_reset):
    """A block that holds 160 MB for a moment peaks at least 160 MB above where it started; the next block, which
    allocates nothing, peaks below that: each block's peak is its own, whether read from the kernel's reset
    high-water mark or sampled. The 160 MB are pages newly mapped and written (an anonymous mmap), so they add to
    the resident set whatever memory the allocator kept from earlier tests."""
    import mmap

    if not kernel_reset:
        monkeypatch.setattr(timers, "reset_rss_peak", lambda: False)
    size = 160 * 2**20
    with PeakMemory("cpu") as before:
        pass
    with PeakMemory("cpu") as holding:
        block = mmap.mmap(-1, size)
        pages = np.frombuffer(block, dtype=np.uint8)
        pages[:] = 1
        time.sleep(0.05)
        del pages
        block.close()
    with PeakMemory("cpu") as after:
        time.sleep(0.05)
    assert holding.peak_bytes >= before.peak_bytes + 0.95 * size, (before.peak_bytes, holding.peak_bytes)
    assert after.peak_bytes < holding.peak_bytes - 0.5 * size, (holding.peak_bytes, after.peak_bytes)


def test_a_cell_is_topped_up_only_where_the_missing_batches_cost_at_most_top_up_times_its_own():
    policy = TimingPolicy(min_repeats=6, top_up=0.25)
    assert policy.tops_up(0), "chunks from before timing: no repeats of their own"
    assert policy.tops_up(5) and not policy.tops_up(4) and not policy.tops_up(1), "1 of 5 costs 0.2, 2 of 4 0.5"
    assert not policy.tops_up(6) and not policy.tops_up(9), "enough of its own"
    assert TimingPolicy(min_repeats=6, top_up=2).tops_up(2) and not TimingPolicy(top_up=0).tops_up(5)


def test_a_cell_not_topped_up_keeps_its_own_batches_at_the_coverage_they_reach(tmp_path):
    suite = write_suite(tmp_path, SUITE.replace("top_up: 1", "top_up: 0.25"))
    assert main(["run", str(suite), "--out", str(tmp_path / "run"), "--quiet", "--no-report"]) == 0
    for record in _records(tmp_path / "run"):
        tp = record["throughput"]
        assert tp["timing_repeats"] == tp["timing_repeats_from_generation"] == 2, "its two batches, nothing more"
        assert tp["seconds_per_image_ci_level"] == 0.5, "the range of two covers the median half the time"


def _records(out):
    return [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))]


def test_cells_are_timed_by_repeats_and_logged_one_line_each(tmp_path, capsys):
    suite = write_suite(tmp_path, SUITE)
    assert main(["run", str(suite), "--out", str(tmp_path / "run"), "--no-report"]) == 0
    captured = capsys.readouterr()
    for record in _records(tmp_path / "run"):
        tp = record["throughput"]
        low, high = tp["seconds_per_image_ci"]
        assert 3 <= tp["timing_repeats"] <= 6 and low <= tp["seconds_per_image"] <= high
        assert tp["seconds_per_image_ci_level"] == pytest.approx(1 - 2 / 2 ** tp["timing_repeats"], abs=1e-4)
        assert tp["images_per_s"] == pytest.approx(1 / tp["seconds_per_image"])
        assert tp["bulk_seconds_per_image"] > 0 and tp["timed_batch_images"] == 4
        assert set(tp["load"]) == {"other_cores", "loadavg_1m", "contended"}
    lines = [x for x in captured.err.splitlines() if x.strip() and "interleaved rounds" not in x]
    assert len(lines) == 4, "one line per cell, no progress bar in a log"
    assert all(" | shapes-mini | seed 0 | " in x and "ms/img [" in x for x in lines), lines


def test_a_run_beside_a_cpu_bound_process_marks_and_counts_its_cells(tmp_path, capsys):
    suite = write_suite(tmp_path, SUITE)
    with cpu_burner():
        assert main(["run", str(suite), "--out", str(tmp_path / "run"), "--quiet", "--no-report"]) == 0
    out = capsys.readouterr().out
    marked = [r for r in _records(tmp_path / "run") if r["throughput"]["contended"]]
    assert marked and f"{len(marked)} cells timed under load" in out
    assert main(["report", str(tmp_path / "run")]) == 0
    table = (tmp_path / "run" / "tables" / "throughput.md").read_text()
    assert table.count("†") == len(marked), "each cell timed under load is marked"
    assert "† timed while other processes used the CPU" in (tmp_path / "run" / "report.md").read_text()


@pytest.mark.parametrize(
    ("timing", "expected"),
    [
        ("{min_repeats: 0}", "timing.min_repeats"),
        ("{precision: -1}", "timing.precision"),
        ("3", "timing: expected"),
        ("{min_repeats: 3, level: 0.95}", "timing.level 0.95 needs min_repeats >= 6"),
        ("{level: 1.5}", "timing.level"),
        ("{max_seconds: -2}", "timing.max_seconds"),
        ("{top_up: -0.5}", "timing.top_up"),
    ],
)
def test_bad_timing_settings_are_one_line(tmp_path, capsys, timing, expected):
    text = SUITE.replace(SUITE.splitlines()[-1], f"timing: {timing}")
    suite = write_suite(tmp_path, text)
    assert main(["validate", str(suite)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err


def test_an_interrupt_before_any_cell_leaves_no_half_written_results(tmp_path, monkeypatch, capsys):
    from lcm_bench.run import executor

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(executor.ChunkJob, "step", interrupted)
    suite = write_suite(tmp_path, SUITE)
    assert main(["run", str(suite), "--out", str(tmp_path / "run"), "--quiet"]) == 130
    assert not (tmp_path / "run" / "results.csv").exists()


def test_timing_under_load_stops_at_the_minimum_repeats():
    """Repeats taken while another process spins a core are marked contended and stop at ``min_repeats``: more of
    them under load would buy no precision (issue 37: a run under load costs no more than it must)."""
    from lcm_bench.sampling.timers import TimedJob, policy_met, time_interleaved

    never_precise = TimingPolicy(min_repeats=3, max_repeats=10, precision=0.0, max_seconds=60)
    assert not policy_met(never_precise, [1.0, 2.0, 3.0], 0.1)
    assert policy_met(never_precise, [1.0, 2.0, 3.0], 0.1, contended=True)
    assert not policy_met(never_precise, [1.0, 2.0], 0.1, contended=True), "never below the minimum"
    with cpu_burner():
        timing = time_interleaved({"job": TimedJob(lambda timer: time.sleep(0.2), 1)}, never_precise, "cpu")["job"]
    assert timing["load"]["contended"] and len(timing["seconds_per_image"]) == 3


ROUNDS = """
version: 1
methods:
  - {{name: ddim, model: tiny-sd, sampler: ddim, guidance_scale: 3.0}}
  - {{name: dpm, model: tiny-sd, sampler: dpmsolver++, guidance_scale: 3.0}}
steps: [1]
prompts: [shapes-mini]
num_images: {n}
batch_size: 4
timing: {{min_repeats: {low}, max_repeats: {low}, precision: 0.0, top_up: 1}}
"""


def _counting_batches(monkeypatch) -> list[tuple[str, int]]:
    from lcm_bench.run import executor

    calls, generate = [], executor.CellSampler.generate

    def counted(self, batch, settings, *args, **kwargs):
        calls.append((self.cell.method_label, len(batch)))
        return generate(self, batch, settings, *args, **kwargs)

    monkeypatch.setattr(executor.CellSampler, "generate", counted)
    return calls


def test_the_batches_that_make_the_images_are_the_repeats_taken_in_turns(tmp_path, monkeypatch):
    """Six whole batches per cell (and a short last one, left out of the timing): no batch is generated twice, the
    record's repeats are those batches, and the two cells of one pipeline take turns batch by batch."""
    calls = _counting_batches(monkeypatch)
    suite = write_suite(tmp_path, ROUNDS.format(n=26, low=6))
    assert main(["run", str(suite), "--out", str(tmp_path / "run"), "--quiet", "--no-report"]) == 0
    batches = [(m, 4) for m in ("ddim", "dpm") for _ in range(6)] + [("ddim", 2), ("dpm", 2)]
    assert len(calls) == 15 and sorted(calls[1:]) == sorted(batches), "one warm-up for the shape, then each batch once"
    for record in _records(tmp_path / "run"):
        tp = record["throughput"]
        assert tp["timing_repeats"] == tp["timing_repeats_from_generation"] == 6 and tp["timed_batch_images"] == 4
    repeats = []
    for chunk_record in (tmp_path / "run" / "chunks").glob("*/*.json"):
        data = json.loads(chunk_record.read_text())
        repeats += [(r["started"], data["cell_id"]) for r in data["repeats"]]
    order = [cell for _, cell in sorted(repeats)]
    turns = all(a != b for a, b in zip(order[:-1], order[1:], strict=True))
    assert len(order) == 14 and turns, "batch by batch, in turns"


def test_a_cell_with_too_few_batches_is_timed_again_only_for_the_shortfall(tmp_path, monkeypatch):
    calls = _counting_batches(monkeypatch)
    suite = write_suite(tmp_path, ROUNDS.format(n=8, low=3))
    assert main(["run", str(suite), "--out", str(tmp_path / "run"), "--quiet", "--no-report"]) == 0
    expected = [(m, 4) for m in ("ddim", "dpm") for _ in range(3)]
    assert len(calls) == 7 and sorted(calls[1:]) == sorted(expected), "one warm-up, 2 batches and 1 more per cell"
    for record in _records(tmp_path / "run"):
        tp = record["throughput"]
        assert tp["timing_repeats"] == 3 and tp["timing_repeats_from_generation"] == 2


def test_interleaved_rounds_count_the_prior_repeats():
    from lcm_bench.sampling.timers import timed_repeat

    policy = TimingPolicy(min_repeats=6, max_repeats=6, precision=0.0, max_seconds=60)
    job = TimedJob(lambda timer: time.sleep(0.001), 2)
    prior = {"a": [timed_repeat(job.run, 2, "cpu")[1] for _ in range(4)], "b": []}
    timings = time_interleaved({"a": job, "b": job}, policy, "cpu", prior)
    assert [len(t["seconds_per_image"]) for t in timings.values()] == [6, 6]
    assert timings["a"]["from_generation"] == 4 and timings["b"]["from_generation"] == 0
