"""Chunks, shards and merge: chunks are whole batches fixed by the spec, shards split them once, a killed cell resumes
at its first unfinished chunk, and any spread of the work gives the same images and metric values."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import kill_when, needs_judge, write_suite
from hypothesis import given, settings
from hypothesis import strategies as st

from lcm_bench.cli.main import main
from lcm_bench.core.errors import UserError
from lcm_bench.run.chunks import busy_seconds
from lcm_bench.run.sharding import Shard, assign, cell_chunks, parse_shard, work_order
from lcm_bench.suite.load import load_suite

SHARDED = """
version: 1
name: sharded
models: [tiny-sd]
samplers: [ddim, euler]
steps: [1, 2]
guidance_scales: [2.0]
prompts: [shapes-mini]
num_images: {n}
batch_size: 2
chunk_size: {chunk}
metrics:
  - {{name: fd, extractor: shapes-judge, subsets: 2}}
  - {{name: attribute_accuracy}}
"""
CASES = {"chunks": {"n": 10, "chunk": 4}, "one-chunk": {"n": 3, "chunk": 8}}


def files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted((out / "images").rglob("*.png"))}


def metric_values(out: Path) -> dict[tuple[str, str], float]:
    values = {}
    for path in (out / "cells").glob("*.json"):
        record = json.loads(path.read_text())
        values.update({(record["cell_id"], k): m["value"] for k, m in record["metrics"].items()})
    return values


def chunk_records(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "chunks").rglob("*.json"))]


def test_units_are_whole_batches_fixed_by_the_spec(tmp_path):
    suite = load_suite(write_suite(tmp_path, SHARDED.format(n=10, chunk=5)))
    chunks = cell_chunks(suite.cells[0])
    assert [(u.start, u.stop) for u in chunks] == [(0, 4), (4, 8), (8, 10)], "chunks round down to whole batches"
    assert [b for u in chunks for b in u.batches(2)] == [range(i, min(i + 2, 10)) for i in range(0, 10, 2)]
    small = load_suite(write_suite(tmp_path, SHARDED.format(n=3, chunk=1), "small.yaml")).cells[0]
    assert [(u.start, u.stop) for u in cell_chunks(small)] == [(0, 2), (2, 3)], "a chunk holds at least one batch"


METHODS = """
version: 1
name: many
methods:
  - {{name: a, model: tiny-sd, sampler: ddim, guidance_scale: 7.5}}
  - {{name: b, model: tiny-lcm, sampler: lcm, guidance_scale: 1.0}}
  - {{name: c, model: tiny-sd, sampler: euler, guidance_scale: 1.0}}
