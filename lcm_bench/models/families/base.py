"""The family entry, its registry, the latent layouts and the conditioning helpers the families share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from lcm_bench.core.errors import UserError
from lcm_bench.core.registry import Registry


@dataclass(frozen=True)
class Conditioning:
    """What ``encode`` needs besides the pipeline and prompts."""

    negative_prompt: str
    need_uncond: bool
    height: int
    width: int
    device: str
    text_length: int | None = None


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
    """The inverse of ``pack_2x2`` for a latent of ``height`` x ``width`` (``FluxPipeline._unpack_latents`` at a
    scale factor of 1)."""
    from diffusers import FluxPipeline

    return FluxPipeline._unpack_latents(x, height, width, 1)


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
    sigmas: Callable[[int], Any] | None = None
    forward_options: Callable[[Any], dict[str, Any]] = lambda pipe: {}
    float32_latents: bool = False
    text_length: int | None = None
    upcast_vae: bool = False
    bins: Callable[[int], dict[str, list[float]] | None] | None = None
    openvino: bool = False
    """Whether lcm-bench's OpenVINO runtime converts its networks (the Stable Diffusion 1.x/2.x layout)."""

    def latent_dtype(self, dtype):
        """The precision the pipeline keeps latents and scheduler state in: float32 for the SANA pipelines (they
        cast the denoiser's input to its dtype at every call), else the pipeline's dtype."""
        import torch

        return torch.float32 if self.float32_latents else dtype

    def network(self, pipe):
        """The pipeline's denoising network."""
        return getattr(pipe, self.denoiser)

    def bound_forward(self, pipe) -> Callable[..., Any]:
        """``forward`` with what it takes from the pipeline beyond the conditioning (``forward_options``)."""
        return partial(self.forward, **self.forward_options(pipe))


FAMILIES: Registry[Family] = Registry("model family")


def negatives(prompts: list[str], how: Conditioning) -> list[str] | None:
    return [how.negative_prompt] * len(prompts) if how.need_uncond and how.negative_prompt else None


def masked_text_encoder(
    options: Callable[[Any], dict[str, Any]] = lambda pipe: {},
    added: Callable[[Any, int, Conditioning], dict[str, Any]] = lambda pipe, batch, how: {},
):
    """Text states and their attention mask over the family's text length (PixArt's T5, SANA's Gemma 2), with
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
            max_sequence_length=how.text_length,
            **options(pipe),
        )
        extra = added(pipe, len(prompts), how)
        cond = {"encoder_hidden_states": pe, "encoder_attention_mask": mask, **extra}
        if not how.need_uncond:
            return cond, None
        return cond, {"encoder_hidden_states": npe, "encoder_attention_mask": nmask, **extra}

    return encode


def noise_half(out, config):
    """Of a learned-variance output (twice the latent's channels), the prediction half; else the output."""
    return out.chunk(2, dim=1)[0] if config.out_channels // 2 == config.in_channels else out


def aspect_ratio_bins(module: str, tables: dict[int, str]) -> Callable[[int], dict[str, list[float]] | None]:
    """The aspect-ratio table a pipeline bins a size to for its transformer's ``sample_size`` (diffusers'
    ``ASPECT_RATIO_*_BIN`` in ``module``), None for a sample size it has none for."""

    def bins(sample_size: int) -> dict[str, list[float]] | None:
        import importlib

        name = tables.get(sample_size)
        return None if name is None else getattr(importlib.import_module(f"diffusers.pipelines.{module}"), name)

    return bins


def pipeline_class(*names: str) -> Callable[[dict[str, Any]], bool]:
    return lambda index: index.get("_class_name") in names


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
