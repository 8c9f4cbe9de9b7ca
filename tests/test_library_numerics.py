"""Where lcm-bench calls a library instead of its own numerics, the library's result is the one the hand-written code
gave: bit for bit, so no image, student or metric changed when the hand-written code went."""

import math

import numpy as np
import pytest
import torch

from lcm_bench.core.images import image_grid
from lcm_bench.sampling.guidance import guidance_embedding


def vdm_embedding(w, dim: int, batch: int) -> torch.Tensor:
    """The hand-written embedding lcm-bench used before (VDM's, as diffusers' LCM pipeline computes it)."""
    w_tensor = torch.as_tensor(w, dtype=torch.float32).expand(batch) * 1000.0
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -(np.log(10000.0) / (half - 1)))
    angles = w_tensor[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    return torch.nn.functional.pad(emb, (0, 1)) if dim % 2 else emb


@pytest.mark.parametrize("dim", [64, 256, 33])
@pytest.mark.parametrize("w", [0.0, 2.0, 7.5, torch.tensor([0.5, 3.0, 8.0])])
def test_guidance_embedding_is_the_hand_written_one(dim, w):
    assert torch.equal(guidance_embedding(w, dim, 3, torch.float32), vdm_embedding(w, dim, 3))
    assert torch.equal(guidance_embedding(w, dim, 3, torch.float16), vdm_embedding(w, dim, 3).half())


def test_forward_noising_and_alphas_are_the_hand_written_ones(tiny_sd_path):
    from lcm_bench.train.distill.frozen_teacher import load_teacher

    teacher = load_teacher(tiny_sd_path)
    config = teacher.scheduler_config
    betas = torch.linspace(config["beta_start"] ** 0.5, config["beta_end"] ** 0.5, config["num_train_timesteps"]) ** 2
    assert torch.equal(teacher.alphas, torch.cumprod(1 - betas, 0))
    generator = torch.Generator().manual_seed(0)
    x, noise = torch.randn(8, 4, 16, 16, generator=generator), torch.randn(8, 4, 16, 16, generator=generator)
    t = torch.randint(0, 1000, (8,), generator=generator)
    a = teacher.alphas[t].view(-1, 1, 1, 1)
    assert torch.equal(teacher.noised(x, noise, t), a.sqrt() * x + (1 - a).sqrt() * noise)


def hand_grid(images, columns: int, pad: int, fill: int) -> np.ndarray:
    rows = math.ceil(len(images) / columns)
    h, w = images[0].shape[:2]
    canvas = np.full((pad + rows * (h + pad), pad + columns * (w + pad), 3), fill, dtype=np.uint8)
    for i, image in enumerate(images):
        top, left = pad + (i // columns) * (h + pad), pad + (i % columns) * (w + pad)
        canvas[top : top + h, left : left + w] = image
    return canvas


@pytest.mark.parametrize("n, columns, pad, fill", [(1, 1, 0, 0), (5, 4, 0, 0), (16, 4, 0, 0), (12, 6, 2, 255)])
def test_image_grid_is_the_hand_written_one(n, columns, pad, fill):
    rng = np.random.default_rng(n)
    images = [rng.integers(0, 256, (8, 12, 3), dtype=np.uint8) for _ in range(n)]
    grid = image_grid(images, columns, padding=pad, fill=fill)
    assert grid.dtype == np.uint8 and np.array_equal(grid, hand_grid(images, columns, pad, fill))
