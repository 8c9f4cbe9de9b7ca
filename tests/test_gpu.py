"""The real path on a GPU, for a machine that has one (marker ``gpu``; `.ci/run` has no GPU and does not run it):
every family's tiny pipeline in bf16 and fp16 at 1, 2 and 4 steps against its diffusers pipeline on the same
device, and the few-step-1024 suite's denoisers at their published full-size configs (random weights) through
their family's forward and the loop's precision, one denoising pass each. ``LCM_BENCH_GPU_DEVICE`` names the
device (default ``cuda``; ``cpu`` dry-runs the tiny part here). docs/development.md gives the one command."""

import os

import numpy as np
import pytest
import torch
from conftest import diffusers_reference
from test_precision import FAMILY_CASES, PROMPTS, SEEDS

from lcm_bench.core.spec import Hardware, ModelSpec, SamplerSpec
from lcm_bench.models.families import FAMILIES, pack_2x2
from lcm_bench.models.loading import load_pipeline
from lcm_bench.models.resolve import resolve_model
from lcm_bench.sampling.loop import GenerationSettings, Samples, decode, generate_batch, to_uint8
from lcm_bench.sampling.timers import PhaseTimer

pytestmark = pytest.mark.gpu
DEVICE = os.environ.get("LCM_BENCH_GPU_DEVICE", "cuda")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@pytest.fixture(scope="module", autouse=True)
def device_present():
    if DEVICE.startswith("cuda") and not torch.cuda.is_available():
        pytest.fail("the gpu test set needs a CUDA device (set LCM_BENCH_GPU_DEVICE=cpu to dry-run its tiny part)")


