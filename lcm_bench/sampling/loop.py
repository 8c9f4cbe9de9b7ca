"""One loop for every sampler: encode prompts, denoise with a diffusers scheduler, decode with the VAE.

The model's family (``lcm_bench.models.families``) turns prompts into conditioning; the guidance kind
(``lcm_bench.sampling.guidance``) wraps the network and owns its cost. Every network evaluation is counted per image
row. Each sample has its own CPU generator seeded
from (cell seed, sample index), for its initial latents and any noise the sampler injects, so batch size and
sharding never change an image.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np
import torch

from lcm_bench.core.spec import SamplerSpec
from lcm_bench.models.families import FAMILIES, Conditioning
from lcm_bench.sampling.generation import GENERATION_VERSION, sample_seed  # noqa: F401 - the loop's identity
from lcm_bench.sampling.guidance import GUIDANCE, CountingNetwork, TextStates
from lcm_bench.sampling.samplers import SAMPLERS, build_scheduler, custom_timesteps, schedule_info
from lcm_bench.sampling.timers import PhaseTimer


@dataclass(frozen=True)
class GenerationSettings:
    """How a cell's batches are generated: the sampler and its steps, the guidance scale and kind, the image size,
    the negative prompt, device and dtype, the text length (None: the family's) and whether the size is binned."""

    steps: int
    guidance_scale: float
    guidance_mode: str
    height: int
    width: int
    negative_prompt: str
    device: str
    dtype: torch.dtype
    text_length: int | None = None
    binning: bool = False
    sampler: SamplerSpec = field(kw_only=True)


class Samples(NamedTuple):
    """One batch's samples: each image's prompt and its own seed."""

    prompts: list[str]
    seeds: list[int]


class GeneratedBatch(NamedTuple):
    """A batch's images (uint8, NHWC), the network evaluations it took, the resolved schedule, and the batch
    positions of images holding NaN or inf (an fp16 VAE overflow)."""

    images: np.ndarray
    evaluations: int
    schedule: dict[str, Any]
    nonfinite: list[int]


def encode_prompts(pipe, family: str, prompts: list[str], need_uncond: bool, s: GenerationSettings):
    """Denoiser keyword arguments for the prompts and (when guided) for the settings' negative prompt, as the
    family encodes them, over the method's text length or the family's default."""
    entry = FAMILIES.get(family)
    length = s.text_length or entry.text_length
    how = Conditioning(s.negative_prompt, need_uncond, s.height, s.width, s.device, length)
    return entry.encode(pipe, prompts, how)


def initial_latents(generators: list[torch.Generator], shape: tuple[int, ...]) -> torch.Tensor:
    return torch.cat([torch.randn((1, *shape), generator=g, dtype=torch.float32) for g in generators])


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """VAE output in [-1, 1] -> uint8 HWC, rounding as diffusers' image processor does (NaN -> 0: such images are
    counted apart)."""
    images = (images.float() / 2 + 0.5).nan_to_num(0.0).clamp(0, 1)
    return (images.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)


def latent_shape(pipe, family, network, s: GenerationSettings) -> tuple[int, int, int]:
    """One sample's VAE latent: the channels the family's denoiser takes over the image downsampled by the VAE."""
    factor = pipe.vae_scale_factor
    return family.layout.channels(network), s.height // factor, s.width // factor


def timestep_kwargs(scheduler, family, steps: int, tokens: int) -> dict[str, Any]:
    """What ``set_timesteps`` takes besides the step count, as the family's pipeline passes it: the family's sigmas
    where the scheduler takes custom ones (FLUX: 1 to 1/n; a solver in flow-sigma mode, UniPC or DPM-Solver++,
    computes its own, as FluxPipeline leaves them to it), and where the scheduler shifts by resolution, ``mu``
    from the image's token count (diffusers' ``calculate_shift``, linear from ``base_shift`` at
    ``base_image_seq_len`` tokens to ``max_shift`` at ``max_image_seq_len``)."""
    takes = inspect.signature(scheduler.set_timesteps).parameters
    kwargs: dict[str, Any] = {}
    config = scheduler.config
    if family.sigmas is not None and "sigmas" in takes and not config.get("use_flow_sigmas"):
        kwargs["sigmas"] = family.sigmas(steps)
    if config.get("use_dynamic_shifting") and "mu" in takes:
        from diffusers.pipelines.flux.pipeline_flux import calculate_shift

        kwargs["mu"] = calculate_shift(
            tokens,
            config.get("base_image_seq_len", 256),
            config.get("max_image_seq_len", 4096),
            config.get("base_shift", 0.5),
            config.get("max_shift", 1.15),
        )
    return kwargs


@dataclass(frozen=True)
class Trajectory:
    """A batch's scheduler as its sampler walks it: the scheduler, the sampler's ``walk`` over it, ``custom``
    timesteps (None: the scheduler's own), the keyword arguments of its ``step`` and each sample's generator (its
    initial noise)."""

    scheduler: Any
    walk: Any
    custom: Any
    step_kwargs: dict[str, Any]
    generators: list[torch.Generator]


def denoise(pipe, family, trajectory: Trajectory, denoiser, s: GenerationSettings):
    """The scheduler's loop from each sample's own initial noise to the final latents, in the layout the family's
    denoiser takes and as the sampler walks its scheduler, over custom timesteps where given (flow-matching
    schedulers neither scale their input nor their initial noise)."""
    scheduler, walk, network = trajectory.scheduler, trajectory.walk, family.network(pipe)
    channels, height, width = latent_shape(pipe, family, network, s)
    tokens = family.layout.tokens(network, height, width)
    options = timestep_kwargs(scheduler, family, s.steps, tokens)
    if trajectory.custom is None:
        scheduler.set_timesteps(s.steps, device=s.device, **options, **walk.options(s.steps))
    else:
        walk.custom(scheduler, trajectory.custom, s.device, {k: v for k, v in options.items() if k != "sigmas"})
    noise = initial_latents(trajectory.generators, (channels, height, width)).to(s.device, family.latent_dtype(s.dtype))
    latents = family.layout.pack(noise) * walk.start(scheduler)
    scale_input = getattr(scheduler, "scale_model_input", lambda x, t: x)
    for t in walk.points(scheduler):
        step = scheduler.step(denoiser(scale_input(latents, t), t), t, latents, **trajectory.step_kwargs)
        latents = step.prev_sample
    return family.layout.unpack(walk.end(scheduler, latents), height, width)


def unscale(vae, latents: torch.Tensor) -> torch.Tensor:
    """Latents as the VAE decodes them: ``z * std / scaling_factor + mean`` where its config has per-channel
    ``latents_mean`` and ``latents_std`` (Playground v2.5-style SDXL VAEs, as StableDiffusionXLPipeline decodes
    them), else ``z / scaling_factor`` plus the shift of a VAE that has one (SD3, FLUX)."""
    config = vae.config
    mean, std = getattr(config, "latents_mean", None), getattr(config, "latents_std", None)
    if mean is not None and std is not None:
        view = (1, len(mean), *([1] * (latents.dim() - 2)))
        mean = torch.tensor(mean).view(view).to(latents.device, latents.dtype)
        std = torch.tensor(std).view(view).to(latents.device, latents.dtype)
        return latents * std / config.scaling_factor + mean
    latents = latents / config.scaling_factor
    shift = getattr(config, "shift_factor", None)
    return latents + shift if shift is not None else latents


def decode(vae, latents: torch.Tensor, dtype: torch.dtype, upcast_fp16: bool = False) -> torch.Tensor:
    """The VAE's images of ``latents`` (``unscale``); where the family's pipeline upcasts an fp16 VAE that asks for
    it (``force_upcast``: StableDiffusionXLPipeline), in float32, the VAE put back in fp16 afterwards as the pipeline
    does."""
    if not (upcast_fp16 and dtype == torch.float16 and getattr(vae.config, "force_upcast", False)):
        return vae.decode(unscale(vae, latents.to(dtype)), return_dict=False)[0]
    vae.to(torch.float32)
    try:
        return vae.decode(unscale(vae, latents.to(torch.float32)), return_dict=False)[0]
    finally:
        vae.to(torch.float16)


def binned(pipe, family, s: GenerationSettings) -> GenerationSettings:
    """The settings at the size the family's pipeline samples when it bins resolutions (PixArt's and SANA's
    ``use_resolution_binning``): the nearest aspect ratio of its table for the transformer's sample size."""
    table = family.bins(family.network(pipe).config.sample_size)
    height, width = pipe.image_processor.classify_height_width_bin(s.height, s.width, ratios=table)
    return replace(s, height=height, width=width)


def generate_batch(pipe, family_name: str, settings: GenerationSettings, samples: Samples, timer: PhaseTimer):
    """One batch of ``samples`` as ``settings`` say (``GeneratedBatch``). With ``binning``, sampled at the binned size
    and resized and cropped back to the size asked, as the family's pipeline does."""
    family, spec = FAMILIES.get(family_name), settings.sampler
    s = binned(pipe, family, settings) if settings.binning else settings
    guidance = GUIDANCE.get(s.guidance_mode)
    generators = [torch.Generator("cpu").manual_seed(seed) for seed in samples.seeds]
    need_uncond = guidance.needs_negative(s.guidance_scale)
    with torch.inference_mode():
        with timer("text_encoding"):
            cond, uncond = encode_prompts(pipe, family_name, samples.prompts, need_uncond, s)
        scheduler, step_kwargs, takes_generator = build_scheduler(spec, pipe.scheduler.config, family.objective)
        if takes_generator:
            step_kwargs = {**step_kwargs, "generator": generators}
        net = CountingNetwork(family.network(pipe), family.bound_forward(pipe))
        text = TextStates(cond, uncond, len(samples.prompts))
        denoiser = guidance.denoiser(net, text, s.guidance_scale, s.dtype, s.device)
        with timer("denoising"):
            walk, custom = SAMPLERS.get(spec.name).walk, custom_timesteps(spec)
            trajectory = Trajectory(scheduler, walk, custom, step_kwargs, generators)
            latents = denoise(pipe, family, trajectory, denoiser, s)
        with timer("vae_decoding"):
            images = decode(pipe.vae, latents, s.dtype, family.upcast_vae)
            if s is not settings:
                images = pipe.image_processor.resize_and_crop_tensor(images, settings.width, settings.height)
        nonfinite = torch.nonzero(~torch.isfinite(images).flatten(1).all(1)).flatten().tolist()
        step_kwargs.pop("generator", None)
        return GeneratedBatch(to_uint8(images), net.evaluations, schedule_info(spec, scheduler, step_kwargs), nonfinite)
