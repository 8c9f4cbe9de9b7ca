"""Benchmarks (pytest-benchmark, marked slow): the harness's sampling loop against a bare diffusers pipeline.

Run: ``pytest -m slow tests/test_benchmarks.py --benchmark-columns=mean,stddev,rounds``. The ratio of the two
means is the harness overhead (target <= 1.05x); nothing here is a timed assert.
"""

import pytest
import torch
from conftest import diffusers_reference

from lcm_bench.core.spec import Hardware, ModelSpec, SamplerSpec
from lcm_bench.models.loading import load_pipeline
from lcm_bench.models.resolve import resolve_model
from lcm_bench.sampling.loop import GenerationSettings, generate_batch, sample_seed
from lcm_bench.sampling.timers import PhaseTimer

pytestmark = pytest.mark.slow
CPU = Hardware("cpu-fp32", "cpu", "fp32")
BATCH, STEPS, SCALE = 8, 8, 7.5
PROMPTS = [f"a large blue square number {i}" for i in range(BATCH)]
SEEDS = [sample_seed(0, i) for i in range(BATCH)]


@pytest.fixture(scope="module")
def tiny():
    resolved = resolve_model(ModelSpec("tiny-sd", "tiny-sd"))
    return resolved, load_pipeline(resolved, CPU)


@pytest.mark.parametrize("sampler", ["ddim", "dpmsolver++"])
def test_bench_harness_loop(benchmark, tiny, sampler):
    resolved, pipe = tiny
    settings = GenerationSettings(STEPS, SCALE, "cfg", 32, 32, "", "cpu", torch.float32)
    benchmark.group = f"overhead-{sampler}"
    images, *_ = benchmark.pedantic(
        generate_batch,
        args=(pipe, resolved.family, SamplerSpec(sampler), settings, PROMPTS, SEEDS, PhaseTimer("cpu")),
        rounds=30,
        warmup_rounds=3,
    )
    assert images.shape == (BATCH, 32, 32, 3)


@pytest.mark.parametrize("sampler", ["ddim", "dpmsolver++"])
def test_bench_bare_diffusers_pipeline(benchmark, tiny, sampler):
    from diffusers import StableDiffusionPipeline

    _, pipe = tiny
    benchmark.group = f"overhead-{sampler}"

    def bare():
        return diffusers_reference(StableDiffusionPipeline, pipe, sampler, STEPS, SCALE, PROMPTS, SEEDS)

    images = benchmark.pedantic(bare, rounds=30, warmup_rounds=3)
    assert images.shape == (BATCH, 32, 32, 3)
