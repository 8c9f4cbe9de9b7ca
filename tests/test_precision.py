"""The real path in every precision: each family's tiny pipeline through lcm-bench in fp32, bf16 and fp16, against
the family's own diffusers pipeline called as a user calls it (its folder's own scheduler, square and non-square
sizes, latents drawn as its ``prepare_latents`` draws them); a cell that fails inside is skipped with its reason."""

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import diffusers_reference, write_suite

from lcm_bench.cli.main import main
from lcm_bench.core.spec import Hardware, ModelSpec, SamplerSpec
from lcm_bench.models.families import FAMILIES, pack_2x2
from lcm_bench.models.loading import load_pipeline
from lcm_bench.models.resolve import resolve_model
from lcm_bench.sampling.loop import GenerationSettings, Samples, decode, generate_batch, sample_seed, to_uint8
from lcm_bench.sampling.timers import PhaseTimer

PROMPTS = ["a small red circle above a blue square", "a green triangle"]
SEEDS = [sample_seed(0, i) for i in range(len(PROMPTS))]
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
NO_BINNING = {"use_resolution_binning": False, "clean_caption": False}


def _sana_sprint_call(steps):
    return {**NO_BINNING, "intermediate_timesteps": 1.3 if steps == 2 else None}


FAMILY_CASES = {
    "tiny-sd": ("StableDiffusionPipeline", "ddim", "cfg", 4.5, "noise", (32, 48), lambda steps: {}),
    "tiny-sdxl": ("StableDiffusionXLPipeline", "euler", "cfg", 4.5, "noise", (32, 48), lambda steps: {}),
    "tiny-pixart": ("PixArtAlphaPipeline", "lcm", "cfg", 4.5, "noise", (32, 48), lambda steps: NO_BINNING),
    "tiny-pixart-sigma": ("PixArtSigmaPipeline", "ddim", "cfg", 4.5, "noise", (48, 32), lambda steps: NO_BINNING),
    "tiny-sd3": ("StableDiffusion3Pipeline", "flow-euler", "cfg", 4.5, "flow", (32, 48), lambda steps: {}),
    "tiny-flux": ("FluxPipeline", "flow-euler", "distilled", 3.5, "flow", (32, 48), lambda steps: {}),
    "tiny-flux-schnell": ("FluxPipeline", "unipc", "none", 0.0, "flow", (48, 32), lambda steps: {}),
    "tiny-sana": ("SanaPipeline", "dpmsolver++", "cfg", 4.5, "flow", (32, 64), lambda steps: NO_BINNING),
    "tiny-sana-sprint": ("SanaSprintPipeline", "scm", "distilled", 4.5, "trigflow", (64, 32), _sana_sprint_call),
}
"""Each tiny family: its pipeline class, a sampler, guidance kind and scale, objective, a non-square size (SANA's
pipelines take sides divisible by 32) and further arguments of the pipeline's call."""


@pytest.fixture(scope="module")
def loaded():
    cache = {}

    def get(name, dtype="fp32"):
        if (name, dtype) not in cache:
            resolved = resolve_model(ModelSpec(name, name))
            cache[name, dtype] = (resolved, load_pipeline(resolved, Hardware(f"cpu-{dtype}", "cpu", dtype)))
        return cache[name, dtype]

    return get


def _ours(resolved, pipe, sampler, steps, scale, mode, size, dtype):
    settings = GenerationSettings(steps, scale, mode, *size, "", "cpu", DTYPES[dtype], sampler=sampler)
    return generate_batch(pipe, resolved.family, settings, Samples(PROMPTS, SEEDS), PhaseTimer("cpu"))[:3]


def _pack(name):
    return pack_2x2 if name.startswith("tiny-flux") else (lambda x: x)


