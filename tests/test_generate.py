"""The sampling loop: NFE accounting, parity with diffusers' own pipelines, batch-size invariance."""

import hashlib

import numpy as np
import pytest
import torch
from conftest import diffusers_reference

from lcm_bench.core.spec import Hardware, ModelSpec, SamplerSpec
from lcm_bench.models.loading import load_pipeline
from lcm_bench.models.resolve import resolve_model
from lcm_bench.sampling.loop import GenerationSettings, Samples, generate_batch, initial_latents, sample_seed
from lcm_bench.sampling.samplers import SAMPLERS, build_scheduler
from lcm_bench.sampling.timers import PhaseTimer

CPU = Hardware("cpu-fp32", "cpu", "fp32")
PROMPTS = [f"a small red circle number {i}" for i in range(16)]
SEEDS = [sample_seed(0, i) for i in range(16)]


@pytest.fixture(scope="module")
def tiny():
    resolved = resolve_model(ModelSpec("tiny-sd", "tiny-sd"))
    return resolved, load_pipeline(resolved, CPU)


@pytest.fixture(scope="module")
def tiny_lcm():
    resolved = resolve_model(ModelSpec("tiny-lcm", "tiny-lcm"))
    return resolved, load_pipeline(resolved, CPU)


def run(model, sampler, steps, scale, mode, n=4, prompts=PROMPTS, seeds=SEEDS):
    resolved, pipe = model
    settings = GenerationSettings(steps, scale, mode, 32, 32, "", "cpu", torch.float32, sampler=SamplerSpec(sampler))
    return generate_batch(pipe, resolved.family, settings, Samples(prompts[:n], seeds[:n]), PhaseTimer("cpu"))[:3]


@pytest.mark.parametrize(
    "sampler, steps, scale, mode, nfe",
    [
        ("ddim", 4, 7.5, "cfg", 8),
        ("ddim", 4, 1.0, "cfg", 4),
        ("dpmsolver++", 8, 9.0, "cfg", 16),
        ("dpmsolver", 2, 9.0, "cfg", 4),
        ("euler", 1, 9.0, "cfg", 2),
        ("unipc", 4, 9.0, "cfg", 8),
        ("tcd", 4, 9.0, "cfg", 8),
        ("lcm", 4, 1.5, "cfg", 8),
    ],
)
def test_nfe_counts_classifier_free_guidance(tiny, sampler, steps, scale, mode, nfe):
    images, evaluations, schedule = run(tiny, sampler, steps, scale, mode)
    assert evaluations / 4 == nfe
    assert len(schedule["timesteps"]) == steps
    assert images.shape == (4, 32, 32, 3) and images.dtype == np.uint8


@pytest.mark.parametrize("steps", [1, 2, 4, 8])
def test_nfe_counts_guidance_embedding(tiny_lcm, steps):
    _, evaluations, schedule = run(tiny_lcm, "lcm", steps, 9.0, "embedding")
    assert evaluations / 4 == steps
    assert schedule["timestep_spacing"] == "lcm-skipping"
    assert schedule["original_inference_steps"] == 50


def test_trailing_spacing_starts_near_t_max(tiny):
    *_, trailing = run(tiny, "ddim", 1, 7.5, "cfg", n=1)
    assert trailing["timesteps"] == [999]
    assert trailing["timestep_spacing"] == "trailing"


def _reference_images(pipeline_cls, pipe, sampler, steps, scale, n=4):
    return diffusers_reference(pipeline_cls, pipe, sampler, steps, scale, PROMPTS[:n], SEEDS[:n])


@pytest.mark.parametrize("sampler", ["ddim", "dpmsolver++", "euler", "unipc"])
def test_parity_with_stable_diffusion_pipeline(tiny, sampler):
    from diffusers import StableDiffusionPipeline

    images, *_ = run(tiny, sampler, 4, 7.5, "cfg")
    np.testing.assert_array_equal(images, _reference_images(StableDiffusionPipeline, tiny[1], sampler, 4, 7.5))


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
@pytest.mark.parametrize(
    "name, pipeline", [("tiny-sd", "StableDiffusionPipeline"), ("tiny-sdxl", "StableDiffusionXLPipeline")]
)
def test_ancestral_euler_at_the_turbo_settings_equals_the_pipeline(name, pipeline, dtype):
    """SD-Turbo's and SDXL-Turbo's settings (ancestral Euler, trailing spacing, guidance 0) at 1, 2 and 4 steps:
    lcm-bench's images are the pipeline's with the same scheduler, the injected noise drawn from each sample's own
    generator as the pipeline draws it (in bf16 within the one level of the pipeline's half-precision
    postprocessing, docs/models.md). One trailing step ends at sigma 0 and adds no noise (Euler's image); more steps
    add it."""
    import diffusers

    resolved = resolve_model(ModelSpec(name, name))
    pipe = load_pipeline(resolved, Hardware(f"cpu-{dtype}", "cpu", dtype))
    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    samples = Samples(PROMPTS[:4], SEEDS[:4])
    for steps in (1, 2, 4):
        images = {}
        for sampler in ("euler-ancestral", "euler"):
            settings = GenerationSettings(
                steps, 0.0, "cfg", 32, 32, "", "cpu", torch_dtype, sampler=SamplerSpec(sampler)
            )
            batch = generate_batch(pipe, resolved.family, settings, samples, PhaseTimer("cpu"))
            images[sampler] = batch.images
        assert batch.evaluations == 4 * steps, "guidance 0 is one pass per step"
        reference = diffusers_reference(getattr(diffusers, pipeline), pipe, "euler-ancestral", steps, 0.0, *samples)
        level = np.abs(reference.astype(int) - images["euler-ancestral"]).max()
        assert level <= (0 if dtype == "fp32" else 1), f"{steps} steps: {level} levels from the pipeline"
        assert np.array_equal(images["euler-ancestral"], images["euler"]) == (steps == 1)


