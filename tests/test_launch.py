"""torchrun and accelerate on the CPU (gloo, OMP_NUM_THREADS=1): two ranks, two emulated nodes and an elastic
restart after a rank dies all give the images and metric values of one process."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import needs_judge, write_suite
from test_chunks import chunk_records, files, metric_values

from lcm_bench.run.launcher import World, launched

pytestmark = [pytest.mark.resilience, needs_judge]

SUITE = """
version: 1
name: launched
models: [tiny-sd]
samplers: [ddim, euler]
steps: [1, 2]
guidance_scales: [2.0]
prompts: [shapes-mini]
num_images: 10
batch_size: 2
chunk_size: 4
metrics:
  - {name: fd, extractor: shapes-judge, subsets: 2}
  - {name: attribute_accuracy}
"""
BIN = Path(sys.executable).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "LCM_BENCH_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def tool(name: str) -> list[str]:
    return [str(BIN / name)] if (BIN / name).exists() else [sys.executable, "-m", "torch.distributed.run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(command: list[str], env=None, timeout: int = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, env=env or ENV, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    folder = tmp_path_factory.mktemp("launch")
    suite = write_suite(folder, SUITE)
    out = folder / "one"
    run([sys.executable, "-m", "lcm_bench", "run", str(suite), "--out", str(out), "-q", "--no-report"])
    return suite, out


def same_as(reference: Path, out: Path, ranks: int = 2) -> None:
    assert files(out) == files(reference) and files(reference)
    assert metric_values(out) == metric_values(reference)
    assert len(chunk_records(out)) == len(chunk_records(reference)) == 12
    assert {f["process"]["rank"] for f in chunk_records(out)} == set(range(ranks)), "a rank did no work"
    assert json.loads((out / "manifest.json").read_text())["throughput"]["processes"] >= ranks


def test_launcher_environment_is_read():
    assert launched({}) is None
    assert launched({"RANK": "0", "WORLD_SIZE": "1"}) is None, "a world of one is a plain process"
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    assert launched(env) == World(3, 4, 1, 2)
    world = World(1, 3, 1, 3)
    assert world.rotate(list(range(6))) == [2, 3, 4, 5, 0, 1] and world.mine(list(range(7))) == [1, 4]


def test_torchrun_two_ranks_equal_one_process(reference, tmp_path):
    suite, one = reference
    out = tmp_path / "torchrun"
    command = [*tool("torchrun"), "--standalone", "--nproc-per-node", "2", "-m", "lcm_bench", "run", str(suite)]
    done = run([*command, "--out", str(out), "-q"])
    assert "4 cells computed, 0 reused, 0 skipped, 8 metric values computed" in done.stdout, done.stdout
    same_as(one, out)


def test_accelerate_launch_equals_one_process(reference, tmp_path):
    suite, one = reference
    out = tmp_path / "accelerate"
    command = [str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1"]
    command += ["--main_process_port", str(free_port()), "-m", "lcm_bench", "run", str(suite), "--out", str(out), "-q"]
    run(command, env={**ENV, "HF_HOME": str(tmp_path / "hf"), "ACCELERATE_USE_CPU": "1"})
    same_as(one, out)


def test_two_emulated_nodes_equal_one_process(reference, tmp_path):
    suite, one = reference
    out = tmp_path / "nodes"
    port = free_port()
    procs = [
        subprocess.Popen(
            [
                *tool("torchrun"),
                "--nnodes",
                "2",
                "--nproc-per-node",
                "1",
                "--node-rank",
                str(node),
                "--rdzv-backend",
                "c10d",
                "--rdzv-endpoint",
                f"localhost:{port}",
                "--rdzv-id",
                "lcm-bench-test",
                "-m",
                "lcm_bench",
                "run",
                str(suite),
                "--out",
                str(out),
                "-q",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        for node in (0, 1)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outputs]
    same_as(one, out)


def test_dead_rank_restarts_without_redoing_finished_chunks(reference, tmp_path):
    """Rank 1 is killed as it finishes its second chunk; torchrun exits 0 only once the restarted group has run to
    the end. Whether any chunk is left for the restart depends on how far rank 0 got before torchrun stopped it (it
    may have taken every other chunk by then); the results are one process's either way, and the killed rank's two
    chunks are still those of the first attempt."""
    suite, one = reference
    out = tmp_path / "restart"
    command = [*tool("torchrun"), "--standalone", "--nproc-per-node", "2", "--max-restarts", "1"]
    run(
        [*command, "-m", "lcm_bench", "run", str(suite), "--out", str(out), "-q"],
        {**ENV, "LCM_BENCH_KILL_AT": "chunk:2:1"},
    )
    same_as(one, out)
    attempts = [(f["process"]["attempt"], f["process"]["rank"]) for f in chunk_records(out)]
    assert attempts.count((0, 1)) == 2, f"the killed rank's two finished chunks were redone: {attempts}"
    assert {attempt for attempt, _ in attempts} <= {0, 1}, attempts


def test_pinned_gpu_under_a_launcher_is_one_line(tmp_path):
    suite = write_suite(tmp_path, SUITE.replace("metrics:", "hardware: [cuda:1-fp16]\nmetrics:"))
    env = {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "2"}
    from lcm_bench.run.launcher import check_devices
    from lcm_bench.suite.load import load_suite

    with pytest.raises(Exception, match=r"pins cuda:1, but under a launcher each of the 2 ranks"):
        check_devices(load_suite(suite).cells, launched(env), pin=False)
    check_devices(load_suite(suite).cells, launched(env), pin=True)
