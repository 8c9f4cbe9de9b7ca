"""Tiny random-weight pipelines of every family, built from config and saved with ``save_pretrained``.

They have exactly the layout of a real checkpoint (model_index.json, tokenizer, text encoder, UNet, VAE, scheduler,
safetensors), so every loading and sampling path is exercised without a download. Their images are noise: they
measure the harness, not quality. The CLIP tokenizer is a byte-level BPE without merges (one token per character);
T5's is a Unigram model trained here on a fixed corpus in milliseconds.
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


def tiny_vae(**extra):
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
        **extra,
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


TOKENIZER_CORPUS = (
    "a an the one two three small large big tiny red green blue yellow orange purple white black grey "
    "circle square triangle star cross ring disc box shape shapes photo picture drawing of with and on in "
    "above below left right next to beside near under over number background foreground scene image"
)


def trained_tokenizer(tokenizer, vocab_size: int = 160):
    """``tokenizer`` (one built without files) trained on a small fixed corpus: words, then every printable ASCII
    character, so any prompt tokenises and the vocabulary is the same on every machine."""
    characters = [chr(c) for c in range(33, 127)]
    return tokenizer.train_new_from_iterator([TOKENIZER_CORPUS, " ".join(characters)] * 4, vocab_size=vocab_size)


def tiny_t5():
    """A two-layer T5 encoder (d_model 32) and its trained Unigram tokenizer."""
    from transformers import T5Config, T5EncoderModel, T5Tokenizer

    tokenizer = trained_tokenizer(T5Tokenizer(extra_ids=0))
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_ff=64,
        d_kv=8,
        num_heads=4,
        num_layers=2,
        relative_attention_num_buckets=8,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    return tokenizer, T5EncoderModel(config)


def tiny_pixart_transformer(caption_channels: int):
    """A two-layer PixArt DiT on 16x16x4 latents (patch 2) with a learned-variance output, as PixArt's are."""
    from diffusers import PixArtTransformer2DModel

    return PixArtTransformer2DModel(
        sample_size=16,
        num_layers=2,
        patch_size=2,
        attention_head_dim=16,
        num_attention_heads=2,
        caption_channels=caption_channels,
        in_channels=4,
        out_channels=8,
        cross_attention_dim=32,
        attention_bias=True,
        activation_fn="gelu-approximate",
        num_embeds_ada_norm=1000,
        norm_type="ada_norm_single",
        norm_elementwise_affine=False,
        norm_eps=1e-6,
    )


PIXART_SCHEDULER = {"beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear", "num_train_timesteps": 1000}


def tiny_pixart(folder: Path, guidance_embedding: bool, sigma: bool = False):
    """A tiny PixArtAlphaPipeline (or PixArtSigmaPipeline): T5, PixArt DiT, AutoencoderKL, DPM-Solver++ as the
    public checkpoints ship; no guidance embedding exists for this family."""
    from diffusers import DPMSolverMultistepScheduler, PixArtAlphaPipeline, PixArtSigmaPipeline

    tokenizer, text_encoder = tiny_t5()
    transformer = tiny_pixart_transformer(text_encoder.config.d_model)
    pipeline = PixArtSigmaPipeline if sigma else PixArtAlphaPipeline
    return pipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        transformer=transformer,
        vae=tiny_vae(),
        scheduler=DPMSolverMultistepScheduler(**PIXART_SCHEDULER),
    )


def tiny_pixart_sigma(folder: Path, guidance_embedding: bool):
    return tiny_pixart(folder, guidance_embedding, sigma=True)


