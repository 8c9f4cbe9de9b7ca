"""PixArt-alpha and PixArt-Sigma (and PixArt-LCM): a DiT on T5."""

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
from lcm_bench.models.tiny import tiny_pixart, tiny_pixart_sigma


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


def pixart_conditions(pipe, batch: int, how: Conditioning) -> dict[str, Any]:
    return {"added_cond_kwargs": pixart_added_conditions(pipe, batch, how)}


def pixart_forward(transformer, x, t, **conditioning):
    """PixArt's transformer at one timestep per row; of a learned-variance output (twice the latent's channels),
    the noise half."""
    x = x.to(transformer.dtype)
    return noise_half(
        transformer(x, timestep=t.expand(x.shape[0]), return_dict=False, **conditioning)[0], transformer.config
    )


PIXART_BINS = {128: "ASPECT_RATIO_1024_BIN", 64: "ASPECT_RATIO_512_BIN", 32: "ASPECT_RATIO_256_BIN"}
ALPHA_BINS = aspect_ratio_bins("pixart_alpha.pipeline_pixart_alpha", PIXART_BINS)
SIGMA_BINS = aspect_ratio_bins("pixart_alpha.pipeline_pixart_sigma", {256: "ASPECT_RATIO_2048_BIN", **PIXART_BINS})

for _name, _description, _class, _tokens, _build, _bins in (
    ("pixart-alpha", "PixArt-alpha (and PixArt-LCM): DiT on T5", "PixArtAlphaPipeline", 120, tiny_pixart, ALPHA_BINS),
    ("pixart-sigma", "PixArt-Sigma: DiT on T5", "PixArtSigmaPipeline", 300, tiny_pixart_sigma, SIGMA_BINS),
):
    FAMILIES.register(
        _name,
        Family(
            _description,
            pipeline_class(_class),
            masked_text_encoder(added=pixart_conditions),
            _build,
            denoiser="transformer",
            forward=pixart_forward,
            text_length=_tokens,
            bins=_bins,
        ),
    )
