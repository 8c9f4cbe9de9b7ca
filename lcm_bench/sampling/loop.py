"""One loop for every sampler: encode prompts, denoise with a diffusers scheduler, decode with the VAE.

The model's family (``lcm_bench.models.families``) turns prompts into conditioning; the guidance kind
(``lcm_bench.sampling.guidance``) wraps the network and owns its cost. Every network evaluation is counted per image
row. Each sample has its own CPU generator seeded
from (cell seed, sample index), for its initial latents and any noise the sampler injects, so batch size and
sharding never change an image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lcm_bench.models.families import FAMILIES, Conditioning
from lcm_bench.sampling.generation import GENERATION_VERSION, sample_seed  # noqa: F401 - the loop's identity
from lcm_bench.sampling.guidance import GUIDANCE, CountingNetwork
from lcm_bench.sampling.samplers import build_scheduler, schedule_info
from lcm_bench.sampling.timers import PhaseTimer


@dataclass(frozen=True)
class GenerationSettings:
    steps: int
    guidance_scale: float
    guidance_mode: str
    height: int
    width: int
    negative_prompt: str
    device: str
    dtype: torch.dtype


def encode_prompts(pipe, family: str, prompts: list[str], negative: str, need_uncond: bool, s: GenerationSettings):
    """UNet keyword arguments for the prompts and (when guided) for the negative prompt, as the family encodes them."""
    how = Conditioning(negative, need_uncond, s.height, s.width, s.device)
    return FAMILIES.get(family).encode(pipe, prompts, how)


def initial_latents(generators: list[torch.Generator], shape: tuple[int, ...]) -> torch.Tensor:
    return torch.cat([torch.randn((1, *shape), generator=g, dtype=torch.float32) for g in generators])


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """VAE output in [-1, 1] -> uint8 HWC, rounding as diffusers' image processor does (NaN -> 0: such images are
    counted apart)."""
    images = (images.float() / 2 + 0.5).nan_to_num(0.0).clamp(0, 1)
    return (images.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)


def denoise(pipe, scheduler, step_kwargs: dict, denoiser, generators, s: GenerationSettings) -> torch.Tensor:
    """The scheduler's loop from each sample's own initial noise to the final latents."""
    factor = pipe.vae_scale_factor
    shape = (pipe.unet.config.in_channels, s.height // factor, s.width // factor)
    scheduler.set_timesteps(s.steps, device=s.device)
    latents = initial_latents(generators, shape).to(s.device, s.dtype) * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        model_input = scheduler.scale_model_input(latents, t)
        latents = scheduler.step(denoiser(model_input, t), t, latents, **step_kwargs).prev_sample
    return latents


def decode(vae, latents: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The VAE's images of ``latents`` (in float32 where an fp16 VAE asks to be upcast, as diffusers does)."""
    upcast = dtype == torch.float16 and getattr(vae.config, "force_upcast", False)
    decoder = vae.to(torch.float32) if upcast else vae
    latents = latents.to(torch.float32 if upcast else dtype) / vae.config.scaling_factor
    return decoder.decode(latents, return_dict=False)[0]


def generate_batch(
    pipe,
    family: str,
    sampler_spec,
    settings: GenerationSettings,
    prompts: list[str],
    seeds: list[int],
    timer: PhaseTimer,
    nonfinite: list[int] | None = None,
) -> tuple[np.ndarray, int, dict[str, Any]]:
    """Images (uint8, NHWC) for one batch, the network evaluations it took, and the resolved schedule; the batch
    positions of images holding NaN or inf (an fp16 VAE overflow) are appended to ``nonfinite``."""
    s = settings
    guidance = GUIDANCE.get(s.guidance_mode)
    generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
    need_uncond = guidance.needs_negative(s.guidance_scale)
    with torch.inference_mode():
        with timer("text_encoding"):
            cond, uncond = encode_prompts(pipe, family, prompts, s.negative_prompt, need_uncond, s)
        scheduler, step_kwargs, takes_generator = build_scheduler(sampler_spec, pipe.scheduler.config)
        if takes_generator:
            step_kwargs = {**step_kwargs, "generator": generators}
        net = CountingNetwork(pipe.unet)
        denoiser = guidance.denoiser(net, cond, uncond, s.guidance_scale, len(prompts), s.dtype, s.device)
        with timer("denoising"):
            latents = denoise(pipe, scheduler, step_kwargs, denoiser, generators, s)
        with timer("vae_decoding"):
            images = decode(pipe.vae, latents, s.dtype)
        if nonfinite is not None:
            nonfinite.extend(torch.nonzero(~torch.isfinite(images).flatten(1).all(1)).flatten().tolist())
        step_kwargs.pop("generator", None)
        return to_uint8(images), net.evaluations, schedule_info(sampler_spec, scheduler, step_kwargs)
