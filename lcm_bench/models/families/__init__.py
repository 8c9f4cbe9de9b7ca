"""Model families: what differs between pipeline layouts, each a registry entry (diffusers' pipelines keep this
family-specific work small and explicit; an entry keeps it so without copying the sampling loop).

An entry says which ``model_index.json`` it recognises, which component denoises (``unet`` or ``transformer``), how
it turns prompts into the denoiser's conditioning (``encode``: keyword arguments of the denoiser for the prompts and,
when guidance needs it, for the negative prompt), how the denoiser is called (``forward``: its prediction in the
latent's channels), what it predicts (``objective``: ``noise`` for diffusion models, ``flow`` for rectified flows;
a sampler names the objectives it samples), the guidance kinds it can take (the first its default), how its
denoiser takes the latent (``layout``), the sigmas its pipeline schedules where a scheduler takes custom ones, and
how to build a tiny random-weight pipeline of its layout for tests and harness checks. Precision follows the family's
pipeline: ``float32_latents`` (SANA keeps latents and scheduler state in float32 and casts the denoiser's input to
its dtype), ``upcast_vae`` (SDXL decodes an fp16 VAE marked ``force_upcast`` in float32); so does the text length
(``text_length``: the pipeline's default ``max_sequence_length`` for families whose text encoder takes one; a method's
``text_length`` overrides it).
Entries are tried in order of registration, a ``fallback`` entry (one that takes any UNet pipeline, like ``sd``)
after all others; the first that matches names the family.
"""

from __future__ import annotations

from lcm_bench.models.families import flux, pixart, sana, sd, sd3
from lcm_bench.models.families.base import (
    FAMILIES,
    PACKED_2X2,
    SPATIAL,
    Conditioning,
    Family,
    LatentLayout,
    family_of,
    masked_text_encoder,
    noise_half,
    pack_2x2,
    unet_forward,
    unpack_2x2,
)
from lcm_bench.models.families.sana import sana_instruction
from lcm_bench.models.families.sd import encode_sd

__all__ = [
    "FAMILIES",
    "PACKED_2X2",
    "SPATIAL",
    "Conditioning",
    "Family",
    "LatentLayout",
    "encode_sd",
    "family_of",
    "flux",
    "masked_text_encoder",
    "noise_half",
    "pack_2x2",
    "pixart",
    "sana",
    "sana_instruction",
    "sd",
    "sd3",
    "unet_forward",
    "unpack_2x2",
]