@pytest.mark.parametrize("sampler", ["ddim", "lcm"])
def test_parity_with_stable_diffusion_xl_pipeline(sampler):
    from diffusers import StableDiffusionXLPipeline

    resolved = resolve_model(ModelSpec("tiny-sdxl", "tiny-sdxl"))
    model = (resolved, load_pipeline(resolved, CPU))
    images, evaluations, _ = run(model, sampler, 4, 7.5, "cfg")
    assert evaluations / 4 == 8
    np.testing.assert_array_equal(images, _reference_images(StableDiffusionXLPipeline, model[1], sampler, 4, 7.5))


@pytest.mark.parametrize("steps", [1, 4])
def test_parity_with_latent_consistency_pipeline(tiny_lcm, steps):
    from diffusers import LatentConsistencyModelPipeline

    images, *_ = run(tiny_lcm, "lcm", steps, 8.0, "embedding")
    reference = _reference_images(LatentConsistencyModelPipeline, tiny_lcm[1], "lcm", steps, 8.0)
    np.testing.assert_array_equal(images, reference)


def test_guidance_changes_images(tiny):
    a, *_ = run(tiny, "ddim", 2, 1.0, "cfg")
    b, *_ = run(tiny, "ddim", 2, 9.0, "cfg")
    assert np.abs(a.astype(int) - b).mean() > 1


def test_sample_seeds_are_independent_of_batching():
    seeds = {(s, i): sample_seed(s, i) for s in range(50) for i in range(200)}
    assert len(set(seeds.values())) == len(seeds), "no two (cell seed, index) pairs share a sample seed"
    restated = {k: int(hashlib.sha256(f"lcm-bench/{k[0]}/{k[1]}".encode()).hexdigest()[:15], 16) for k in seeds}
    assert seeds == restated, "a sample's seed is a hash of (cell seed, index) alone, never of its batch"
    assert all(0 <= v < 2**60 for v in seeds.values()), "a valid torch manual_seed"
    whole = initial_latents([torch.Generator().manual_seed(s) for s in SEEDS], (4, 16, 16))
    parts = [initial_latents([torch.Generator().manual_seed(s) for s in SEEDS[i : i + 4]], (4, 16, 16)) for i in (0, 4)]
    assert torch.equal(whole[:8], torch.cat(parts))


@pytest.mark.parametrize(
    "sampler, model", [("lcm", "tiny_lcm"), ("tcd", "tiny"), ("euler-ancestral", "tiny"), ("ddim", "tiny")]
)
def test_batch_size_does_not_change_images(sampler, model, request):
    """Batches of 1, 4 and 16 give the same images. Inputs and injected noise are bitwise identical by
    construction; CPU kernels are not bitwise batch-invariant (last-ulp float differences), so a pixel may
    round to a neighbouring uint8 value: at most 1 level, on a tiny fraction of pixels."""
    model = request.getfixturevalue(model)
    mode = "embedding" if sampler == "lcm" else "cfg"
    batched = {
        bs: np.concatenate(
            [run(model, sampler, 4, 8.0, mode, n=bs, prompts=PROMPTS[i:], seeds=SEEDS[i:])[0] for i in range(0, 16, bs)]
        )
        for bs in (1, 4, 16)
    }
    for bs in (1, 4):
        diff = np.abs(batched[bs].astype(int) - batched[16])
        assert diff.max() <= 1
        assert (diff == 0).mean() > 0.999
    other_seeds = run(model, sampler, 4, 8.0, mode, n=4, seeds=SEEDS[4:])[0]
    assert np.abs(other_seeds.astype(int) - batched[16][:4]).mean() > 1


def test_every_sampler_builds_from_a_config_of_what_it_samples_and_walks_its_evaluations(tiny):
    """A noise sampler from SD's scheduler config, a flow sampler from SD3's, sCM from SANA-Sprint's: each walks
    as many network evaluations as it says it takes (Heun 2n - 1)."""
    from lcm_bench.models.catalogue import tiny_path

    configs = {
        "noise": tiny[1].scheduler.config,
        "flow": _scheduler_config(tiny_path("tiny-sd3")),
        "trigflow": _scheduler_config(tiny_path("tiny-sana-sprint")),
    }
    for name in SAMPLERS:
        sampler = SAMPLERS.get(name)
        objective = sampler.objectives[0]
        scheduler, _, _ = build_scheduler(SamplerSpec(name), configs[objective], objective)
        scheduler.set_timesteps(4, **sampler.walk.options(4))
        assert len(list(sampler.walk.points(scheduler))) == sampler.evaluations(4), name


def _scheduler_config(folder):
    import json

    return json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
