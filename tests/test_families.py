"""Model families beyond the UNet: each family's tiny pipeline through the one loop, image for image against the
family's own diffusers pipeline, and what a suite may pair with it."""

import numpy as np
import pytest
import torch
from conftest import diffusers_reference, write_suite

from lcm_bench.cli.main import main
from lcm_bench.core.spec import Hardware, ModelSpec, SamplerSpec
from lcm_bench.models.families import pack_2x2
from lcm_bench.models.loading import load_pipeline
from lcm_bench.models.resolve import resolve_model
from lcm_bench.sampling.loop import GenerationSettings, Samples, generate_batch, sample_seed
from lcm_bench.sampling.timers import PhaseTimer

CPU = Hardware("cpu-fp32", "cpu", "fp32")
PROMPTS = ["a small red circle above a blue square", "a green triangle", "two yellow stars", "a purple ring"]
SEEDS = [sample_seed(0, i) for i in range(len(PROMPTS))]
PIXART_CALL = {"use_resolution_binning": False, "clean_caption": False}


@pytest.fixture(scope="module")
def pipelines():
    loaded = {}

    def get(name):
        if name not in loaded:
            resolved = resolve_model(ModelSpec(name, name))
            loaded[name] = (resolved, load_pipeline(resolved, CPU))
        return loaded[name]

    return get


def run(model, sampler, steps, scale, mode="cfg"):
    resolved, pipe = model
    settings = GenerationSettings(steps, scale, mode, 32, 32, "", "cpu", torch.float32, sampler=SamplerSpec(sampler))
    return generate_batch(pipe, resolved.family, settings, Samples(PROMPTS, SEEDS), PhaseTimer("cpu"))[:3]


@pytest.mark.parametrize(
    "name, pipeline", [("tiny-pixart", "PixArtAlphaPipeline"), ("tiny-pixart-sigma", "PixArtSigmaPipeline")]
)
@pytest.mark.parametrize("sampler", ["ddim", "dpmsolver++", "euler", "unipc", "lcm", "tcd"])
@pytest.mark.parametrize("steps", [1, 2, 4])
def test_pixart_images_equal_its_diffusers_pipeline(pipelines, name, pipeline, sampler, steps):
    import diffusers

    if steps == 1 and sampler in ("dpmsolver++", "unipc"):
        pytest.skip("PixArt's pipeline cannot run it: at one step it indexes step()[1], which these do not return")
    model = pipelines(name)
    images, evaluations, _ = run(model, sampler, steps, 4.5)
    assert evaluations == 2 * steps * len(PROMPTS), "classifier-free guidance: 2 NFE per step"
    reference = diffusers_reference(
        getattr(diffusers, pipeline), model[1], sampler, steps, 4.5, PROMPTS, SEEDS, **PIXART_CALL
    )
    difference = np.abs(images.astype(int) - reference).max()
    assert difference == 0, f"{name} {sampler} at {steps} steps: {difference} levels"


@pytest.mark.parametrize("sampler", ["flow-euler", "flow-heun", "dpmsolver++", "unipc"])
@pytest.mark.parametrize("steps", [1, 2, 4])
@pytest.mark.parametrize("scale", [0.0, 4.5])
def test_sd3_images_equal_its_diffusers_pipeline(pipelines, sampler, steps, scale):
    from diffusers import StableDiffusion3Pipeline

    from lcm_bench.sampling.guidance import nfe_per_image

    model = pipelines("tiny-sd3")
    images, evaluations, schedule = run(model, sampler, steps, scale)
    walks = 2 * steps - 1 if sampler == "flow-heun" else steps
    assert evaluations == (2 if scale > 1 else 1) * walks * len(PROMPTS), "Heun: 2n - 1 evaluations"
    assert evaluations == nfe_per_image(sampler, steps, "cfg", scale) * len(PROMPTS), "as predicted before a run"
    reference = diffusers_reference(StableDiffusion3Pipeline, model[1], sampler, steps, scale, PROMPTS, SEEDS, "flow")
    difference = np.abs(images.astype(int) - reference).max()
    assert difference == 0, f"sd3 {sampler} at {steps} steps, s = {scale}: {difference} levels"
    if sampler in ("dpmsolver++", "unipc"):
        assert schedule["prediction_type"] == "flow_prediction", "a multistep solver runs in flow mode on a flow model"


