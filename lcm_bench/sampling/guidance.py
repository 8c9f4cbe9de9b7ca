"""Guidance kinds: each a wrapper around the network (k-diffusion ``external.py`` style) that owns its cost.

Classifier-free guidance batches the unconditional and conditional passes when s > 1 (2 NFE per step, 1 at s <= 1,
where it is no guidance at all); an LCM-style UNet takes w = s - 1 as a guidance embedding (``timestep_cond``,
1 NFE per step); a guidance-distilled transformer (FLUX.1-dev) takes the value as given (1 NFE); a
timestep-distilled model without either takes none (1 NFE). ``nfe_per_image`` and every other place that needs a
kind's cost ask its entry, and a ``CountingNetwork`` counts what really ran, one evaluation per image row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lcm_bench.core.registry import Registry

if TYPE_CHECKING:
    import torch


class CountingNetwork:
    """Calls the denoiser through its family's ``forward`` and counts evaluations, one per image row of each call."""

    def __init__(self, module, forward: Callable[..., torch.Tensor]):
        self.module = module
        self.forward = forward
        self.evaluations = 0

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **kwargs) -> torch.Tensor:
        self.evaluations += x.shape[0]
        return self.forward(self.module, x, t, **kwargs)


def _cat(a: Any, b: Any) -> Any:
    import torch

    if isinstance(a, dict):
        return {k: _cat(a[k], b[k]) for k in a}
    return None if a is None else torch.cat([a, b])


def guidance_embedding(w: float | torch.Tensor, dim: int, batch: int, dtype: torch.dtype) -> torch.Tensor:
    """Sinusoidal embedding of w (x 1000) as in VDM: diffusers' ``get_guidance_scale_embedding`` of its LCM
    pipeline, computed in float32 and cast to ``dtype``; ``w`` one value or one per sample."""
    import torch
    from diffusers import LatentConsistencyModelPipeline

    w_tensor = torch.as_tensor(w, dtype=torch.float32).expand(batch)
    embedding = LatentConsistencyModelPipeline.get_guidance_scale_embedding(None, w_tensor, dim, torch.float32)
    return embedding.to(dtype)


@dataclass(frozen=True)
class TextStates:
    """A batch's prompts as the denoiser takes them: the keyword arguments of the prompts (``cond``) and of the
    negative prompt (``uncond``, None when it is not encoded), one row per image of ``rows``."""

    cond: dict
    uncond: dict | None
    rows: int


@dataclass(frozen=True)
class GuidanceKind:
    """How a guidance setting reaches the network. ``guided(s)``: whether scale s guides at all; ``evaluations(s)``:
    network evaluations per step and image; ``denoiser(net, text, s, dtype, device)``: the function of (x, t) the
    scheduler steps with, ``text`` the batch's ``TextStates``; ``needs_embedding``: only a model with a guidance
    embedding can take it; ``uses_w``: the paper's w = s - 1 describes its scale; ``noun``: how messages name it."""

    noun: str
    description: str
    guided: Callable[[float], bool]
    evaluations: Callable[[float], int]
    denoiser: Callable[..., Callable]
    needs_embedding: bool = False
    uses_w: bool = True

    def needs_negative(self, scale: float) -> bool:
        """Whether the unconditional (negative-prompt) pass runs: only when it costs an evaluation."""
        return self.evaluations(scale) > 1

    def recorded(self, name: str, scale: float) -> str:
        """What a record says ran: the kind, or ``none`` where the scale does not guide."""
        return name if self.guided(scale) else "none"


GUIDANCE: Registry[GuidanceKind] = Registry("guidance kind")


def _cfg_guided(scale: float) -> bool:
    return scale > 1.0


def classifier_free(net: CountingNetwork, text: TextStates, scale: float, *_) -> Callable:
    """eps_u + s (eps_c - eps_u) with diffusers' s (paper w = s - 1); a single pass when s does not guide."""
    if text.uncond is None or not _cfg_guided(scale):
        return lambda x, t: net(x, t, **text.cond)
    import torch

    both = _cat(text.uncond, text.cond)

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        eps_uncond, eps_cond = net(torch.cat([x, x]), t, **both).chunk(2)
        return eps_uncond + scale * (eps_cond - eps_uncond)

    return denoise


GUIDANCE.register(
    "cfg",
    GuidanceKind(
        "classifier-free guidance",
        "classifier-free guidance (Ho & Salimans 2022): conditional and unconditional passes, 2 NFE per step at s > 1",
        _cfg_guided,
        lambda scale: 2 if _cfg_guided(scale) else 1,
        classifier_free,
    ),
)


def embedded_guidance(net: CountingNetwork, text: TextStates, scale: float, dtype, device) -> Callable:
    """w = s - 1 through the UNet's guidance embedding (``timestep_cond``), one pass per step."""
    w_embedding = guidance_embedding(scale - 1.0, net.module.config.time_cond_proj_dim, text.rows, dtype).to(device)
    return lambda x, t: net(x, t, timestep_cond=w_embedding, **text.cond)


GUIDANCE.register(
    "embedding",
    GuidanceKind(
        "a guidance embedding",
        "w-conditioned UNet (LCM, guided distillation): w = s - 1 as an embedding, 1 NFE per step",
        lambda scale: True,
        lambda scale: 1,
        embedded_guidance,
        needs_embedding=True,
    ),
)


def distilled_guidance(net: CountingNetwork, text: TextStates, scale: float, dtype, device) -> Callable:
    """The guidance value as given (not s - 1) through a guidance-distilled transformer's embedding, one pass per
    step, as FluxPipeline passes it (float32, one per row)."""
    import torch

    guidance = torch.full([1], scale, device=device, dtype=torch.float32).expand(text.rows)
    return lambda x, t: net(x, t, guidance=guidance, **text.cond)


GUIDANCE.register(
    "distilled",
    GuidanceKind(
        "a distilled guidance embedding",
        "guidance-distilled transformer (FLUX.1-dev, Meng et al. 2023): the value as given, 1 NFE per step",
        lambda scale: True,
        lambda scale: 1,
        distilled_guidance,
        needs_embedding=True,
        uses_w=False,
    ),
)


def unguided(net: CountingNetwork, text: TextStates, *_) -> Callable:
    """The conditional prediction alone; the scale is not used."""
    return lambda x, t: net(x, t, **text.cond)


GUIDANCE.register(
    "none",
    GuidanceKind(
        "no guidance",
        "no guidance (FLUX.1-schnell and other timestep-distilled models): 1 NFE per step, the scale unused",
        lambda scale: False,
        lambda scale: 1,
        unguided,
        uses_w=False,
    ),
)


def auto_guidance(kinds: tuple[str, ...], has_embedding: bool) -> str:
    """What ``guidance: auto`` means for a model whose family takes ``kinds`` (the first its default): the kind that
    goes through a guidance embedding when the model has one, else the default."""
    embedded = [kind for kind in kinds if GUIDANCE.get(kind).needs_embedding]
    return embedded[0] if has_embedding and embedded else kinds[0]


def nfe_per_image(sampler: str, steps: int, guidance_mode: str, guidance_scale: float) -> int:
    """Network evaluations per image: the sampler's per step count (one per step but for Heun's 2n - 1), times
    what the guidance kind costs per evaluation."""
    from lcm_bench.sampling.samplers import SAMPLERS

    return SAMPLERS.get(sampler).evaluations(steps) * GUIDANCE.get(guidance_mode).evaluations(guidance_scale)
