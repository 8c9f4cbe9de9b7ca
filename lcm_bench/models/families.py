"""Model families: what differs between pipeline layouts, each a registry entry (diffusers' pipelines keep this
family-specific work small and explicit; an entry keeps it so without copying the sampling loop).

An entry says which ``model_index.json`` it recognises, how it turns prompts into the denoiser's conditioning
(``encode``: keyword arguments of the UNet for the prompts and, when guidance needs it, for the negative prompt), and
how to build a tiny random-weight pipeline of its layout for tests and harness checks. Entries are tried in order of
registration, a ``fallback`` entry (one that takes any UNet pipeline, like ``sd``) after all others; the first that
matches names the family.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lcm_bench.core.errors import UserError
from lcm_bench.core.registry import Registry
from lcm_bench.models.tiny import tiny_sd, tiny_sdxl


@dataclass(frozen=True)
class Conditioning:
    """What ``encode`` needs besides the pipeline and prompts."""

    negative_prompt: str
    need_uncond: bool
    height: int
    width: int
    device: str


@dataclass(frozen=True)
class Family:
    description: str
    matches: Callable[[dict[str, Any]], bool]
    encode: Callable[[Any, list[str], Conditioning], tuple[dict, dict | None]]
    build_tiny: Callable[[Path, bool], Any]
    fallback: bool = False


FAMILIES: Registry[Family] = Registry("model family")


def _negatives(prompts: list[str], how: Conditioning) -> list[str] | None:
    return [how.negative_prompt] * len(prompts) if how.need_uncond and how.negative_prompt else None


def encode_sdxl(pipe, prompts: list[str], how: Conditioning) -> tuple[dict, dict | None]:
    """Two text encoders' states, their pooled embedding and SDXL's size/crop ``time_ids`` (``text_time``)."""
    pe, npe, pooled, npooled = pipe.encode_prompt(
        prompts,
        device=how.device,
        num_images_per_prompt=1,
        do_classifier_free_guidance=how.need_uncond,
        negative_prompt=_negatives(prompts, how),
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
        lambda index: "XL" in index.get("_class_name", "") or "text_encoder_2" in index,
        encode_sdxl,
        tiny_sdxl,
    ),
)


def encode_sd(pipe, prompts: list[str], how: Conditioning) -> tuple[dict, dict | None]:
    """One CLIP text encoder's hidden states."""
    pe, npe = pipe.encode_prompt(
        prompts,
        device=how.device,
        num_images_per_prompt=1,
        do_classifier_free_guidance=how.need_uncond,
        negative_prompt=_negatives(prompts, how),
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
    ),
)


def family_of(index: dict[str, Any], where: Path, field: str) -> str:
    """The family of a pipeline folder's ``model_index.json``: the first registered entry that recognises it."""
    cls = index.get("_class_name", "")
    if "unet" not in index or "vae" not in index:
        raise UserError(
            f"{field}: {where} holds a {cls or 'pipeline'} without a UNet and VAE; lcm-bench samples "
            "UNet latent diffusion pipelines (Stable Diffusion 1.x/2.x, SDXL and their LCM variants)"
        )
    ordered = sorted(FAMILIES.items(), key=lambda item: item[1].fallback)
    return next(name for name, family in ordered if family.matches(index))