@pytest.mark.parametrize(
    ("name", "mode", "sampler"),
    [
        ("tiny-flux", "distilled", "flow-euler"),
        ("tiny-flux", "distilled", "dpmsolver++"),
        ("tiny-flux-schnell", "none", "flow-euler"),
    ],
)
@pytest.mark.parametrize("steps", [1, 2, 4])
def test_flux_images_equal_its_diffusers_pipeline(pipelines, name, mode, sampler, steps):
    from diffusers import FluxPipeline

    model = pipelines(name)
    images, evaluations, schedule = run(model, sampler, steps, 3.5, mode)
    assert evaluations == steps * len(PROMPTS), "distilled guidance or none: 1 NFE per step"
    reference = diffusers_reference(
        FluxPipeline, model[1], sampler, steps, 3.5, PROMPTS, SEEDS, "flow", pack_2x2, max_sequence_length=512
    )
    difference = np.abs(images.astype(int) - reference).max()
    assert difference == 0, f"{name} {sampler} at {steps} steps: {difference} levels"


def test_flow_lcm_equals_the_sd3_pipeline_at_one_step_and_is_seeded_per_sample(pipelines):
    """At one step no noise is injected and the images equal StableDiffusion3Pipeline's; at more, the pipeline draws
    the injected noise without the caller's generator (its step() call passes none), lcm-bench from each sample's
    own generator, so its images are reproducible and independent of the batch."""
    from diffusers import StableDiffusion3Pipeline

    model = pipelines("tiny-sd3")
    images, *_ = run(model, "flow-lcm", 1, 0.0)
    reference = diffusers_reference(StableDiffusion3Pipeline, model[1], "flow-lcm", 1, 0.0, PROMPTS, SEEDS, "flow")
    assert np.abs(images.astype(int) - reference).max() == 0
    assert np.array_equal(run(model, "flow-lcm", 4, 0.0)[0], run(model, "flow-lcm", 4, 0.0)[0])


def test_flux_guidance_goes_in_as_given_and_schnell_ignores_it(pipelines):
    dev, schnell = pipelines("tiny-flux"), pipelines("tiny-flux-schnell")
    assert not np.array_equal(
        run(dev, "flow-euler", 2, 1.0, "distilled")[0], run(dev, "flow-euler", 2, 3.5, "distilled")[0]
    )
    assert np.array_equal(run(schnell, "flow-euler", 2, 1.0, "none")[0], run(schnell, "flow-euler", 2, 3.5, "none")[0])


def test_flux_schnell_runs_dpmsolver_in_flow_mode_where_its_pipeline_cannot(pipelines):
    from diffusers import FluxPipeline

    model = pipelines("tiny-flux-schnell")
    images, evaluations, schedule = run(model, "dpmsolver++", 2, 0.0, "none")
    assert evaluations == 2 * len(PROMPTS) and schedule["prediction_type"] == "flow_prediction"
    with pytest.raises(AssertionError):
        diffusers_reference(FluxPipeline, model[1], "dpmsolver++", 2, 0.0, PROMPTS, SEEDS, "flow", pack_2x2)


@pytest.mark.parametrize("sampler", ["dpmsolver++", "flow-euler", "unipc"])
@pytest.mark.parametrize("steps", [1, 2, 4])
def test_sana_images_equal_its_diffusers_pipeline(pipelines, sampler, steps):
    from diffusers import SanaPipeline

    model = pipelines("tiny-sana")
    images, evaluations, _ = run(model, sampler, steps, 4.5)
    assert evaluations == 2 * steps * len(PROMPTS)
    reference = diffusers_reference(SanaPipeline, model[1], sampler, steps, 4.5, PROMPTS, SEEDS, "flow", **PIXART_CALL)
    difference = np.abs(images.astype(int) - reference).max()
    assert difference == 0, f"sana {sampler} at {steps} steps: {difference} levels"