@pytest.mark.parametrize("dtype", ["bf16", pytest.param("fp16", marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", sorted(FAMILY_CASES))
def test_half_precision_loop_equals_the_pipeline_up_to_its_postprocessing(loaded, name, dtype):
    """In half precision at a non-square size (bf16 in the default set, fp16 in the slow one, where the whole
    dtype table also runs), the pipeline's own final latents decoded by lcm-bench give lcm-bench's images exactly
    (0 levels: the same latents, in the precision the pipeline keeps them), and the pipeline's images differ from
    them by at most one level: diffusers denormalises the decoded image in the VAE's half precision, lcm-bench in
    float32 (docs/models.md)."""
    import diffusers

    cls, sampler, mode, scale, objective, size, call = FAMILY_CASES[name]
    resolved, pipe = loaded(name, dtype)
    family = FAMILIES.get(resolved.family)
    steps = 2
    images, _, _ = _ours(resolved, pipe, SamplerSpec(sampler), steps, scale, mode, size, dtype)
    pipeline = getattr(diffusers, cls)
    args = (pipeline, pipe, sampler, steps, scale, PROMPTS, SEEDS, objective, _pack(name))
    latents = diffusers_reference(*args, size=size, output_type="latent", **call(steps))
    factor = pipe.vae_scale_factor
    latents = family.layout.unpack(latents, size[0] // factor, size[1] // factor)
    with torch.inference_mode():
        decoded = to_uint8(decode(pipe.vae, latents, DTYPES[dtype], family.upcast_vae))
    assert np.abs(decoded.astype(int) - images).max() == 0, "the pipeline's latents decode to lcm-bench's images"
    reference = diffusers_reference(*args, size=size, **call(steps))
    assert images.shape == (len(PROMPTS), *size, 3)
    assert np.abs(reference.astype(int) - images).max() <= 1


OWN_SCHEDULERS = {
    "tiny-sd": ({"_class_name": "DDIMScheduler", "timestep_spacing": "leading", "set_alpha_to_one": False}, "ddim"),
    "tiny-lcm": ({"_class_name": "LCMScheduler", "timestep_spacing": "leading", "set_alpha_to_one": True}, "lcm"),
    "tiny-sdxl": ({}, "euler"),
    "tiny-pixart": ({}, "dpmsolver++"),
    "tiny-sd3": ({}, "flow-euler"),
    "tiny-flux": ({}, "flow-euler"),
    "tiny-flux-schnell": ({}, "flow-euler"),
    "tiny-sana": ({}, "dpmsolver++"),
    "tiny-sana-sprint": ({}, "scm"),
}
"""The scheduler each tiny folder ships (its own, or, for the SD layouts whose PNDM lcm-bench has no sampler for,
the DDIM and LCM configs Stable Diffusion 2.x and LCM-Dreamshaper publish, written into a copy of the folder) and
the lcm-bench sampler of the same class."""


@pytest.mark.parametrize("name", sorted(OWN_SCHEDULERS))
def test_the_pipeline_with_its_own_scheduler_equals_lcm_bench_but_for_the_documented_spacing(name, tmp_path):
    """The family's pipeline as a user runs it (the scheduler its folder ships) at a non-square size: lcm-bench's
    sampler of the same class gives its images exactly once told the folder's timestep spacing; with lcm-bench's own
    default (trailing, for few-step comparisons), the images differ exactly where the spacings differ."""
    import diffusers

    from lcm_bench.models.catalogue import tiny_path

    overrides, sampler = OWN_SCHEDULERS[name]
    folder = tmp_path / name
    shutil.copytree(tiny_path(name), folder)
    config_path = folder / "scheduler" / "scheduler_config.json"
    config = {**json.loads(config_path.read_text()), **overrides}
    config_path.write_text(json.dumps(config))
    index = json.loads((folder / "model_index.json").read_text())
    index["scheduler"] = ["diffusers", config["_class_name"]]
    (folder / "model_index.json").write_text(json.dumps(index))
    resolved = resolve_model(ModelSpec(name, str(folder)))
    pipe = load_pipeline(resolved, Hardware("cpu-fp32", "cpu", "fp32"))
    cls = type(pipe)
    if name == "tiny-lcm":
        cls = diffusers.LatentConsistencyModelPipeline
    base = FAMILY_CASES.get(name, FAMILY_CASES["tiny-sd"])
    _, _, mode, scale, objective, size, call = base
    mode = {"tiny-lcm": "embedding"}.get(name, mode)
    spacing = config.get("timestep_spacing")
    told = SamplerSpec(sampler, timestep_spacing=spacing if sampler in ("ddim", "euler", "dpmsolver++") else None)
    for steps in (2, 4) if name != "tiny-pixart" else (2,):
        reference = diffusers_reference(
            cls, pipe, sampler, steps, scale, PROMPTS, SEEDS, objective, _pack(name), size, True, **call(steps)
        )
        images, _, schedule = _ours(resolved, pipe, told, steps, scale, mode, size, "fp32")
        assert np.abs(images.astype(int) - reference).max() == 0, f"{name} at {steps} steps, spacing {spacing}"
        default, _, default_schedule = _ours(resolved, pipe, SamplerSpec(sampler), steps, scale, mode, size, "fp32")
        if default_schedule["timesteps"] == schedule["timesteps"]:
            assert np.array_equal(default, images), "same timesteps, same images"
        else:
            assert spacing not in (None, "trailing") and not np.array_equal(default, images)


@pytest.mark.parametrize("name, model", [("tiny-sd", "sd-turbo"), ("tiny-sdxl", "sdxl-turbo")])
def test_a_turbo_cards_settings_equal_its_pipeline_with_the_scheduler_it_ships(name, model, tmp_path):
    """SD-Turbo and SDXL-Turbo ship EulerAncestralDiscreteScheduler at trailing spacing: their pipeline with that
    scheduler at the card's guidance gives lcm-bench's images under the card's settings at every step count the
    card names, exactly; told the class's default spacing (leading) instead, the images differ."""
    from lcm_bench.models.catalogue import MODELS, tiny_path

    card = MODELS.get(model).settings
    folder = tmp_path / name
    shutil.copytree(tiny_path(name), folder)
    shipped = {"_class_name": "EulerAncestralDiscreteScheduler", "timestep_spacing": "trailing"}
    config_path = folder / "scheduler" / "scheduler_config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), **shipped}))
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "scheduler": ["diffusers", shipped["_class_name"]]}))
    resolved = resolve_model(ModelSpec(name, str(folder)))
    pipe = load_pipeline(resolved, Hardware("cpu-fp32", "cpu", "fp32"))
    size, scale = (32, 48), card.guidance_scale
    told = SamplerSpec(card.sampler, timestep_spacing=card.timestep_spacing)
    leading = SamplerSpec(card.sampler, timestep_spacing="leading")
    for steps in card.trained_steps:
        args = (type(pipe), pipe, card.sampler, steps, scale, PROMPTS, SEEDS, "noise", lambda x: x, size, True)
        reference = diffusers_reference(*args)
        images, *_ = _ours(resolved, pipe, told, steps, scale, "cfg", size, "fp32")
        assert np.abs(images.astype(int) - reference).max() == 0, f"{model} at {steps} steps"
        other, *_ = _ours(resolved, pipe, leading, steps, scale, "cfg", size, "fp32")
        assert not np.array_equal(other, images), f"{steps} steps at leading spacing"


SPRINT_BF16 = """
version: 1
methods:
  - {name: sprint, model: tiny-sana-sprint, sampler: scm, guidance_scale: 4.5}
  - {name: sana, model: tiny-sana, sampler: flow-euler, guidance_scale: 4.5}
steps: [1, 2]
prompts: [shapes-mini]
hardware: [cpu-bf16, cpu-fp16]
num_images: 2
batch_size: 2
resolution: 32
timing: {min_repeats: 1, max_seconds: 0.5}
"""


def test_sana_sprint_and_sana_run_in_half_precision_through_lcm_bench_run(tmp_path):
    """SANA's pipelines keep latents in float32 and cast the transformer's input; the bf16 run that stopped with a
    dtype error at its first denoiser call now records every cell."""
    out = tmp_path / "run"
    assert main(["run", str(write_suite(tmp_path, SPRINT_BF16)), "--out", str(out), "--quiet"]) == 0
    records = [json.loads(p.read_text()) for p in (out / "cells").glob("*.json")]
    assert sorted((r["spec"]["method"], r["spec"]["hardware"]["dtype"], r["spec"]["steps"]) for r in records) == [
        (m, d, s) for m in ("sana", "sprint") for d in ("bf16", "fp16") for s in (1, 2)
    ]
    assert all(r["nonfinite_images"] == [] for r in records), "no NaN or inf image"


def test_a_cell_that_fails_inside_is_skipped_with_its_reason_and_the_rest_run(tmp_path, monkeypatch, capsys):
    """An out-of-memory (or a kernel, or a dtype) inside one cell's generation skips that cell with a one-line
    reason in results.csv and the manifest; the other cells are recorded and the run exits 0."""
    import lcm_bench.sampling.loop as loop

    real = loop.decode

    def decode_fails_in_bf16(vae, latents, dtype, upcast_fp16=False):
        if dtype == torch.bfloat16:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real(vae, latents, dtype, upcast_fp16)

    monkeypatch.setattr(loop, "decode", decode_fails_in_bf16)
    suite = write_suite(tmp_path, SPRINT_BF16.replace("[cpu-bf16, cpu-fp16]", "[cpu-bf16, cpu-fp32]"))
    out = tmp_path / "run"
    assert main(["run", str(suite), "--out", str(out), "--quiet"]) == 0
    records = [json.loads(p.read_text()) for p in (out / "cells").glob("*.json")]
    assert {r["spec"]["hardware"]["dtype"] for r in records} == {"fp32"} and len(records) == 4
    skipped = json.loads((out / "manifest.json").read_text())["skipped"]
    assert len(skipped) == 4
    assert all("OutOfMemoryError: CUDA out of memory" in s["reason"] and "cpu-bf16" in s["reason"] for s in skipped)
    results = (out / "results.csv").read_text()
    assert results.count("skipped") >= 4
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.slow
def test_every_family_in_every_dtype_through_lcm_bench_run_equals_its_pipeline(tmp_path, loaded):
    """Every family x {fp32, bf16, fp16} x {1, 2, 4} steps through ``lcm-bench run``: the saved images against the
    family's own pipeline in the same dtype (fp32: 0 levels; half precision: at most 1, the pipeline's
    postprocessing in the VAE's dtype). The table of maximum level differences is printed."""
    import diffusers
    from PIL import Image

    from lcm_bench.domain.prompts import read_prompts, select

    methods = "\n".join(
        f"  - {{name: {name}, model: {name}, sampler: {case[1]}, guidance_scale: {case[3]}}}"
        for name, case in FAMILY_CASES.items()
    )
    suite = write_suite(
        tmp_path,
        f"version: 1\nmethods:\n{methods}\nsteps: [1, 2, 4]\nprompts: [shapes-mini]\n"
        "hardware: [cpu-fp32, cpu-bf16, cpu-fp16]\nnum_images: 2\nbatch_size: 2\nresolution: [32, 64]\n"
        "timing: {min_repeats: 1, max_seconds: 0.2}\n",
    )
    out = tmp_path / "run"
    assert main(["run", str(suite), "--out", str(out), "--quiet"]) == 0
    table = {}
    for path in sorted((out / "cells").glob("*.json")):
        record = json.loads(path.read_text())
        spec = record["spec"]
        name, dtype, steps = spec["method"], spec["hardware"]["dtype"], spec["steps"]
        cls, sampler, _, scale, objective, _, call = FAMILY_CASES[name]
        prompts = read_prompts(__import__("pathlib").Path(spec["prompts"]["source"]), spec["prompts"]["format"], None)
        chosen = [prompts[i] for i in select(prompts, spec["num_images"], spec["seed"])]
        seeds = [sample_seed(spec["seed"], i) for i in range(spec["num_images"])]
        _, pipe = loaded(name, dtype)
        reference = diffusers_reference(
            getattr(diffusers, cls), pipe, sampler, steps, scale, chosen, seeds, objective, _pack(name), (32, 64),
            **call(steps),
        )  # fmt: skip
        saved = np.stack(
            [np.asarray(Image.open(out / "images" / record["cell_id"] / f"{i:05d}.png")) for i in range(len(seeds))]
        )
        table[name, dtype, steps] = int(np.abs(saved.astype(int) - reference).max())
    print("\nfamily, dtype, steps -> max level difference against the family's pipeline")
    for key, value in sorted(table.items()):
        print(*key, value)
    assert len(table) == len(FAMILY_CASES) * 3 * 3
    assert all(v == 0 for (_, dtype, _), v in table.items() if dtype == "fp32")
    assert all(v <= 1 for v in table.values())


BINNED = {
    "tiny-pixart": ("PixArtAlphaPipeline", "ddim", "cfg", "noise", 32, {}),
    "tiny-pixart-sigma": ("PixArtSigmaPipeline", "dpmsolver++", "cfg", "noise", 32, {}),
    "tiny-sana": ("SanaPipeline", "flow-euler", "cfg", "flow", 16, {}),
    "tiny-sana-sprint": ("SanaSprintPipeline", "scm", "distilled", "trigflow", 32, {"intermediate_timesteps": 1.3}),
}
"""Families whose pipelines bin resolutions, each with a transformer sample size their pipeline has a table for."""


@pytest.mark.parametrize(
    "name",
    [
        "tiny-pixart",
        "tiny-pixart-sigma",
        *(pytest.param(n, marks=pytest.mark.slow) for n in ("tiny-sana", "tiny-sana-sprint")),
    ],
)
def test_resolution_binning_equals_the_pipelines_default(name, tmp_path):
    """``resolution_binning: true`` samples at the nearest aspect ratio of the pipeline's table for the transformer's
    sample size and resizes and crops back, as PixArt's and SANA's pipelines do by default (their
    ``use_resolution_binning=True``): 0 levels at 64 x 96 px, which no table holds."""
    import diffusers

    from lcm_bench.models.catalogue import tiny_path
    from lcm_bench.sampling.loop import initial_latents
    from lcm_bench.sampling.samplers import build_scheduler

    cls, sampler, mode, objective, sample_size, call = BINNED[name]
    folder = tmp_path / name
    shutil.copytree(tiny_path(name), folder)
    config = json.loads((folder / "transformer" / "config.json").read_text())
    (folder / "transformer" / "config.json").write_text(json.dumps({**config, "sample_size": sample_size}))
    resolved = resolve_model(ModelSpec(name, str(folder)))
    pipe = load_pipeline(resolved, Hardware("cpu-fp32", "cpu", "fp32"))
    spec = SamplerSpec(sampler)
    settings = GenerationSettings(2, 4.5, mode, 64, 96, "", "cpu", torch.float32, binning=True, sampler=spec)
    images, *_ = generate_batch(pipe, resolved.family, settings, Samples(PROMPTS, SEEDS), PhaseTimer("cpu"))
    table = FAMILIES.get(resolved.family).bins(sample_size)
    height, width = pipe.image_processor.classify_height_width_bin(64, 96, ratios=table)
    assert (height, width) != (64, 96)
    scheduler, _, _ = build_scheduler(SamplerSpec(sampler), pipe.scheduler.config, objective)
    reference = getattr(diffusers, cls)(**{**pipe.components, "scheduler": scheduler})
    reference.set_progress_bar_config(disable=True)
    generators = [torch.Generator().manual_seed(s) for s in SEEDS]
    factor = pipe.vae_scale_factor
    latents = initial_latents(generators, (pipe.transformer.config.in_channels, height // factor, width // factor))
    out = reference(
        PROMPTS,
        num_inference_steps=2,
        guidance_scale=4.5,
        height=64,
        width=96,
        latents=latents,
        generator=generators,
        output_type="np",
        clean_caption=False,
        use_resolution_binning=True,
        **call,
    ).images
    assert images.shape == (2, 64, 96, 3)
    assert np.abs(images.astype(int) - (out * 255).round().astype(np.uint8)).max() == 0


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("tiny-sd", "methods[m].resolution_binning: model 'tiny-sd' is a sd model, whose pipeline does not bin"),
        ("tiny-pixart", "has no aspect-ratio table for a transformer of sample_size 16"),
    ],
)
def test_resolution_binning_where_the_pipeline_has_none_is_one_line(tmp_path, capsys, model, expected):
    suite = write_suite(
        tmp_path,
        f"version: 1\nmethods:\n  - {{name: m, model: {model}, sampler: ddim, resolution_binning: true}}\n"
        "steps: [1]\nprompts: [shapes-mini]\nnum_images: 2\n",
    )
    assert main(["validate", str(suite)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err


def test_an_sdxl_vae_with_latents_mean_and_std_decodes_as_the_sdxl_pipeline_does(tmp_path):
    """Playground v2.5-style VAE config (per-channel ``latents_mean`` and ``latents_std``): lcm-bench's images equal
    StableDiffusionXLPipeline's, which de-standardises the latents before decoding, and differ from a decode that
    ignores them."""
    from diffusers import StableDiffusionXLPipeline

    from lcm_bench.models.catalogue import tiny_path

    folder = tmp_path / "sdxl-with-latent-stats"
    shutil.copytree(tiny_path("tiny-sdxl"), folder)
    config_path = folder / "vae" / "config.json"
    config = json.loads(config_path.read_text())
    stats = {"latents_mean": [0.3, -0.2, 0.1, 0.05], "latents_std": [0.8, 1.2, 0.9, 1.1]}
    config_path.write_text(json.dumps({**config, **stats}))
    resolved = resolve_model(ModelSpec("stats", str(folder)))
    pipe = load_pipeline(resolved, Hardware("cpu-fp32", "cpu", "fp32"))
    images, *_ = _ours(resolved, pipe, SamplerSpec("euler"), 2, 4.5, "cfg", (32, 32), "fp32")
    reference = diffusers_reference(StableDiffusionXLPipeline, pipe, "euler", 2, 4.5, PROMPTS, SEEDS)
    assert np.abs(images.astype(int) - reference).max() == 0
    plain = load_pipeline(resolve_model(ModelSpec("tiny-sdxl", "tiny-sdxl")), Hardware("cpu-fp32", "cpu", "fp32"))
    ignored, *_ = _ours(resolved, plain, SamplerSpec("euler"), 2, 4.5, "cfg", (32, 32), "fp32")
    assert np.abs(ignored.astype(int) - images).max() > 0


def test_scm_takes_a_published_schedule_one_timestep_per_step(loaded):
    """``sampler: {name: scm, timesteps: [...]}`` (TrigFlow times, one per step; the final 0 is appended): SANA-Sprint's
    own two-step schedule written out gives the default two-step images, and another schedule other images."""
    resolved, pipe = loaded("tiny-sana-sprint")
    size = (32, 32)
    default, *_ = _ours(resolved, pipe, SamplerSpec("scm"), 2, 4.5, "distilled", size, "fp32")
    written = SamplerSpec("scm", options=(("timesteps", (1.5708, 1.3)),))
    images, _, schedule = _ours(resolved, pipe, written, 2, 4.5, "distilled", size, "fp32")
    assert np.array_equal(images, default) and schedule["timesteps"] == [1.5708, 1.3, 0]
    other, *_ = _ours(
        resolved, pipe, SamplerSpec("scm", options=(("timesteps", (1.5708, 0.8)),)), 2, 4.5, "distilled", size, "fp32"
    )
    assert not np.array_equal(other, default)
