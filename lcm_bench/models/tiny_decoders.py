"""Tiny decoders (diffusers' ``AutoencoderTiny``, TAESD's layout): registered names or folders, located offline and
checked against the pipeline they decode for."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lcm_bench.core.errors import MissingResourceError, UserError
from lcm_bench.core.paths import embedded_models_dir
from lcm_bench.core.registry import Registry
from lcm_bench.core.spec import Hardware


@dataclass(frozen=True)
class TinyDecoder:
    """A registered tiny decoder: a Hugging Face repository, or a folder shipped in ``data/models``."""

    source: str
    description: str
    embedded: bool = False


TINY_DECODERS: Registry[TinyDecoder] = Registry("tiny decoder")
for _name, _entry in {
    "shapes-tiny-decoder": TinyDecoder(
        "shapes-tiny-decoder",
        "the shapes VAE's decoder distilled into AutoencoderTiny's layout (lcm-bench train tiny-decoder)",
        embedded=True,
    ),
    "taesd": TinyDecoder("madebyollin/taesd", "TAESD for SD 1.x / 2.x latents (4 channels, 8x)"),
    "taesdxl": TinyDecoder("madebyollin/taesdxl", "TAESDXL for SDXL latents (4 channels, 8x)"),
    "taesd3": TinyDecoder("madebyollin/taesd3", "TAESD3 for SD3 latents (16 channels, 8x)"),
    "taef1": TinyDecoder("madebyollin/taef1", "TAEF1 for FLUX.1 latents (16 channels, 8x)"),
}.items():
    TINY_DECODERS.register(_name, _entry)


def tiny_decoder_folder(weights: str, field: str) -> Path:
    """The folder holding ``weights``: a registered name (shipped or in the Hugging Face cache) or a path."""
    from lcm_bench.models.hub import locate_repo

    if weights in TINY_DECODERS:
        entry = TINY_DECODERS.get(weights)
        if not entry.embedded:
            return locate_repo(entry.source, unet_only=True)
        folder = embedded_models_dir() / entry.source
        if not (folder / "config.json").is_file():
            raise MissingResourceError(
                f"{field}: embedded tiny decoder '{weights}' is missing at {folder}; it ships with lcm-bench, or "
                "rebuild it with `lcm-bench train tiny-decoder`"
            )
        return folder
    folder = Path(weights)
    if not (folder / "config.json").is_file():
        known = ", ".join(TINY_DECODERS.in_order())
        raise UserError(f"{field}: '{weights}' is neither a folder with config.json nor a tiny decoder ({known})")
    return folder


def upsampling(config) -> int:
    """How much an AutoencoderTiny decoder enlarges its latent: its factor once per block but the last."""
    return int(config.upsampling_scaling_factor) ** (len(config.decoder_block_out_channels) - 1)


def load_tiny_decoder(weights: str, scale_factor: int, hardware: Hardware, field: str):
    """The AutoencoderTiny of ``weights`` in the hardware's dtype; its upsampling must be the pipeline's VAE's."""
    from diffusers import AutoencoderTiny

    from lcm_bench.core.hardware import torch_dtype

    folder = tiny_decoder_folder(weights, f"{field}.weights")
    try:
        tiny = AutoencoderTiny.from_pretrained(folder, torch_dtype=torch_dtype(hardware), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise UserError(f"{field}.weights: cannot load AutoencoderTiny from {folder}: {exc}") from None
    if upsampling(tiny.config) != scale_factor:
        raise UserError(
            f"{field}.weights: {weights} upsamples latents {upsampling(tiny.config)}x; this model's VAE {scale_factor}x"
        )
    return tiny