@pytest.mark.parametrize("steps", [1, 2, 4])
def test_sana_sprint_images_equal_its_diffusers_pipeline(pipelines, steps):
    from diffusers import SanaSprintPipeline

    model = pipelines("tiny-sana-sprint")
    images, evaluations, schedule = run(model, "scm", steps, 4.5, "distilled")
    assert evaluations == steps * len(PROMPTS), "a guidance embedding: 1 NFE per step"
    assert len(schedule["timesteps"]) == steps + 1, "sCM's schedule ends at 0, where no step is taken"
    reference = diffusers_reference(
        SanaSprintPipeline,
        model[1],
        "scm",
        steps,
        4.5,
        PROMPTS,
        SEEDS,
        "trigflow",
        intermediate_timesteps=1.3 if steps == 2 else None,
        **PIXART_CALL,
    )
    difference = np.abs(images.astype(int) - reference).max()
    assert difference == 0, f"sana-sprint at {steps} steps: {difference} levels"


def test_pixart_without_guidance_is_one_evaluation_per_step(pipelines):
    _, evaluations, _ = run(pipelines("tiny-pixart"), "lcm", 4, 0.0)
    assert evaluations == 4 * len(PROMPTS), "PixArt-LCM at guidance 0: one pass per step"


MIXED_SUITE = """
version: 1
methods:
  - {name: sd-ddim, model: tiny-sd, sampler: ddim, guidance_scale: 3.0}
  - {name: lcm, model: tiny-lcm, sampler: lcm, guidance_scale: 3.0}
  - {name: sdxl-euler, model: tiny-sdxl, sampler: euler, guidance_scale: 3.0}
  - {name: pixart-lcm, model: tiny-pixart, sampler: lcm, guidance_scale: 0}
  - {name: pixart-sigma-dpm, model: tiny-pixart-sigma, sampler: dpmsolver++, guidance_scale: 4.5}
  - {name: sd3-euler, model: tiny-sd3, sampler: flow-euler, guidance_scale: 4.5}
  - {name: flux-dev, model: tiny-flux, sampler: flow-euler, guidance_scale: 3.5}
  - {name: flux-schnell, model: tiny-flux-schnell, sampler: flow-euler, guidance_scale: 0}
  - {name: sana-dpm, model: tiny-sana, sampler: dpmsolver++, guidance_scale: 4.5}
  - {name: sana-sprint, model: tiny-sana-sprint, sampler: scm, guidance_scale: 4.5}
steps: [1, 2]
prompts: [shapes-mini]
num_images: 4
batch_size: 2
resolution: 32
timing: {min_repeats: 2, max_seconds: 1}
metrics:
  - {name: fd, extractor: shapes-judge, subsets: 2}
  - {name: attribute_accuracy}
"""
NFE_PER_STEP = {
    "sd-ddim": 2,
    "lcm": 1,
    "sdxl-euler": 2,
    "pixart-lcm": 1,
    "pixart-sigma-dpm": 2,
    "sd3-euler": 2,
    "flux-dev": 1,
    "flux-schnell": 1,
    "sana-dpm": 2,
    "sana-sprint": 1,
}
FAMILY = {
    "sd-ddim": "sd",
    "lcm": "sd",
    "sdxl-euler": "sdxl",
    "pixart-lcm": "pixart-alpha",
    "pixart-sigma-dpm": "pixart-sigma",
    "sd3-euler": "sd3",
    "flux-dev": "flux",
    "flux-schnell": "flux",
    "sana-dpm": "sana",
    "sana-sprint": "sana-sprint",
}
GUIDANCE_MODE = {
    "lcm": "embedding",
    "pixart-lcm": "none",
    "flux-dev": "distilled",
    "flux-schnell": "none",
    "sana-sprint": "distilled",
}


