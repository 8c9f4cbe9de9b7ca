"""Model families: what differs between pipeline layouts, each a registry entry (diffusers' pipelines keep this
family-specific work small and explicit; an entry keeps it so without copying the sampling loop).

An entry says which ``model_index.json`` it recognises, which component denoises (``unet`` or ``transformer``), how
it turns prompts into the denoiser's conditioning (``encode``: keyword arguments of the denoiser for the prompts and,
when guidance needs it, for the negative prompt), how the denoiser is called (``forward``: its prediction in the
latent's channels), what it predicts (``objective``: ``noise`` for diffusion models, ``flow`` for rectified flows;
a sampler names the objectives it samples), the guidance kinds it can take (the first its default), how its
denoiser takes the latent (``layout``), the sigmas its pipeline schedules where a scheduler takes custom ones, and
how to build a tiny random-weight pipeline of its layout for tests and harness checks.
Entries are tried in order of registration, a ``fallback`` entry (one that takes any UNet pipeline, like ``sd``)
after all others; the first that matches names the family.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lcm_bench.core.errors import UserError
from lcm_bench.core.registry import Registry
from lcm_bench.models.tiny import (
    tiny_flux,
    tiny_pixart,
    tiny_pixart_sigma,
    tiny_sana,
    tiny_sana_sprint,
    tiny_sd,
    tiny_sd3,
    tiny_sdxl,
)


@dataclass(frozen=True)
class Conditioning:
    """What ``encode`` needs besides the pipeline and prompts."""

    negative_prompt: str
    need_uncond: bool
    height: int
    width: int
    device: str


def _spatial_tokens(network, height: int, width: int) -> int:
    patch = getattr(network.config, "patch_size", None) or 1
    return (height // patch) * (width // patch)


@dataclass(frozen=True)
class LatentLayout:
    """How a family's denoiser takes the VAE's latent: ``channels(network)`` of that latent; ``pack(x)`` and
    ``unpack(x, h, w)`` between (B, C, h, w) and the denoiser's input; ``tokens(network, h, w)``: its image sequence
    length (what a dynamic shift depends on); ``multiple``: what the latent's sides must divide by."""

    channels: Callable[[Any], int]
    pack: Callable[[Any], Any]
    unpack: Callable[[Any, int, int], Any]
    tokens: Callable[[Any, int, int], int]
    multiple: int = 1


SPATIAL = LatentLayout(lambda network: network.config.in_channels, lambda x: x, lambda x, h, w: x, _spatial_tokens)


def pack_2x2(x):
    """FLUX's packing: each 2x2 patch of the latent one token of 4C channels (``FluxPipeline._pack_latents``)."""
    from diffusers import FluxPipeline

    b, c, h, w = x.shape
    return FluxPipeline._pack_latents(x, b, c, h, w)