def tiny_sd3(folder: Path, guidance_embedding: bool):
    """A tiny StableDiffusion3Pipeline: two CLIPs with projections and T5, a two-layer MMDiT, a VAE with SD3's
    scaling and shift (1.5305, 0.0609), flow-matching Euler with shift 3 as SD3's scheduler."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

    tokenizer = tiny_tokenizer(folder)
    clip, clip_2 = tiny_text_encoder(projection_dim=32), tiny_text_encoder(projection_dim=32)
    t5_tokenizer, t5 = tiny_t5()
    transformer = SD3Transformer2DModel(
        sample_size=16,
        patch_size=2,
        in_channels=4,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=4,
        joint_attention_dim=t5.config.d_model,
        caption_projection_dim=32,
        pooled_projection_dim=64,
        out_channels=4,
        pos_embed_max_size=16,
    )
    return StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=tiny_vae(scaling_factor=1.5305, shift_factor=0.0609),
        text_encoder=clip,
        tokenizer=tokenizer,
        text_encoder_2=clip_2,
        tokenizer_2=tokenizer,
        text_encoder_3=t5,
        tokenizer_3=t5_tokenizer,
    )


def tiny_flux(folder: Path, guidance_embedding: bool):
    """A tiny FluxPipeline: CLIP and T5, a one-double-one-single-block FLUX transformer on 2x2-packed latents, a VAE
    with FLUX's scaling and shift (0.3611, 0.1159); with ``guidance_embedding`` FLUX.1-dev's distilled guidance and
    dynamic shifting, else FLUX.1-schnell's shift 1."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    tokenizer = tiny_tokenizer(folder)
    clip = tiny_text_encoder()
    t5_tokenizer, t5 = tiny_t5()
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=16,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=t5.config.d_model,
        pooled_projection_dim=clip.config.hidden_size,
        guidance_embeds=guidance_embedding,
        axes_dims_rope=(4, 6, 6),
    )
    scheduler = FlowMatchEulerDiscreteScheduler(
        shift=1.0,
        use_dynamic_shifting=guidance_embedding,
        base_shift=0.5,
        max_shift=1.15,
        base_image_seq_len=256,
        max_image_seq_len=4096,
    )
    return FluxPipeline(
        scheduler=scheduler,
        vae=tiny_vae(scaling_factor=0.3611, shift_factor=0.1159),
        text_encoder=clip,
        tokenizer=tokenizer,
        text_encoder_2=t5,
        tokenizer_2=t5_tokenizer,
        transformer=transformer,
    )


def tiny_gemma2():
    """A one-layer Gemma 2 (hidden 8) and its trained BPE tokenizer (SANA's text encoder)."""
    from transformers import Gemma2Config, Gemma2Model, GemmaTokenizer

    tokenizer = trained_tokenizer(GemmaTokenizer())
    config = Gemma2Config(
        vocab_size=len(tokenizer),
        hidden_size=8,
        intermediate_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=4,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return tokenizer, Gemma2Model(config)


def tiny_dc_ae():
    """A two-level deep-compression autoencoder (``AutoencoderDC``, SANA's) with SANA's scaling 0.41407."""
    from diffusers import AutoencoderDC

    return AutoencoderDC(
        in_channels=3,
        latent_channels=4,
        attention_head_dim=2,
        encoder_block_types=("ResBlock", "EfficientViTBlock"),
        decoder_block_types=("ResBlock", "EfficientViTBlock"),
        encoder_block_out_channels=(8, 8),
        decoder_block_out_channels=(8, 8),
        encoder_qkv_multiscales=((), (5,)),
        decoder_qkv_multiscales=((), (5,)),
        encoder_layers_per_block=(1, 1),
        decoder_layers_per_block=(1, 1),
        downsample_block_type="conv",
        upsample_block_type="interpolate",
        decoder_norm_types="rms_norm",
        decoder_act_fns="silu",
        scaling_factor=0.41407,
    )


def tiny_sana_transformer(caption_channels: int, **extra):
    """A one-layer linear-attention DiT on 16x16x4 latents (SANA's)."""
    from diffusers import SanaTransformer2DModel

    return SanaTransformer2DModel(
        patch_size=1,
        in_channels=4,
        out_channels=4,
        num_layers=1,
        num_attention_heads=2,
        attention_head_dim=4,
        num_cross_attention_heads=2,
        cross_attention_head_dim=4,
        cross_attention_dim=8,
        caption_channels=caption_channels,
        sample_size=16,
        **extra,
    )


def tiny_sana(folder: Path, guidance_embedding: bool):
    """A tiny SanaPipeline: Gemma 2, a one-layer linear-attention DiT, a DC-AE, DPM-Solver++ on flow sigmas with
    shift 3 as SANA's scheduler."""
    from diffusers import DPMSolverMultistepScheduler, SanaPipeline

    tokenizer, text_encoder = tiny_gemma2()
    transformer = tiny_sana_transformer(text_encoder.config.hidden_size)
    scheduler = DPMSolverMultistepScheduler(
        use_flow_sigmas=True, flow_shift=3.0, prediction_type="flow_prediction", algorithm_type="dpmsolver++"
    )
    return SanaPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=tiny_dc_ae(), transformer=transformer, scheduler=scheduler
    )


def tiny_sana_sprint(folder: Path, guidance_embedding: bool):
    """A tiny SanaSprintPipeline: SANA's layout with a guidance embedding (scaled by 0.1, as SANA-Sprint's) and the
    sCM scheduler in TrigFlow time."""
    from diffusers import SanaSprintPipeline, SCMScheduler

    tokenizer, text_encoder = tiny_gemma2()
    transformer = tiny_sana_transformer(
        text_encoder.config.hidden_size,
        guidance_embeds=True,
        guidance_embeds_scale=0.1,
        qk_norm="rms_norm_across_heads",
    )
    return SanaSprintPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=tiny_dc_ae(),
        transformer=transformer,
        scheduler=SCMScheduler(),
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