def test_a_suite_mixing_families_runs_end_to_end_with_each_guidance_kinds_nfe(tmp_path):
    import json

    suite = write_suite(tmp_path, MIXED_SUITE)
    out = tmp_path / "run"
    assert main(["run", str(suite), "--out", str(out), "--quiet"]) == 0
    records = [json.loads(p.read_text()) for p in (out / "cells").glob("*.json")]
    assert len(records) == 2 * len(FAMILY)
    for r in records:
        method, steps = r["spec"]["method"], r["spec"]["steps"]
        assert r["throughput"]["nfe_per_image"] == NFE_PER_STEP[method] * steps, (method, steps)
        assert r["model"]["family"] == FAMILY[method]
        assert r["guidance_mode"] == GUIDANCE_MODE.get(method, "cfg"), method
        assert set(r["metrics"]) == {"fd_shapes-judge", "attribute_accuracy_shapes-judge"}
    table = (out / "tables" / "throughput.md").read_text()
    assert all(method in table for method in FAMILY), "every method is a row of the report"
    assert main(["baseline", str(out), "--out", str(tmp_path / "baseline.json")]) == 0
    assert main(["check", str(out), "--baseline", str(tmp_path / "baseline.json")]) == 0


def test_a_folder_of_an_unknown_pipeline_class_is_one_line(tmp_path, capsys):
    import json
    import shutil

    from lcm_bench.models.catalogue import tiny_path

    folder = tmp_path / "newish"
    shutil.copytree(tiny_path("tiny-pixart"), folder)
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "_class_name": "SomeNewPipeline"}))
    suite = write_suite(
        tmp_path,
        f"version: 1\nmethods:\n  - {{name: m, model: {{path: {folder}}}, sampler: ddim}}\nsteps: [1]\n"
        "prompts: [shapes-mini]\nnum_images: 2\n",
    )
    assert main(["validate", str(suite)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "SomeNewPipeline that no registered family takes" in err, err


FULL_SIZE = {
    "pixart-alpha": ("PixArtTransformer2DModel", {"caption_channels": 4096}, 4, 128),
    "sd3": (
        "SD3Transformer2DModel",
        {"num_layers": 24, "num_attention_heads": 24, "caption_projection_dim": 1536, "pos_embed_max_size": 192},
        16,
        128,
    ),
    "flux": ("FluxTransformer2DModel", {"guidance_embeds": True}, 16, 128),
    "sana": ("SanaTransformer2DModel", {}, 32, 32),
    "sana-sprint": ("SanaTransformer2DModel", {"guidance_embeds": True, "qk_norm": "rms_norm_across_heads"}, 32, 32),
}
"""Published transformer configs (diffusers' class defaults are the released models', with the overrides given):
PixArt-XL-2-1024-MS on T5-XXL, SD3 Medium, FLUX.1-dev, SANA 1600M and SANA-Sprint 1.6B at 1024 px; the VAE's
latent channels; the latent side at 1024 px."""


def _meta_conditioning(family: str, batch: int, side: int, network) -> dict:
    meta = {"device": "meta"}
    text = {"pixart-alpha": 4096, "sd3": 4096, "flux": 4096, "sana": 2304, "sana-sprint": 2304}[family]
    cond = {"encoder_hidden_states": torch.empty(batch, 77, text, **meta)}
    if family == "pixart-alpha":
        cond["encoder_attention_mask"] = torch.ones(batch, 77, **meta)
        cond["added_cond_kwargs"] = {
            "resolution": torch.empty(batch, 2, **meta),
            "aspect_ratio": torch.empty(batch, 1, **meta),
        }
    if family.startswith("sana"):
        cond["encoder_attention_mask"] = torch.ones(batch, 77, **meta)
    if family == "sana-sprint":
        cond |= {"sigma_data": 0.5, "guidance": torch.full([batch], 4.5, **meta)}
    if family == "sd3":
        cond["pooled_projections"] = torch.empty(batch, 2048, **meta)
    if family == "flux":
        cond["pooled_projections"] = torch.empty(batch, 768, **meta)
        cond["txt_ids"] = torch.zeros(77, 3, **meta)
        cond["img_ids"] = torch.zeros((side // 2) ** 2, 3, **meta)
        cond["guidance"] = torch.full([batch], 3.5, **meta)
    return cond


@pytest.mark.parametrize("family", sorted(FULL_SIZE))
def test_the_family_calls_its_full_size_denoiser_with_the_shapes_it_expects(family):
    """On the meta device (no weights, no memory): the family's latent layout and forward take the released
    model's transformer and give back a prediction of the latent's shape."""
    import diffusers

    from lcm_bench.models.families import FAMILIES

    class_name, overrides, channels, side = FULL_SIZE[family]
    entry = FAMILIES.get(family)
    with torch.device("meta"):
        network = getattr(diffusers, class_name)(**overrides)
    assert entry.layout.channels(network) == channels, "the latent's channels as the VAE makes them"
    latent = torch.empty(2, channels, side, side, device="meta")
    x = entry.layout.pack(latent)
    out = entry.forward(network, x, torch.tensor(500.0, device="meta"), **_meta_conditioning(family, 2, side, network))
    assert entry.layout.unpack(out, side, side).shape == latent.shape


@pytest.mark.parametrize(
    ("name", "sampler", "mode"),
    [
        ("tiny-pixart", "lcm", "cfg"),
        ("tiny-sd3", "flow-euler", "cfg"),
        ("tiny-flux", "flow-euler", "distilled"),
        ("tiny-sana", "dpmsolver++", "cfg"),
        ("tiny-sana-sprint", "scm", "distilled"),
    ],
)
def test_batch_size_does_not_change_a_familys_images(pipelines, name, sampler, mode):
    """Each sample's own seed: a batch of 3 gives the images of three batches of 1 (up to one 8-bit level where CPU
    kernels round a batch differently, as for the UNet)."""
    resolved, pipe = pipelines(name)
    settings = GenerationSettings(2, 4.5, mode, 32, 32, "", "cpu", torch.float32, sampler=SamplerSpec(sampler))

    def images(prompts, seeds):
        return generate_batch(pipe, resolved.family, settings, Samples(prompts, seeds), PhaseTimer("cpu"))[0]

    batched = images(PROMPTS[:3], SEEDS[:3])
    single = np.concatenate([images(PROMPTS[i : i + 1], SEEDS[i : i + 1]) for i in range(3)])
    assert np.abs(batched.astype(int) - single).max() <= 1
    assert not np.array_equal(batched[0], batched[1]), "samples differ"


def test_the_few_step_suite_lists_every_checkpoint_it_needs_offline(capsys, monkeypatch, tmp_path):
    """Offline, validating the shipped few-step suite names each missing checkpoint once, one line each: whole
    repositories, single files among many (``hf download REPO FILE``), and what a gated repository needs."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["validate", "few-step-1024"]) == 2
    err = capsys.readouterr().err
    assert "hf download ByteDance/SDXL-Lightning sdxl_lightning_4step_unet.safetensors" in err
    assert "hf download tianweiy/DMD2 dmd2_sdxl_4step_unet_fp16.bin" in err
    assert "hf download black-forest-labs/FLUX.1-schnell" in err
    assert "stabilityai/stable-diffusion-3.5-large-turbo and log in with `hf auth login`" in err
    assert "Traceback" not in err


def test_single_file_unets_on_their_base_with_published_timesteps(tmp_path, monkeypatch, pipelines):
    """A UNet published as one file (SDXL-Lightning's safetensors, DMD2's .bin read with weights_only) loads on its
    base's UNet config, and a checkpoint's published timesteps drive the scheduler: stand-ins in the Hugging Face
    cache built from the tiny SDXL pipeline, whose own UNet weights they carry, give its images."""
    import json

    import huggingface_hub.constants
    from safetensors.torch import save_file
    from test_real_path import as_hub_cache

    from lcm_bench.models.catalogue import tiny_path

    cache = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    base = tiny_path("tiny-sdxl")
    as_hub_cache(cache, base, "stabilityai/stable-diffusion-xl-base-1.0")
    state = pipelines("tiny-sdxl")[1].unet.state_dict()
    files = tmp_path / "files"
    files.mkdir()
    save_file({k: v.contiguous() for k, v in state.items()}, str(files / "sdxl_lightning_4step_unet.safetensors"))
    as_hub_cache(cache, files, "ByteDance/SDXL-Lightning")
    (files / "sdxl_lightning_4step_unet.safetensors").unlink()
    torch.save(state, files / "dmd2_sdxl_4step_unet_fp16.bin")
    as_hub_cache(cache, files, "tianweiy/DMD2")
    suite = write_suite(
        tmp_path,
        """
version: 1
methods:
  - {name: lightning, model: sdxl-lightning-4step-unet, sampler: euler, guidance_scale: 0}
  - {name: base, model: tiny-sdxl, sampler: euler, guidance_scale: 0}
  - name: dmd2
    model: dmd2-sdxl-4step-unet
    sampler: {name: lcm, timesteps: [999, 749, 499, 249]}
    guidance_scale: 0
steps: [4]
prompts: [shapes-mini]
num_images: 4
resolution: 32
timing: {min_repeats: 2, max_seconds: 1}
""",
    )
    out = tmp_path / "run"
    assert main(["run", str(suite), "--out", str(out), "--quiet", "--no-report"]) == 0
    records = {json.loads(p.read_text())["spec"]["method"]: p for p in (out / "cells").glob("*.json")}
    grids = {m: (out / "images" / f"{p.stem}.grid.png").read_bytes() for m, p in records.items()}
    assert grids["lightning"] == grids["base"], "the single-file UNet is the base's own UNet"
    dmd2 = json.loads(records["dmd2"].read_text())
    assert dmd2["schedule"]["timesteps"] == [999, 749, 499, 249] and dmd2["throughput"]["nfe_per_image"] == 4
    assert (
        dmd2["fingerprint"]["components"]["weights:unet"]
        != json.loads(records["lightning"].read_text())["fingerprint"]["components"]["weights:unet"]
    )


@pytest.mark.parametrize(
    ("timesteps", "expected"),
    [("[999, 500]", "4 steps, but sampler 'lcm' was given 2 timesteps"), ("[10, 500]", "timesteps: expected")],
)
def test_published_timesteps_must_fit_the_steps(tmp_path, capsys, timesteps, expected):
    suite = write_suite(
        tmp_path,
        f"version: 1\nmethods:\n  - {{name: m, model: tiny-lcm, sampler: {{name: lcm, timesteps: {timesteps}}}}}\n"
        "steps: [4]\nprompts: [shapes-mini]\nnum_images: 2\n",
    )
    assert main(["validate", str(suite)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err


def test_a_flow_models_fingerprint_holds_the_scheduler_it_samples_with(tmp_path):
    """The scheduler component of a flow model's fingerprint is the flow-mode solver the loop builds, not the noise
    one; a diffusion model's is the key it had before flow models came."""
    from lcm_bench.run.cell_fingerprint import cell_fingerprint, scheduler_digest
    from lcm_bench.suite.load import load_suite

    text = (
        "version: 1\nmethods:\n  - {name: a, model: tiny-sd3, sampler: dpmsolver++, guidance_scale: 4.5}\n"
        "  - {name: b, model: tiny-sd, sampler: dpmsolver++, guidance_scale: 4.5}\nsteps: [2]\n"
        "prompts: [shapes-mini]\nnum_images: 2\n"
    )
    cells = {c.model.name: c for c in load_suite(write_suite(tmp_path, text)).cells}
    for name, objective in (("tiny-sd3", "flow"), ("tiny-sd", "noise")):
        cell, resolved = cells[name], resolve_model(cells[name].model)
        components = cell_fingerprint(cell, resolved)["components"]
        assert components["scheduler"] == scheduler_digest(resolved.pipeline_path, cell.sampler, objective)
    flow = cells["tiny-sd3"]
    path = resolve_model(flow.model).pipeline_path
    assert scheduler_digest(path, flow.sampler, "flow") != scheduler_digest(path, flow.sampler, "noise")