def unpack_2x2(x, height: int, width: int):
    b, tokens, channels = x.shape
    return (
        x.view(b, height // 2, width // 2, channels // 4, 2, 2)
        .permute(0, 3, 1, 4, 2, 5)
        .reshape(b, channels // 4, height, width)
    )


PACKED_2X2 = LatentLayout(
    lambda network: network.config.in_channels // 4,
    pack_2x2,
    unpack_2x2,
    lambda network, h, w: (h // 2) * (w // 2),
    multiple=2,
)


def unet_forward(unet, x, t, **conditioning):
    """A UNet's noise (or v, or x0) prediction."""
    return unet(x, t, return_dict=False, **conditioning)[0]


@dataclass(frozen=True)
class Family:
    description: str
    matches: Callable[[dict[str, Any]], bool]
    encode: Callable[[Any, list[str], Conditioning], tuple[dict, dict | None]]
    build_tiny: Callable[[Path, bool], Any]
    fallback: bool = False
    denoiser: str = "unet"
    forward: Callable[..., Any] = unet_forward
    objective: str = "noise"
    guidance: tuple[str, ...] = ("cfg",)
    layout: LatentLayout = SPATIAL
    sigmas: Callable[[int], list[float]] | None = None

    def network(self, pipe):
        """The pipeline's denoising network."""
        return getattr(pipe, self.denoiser)


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
        lambda index: "unet" in index and ("XL" in index.get("_class_name", "") or "text_encoder_2" in index),
        encode_sdxl,
        tiny_sdxl,
        guidance=("cfg", "embedding"),
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
        guidance=("cfg", "embedding"),
    ),
)


def pixart_added_conditions(pipe, batch: int, how: Conditioning) -> dict[str, Any]:
    """PixArt's resolution and aspect-ratio micro-conditioning where its transformer takes it (by default the
    1024-px checkpoints, ``sample_size`` 128), else none; in the text encoder's dtype, as the pipeline builds them."""
    import torch

    if not pipe.transformer.use_additional_conditions:
        return {"resolution": None, "aspect_ratio": None}
    dtype = pipe.text_encoder.dtype
    resolution = torch.tensor([how.height, how.width]).repeat(batch, 1).to(how.device, dtype)
    aspect_ratio = torch.tensor([float(how.height / how.width)]).repeat(batch, 1).to(how.device, dtype)
    return {"resolution": resolution, "aspect_ratio": aspect_ratio}


def masked_text_encoder(
    max_sequence_length: int,
    options: Callable[[Any], dict[str, Any]] = lambda pipe: {},
    added: Callable[[Any, int, Conditioning], dict[str, Any]] = lambda pipe, batch, how: {},
):
    """Text states and their attention mask over ``max_sequence_length`` tokens (PixArt's T5, SANA's Gemma 2), with
    the pipeline's further ``options(pipe)`` and the family's ``added`` conditioning. Captions are not cleaned (the
    pipelines clean them only where ``bs4`` and ``ftfy`` are installed, which would make a run depend on the
    environment)."""

    def encode(pipe, prompts: list[str], how: Conditioning) -> tuple[dict, dict | None]:
        pe, mask, npe, nmask = pipe.encode_prompt(
            prompts,
            do_classifier_free_guidance=how.need_uncond,
            negative_prompt=how.negative_prompt or "",
            num_images_per_prompt=1,
            device=how.device,
            clean_caption=False,
            max_sequence_length=max_sequence_length,
            **options(pipe),
        )
        extra = added(pipe, len(prompts), how)
        cond = {"encoder_hidden_states": pe, "encoder_attention_mask": mask, **extra}
        if not how.need_uncond:
            return cond, None
        return cond, {"encoder_hidden_states": npe, "encoder_attention_mask": nmask, **extra}

    return encode


def pixart_conditions(pipe, batch: int, how: Conditioning) -> dict[str, Any]:
    return {"added_cond_kwargs": pixart_added_conditions(pipe, batch, how)}


def noise_half(out, config):
    """Of a learned-variance output (twice the latent's channels), the prediction half; else the output."""
    return out.chunk(2, dim=1)[0] if config.out_channels // 2 == config.in_channels else out


def pixart_forward(transformer, x, t, **conditioning):
    """PixArt's transformer at one timestep per row; of a learned-variance output (twice the latent's channels),
    the noise half."""
    return noise_half(
        transformer(x, timestep=t.expand(x.shape[0]), return_dict=False, **conditioning)[0], transformer.config
    )


def _pipeline_class(*names: str) -> Callable[[dict[str, Any]], bool]:
    return lambda index: index.get("_class_name") in names


for _name, _description, _class, _tokens, _build in (
    ("pixart-alpha", "PixArt-alpha (and PixArt-LCM): DiT on T5 (120 tokens)", "PixArtAlphaPipeline", 120, tiny_pixart),
    ("pixart-sigma", "PixArt-Sigma: DiT on T5 (300 tokens)", "PixArtSigmaPipeline", 300, tiny_pixart_sigma),
):
    FAMILIES.register(
        _name,
        Family(
            _description,
            _pipeline_class(_class),
            masked_text_encoder(_tokens, added=pixart_conditions),
            _build,
            denoiser="transformer",
            forward=pixart_forward,
        ),
    )


def encode_sd3(pipe, prompts: list[str], how: Conditioning) -> tuple[dict, dict | None]:
    """Two CLIPs' penultimate states beside T5's (256 tokens) and the CLIPs' pooled projections."""
    pe, npe, pooled, npooled = pipe.encode_prompt(
        prompts,
        None,
        None,
        device=how.device,
        num_images_per_prompt=1,
        do_classifier_free_guidance=how.need_uncond,
        negative_prompt=_negatives(prompts, how),
    )
    cond = {"encoder_hidden_states": pe, "pooled_projections": pooled}
    return cond, ({"encoder_hidden_states": npe, "pooled_projections": npooled} if how.need_uncond else None)


def sd3_forward(transformer, x, t, **conditioning):
    """SD3's MMDiT velocity at one timestep (sigma x 1000) per row."""
    return transformer(hidden_states=x, timestep=t.expand(x.shape[0]), return_dict=False, **conditioning)[0]


FAMILIES.register(
    "sd3",
    Family(
        "Stable Diffusion 3 / 3.5: MMDiT rectified flow on two CLIPs and T5, VAE with a shift",
        _pipeline_class("StableDiffusion3Pipeline"),
        encode_sd3,
        tiny_sd3,
        denoiser="transformer",
        forward=sd3_forward,
        objective="flow",
    ),
)


def encode_flux(pipe, prompts: list[str], how: Conditioning) -> tuple[dict, dict | None]:
    """T5 states (512 tokens), CLIP's pooled output, the text ids and the packed latent's image ids."""
    pe, pooled, text_ids = pipe.encode_prompt(
        prompts, None, device=how.device, num_images_per_prompt=1, max_sequence_length=512
    )
    factor = pipe.vae_scale_factor * 2
    image_ids = pipe._prepare_latent_image_ids(
        len(prompts), how.height // factor, how.width // factor, how.device, pe.dtype
    )
    return {"encoder_hidden_states": pe, "pooled_projections": pooled, "txt_ids": text_ids, "img_ids": image_ids}, None


def flux_forward(transformer, x, t, **conditioning):
    """FLUX's velocity at one timestep per row, given as sigma (t / 1000)."""
    timestep = t.expand(x.shape[0]).to(x.dtype)
    return transformer(hidden_states=x, timestep=timestep / 1000, return_dict=False, **conditioning)[0]


def flux_sigmas(steps: int) -> list[float]:
    """FluxPipeline's schedule: sigmas evenly from 1 to 1/n (shifted by the scheduler)."""
    import numpy as np

    return list(np.linspace(1.0, 1 / steps, steps))


FAMILIES.register(
    "flux",
    Family(
        "FLUX.1 (schnell, dev): MMDiT rectified flow on CLIP and T5, 2x2-packed latents, VAE with a shift",
        _pipeline_class("FluxPipeline"),
        encode_flux,
        tiny_flux,
        denoiser="transformer",
        forward=flux_forward,
        objective="flow",
        guidance=("none", "distilled"),
        layout=PACKED_2X2,
        sigmas=flux_sigmas,
    ),
)


def sana_instruction(pipe) -> dict[str, Any]:
    """The instruction the SANA pipelines prefix to a prompt by default (their ``__call__``'s
    ``complex_human_instruction``; the negative prompt goes without it, as the pipeline encodes it)."""
    import inspect

    default = inspect.signature(type(pipe).__call__).parameters["complex_human_instruction"].default
    return {"complex_human_instruction": default}


def sana_forward(transformer, x, t, **conditioning):
    """SANA's velocity at one timestep per row (times the transformer's ``timestep_scale``), in float32; of a
    learned-variance output, the first half."""
    timestep = t.expand(x.shape[0]) * transformer.config.timestep_scale
    return noise_half(
        transformer(x, timestep=timestep, return_dict=False, **conditioning)[0].float(), transformer.config
    )


FAMILIES.register(
    "sana",
    Family(
        "SANA: linear-attention DiT rectified flow on Gemma 2 (with an instruction prefix), DC-AE (32x)",
        _pipeline_class("SanaPipeline"),
        masked_text_encoder(300, options=sana_instruction),
        tiny_sana,
        denoiser="transformer",
        forward=sana_forward,
        objective="flow",
    ),
)


def sana_sprint_encoder(pipe, prompts: list[str], how: Conditioning) -> tuple[dict, None]:
    """Gemma 2 states and mask as SANA's (no negative prompt: SANA-Sprint takes no classifier-free guidance), and
    the scheduler's sigma_data, which the TrigFlow wrapper of ``sana_sprint_forward`` needs."""
    pe, mask = pipe.encode_prompt(
        prompts,
        num_images_per_prompt=1,
        device=how.device,
        clean_caption=False,
        max_sequence_length=300,
        **sana_instruction(pipe),
    )
    return {
        "encoder_hidden_states": pe,
        "encoder_attention_mask": mask,
        "sigma_data": pipe.scheduler.config.sigma_data,
    }, None


def sana_sprint_forward(transformer, x, t, sigma_data: float, guidance, **conditioning):
    """SANA-Sprint's prediction in TrigFlow time, as SanaSprintPipeline wraps its transformer (Lu & Song 2024): the
    input scaled to unit variance at the sCM time sin t / (cos t + sin t), the output mapped back to TrigFlow's
    velocity times sigma_data; the guidance value times the transformer's ``guidance_embeds_scale``."""
    import torch

    timestep = t.expand(x.shape[0])
    scm = torch.sin(timestep) / (torch.cos(timestep) + torch.sin(timestep))
    e = scm.view(-1, 1, 1, 1)
    norm = torch.sqrt(e**2 + (1 - e) ** 2)
    x_in = x / sigma_data * norm
    guidance = guidance.to(conditioning["encoder_hidden_states"].dtype) * transformer.config.guidance_embeds_scale
    out = transformer(x_in, guidance=guidance, timestep=scm, return_dict=False, **conditioning)[0]
    out = ((1 - 2 * e) * x_in + (1 - 2 * e + 2 * e**2) * out) / norm
    return out.float() * sigma_data


FAMILIES.register(
    "sana-sprint",
    Family(
        "SANA-Sprint: SANA distilled with sCM (TrigFlow time), a guidance embedding, 1-4 steps",
        _pipeline_class("SanaSprintPipeline"),
        sana_sprint_encoder,
        tiny_sana_sprint,
        denoiser="transformer",
        forward=sana_sprint_forward,
        objective="trigflow",
        guidance=("distilled",),
    ),
)


def family_of(index: dict[str, Any], where: Path, field: str) -> str:
    """The family of a pipeline folder's ``model_index.json``: the first registered entry that recognises it and
    finds its denoiser and VAE there."""
    cls = index.get("_class_name", "")
    ordered = sorted(FAMILIES.items(), key=lambda item: item[1].fallback)
    name, family = next((name, family) for name, family in ordered if family.matches(index))
    if family.denoiser not in index or "vae" not in index:
        known = ", ".join(n for n, f in ordered if not f.fallback)
        raise UserError(
            f"{field}: {where} holds a {cls or 'pipeline'} that no registered family takes (a UNet pipeline, or "
            f"one of: {known}; see lcm-bench list)"
        )
    return name
