"""Tiny random-weight Stable Diffusion (and SDXL) pipelines, built from config and saved with ``save_pretrained``.

They have exactly the layout of a real checkpoint (model_index.json, tokenizer, text encoder, UNet, VAE, scheduler,
safetensors), so every loading and sampling path is exercised without a download. Their images are noise: they
measure the harness, not quality. The tokenizer is a byte-level CLIP BPE without merges (one token per character).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

TINY_VERSION = 2
SD_SCHEDULER = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "skip_prk_steps": True,
}


def byte_level_vocab() -> dict[str, int]:
    """CLIP's byte-to-unicode alphabet, each symbol alone and word-final, plus CLIP's two special tokens."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    symbols, extra = [], 0
    for b in range(256):
        if b in printable:
            symbols.append(chr(b))
        else:
            symbols.append(chr(256 + extra))
            extra += 1
    tokens = ["<|startoftext|>", "<|endoftext|>"] + symbols + [s + "</w>" for s in symbols]
    return {token: i for i, token in enumerate(tokens)}


def sd_pipeline(vae, text_encoder, tokenizer, unet):
    """A StableDiffusionPipeline with SD's scheduler config and no safety checker."""
    from diffusers import PNDMScheduler, StableDiffusionPipeline

    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=PNDMScheduler(**SD_SCHEDULER),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def save_pipeline(pipe, out_dir: Path) -> Path:
    """``save_pretrained`` (safetensors) into a temporary sibling folder, ``clip_sample: false`` as Stable
    Diffusion's scheduler config has it, then an atomic rename onto ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    pipe.save_pretrained(tmp, safe_serialization=True)
    config_path = tmp / "scheduler" / "scheduler_config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "clip_sample": False}, indent=2))
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    return out_dir


def _text_encoder_config(vocab: dict[str, int], hidden: int, **extra):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=77,
        bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"],
        **extra,
    )


def tiny_tokenizer(folder: Path):
    """A byte-level CLIP tokenizer (one token per character), its files written into ``folder``."""
    from transformers import CLIPTokenizer

    vocab = byte_level_vocab()
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)


def tiny_text_encoder(projection_dim: int | None = None):
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    if projection_dim is None:
        return CLIPTextModel(_text_encoder_config(byte_level_vocab(), 32))
    return CLIPTextModelWithProjection(_text_encoder_config(byte_level_vocab(), 32, projection_dim=projection_dim))


def tiny_unet(cross_attention_dim: int, guidance_embedding: bool, **extra):
    """A two-level UNet on 16x16x4 latents; ``time_cond_proj_dim`` 64 when it takes a guidance embedding."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=8,
        norm_num_groups=16,
        time_cond_proj_dim=64 if guidance_embedding else None,
        **extra,
    )


def tiny_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(16, 32),
        latent_channels=4,
        norm_num_groups=16,
        sample_size=32,
    )


def tiny_sd(folder: Path, guidance_embedding: bool):
    """A tiny StableDiffusionPipeline (its components built in the order that fixes their random weights)."""
    tokenizer = tiny_tokenizer(folder)
    text_encoder = tiny_text_encoder()
    unet = tiny_unet(32, guidance_embedding)
    return sd_pipeline(tiny_vae(), text_encoder, tokenizer, unet)


def tiny_sdxl(folder: Path, guidance_embedding: bool):
    """A tiny StableDiffusionXLPipeline: two text encoders, ``text_time`` added conditioning."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline

    tokenizer = tiny_tokenizer(folder)
    text_encoder, text_encoder_2 = tiny_text_encoder(), tiny_text_encoder(projection_dim=32)
    extra = {
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": 8,
        "projection_class_embeddings_input_dim": 6 * 8 + 32,
    }
    unet = tiny_unet(64, guidance_embedding, **extra)
    schedule = {k: v for k, v in SD_SCHEDULER.items() if k.startswith(("beta", "num", "steps"))}
    return StableDiffusionXLPipeline(
        vae=tiny_vae(),
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=EulerDiscreteScheduler(**schedule),
    )


def build_tiny_pipeline(out_dir: str | Path, build, guidance_embedding: bool = False, seed: int = 0) -> Path:
    """Build a tiny pipeline with ``build(folder, guidance_embedding)`` (a family's tiny builder: 32x32 images,
    16x16x4 latents) from ``seed``, without touching the global random state, and save it atomically to
    ``out_dir``."""
    import torch

    from lcm_bench.core.libraries import quiet_libraries

    quiet_libraries()
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            pipe = build(tmp, guidance_embedding)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return save_pipeline(pipe, out_dir)
