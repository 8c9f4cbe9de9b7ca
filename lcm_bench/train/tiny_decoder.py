"""The embedded tiny decoder: the shapes VAE distilled into diffusers' ``AutoencoderTiny`` layout (TAESD, Bohan
2023): latents 4x smaller than the image (two upsampling stages, as the shapes VAE downsamples 4x), taking the
*scaled* latents a pipeline denoises (``scaling_factor`` 1, as TAESD), its decoder trained to reproduce the full
decoder's images of encoded renders and of those latents perturbed with noise, its encoder to reproduce the full
encoder's scaled posterior means."""

from __future__ import annotations

from dataclasses import astuple
from pathlib import Path

import numpy as np
import torch

from lcm_bench.train.training_loop import Budget

CHANNELS = (48, 48, 48)


def build_tiny_decoder():
    from diffusers import AutoencoderTiny

    return AutoencoderTiny(
        encoder_block_out_channels=CHANNELS,
        decoder_block_out_channels=CHANNELS,
        num_encoder_blocks=(1, 1, 1),
        num_decoder_blocks=(1, 1, 1),
        latent_channels=4,
        upsampling_scaling_factor=2,
        scaling_factor=1.0,
    )


@torch.inference_mode()
def distillation_pairs(vae, images: np.ndarray, noise: float, seed: int, batch_size: int = 512):
    """(scaled posterior means, those perturbed, the full VAE's images of the perturbed ones): encoded renders,
    each perturbed by Gaussian noise of a standard deviation drawn uniformly in [0, ``noise``] (a sampler's latents
    are not exactly an encoder's)."""
    from lcm_bench.train.vae import to_unit

    generator = torch.Generator().manual_seed(seed)
    clean, latents, targets = [], [], []
    for i in range(0, len(images), batch_size):
        z = vae.encode(to_unit(images[i : i + batch_size])).latent_dist.mode() * vae.config.scaling_factor
        sigma = torch.rand((len(z), 1, 1, 1), generator=generator) * noise
        clean.append(z)
        latents.append(z + sigma * torch.randn(z.shape, generator=generator))
        targets.append(vae.decode(latents[-1] / vae.config.scaling_factor).sample.clamp(-1, 1))
    return torch.cat(clean), torch.cat(latents), torch.cat(targets)


BUDGET = Budget(steps=3000, batch=64, n_train=16000, n_test=2000)


def train_tiny_decoder(out: Path, vae_dir: Path, budget: Budget = BUDGET, noise: float = 0.5) -> dict:
    """Distil, save (safetensors, atomically through ``save_pretrained``'s folder), and measure reconstructions."""
    from diffusers import AutoencoderKL

    from lcm_bench.core.io import write_json
    from lcm_bench.train.splits import rendered
    from lcm_bench.train.training_loop import TrainingPlan, train
    from lcm_bench.train.vae import to_unit

    steps, batch, n_train, n_test, log_every = astuple(budget)
    vae = AutoencoderKL.from_pretrained(vae_dir).eval()
    data = rendered("train", n_train)
    clean, latents, targets = distillation_pairs(vae, data.images, noise, seed=0)
    images = to_unit(data.images)
    tiny = build_tiny_decoder()

    def loss_fn(model, step, generator):
        pick = torch.randint(0, len(latents), (batch,), generator=generator)
        decoded = model.decode(latents[pick]).sample
        encoded = model.encode(images[pick]).latents
        image_loss = torch.nn.functional.mse_loss(decoded, targets[pick]) + 0.5 * (decoded - targets[pick]).abs().mean()
        return image_loss + torch.nn.functional.mse_loss(encoded, clean[pick])

    checkpoint = out.parent / f".{out.name}-checkpoint.pt"
    plan = TrainingPlan(steps, lr=2e-3, log_every=log_every)
    tiny, history = train(tiny, loss_fn, checkpoint, plan, desc="tiny decoder")
    card = {
        "steps": steps,
        "batch": batch,
        "latent_noise": noise,
        "parameters": sum(p.numel() for p in tiny.parameters()),
        "decoder_parameters": sum(p.numel() for p in tiny.decoder.parameters()),
        "vae_decoder_parameters": sum(p.numel() for p in vae.decoder.parameters()) + _post_quant(vae),
        "scaling_factor": tiny.config.scaling_factor,
        **reconstruction_figures(vae, tiny, n_test),
        "loss_history": history,
    }
    tiny.save_pretrained(out, safe_serialization=True)
    write_json(out / "card.json", card)
    return card


def _post_quant(vae) -> int:
    return sum(p.numel() for p in vae.post_quant_conv.parameters()) if vae.post_quant_conv is not None else 0


@torch.inference_mode()
def reconstruction_figures(vae, tiny, n_test: int = 2000) -> dict:
    """PSNR of the tiny decoder's images against the full decoder's and against the renders, on held-out renders
    encoded by the full VAE."""
    from lcm_bench.train.splits import rendered

    test = rendered("test", n_test)
    _, latents, full = distillation_pairs(vae, test.images, 0.0, seed=1)
    small = torch.cat([tiny.decode(latents[i : i + 512]).sample for i in range(0, len(latents), 512)]).clamp(-1, 1)
    renders = torch.from_numpy(test.images).permute(0, 3, 1, 2).float() / 127.5 - 1

    def psnr(a, b) -> float:
        return float(10 * torch.log10(4 / ((a - b) ** 2).mean()))

    return {"psnr_db_vs_full_decoder": psnr(small, full), "psnr_db_vs_renders": psnr(small, renders)}
