"""SANA and SANA-Sprint: a linear-attention DiT on Gemma 2 with DC-AE."""

from __future__ import annotations

from typing import Any

from lcm_bench.models.families.base import (
    FAMILIES,
    Conditioning,
    Family,
    aspect_ratio_bins,
    masked_text_encoder,
    noise_half,
    pipeline_class,
)
from lcm_bench.models.tiny import tiny_sana, tiny_sana_sprint


def sana_instruction(pipe) -> dict[str, Any]:
    """The instruction the SANA pipelines prefix to a prompt by default (their ``__call__``'s
    ``complex_human_instruction``; the negative prompt goes without it, as the pipeline encodes it)."""
    import inspect

    default = inspect.signature(type(pipe).__call__).parameters["complex_human_instruction"].default
    return {"complex_human_instruction": default}


def text_states_in(conditioning: dict[str, Any], dtype) -> dict[str, Any]:
    """The conditioning with its text states in the transformer's dtype, as the SANA pipelines cast them."""
    return {**conditioning, "encoder_hidden_states": conditioning["encoder_hidden_states"].to(dtype)}


def sana_forward(transformer, x, t, **conditioning):
    """SANA's velocity at one timestep per row (times the transformer's ``timestep_scale``), its input and text
    states cast to the transformer's dtype, its output in float32 (as SanaPipeline keeps latents); of a
    learned-variance output, the first half."""
    timestep = t.expand(x.shape[0]) * transformer.config.timestep_scale
    dtype = transformer.dtype
    out = transformer(x.to(dtype), timestep=timestep, return_dict=False, **text_states_in(conditioning, dtype))[0]
    return noise_half(out.float(), transformer.config)


SANA_BINS = aspect_ratio_bins(
    "sana.pipeline_sana",
    {
        128: "ASPECT_RATIO_4096_BIN",
        64: "ASPECT_RATIO_2048_BIN",
        32: "ASPECT_RATIO_1024_BIN",
        16: "ASPECT_RATIO_512_BIN",
    },
)
SPRINT_BINS = aspect_ratio_bins("sana.pipeline_sana_sprint", {32: "ASPECT_RATIO_1024_BIN"})

FAMILIES.register(
    "sana",
    Family(
        "SANA: linear-attention DiT rectified flow on Gemma 2 (with an instruction prefix), DC-AE (32x)",
        pipeline_class("SanaPipeline"),
        masked_text_encoder(options=sana_instruction),
        tiny_sana,
        denoiser="transformer",
        forward=sana_forward,
        objective="flow",
        float32_latents=True,
        text_length=300,
        bins=SANA_BINS,
    ),
)


def sana_sprint_encoder(pipe, prompts: list[str], how: Conditioning) -> tuple[dict, None]:
    """Gemma 2 states and mask as SANA's (no negative prompt: SANA-Sprint takes no classifier-free guidance)."""
    pe, mask = pipe.encode_prompt(
        prompts,
        num_images_per_prompt=1,
        device=how.device,
        clean_caption=False,
        max_sequence_length=how.text_length,
        **sana_instruction(pipe),
    )
    return {"encoder_hidden_states": pe, "encoder_attention_mask": mask}, None


def sigma_data(pipe) -> dict[str, float]:
    """The scheduler's sigma_data, which SANA-Sprint's TrigFlow wrapper scales by."""
    return {"sigma_data": pipe.scheduler.config.sigma_data}


def sana_sprint_forward(transformer, x, t, sigma_data: float, guidance, **conditioning):
    """SANA-Sprint's prediction in TrigFlow time, as SanaSprintPipeline wraps its transformer (Lu & Song 2024): the
    input scaled to unit variance at the sCM time sin t / (cos t + sin t), the output mapped back to TrigFlow's
    velocity times sigma_data; the guidance value times the transformer's ``guidance_embeds_scale``. The wrapper's
    arithmetic runs in the latents' float32, the transformer in its own dtype (SanaSprintPipeline's casts)."""
    import torch

    timestep = t.expand(x.shape[0])
    scm = torch.sin(timestep) / (torch.cos(timestep) + torch.sin(timestep))
    e = scm.view(-1, 1, 1, 1)
    norm = torch.sqrt(e**2 + (1 - e) ** 2)
    x_in = x / sigma_data * norm
    dtype = transformer.dtype
    guidance = guidance.to(conditioning["encoder_hidden_states"].dtype) * transformer.config.guidance_embeds_scale
    conditioning = text_states_in(conditioning, dtype)
    out = transformer(x_in.to(dtype), guidance=guidance, timestep=scm, return_dict=False, **conditioning)[0]
    out = ((1 - 2 * e) * x_in + (1 - 2 * e + 2 * e**2) * out) / norm
    return out.float() * sigma_data


FAMILIES.register(
    "sana-sprint",
    Family(
        "SANA-Sprint: SANA distilled with sCM (TrigFlow time), a guidance embedding, 1-4 steps",
        pipeline_class("SanaSprintPipeline"),
        sana_sprint_encoder,
        tiny_sana_sprint,
        denoiser="transformer",
        forward=sana_sprint_forward,
        objective="trigflow",
        guidance=("distilled",),
        forward_options=sigma_data,
        float32_latents=True,
        text_length=300,
        bins=SPRINT_BINS,
    ),
)
