"""Model families beyond the UNet: each family's tiny pipeline through the one loop, image for image against the
family's own diffusers pipeline, and what a suite may pair with it."""

import numpy as np
import pytest
import torch
from conftest import diffusers_reference, write_suite

from lcm_bench.cli.main import main
from lcm_bench.core.spec import Hardware, ModelSpec, SamplerSpec
from lcm_bench.models.loading import load_pipeline
from lcm_bench.models.resolve import resolve_model
from lcm_bench.sampling.loop import GenerationSettings, generate_batch, sample_seed
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
    settings = GenerationSettings(steps, scale, mode, 32, 32, "", "cpu", torch.float32)
    return generate_batch(pipe, resolved.family, SamplerSpec(sampler), settings, PROMPTS, SEEDS, PhaseTimer("cpu"))


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


@pytest.mark.parametrize("sampler", ["flow-euler", "dpmsolver++", "unipc"])
@pytest.mark.parametrize("steps", [1, 2, 4])
@pytest.mark.parametrize("scale", [0.0, 4.5])
def test_sd3_images_equal_its_diffusers_pipeline(pipelines, sampler, steps, scale):
    from diffusers import StableDiffusion3Pipeline

    model = pipelines("tiny-sd3")
    images, evaluations, schedule = run(model, sampler, steps, scale)
    assert evaluations == (2 if scale > 1 else 1) * steps * len(PROMPTS)
    reference = diffusers_reference(StableDiffusion3Pipeline, model[1], sampler, steps, scale, PROMPTS, SEEDS, "flow")
    difference = np.abs(images.astype(int) - reference).max()
    assert difference == 0, f"sd3 {sampler} at {steps} steps, s = {scale}: {difference} levels"
    if sampler != "flow-euler":
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

    from lcm_bench.models.families import pack_2x2

    model = pipelines(name)
    images, evaluations, schedule = run(model, sampler, steps, 3.5, mode)
    assert evaluations == steps * len(PROMPTS), "distilled guidance or none: 1 NFE per step"
    reference = diffusers_reference(
        FluxPipeline, model[1], sampler, steps, 3.5, PROMPTS, SEEDS, "flow", pack_2x2, max_sequence_length=512
    )
    difference = np.abs(images.astype(int) - reference).max()
    assert difference == 0, f"{name} {sampler} at {steps} steps: {difference} levels"


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
        diffusers_reference(FluxPipeline, model[1], "dpmsolver++", 2, 0.0, PROMPTS, SEEDS, "flow", _pack())


def _pack():
    from lcm_bench.models.families import pack_2x2

    return pack_2x2


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
}
GUIDANCE_MODE = {"lcm": "embedding", "pixart-lcm": "none", "flux-dev": "distilled", "flux-schnell": "none"}


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
}
"""Published transformer configs (diffusers' class defaults are the released models', with the overrides given):
PixArt-XL-2-1024-MS on T5-XXL, SD3 Medium, FLUX.1-dev, SANA 1600M at 1024 px; the VAE's latent channels; the latent
side at 1024 px."""


def _meta_conditioning(family: str, batch: int, side: int, network) -> dict:
    meta = {"device": "meta"}
    text = {"pixart-alpha": 4096, "sd3": 4096, "flux": 4096, "sana": 2304}[family]
    cond = {"encoder_hidden_states": torch.empty(batch, 77, text, **meta)}
    if family == "pixart-alpha":
        cond["encoder_attention_mask"] = torch.ones(batch, 77, **meta)
        cond["added_cond_kwargs"] = {
            "resolution": torch.empty(batch, 2, **meta),
            "aspect_ratio": torch.empty(batch, 1, **meta),
        }
    if family == "sana":
        cond["encoder_attention_mask"] = torch.ones(batch, 77, **meta)
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
