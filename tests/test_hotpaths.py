"""Hot-path benchmarks (pytest-benchmark, marked slow) with a saved baseline: one denoising step per sampler on
the embedded models (batch 64, the quickstart's shape) and feature extraction for the embedded metrics.

Run and compare against the committed baseline (fails when a mean is 60 % slower; nothing here is a timed assert):
``pytest -m slow tests/test_hotpaths.py --benchmark-storage=benchmarks --benchmark-compare
--benchmark-compare-fail=mean:60%``; refresh the baseline with ``--benchmark-save=hotpaths`` on the CI machine
class."""

import numpy as np
import pytest
import torch

from lcm_bench.core.spec import Hardware, ModelSpec, SamplerSpec
from lcm_bench.models.families import unet_forward
from lcm_bench.models.loading import load_pipeline
from lcm_bench.models.resolve import resolve_model
from lcm_bench.sampling.guidance import GUIDANCE, CountingNetwork, TextStates
from lcm_bench.sampling.loop import GenerationSettings, encode_prompts
from lcm_bench.sampling.samplers import build_scheduler

pytestmark = pytest.mark.slow
CPU = Hardware("cpu-fp32", "cpu", "fp32")
BATCH, STEPS, SCALE = 64, 4, 3.0


@pytest.fixture(scope="module")
def pipelines():
    torch.manual_seed(0)
    loaded = {}
    for name in ("shapes-teacher", "shapes-lcm"):
        resolved = resolve_model(ModelSpec(name, name))
        loaded[name] = load_pipeline(resolved, CPU)
    return loaded


def _conditioning(pipe):
    settings = GenerationSettings(STEPS, SCALE, "cfg", 32, 32, "", "cpu", torch.float32, sampler=SamplerSpec("ddim"))
    with torch.inference_mode():
        return encode_prompts(pipe, "sd", ["a large red circle in the center"] * BATCH, True, settings)


@pytest.mark.parametrize("sampler", ["ddim", "dpmsolver", "dpmsolver++", "euler", "lcm"])
def test_bench_one_sampler_step(benchmark, pipelines, sampler):
    pipe = pipelines["shapes-lcm" if sampler == "lcm" else "shapes-teacher"]
    cond, uncond = _conditioning(pipe)
    net = CountingNetwork(pipe.unet, unet_forward)
    kind = "embedding" if sampler == "lcm" else "cfg"
    denoise = GUIDANCE.get(kind).denoiser(net, TextStates(cond, uncond, BATCH), SCALE, torch.float32, "cpu")
    shape = (BATCH, pipe.unet.config.in_channels, 4, 4)

    def fresh():
        scheduler, step_kwargs, takes_generator = build_scheduler(SamplerSpec(sampler), pipe.scheduler.config)
        if takes_generator:
            step_kwargs["generator"] = torch.Generator().manual_seed(0)
        scheduler.set_timesteps(STEPS)
        latents = torch.randn(shape, generator=torch.Generator().manual_seed(0)) * scheduler.init_noise_sigma
        return (scheduler, step_kwargs, latents), {}

    def step(scheduler, step_kwargs, latents):
        t = scheduler.timesteps[0]
        with torch.inference_mode():
            model_input = scheduler.scale_model_input(latents, t)
            return scheduler.step(denoise(model_input, t), t, latents, **step_kwargs).prev_sample

    benchmark.group = "sampler-step"
    out = benchmark.pedantic(step, setup=fresh, rounds=40, warmup_rounds=3)
    assert out.shape == shape and torch.isfinite(out).all()


@pytest.mark.parametrize(
    "extractor,options",
    [("shapes-judge", {}), ("clip", {"model": "lcm-bench-shapes-clip", "pretrained": "embedded"})],
)
def test_bench_feature_extraction(benchmark, extractor, options):
    from lcm_bench.metrics.extractors import build_extractor

    features = build_extractor(extractor, options)
    images = np.random.default_rng(0).integers(0, 256, size=(256, 32, 32, 3), dtype=np.uint8)
    benchmark.group = "features"
    out = benchmark.pedantic(features.features, args=(images,), rounds=10, warmup_rounds=1)
    assert out.shape == (256, features.dim) and np.isfinite(out).all()
