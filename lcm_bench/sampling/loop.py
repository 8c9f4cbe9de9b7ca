"""One loop for every sampler: encode prompts, denoise with a diffusers scheduler, decode with the VAE.

Guidance is a wrapper around the network (k-diffusion ``external.py`` style): classifier-free guidance batches
the unconditional and conditional passes (2 NFE per step), an LCM-style UNet takes w as ``timestep_cond``
(1 NFE per step). Every network evaluation is counted per image row. Each sample has its own CPU generator seeded
from (cell seed, sample index), for its initial latents and any noise the sampler injects, so batch size and
sharding never change an image.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lcm_bench.sampling.guidance import CountingNetwork, classifier_free, embedded_guidance, guidance_embedding
from lcm_bench.sampling.samplers import build_scheduler, schedule_info
from lcm_bench.sampling.timers import PhaseTimer

GENERATION_VERSION = 1
"""Bumped by hand whenever this loop's images change (tests/test_golden.py pins it): part of every cell's
fingerprint, so cells sampled by older code are recomputed."""


def sample_seed(cell_seed: int, index: int) -> int:
    """The seed of sample ``index`` of a cell: a hash, so seeds of neighbouring cells never overlap."""
    return int(hashlib.sha256(f"lcm-bench/{cell_seed}/{index}".encode()).hexdigest()[:15], 16)


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
    """UNet keyword arguments for the prompts and (when guided) for the negative prompt."""
    negatives = [negative] * len(prompts) if need_uncond and negative else None
    if family == "sdxl":
        pe, npe, pooled, npooled = pipe.encode_prompt(
            prompts,
            device=s.device,
            num_images_per_prompt=1,
            do_classifier_free_guidance=need_uncond,
            negative_prompt=negatives,
        )
        proj_dim = pipe.text_encoder_2.config.projection_dim if pipe.text_encoder_2 is not None else pooled.shape[-1]
        time_ids = (
            pipe._get_add_time_ids(
                (s.height, s.width), (0, 0), (s.height, s.width), dtype=pe.dtype, text_encoder_projection_dim=proj_dim
            )
            .to(s.device)
            .repeat(len(prompts), 1)
        )
        cond = {"encoder_hidden_states": pe, "added_cond_kwargs": {"text_embeds": pooled, "time_ids": time_ids}}
        uncond = None
        if need_uncond:
            uncond = {"encoder_hidden_states": npe, "added_cond_kwargs": {"text_embeds": npooled, "time_ids": time_ids}}
        return cond, uncond
    pe, npe = pipe.encode_prompt(
        prompts,
        device=s.device,
        num_images_per_prompt=1,
        do_classifier_free_guidance=need_uncond,
        negative_prompt=negatives,
    )
    return {"encoder_hidden_states": pe}, ({"encoder_hidden_states": npe} if need_uncond else None)


def initial_latents(generators: list[torch.Generator], shape: tuple[int, ...]) -> torch.Tensor:
    return torch.cat([torch.randn((1, *shape), generator=g, dtype=torch.float32) for g in generators])


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """VAE output in [-1, 1] -> uint8 HWC, rounding as diffusers' image processor does (NaN -> 0: such images are
    counted apart)."""
    images = (images.float() / 2 + 0.5).nan_to_num(0.0).clamp(0, 1)
    return (images.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)


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
    unet, vae = pipe.unet, pipe.vae
    generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
    need_uncond = s.guidance_mode == "cfg" and s.guidance_scale > 1.0
    with torch.inference_mode():
        with timer("text_encoding"):
            cond, uncond = encode_prompts(pipe, family, prompts, s.negative_prompt, need_uncond, s)
        scheduler, step_kwargs, takes_generator = build_scheduler(sampler_spec, pipe.scheduler.config)
        if takes_generator:
            step_kwargs = {**step_kwargs, "generator": generators}
        net = CountingNetwork(unet)
        if s.guidance_mode == "embedding":
            w_emb = guidance_embedding(s.guidance_scale - 1.0, unet.config.time_cond_proj_dim, len(prompts), s.dtype)
            denoise = embedded_guidance(net, cond, w_emb.to(s.device))
        else:
            denoise = classifier_free(net, cond, uncond, s.guidance_scale)
        factor = pipe.vae_scale_factor
        shape = (unet.config.in_channels, s.height // factor, s.width // factor)
        with timer("denoising"):
            scheduler.set_timesteps(s.steps, device=s.device)
            latents = initial_latents(generators, shape).to(s.device, s.dtype) * scheduler.init_noise_sigma
            for t in scheduler.timesteps:
                model_input = scheduler.scale_model_input(latents, t)
                latents = scheduler.step(denoise(model_input, t), t, latents, **step_kwargs).prev_sample
        with timer("vae_decoding"):
            upcast = s.dtype == torch.float16 and getattr(vae.config, "force_upcast", False)
            decoder = vae.to(torch.float32) if upcast else vae
            latents = latents.to(torch.float32 if upcast else s.dtype) / vae.config.scaling_factor
            images = decoder.decode(latents, return_dict=False)[0]
        if nonfinite is not None:
            nonfinite.extend(torch.nonzero(~torch.isfinite(images).flatten(1).all(1)).flatten().tolist())
        step_kwargs.pop("generator", None)
        return to_uint8(images), net.evaluations, schedule_info(scheduler, step_kwargs)
