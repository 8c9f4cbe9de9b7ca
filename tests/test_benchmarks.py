"""Benchmarks (pytest-benchmark, marked slow): the harness's sampling loop against a bare diffusers pipeline, both
timed in the same process, round after round in turns, so that the machine's drift weighs on both alike.

Target: the harness's median batch time at most 1.05x the bare pipeline's (checked as that ratio; the absolute
times go to pytest-benchmark's table). Run: ``pytest -m slow tests/test_benchmarks.py``.
"""

import time

import numpy as np
import pytest
import torch
from conftest import diffusers_reference

from lcm_bench.core.spec import Hardware, ModelSpec, SamplerSpec
from lcm_bench.models.loading import load_pipeline
from lcm_bench.models.resolve import resolve_model
from lcm_bench.sampling.loop import GenerationSettings, Samples, generate_batch, sample_seed
from lcm_bench.sampling.timers import PhaseTimer

pytestmark = pytest.mark.slow
CPU = Hardware("cpu-fp32", "cpu", "fp32")
BATCH, STEPS, SCALE, ROUNDS = 8, 8, 7.5, 20
PROMPTS = [f"a large blue square number {i}" for i in range(BATCH)]
SEEDS = [sample_seed(0, i) for i in range(BATCH)]
OVERHEAD_TARGET = 1.05


@pytest.fixture(scope="module")
def tiny():
    resolved = resolve_model(ModelSpec("tiny-sd", "tiny-sd"))
    return resolved, load_pipeline(resolved, CPU)


@pytest.mark.parametrize("sampler", ["ddim", "dpmsolver++"])
def test_bench_harness_loop_against_a_bare_pipeline(benchmark, tiny, sampler):
    from diffusers import StableDiffusionPipeline

    resolved, pipe = tiny
    spec = SamplerSpec(sampler)
    settings = GenerationSettings(STEPS, SCALE, "cfg", 32, 32, "", "cpu", torch.float32, sampler=spec)
    seconds = {"harness": [], "bare": []}

    def harness():
        return generate_batch(pipe, resolved.family, settings, Samples(PROMPTS, SEEDS), PhaseTimer("cpu"))[0]

    def bare():
        return diffusers_reference(StableDiffusionPipeline, pipe, sampler, STEPS, SCALE, PROMPTS, SEEDS)

    def one_round():
        for name, run in (("harness", harness), ("bare", bare)):
            start = time.perf_counter()
            images = run()
            seconds[name].append(time.perf_counter() - start)
        return images

    benchmark.group = f"overhead-{sampler}"
    images = benchmark.pedantic(one_round, rounds=ROUNDS, warmup_rounds=3)
    ratio = float(np.median(seconds["harness"][3:]) / np.median(seconds["bare"][3:]))
    benchmark.extra_info.update({"harness_over_bare": ratio, "target": OVERHEAD_TARGET})
    assert images.shape == (BATCH, 32, 32, 3)
    assert ratio <= OVERHEAD_TARGET, f"harness / bare = {ratio:.3f} over {OVERHEAD_TARGET}"
