"""FLUX.1: an MMDiT rectified flow on 2x2-packed latents."""

from __future__ import annotations

from lcm_bench.models.families.base import FAMILIES, PACKED_2X2, Conditioning, Family, pipeline_class
from lcm_bench.models.tiny import tiny_flux


def encode_flux(pipe, prompts: list[str], how: Conditioning) -> tuple[dict, dict | None]:
    """T5 states (``text_length`` tokens: FluxPipeline's default 512; FLUX.1-schnell's card and reference code use
    256), CLIP's pooled output, the text ids and the packed latent's image ids."""
    pe, pooled, text_ids = pipe.encode_prompt(
        prompts, None, device=how.device, num_images_per_prompt=1, max_sequence_length=how.text_length
    )
    factor = pipe.vae_scale_factor * 2
    image_ids = pipe._prepare_latent_image_ids(
        len(prompts), how.height // factor, how.width // factor, how.device, pe.dtype
    )
    return {"encoder_hidden_states": pe, "pooled_projections": pooled, "txt_ids": text_ids, "img_ids": image_ids}, None


def flux_forward(transformer, x, t, **conditioning):
    """FLUX's velocity at one timestep per row, given as sigma (t / 1000)."""
    x = x.to(transformer.dtype)
    timestep = t.expand(x.shape[0]).to(x.dtype)
    return transformer(hidden_states=x, timestep=timestep / 1000, return_dict=False, **conditioning)[0]


def flux_sigmas(steps: int):
    """FluxPipeline's schedule: sigmas evenly from 1 to 1/n (shifted by the scheduler), as the numpy array the
    pipeline passes (a flow-mode UniPC shifts them arithmetically and takes no list)."""
    import numpy as np

    return np.linspace(1.0, 1 / steps, steps)


FAMILIES.register(
    "flux",
    Family(
        "FLUX.1 (schnell, dev): MMDiT rectified flow on CLIP and T5, 2x2-packed latents, VAE with a shift",
        pipeline_class("FluxPipeline"),
        encode_flux,
        tiny_flux,
        denoiser="transformer",
        forward=flux_forward,
        objective="flow",
        guidance=("none", "distilled"),
        layout=PACKED_2X2,
        sigmas=flux_sigmas,
        text_length=512,
    ),
)
