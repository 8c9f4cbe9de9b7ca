"""The embedded autoencoder: a diffusers AutoencoderKL, 32x32x3 -> 8x8x4, trained on rendered shapes."""

from __future__ import annotations

from dataclasses import astuple
from pathlib import Path

import numpy as np
import torch

from lcm_bench.train.training_loop import Budget


def build_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        sample_size=32,
        layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(32, 64, 64),
        norm_num_groups=16,
    )


def to_unit(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1


@torch.inference_mode()
def encode(vae, images: np.ndarray, batch_size: int = 512) -> torch.Tensor:
    """Posterior means, unscaled."""
    return torch.cat(
        [vae.encode(to_unit(images[i : i + batch_size])).latent_dist.mode() for i in range(0, len(images), batch_size)]
    )


@torch.inference_mode()
def reconstruct(vae, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    out = []
    for i in range(0, len(images), batch_size):
        x = vae.decode(vae.encode(to_unit(images[i : i + batch_size])).latent_dist.mode()).sample
        out.append(((x / 2 + 0.5).clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


BUDGET = Budget(steps=2500, batch=64, n_train=40000, n_test=2000)


def train_vae(out: Path, judge_dir: Path, budget: Budget = BUDGET, kl_weight: float = 1e-6) -> dict:
    """Train, set ``scaling_factor`` to 1 / std of the latents (as Stable Diffusion does), save, and measure."""
    from lcm_bench.core.io import write_json
    from lcm_bench.domain.judge import accuracy, load_judge
    from lcm_bench.train.splits import rendered
    from lcm_bench.train.training_loop import TrainingPlan, train

    steps, batch, n_train, n_test, log_every = astuple(budget)
    data = rendered("train", n_train)
    images = to_unit(data.images)
    vae = build_vae()

    def loss_fn(model, step, generator):
        x = images[torch.randint(0, len(images), (batch,), generator=generator)]
        posterior = model.encode(x).latent_dist
        z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator)
        recon = model.decode(z).sample
        return (
            torch.nn.functional.mse_loss(recon, x) + 0.5 * (recon - x).abs().mean() + kl_weight * posterior.kl().mean()
        )

    checkpoint = out.parent / f".{out.name}-checkpoint.pt"
    vae, history = train(vae, loss_fn, checkpoint, TrainingPlan(steps, lr=1e-3, log_every=log_every), desc="vae")
    latents = encode(vae, data.images[:4096])
    vae.register_to_config(scaling_factor=float(1 / latents.std()))
    test = rendered("test", n_test)
    recon = reconstruct(vae, test.images)
    mse = float(np.mean((recon.astype(np.float64) - test.images) ** 2))
    card = {
        "steps": steps,
        "batch": batch,
        "kl_weight": kl_weight,
        "parameters": sum(p.numel() for p in vae.parameters()),
        "scaling_factor": vae.config.scaling_factor,
        "psnr_db_test": 10 * np.log10(255**2 / mse),
        "judge_accuracy_reconstructions": accuracy(load_judge(judge_dir), recon, test.labels),
        "judge_accuracy_originals": accuracy(load_judge(judge_dir), test.images, test.labels),
        "loss_history": history,
    }
    vae.save_pretrained(out, safe_serialization=True)
    write_json(out / "card.json", card)
    return card
