"""lcm-bench changes no process-wide state behind its caller's back: file modes follow the caller's umask, log
records of others pass, torch's and numpy's global random state survive training and KID, no path is fixed at
import, and metric weights are found where the caller says, never in /tmp."""

import logging
import os
import stat

import numpy as np
import torch

from lcm_bench.core import paths
from lcm_bench.core.io import write_atomic


def test_files_are_written_with_the_callers_umask(tmp_path):
    for mask, mode in ((0o022, 0o644), (0o077, 0o600)):
        previous = os.umask(mask)
        try:
            write_atomic(tmp_path / f"file-{mask:o}", b"x")
        finally:
            os.umask(previous)
        assert stat.S_IMODE((tmp_path / f"file-{mask:o}").stat().st_mode) == mode
    assert not list(tmp_path.glob(".*.tmp")), "no temporary file is left behind"


def test_loading_a_clip_leaves_logging_as_it_was(caplog):
    from lcm_bench.models.clip import load_clip

    load_clip("lcm-bench-tiny-clip", "random")
    assert logging.root.manager.disable == 0 and not logging.root.filters
    with caplog.at_level(logging.WARNING):
        logging.getLogger("somebody").warning("still heard")
    assert "still heard" in caplog.text


def test_training_restores_torchs_global_random_state(tmp_path):
    from lcm_bench.train.training_loop import TrainingPlan, train

    model = torch.nn.Linear(3, 1)
    before = torch.random.get_rng_state()

    def loss_fn(m, step, generator):
        return (m(torch.randn(4, 3, generator=generator)) ** 2).mean() + torch.rand(1).sum() * 0

    train(model, loss_fn, tmp_path / "ckpt.pt", TrainingPlan(3), progress=False)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_kid_leaves_numpys_global_random_state():
    from lcm_bench.metrics.distances import kernel_inception_distance

    np.random.seed(7)
    before = np.random.get_state()[1].copy()
    x, y = np.random.default_rng(0).normal(size=(2, 50, 8))
    kernel_inception_distance(x, y, num_subsets=5, max_subset_size=20)
    assert (np.random.get_state()[1] == before).all()


def test_paths_follow_the_environment_of_the_call(tmp_path, monkeypatch):
    monkeypatch.setenv("LCM_BENCH_CACHE", str(tmp_path / "one"))
    assert paths.cache_dir() == tmp_path / "one"
    monkeypatch.setenv("LCM_BENCH_CACHE", str(tmp_path / "two"))
    assert paths.cache_dir() == tmp_path / "two"


def test_weights_are_found_where_the_caller_says_and_never_in_tmp(tmp_path, monkeypatch):
    monkeypatch.delenv("LCM_BENCH_WEIGHTS", raising=False)
    name = "lcm-bench-test-weights.pt"
    stray = paths.Path("/tmp") / name
    stray.write_bytes(b"x")
    try:
        assert paths.find_weights(name) is None
        (tmp_path / name).write_bytes(b"y")
        assert paths.find_weights(name, [tmp_path]) == tmp_path / name
    finally:
        stray.unlink()


MKL_DYNAMIC = """
import ctypes, os, sys
import torch
from lcm_bench.core.hardware import pin_threads
lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))
if not hasattr(lib, "mkl_serv_get_dynamic"):
    print("no-mkl")
    sys.exit(0)
pin_threads(int(sys.argv[1]) if len(sys.argv) > 1 else None)
print(torch.get_num_threads(), lib.mkl_serv_get_dynamic())
"""


def test_pinning_torchs_own_thread_count_leaves_mkl_choosing_its_threads():
    """``torch.set_num_threads`` turns MKL's dynamic thread choice off, which slowed the embedded teacher's batches
    by about a tenth on 2 cores: a run that keeps torch's thread count leaves it on; asking another count sets it."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("LCM_BENCH_THREADS", "LOCAL_WORLD_SIZE")}
    kept = subprocess.run([sys.executable, "-c", MKL_DYNAMIC], env=env, capture_output=True, text=True, check=True)
    if kept.stdout.strip() == "no-mkl":
        import pytest

        pytest.skip("this torch build has no MKL")
    default = torch.get_num_threads()
    assert kept.stdout.split() == [str(default), "1"], kept.stdout
    other = str(default + 1)
    changed = subprocess.run([sys.executable, "-c", MKL_DYNAMIC, other], env=env, capture_output=True, text=True)
    assert changed.stdout.split() == [other, "0"], changed.stdout
