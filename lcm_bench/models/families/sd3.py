"""Stable Diffusion 3 / 3.5: an MMDiT rectified flow on two CLIPs and T5."""

from __future__ import annotations

from lcm_bench.models.families.base import FAMILIES, Conditioning, Family, negatives, pipeline_class
from lcm_bench.models.tiny import tiny_sd3


def encode_sd3(pipe, prompts: list[str], how: Conditioning) -> tuple[dict, dict | None]:
    """Two CLIPs' penultimate states beside T5's (``text_length`` tokens, 256 by default) and the CLIPs' pooled
    projections."""
    pe, npe, pooled, npooled = pipe.encode_prompt(
        prompts,
        None,
        None,
        device=how.device,
        num_images_per_prompt=1,
        do_classifier_free_guidance=how.need_uncond,
        negative_prompt=negatives(prompts, how),
        max_sequence_length=how.text_length,
    )
    cond = {"encoder_hidden_states": pe, "pooled_projections": pooled}
    return cond, ({"encoder_hidden_states": npe, "pooled_projections": npooled} if how.need_uncond else None)


def sd3_forward(transformer, x, t, **conditioning):
    """SD3's MMDiT velocity at one timestep (sigma x 1000) per row."""
    x = x.to(transformer.dtype)
    return transformer(hidden_states=x, timestep=t.expand(x.shape[0]), return_dict=False, **conditioning)[0]


FAMILIES.register(
    "sd3",
    Family(
        "Stable Diffusion 3 / 3.5: MMDiT rectified flow on two CLIPs and T5, VAE with a shift",
        pipeline_class("StableDiffusion3Pipeline"),
        encode_sd3,
        tiny_sd3,
        denoiser="transformer",
        forward=sd3_forward,
        objective="flow",
        text_length=256,
    ),
)
