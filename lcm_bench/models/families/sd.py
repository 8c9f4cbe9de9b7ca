"""Stable Diffusion 1.x/2.x and SDXL layouts: CLIP text encoders and a UNet."""

from __future__ import annotations

from lcm_bench.models.families.base import FAMILIES, Conditioning, Family, negatives
from lcm_bench.models.tiny import tiny_sd, tiny_sdxl


def encode_sdxl(pipe, prompts: list[str], how: Conditioning) -> tuple[dict, dict | None]:
    """Two text encoders' states, their pooled embedding and SDXL's size/crop ``time_ids`` (``text_time``)."""
    pe, npe, pooled, npooled = pipe.encode_prompt(
        prompts,
        device=how.device,
        num_images_per_prompt=1,
        do_classifier_free_guidance=how.need_uncond,
        negative_prompt=negatives(prompts, how),
    )
    proj_dim = pipe.text_encoder_2.config.projection_dim if pipe.text_encoder_2 is not None else pooled.shape[-1]
    size = (how.height, how.width)
    time_ids = pipe._get_add_time_ids(size, (0, 0), size, dtype=pe.dtype, text_encoder_projection_dim=proj_dim)
    time_ids = time_ids.to(how.device).repeat(len(prompts), 1)
    cond = {"encoder_hidden_states": pe, "added_cond_kwargs": {"text_embeds": pooled, "time_ids": time_ids}}
    if not how.need_uncond:
        return cond, None
    return cond, {"encoder_hidden_states": npe, "added_cond_kwargs": {"text_embeds": npooled, "time_ids": time_ids}}


FAMILIES.register(
    "sdxl",
    Family(
        "Stable Diffusion XL layout: two CLIP text encoders, pooled text and size conditioning (SDXL, SSD-1B)",
        lambda index: "unet" in index and ("XL" in index.get("_class_name", "") or "text_encoder_2" in index),
        encode_sdxl,
        tiny_sdxl,
        guidance=("cfg", "embedding"),
        upcast_vae=True,
    ),
)


def encode_sd(pipe, prompts: list[str], how: Conditioning) -> tuple[dict, dict | None]:
    """One CLIP text encoder's hidden states."""
    pe, npe = pipe.encode_prompt(
        prompts,
        device=how.device,
        num_images_per_prompt=1,
        do_classifier_free_guidance=how.need_uncond,
        negative_prompt=negatives(prompts, how),
    )
    return {"encoder_hidden_states": pe}, ({"encoder_hidden_states": npe} if how.need_uncond else None)


FAMILIES.register(
    "sd",
    Family(
        "Stable Diffusion 1.x/2.x layout: one CLIP text encoder, UNet, AutoencoderKL (and their LCM variants)",
        lambda index: True,
        encode_sd,
        tiny_sd,
        fallback=True,
        guidance=("cfg", "embedding"),
        openvino=True,
    ),
)