@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize("name", sorted(FAMILY_CASES))
def test_each_family_on_the_device_equals_its_pipeline(name, dtype, record_property):
    import diffusers

    cls, sampler, mode, scale, objective, size, call = FAMILY_CASES[name]
    hardware = Hardware(f"{DEVICE}-{dtype}", DEVICE, dtype)
    resolved = resolve_model(ModelSpec(name, name))
    pipe = load_pipeline(resolved, hardware)
    family = FAMILIES.get(resolved.family)
    pack = pack_2x2 if name.startswith("tiny-flux") else (lambda x: x)
    table = {}
    for steps in (1, 2, 4):
        spec = SamplerSpec(sampler)
        settings = GenerationSettings(steps, scale, mode, *size, "", DEVICE, DTYPES[dtype], sampler=spec)
        images, *_ = generate_batch(pipe, resolved.family, settings, Samples(PROMPTS, SEEDS), PhaseTimer(DEVICE))
        args = (getattr(diffusers, cls), pipe, sampler, steps, scale, PROMPTS, SEEDS, objective, pack, size)
        latents = diffusers_reference(*args, output_type="latent", **call(steps))
        factor = pipe.vae_scale_factor
        latents = family.layout.unpack(latents, size[0] // factor, size[1] // factor)
        with torch.inference_mode():
            decoded = to_uint8(decode(pipe.vae, latents, DTYPES[dtype], family.upcast_vae))
        reference = diffusers_reference(*args, **call(steps))
        table[steps] = (
            int(np.abs(decoded.astype(int) - images).max()),
            int(np.abs(reference.astype(int) - images).max()),
        )
    print(f"\n{name} {hardware.name}: steps -> (vs the pipeline's latents decoded, vs its images) {table}")
    record_property("levels", table)
    assert all(latent <= 1 and image <= 2 for latent, image in table.values()), table


FULL_SIZE_DENOISERS = {
    "flux.1-schnell": ("flux", "FluxTransformer2DModel", {}, "flow-euler", "none"),
    "sana-sprint-1.6b": (
        "sana-sprint",
        "SanaTransformer2DModel",
        {"guidance_embeds": True, "qk_norm": "rms_norm_across_heads"},
        "scm",
        "distilled",
    ),
    "sd3.5-large-turbo": (
        "sd3",
        "SD3Transformer2DModel",
        {
            "num_layers": 38,
            "num_attention_heads": 38,
            "caption_projection_dim": 2432,
            "pos_embed_max_size": 192,
            "qk_norm": "rms_norm",
        },
        "flow-euler",
        "none",
    ),
    "pixart-lcm": ("pixart-alpha", "PixArtTransformer2DModel", {"caption_channels": 4096}, "lcm", "none"),
}
"""The few-step-1024 suite's transformers at their published configs (diffusers' class defaults are the released
models', with these overrides); the SDXL UNets are checked by ``test_the_sdxl_unet_at_full_size_runs_a_step``."""


@pytest.mark.skipif(DEVICE == "cpu", reason="full-size denoisers need the GPU's memory and speed")
@pytest.mark.parametrize("name", sorted(FULL_SIZE_DENOISERS))
def test_full_size_denoiser_runs_a_bf16_pass_through_its_family(name):
    """Random weights at the published config, bf16 on the device, 1024 px: the family's layout and forward take
    the latent in the precision the loop keeps it and return a finite prediction of its shape."""
    import diffusers
    from test_families import _meta_conditioning

    family_name, class_name, overrides, _, _ = FULL_SIZE_DENOISERS[name]
    family = FAMILIES.get(family_name)
    with torch.device(DEVICE):
        network = getattr(diffusers, class_name)(**overrides).to(torch.bfloat16).eval()
    channels = family.layout.channels(network)
    side = 128 if family_name != "sana-sprint" else 32
    conditioning = {
        k: (v if not isinstance(v, torch.Tensor) else torch.randn(v.shape, device=DEVICE).to(torch.bfloat16))
        for k, v in _meta_conditioning(family_name, 1, side, network).items()
    }
    if not getattr(network.config, "guidance_embeds", True) and family_name == "flux":
        conditioning.pop("guidance")
    if "encoder_attention_mask" in conditioning:
        conditioning["encoder_attention_mask"] = torch.ones_like(conditioning["encoder_attention_mask"])
    latent = torch.randn(1, channels, side, side, device=DEVICE, dtype=family.latent_dtype(torch.bfloat16))
    with torch.inference_mode():
        out = family.forward(network, family.layout.pack(latent), torch.tensor(500.0, device=DEVICE), **conditioning)
    out = family.layout.unpack(out, side, side)
    assert out.shape == latent.shape and torch.isfinite(out.float()).all()


@pytest.mark.skipif(DEVICE == "cpu", reason="full-size denoisers need the GPU's memory and speed")
def test_the_sdxl_unet_at_full_size_runs_a_step():
    """SDXL's UNet (LCM-SDXL, SDXL-Lightning, DMD2, Hyper-SDXL share it) at its published config, bf16, 1024 px."""
    from diffusers import UNet2DConditionModel

    config = {
        "sample_size": 128,
        "block_out_channels": [320, 640, 1280],
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
        "transformer_layers_per_block": [1, 2, 10],
        "attention_head_dim": [5, 10, 20],
        "cross_attention_dim": 2048,
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": 256,
        "projection_class_embeddings_input_dim": 2816,
        "use_linear_projection": True,
    }
    with torch.device(DEVICE):
        unet = UNet2DConditionModel(**config).to(torch.bfloat16).eval()
    bf16 = {"device": DEVICE, "dtype": torch.bfloat16}
    added = {"text_embeds": torch.randn(1, 1280, **bf16), "time_ids": torch.randn(1, 6, **bf16)}
    with torch.inference_mode():
        out = unet(
            torch.randn(1, 4, 128, 128, **bf16),
            torch.tensor(999, device=DEVICE),
            encoder_hidden_states=torch.randn(1, 77, 2048, **bf16),
            added_cond_kwargs=added,
        ).sample
    assert out.shape == (1, 4, 128, 128) and torch.isfinite(out.float()).all()
