"""The embedded teacher: a Stable-Diffusion-layout pipeline (CLIP BPE tokenizer, CLIP text encoder, UNet, the
embedded VAE) trained from scratch on rendered shapes with epsilon prediction on SD's noise schedule and caption
dropout, so classifier-free guidance works."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from lcm_bench.models.tiny import SD_SCHEDULER, save_pipeline, sd_pipeline
from lcm_bench.train.training_loop import Budget

MAX_TOKENS = 32


def clip_tokenizer(folder: Path):
    """Hugging Face CLIPTokenizer files written from the BPE vocabulary open_clip ships (OpenAI CLIP's)."""
    from open_clip.tokenizer import SimpleTokenizer
    from transformers import CLIPTokenizer

    bpe = SimpleTokenizer()
    rename = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}
    vocab = {rename.get(token, token): index for token, index in bpe.encoder.items()}
    merges = [" ".join(pair) for pair, _ in sorted(bpe.bpe_ranks.items(), key=lambda item: item[1])]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=MAX_TOKENS)


def build_text_encoder(tokenizer):
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=MAX_TOKENS,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )


def build_unet(time_cond_proj_dim: int | None = None):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(48, 96, 96),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=64,
        attention_head_dim=8,
        norm_num_groups=16,
        time_cond_proj_dim=time_cond_proj_dim,
    )


class TextToNoise(torch.nn.Module):
    """Text encoder and UNet trained together (one module, so one optimiser and one EMA)."""

    def __init__(self, text_encoder, unet):
        super().__init__()
        self.text_encoder, self.unet = text_encoder, unet

    def forward(self, noisy, t, input_ids):
        return self.unet(noisy, t, encoder_hidden_states=self.text_encoder(input_ids)[0]).sample


def _encoded(vae_dir: Path, tokenizer, n_train: int):
    """The VAE, the scaled latents of ``n_train`` rendered training images, their caption tokens and the empty
    caption's tokens."""
    from diffusers import AutoencoderKL

    from lcm_bench.train.splits import rendered
    from lcm_bench.train.vae import encode

    vae = AutoencoderKL.from_pretrained(vae_dir, torch_dtype=torch.float32)
    data = rendered("train", n_train)
    latents = encode(vae, data.images) * vae.config.scaling_factor

    def tokens(captions: list[str]) -> torch.Tensor:
        return tokenizer(captions, padding="max_length", max_length=MAX_TOKENS, truncation=True, return_tensors="pt")

    return vae, latents, tokens(data.captions).input_ids, tokens([""]).input_ids


BUDGET = Budget(steps=4000, batch=128, n_train=40000)


def train_teacher(out: Path, vae_dir: Path, budget: Budget = BUDGET, dropout: float = 0.1) -> dict:
    """Epsilon-prediction training with caption dropout (for classifier-free guidance) and an EMA of the weights; it
    is measured by the teacher-eval suite, not here (``budget.n_test`` is unused)."""
    from diffusers import DDPMScheduler

    from lcm_bench.core.io import write_json
    from lcm_bench.train.training_loop import TrainingPlan, train

    steps, batch, n_train, log_every = budget.steps, budget.batch, budget.n_train, budget.log_every

    out.parent.mkdir(parents=True, exist_ok=True)
    tokenizer = clip_tokenizer(Path(tempfile.mkdtemp()) / "tokenizer")
    vae, latents, ids, empty = _encoded(vae_dir, tokenizer, n_train)
    noise_schedule = DDPMScheduler(**{k: v for k, v in SD_SCHEDULER.items() if k.startswith(("beta", "num"))})
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = TextToNoise(build_text_encoder(tokenizer), build_unet())

    def loss_fn(m, step, generator):
        idx = torch.randint(0, len(latents), (batch,), generator=generator)
        z0 = latents[idx]
        tokens = ids[idx].clone()
        tokens[torch.rand(batch, generator=generator) < dropout] = empty[0]
        t = torch.randint(0, 1000, (batch,), generator=generator)
        noise = torch.randn(z0.shape, generator=generator)
        return torch.nn.functional.mse_loss(m(noise_schedule.add_noise(z0, noise, t), t, tokens), noise)

    checkpoint = out.parent / f".{out.name}-checkpoint.pt"
    plan = TrainingPlan(steps, lr=1e-3, ema_decay=0.999, log_every=log_every)
    model, history = train(model, loss_fn, checkpoint, plan, desc="teacher")
    save_pipeline(sd_pipeline(vae, model.text_encoder, tokenizer, model.unet), out)
    parameters = {
        "unet": sum(p.numel() for p in model.unet.parameters()),
        "text_encoder": sum(p.numel() for p in model.text_encoder.parameters()),
    }
    card = {
        "steps": steps,
        "batch": batch,
        "caption_dropout": dropout,
        "train_images": n_train,
        "parameters": parameters,
        "loss_history": history,
    }
    write_json(out / "card.json", card)
    return card
