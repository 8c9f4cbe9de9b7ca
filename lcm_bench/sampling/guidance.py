"""One loop for every sampler: encode prompts, denoise with a diffusers scheduler, decode with the VAE.

Guidance is a wrapper around the network (k-diffusion ``external.py`` style): classifier-free guidance batches
the unconditional and conditional passes (2 NFE per step), an LCM-style UNet takes w as ``timestep_cond``
(1 NFE per step). Every network evaluation is counted per image row. Each sample has its own CPU generator seeded
from (cell seed, sample index), for its initial latents and any noise the sampler injects, so batch size and
sharding never change an image.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch


class CountingNetwork:
    """Calls the UNet and counts evaluations, one per image row of each call."""

    def __init__(self, unet):
        self.unet = unet
        self.evaluations = 0

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **kwargs) -> torch.Tensor:
        self.evaluations += x.shape[0]
        return self.unet(x, t, return_dict=False, **kwargs)[0]


def _cat(a: Any, b: Any) -> Any:
    if isinstance(a, dict):
        return {k: _cat(a[k], b[k]) for k in a}
    return torch.cat([a, b])


def classifier_free(net: CountingNetwork, cond: dict, uncond: dict | None, scale: float) -> Callable:
    """eps_u + s (eps_c - eps_u) with diffusers' s (paper w = s - 1); a single pass when s <= 1."""
    if uncond is None or scale <= 1.0:
        return lambda x, t: net(x, t, **cond)
    both = _cat(uncond, cond)

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        eps_uncond, eps_cond = net(torch.cat([x, x]), t, **both).chunk(2)
        return eps_uncond + scale * (eps_cond - eps_uncond)

    return denoise


def guidance_embedding(w: float | torch.Tensor, dim: int, batch: int, dtype: torch.dtype) -> torch.Tensor:
    """Sinusoidal embedding of w (x 1000) as in VDM and diffusers' LCM pipeline; ``w`` one value or one per sample."""
    w_tensor = torch.as_tensor(w, dtype=torch.float32).expand(batch) * 1000.0
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -(np.log(10000.0) / (half - 1)))
    angles = w_tensor[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    if dim % 2 == 1:
        emb = torch.nn.functional.pad(emb, (0, 1))
    return emb.to(dtype)


def embedded_guidance(net: CountingNetwork, cond: dict, w_embedding: torch.Tensor) -> Callable:
    return lambda x, t: net(x, t, timestep_cond=w_embedding, **cond)
