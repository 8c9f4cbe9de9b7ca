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