steps: [1, 2, 4, 8]
seeds: [0, 1]
prompts: [shapes-mini]
num_images: {n}
batch_size: {batch}
chunk_size: {chunk}
"""


@settings(max_examples=25, deadline=None, derandomize=True)
@given(n=st.integers(1, 40), batch=st.integers(1, 8), chunk=st.integers(1, 50))
def test_every_unit_is_assigned_exactly_once_in_work_order(tmp_path_factory, n, batch, chunk):
    folder = tmp_path_factory.mktemp("plan")
    cells = load_suite(write_suite(folder, METHODS.format(n=n, batch=batch, chunk=chunk))).cells
    everything = [u for c in work_order(cells) for u in cell_chunks(c)]
    for count in (1, 2, 3, 7):
        shares = assign(cells, count)
        assert len(shares) == count
        assert [u for share in shares for u in share] == everything, "shards are contiguous runs of the work order"
    two = assign(cells, 2)
    costs = {c.cell_id: c.steps * (2 if c.guidance_scale > 1 else 1) for c in cells}
    loads = [sum(u.images * costs[u.cell_id] for u in share) for share in two]
    biggest = max(u.images * costs[u.cell_id] for u in everything)
    assert abs(loads[0] - loads[1]) <= biggest, f"unbalanced shares {loads}"


def test_shard_flags_and_job_arrays():
    assert parse_shard("1/4") == Shard(1, 4)
    assert parse_shard("auto", {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "5", "SLURM_ARRAY_TASK_COUNT": "3"})
    assert parse_shard(
        "auto", {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "5", "SLURM_ARRAY_TASK_COUNT": "3"}
    ) == Shard(2, 3)
    assert parse_shard("auto", {"JOB_COMPLETION_INDEX": "0", "LCM_BENCH_SHARDS": "2"}) == Shard(0, 2)
    for text, env, message in (
        ("4/4", {}, "index must be in 0..N-1"),
        ("1-4", {}, "expected I/N"),
        ("auto", {}, "no job array found"),
        ("auto", {"JOB_COMPLETION_INDEX": "1"}, "LCM_BENCH_SHARDS"),
        ("auto", {"SLURM_ARRAY_TASK_ID": "9", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "3"}, "outside"),
    ):
        with pytest.raises(UserError, match=message):
            parse_shard(text, env)


def test_bad_shard_flag_is_one_line_and_exit_2(tmp_path, capsys):
    suite = write_suite(tmp_path, SHARDED.format(n=2, chunk=2))
    assert main(["run", str(suite), "--out", str(tmp_path / "r"), "--shard", "2/2"]) == 2
    assert capsys.readouterr().err.strip() == "lcm-bench: error: --shard: index must be in 0..N-1 and N >= 1, got '2/2'"
    assert main(["merge", str(tmp_path / "nothing")]) == 2


def test_busy_seconds_is_the_union_of_intervals():
    assert busy_seconds([(0, 2), (1, 3), (10, 11)]) == 4
    assert busy_seconds([(5, 6), (0, 10)]) == 10
    assert busy_seconds([]) == 0


@pytest.fixture(scope="module", params=list(CASES))
def one_process(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    suite = write_suite(folder, SHARDED.format(**CASES[request.param]))
    out = folder / "one"
    assert main(["run", str(suite), "--out", str(out), "--quiet", "--no-report"]) == 0
    return request.param, out


@needs_judge
@pytest.mark.parametrize("count", [2, 3])
def test_shards_then_merge_equal_one_process(one_process, count, tmp_path, capsys):
    case, reference = one_process
    suite = write_suite(tmp_path, SHARDED.format(**CASES[case]))
    out = tmp_path / "sharded"
    assert main(["run", str(suite), "--out", str(out), "--quiet", "--shard", f"0/{count}"]) == 0
    capsys.readouterr()
    assert main(["merge", str(out), "--quiet"]) == 1, "merge must refuse while chunks are missing"
    assert "still missing" in capsys.readouterr().out
    for index in range(1, count):
        assert main(["run", str(suite), "--out", str(out), "--quiet", "--shard", f"{index}/{count}"]) == 0
    assert main(["merge", str(out), "--quiet"]) == 0
    assert files(out) == files(reference) and files(reference)
    assert metric_values(out) == metric_values(reference)
    assert sum(f["nfe"] for f in chunk_records(out)) == sum(f["nfe"] for f in chunk_records(reference))
    assert len(chunk_records(out)) == len(chunk_records(reference)), "a chunk was generated twice or not at all"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["throughput"]["images"] == 4 * CASES[case]["n"] and manifest["throughput"]["images_per_s"] > 0
    assert f"generation wall clock: {4 * CASES[case]['n']} images in" in (out / "report.md").read_text()


def test_merge_refuses_chunks_from_different_library_versions(tmp_path, capsys):
    suite = write_suite(tmp_path, SHARDED.format(**CASES["chunks"]))
    out = tmp_path / "mixed"
    assert main(["run", str(suite), "--out", str(out), "--quiet", "--shard", "0/1"]) == 0
    for path in (out / "cells").glob("*.json"):
        path.unlink()
    first = sorted((out / "chunks").rglob("*.json"))[0]
    chunk_record = json.loads(first.read_text())
    chunk_record["provenance"]["versions"]["torch"] = "0.0.1"
    first.write_text(json.dumps(chunk_record))
    capsys.readouterr()
    assert main(["merge", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "different library versions (torch 0.0.1 / " in err and len(err.strip().splitlines()) == 1


KILLED = """
version: 1
name: chunked
models: [tiny-sd]
samplers: [ddim]
steps: [4]
guidance_scales: [7.5]
prompts: [shapes-mini]
num_images: 40
batch_size: 2
chunk_size: 4
"""


def test_sigkill_mid_cell_resumes_at_the_first_unfinished_chunk(tmp_path):
    suite = write_suite(tmp_path, KILLED)
    out = tmp_path / "run"
    command = [sys.executable, "-m", "lcm_bench", "run", str(suite), "--out", str(out), "--quiet", "--no-report"]
    kill_when(command, out / "chunks", "*.json", 3)
    assert not list((out / "cells").glob("*.json")), "the cell finished before the kill; make it longer"
    survivors = {p.name: p.read_bytes() for p in (out / "chunks").rglob("*.json")}
    assert 3 <= len(survivors) < 10
    resumed = subprocess.run(command, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    for path in (out / "chunks").rglob("*.json"):
        if path.name in survivors:
            assert path.read_bytes() == survivors[path.name], "a finished chunk was generated again"
    new = [
        f
        for f in chunk_records(out)
        if f["process"]["pid"] != json.loads(next(iter(survivors.values())))["process"]["pid"]
    ]
    assert len(new) == 10 - len(survivors)
    assert sum(f["nfe"] for f in new) == (40 - 4 * len(survivors)) * 8, "NFE of the unfinished chunks only"
    record = json.loads(next((out / "cells").glob("*.json")).read_text())
    assert record["throughput"]["nfe_per_image"] == 8 and len(record["chunks"]) == 10

    whole = tmp_path / "whole"
    assert main(["run", str(suite), "--out", str(whole), "--quiet", "--no-report"]) == 0
    assert files(out) == files(whole)


def test_two_processes_on_one_share_never_generate_a_chunk_twice(tmp_path):
    suite = write_suite(tmp_path, KILLED.replace("num_images: 40", "num_images: 24"))
    out = tmp_path / "run"
    command = [sys.executable, "-m", "lcm_bench", "run", str(suite), "--out", str(out), "-q", "--shard", "0/1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LCM_BENCH_THREADS": "1"}
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)]
    procs.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    generated = [int(o.split("chunks generated")[0].split()[-1]) for o, _ in outputs]
    assert sum(generated) == 6, f"chunks generated per process: {generated}"
    assert len(chunk_records(out)) == 6 and len(list((out / "cells").glob("*.json"))) == 1


def test_a_kill_between_the_grid_and_the_record_resumes(tmp_path):
    """Killed after a grid-only cell's grid was written and its images removed, before its record: the rerun
    keeps the grid and writes the record, generating nothing."""
    text = SHARDED.format(n=4, chunk=8).split("metrics:")[0] + "save_images: grid\n"
    suite, out = write_suite(tmp_path, text), tmp_path / "run"
    assert main(["run", str(suite), "--out", str(out), "--quiet", "--no-report"]) == 0
    record = next((out / "cells").glob("*.json"))
    grid = out / "images" / f"{record.stem}.grid.png"
    before = (record.read_text(), grid.read_bytes())
    assert not (out / "images" / record.stem).exists(), "only the grid is kept"
    record.unlink()
    assert main(["run", str(suite), "--out", str(out), "--quiet", "--no-report"]) == 0
    assert grid.read_bytes() == before[1]
    assert json.loads(record.read_text())["throughput"] == json.loads(before[0])["throughput"]
