"""The shipped embedded models do what their cards say, on a handful of samples (fast)."""

import json

import numpy as np
import pytest
import torch

from lcm_bench.core.paths import embedded_models_dir
from lcm_bench.domain.shapes import HEADS, SAMPLED_RELATIONS, captions, labels, parse, render

TEACHER, JUDGE, VAE, CLIP = (embedded_models_dir() / f"shapes-{m}" for m in ("teacher", "judge", "vae", "clip"))
shipped = pytest.mark.skipif(
    not all((folder / "card.json").is_file() for folder in (TEACHER, JUDGE, VAE, CLIP)), reason="models not shipped"
)


def _truth(texts):
    return {k: np.array([labels(parse(t))[k] for t in texts]) for k in HEADS}


def test_sampled_relations_name_objects_in_reading_order():
    scenes = [parse(t) for t in captions("train", 400)]
    assert {s.where for s in scenes if len(s.objects) == 2} == set(SAMPLED_RELATIONS)
    swapped = parse("a red circle right of a blue star on a black background")
    canonical = parse("a blue star left of a red circle on a black background")
    assert labels(swapped) == labels(canonical)


@shipped
def test_shipped_teacher_loads_with_diffusers_and_draws_what_the_judge_reads():
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    from lcm_bench.domain.judge import accuracy, load_judge

    pipe = StableDiffusionPipeline.from_pretrained(TEACHER, safety_checker=None, requires_safety_checker=False)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, timestep_spacing="trailing")
    pipe.set_progress_bar_config(disable=True)
    texts = captions("test", 24, 11)
    generator = torch.Generator().manual_seed(0)
    out = pipe(texts, num_inference_steps=20, guidance_scale=3.0, generator=generator, output_type="np")
    images = (out.images * 255).round().astype(np.uint8)
    assert images.shape == (24, 32, 32, 3)
    scores = accuracy(load_judge(JUDGE), images, _truth(texts))
    assert scores["all"] >= 0.7, scores


@shipped
def test_shipped_vae_keeps_attributes():
    from diffusers import AutoencoderKL

    from lcm_bench.domain.judge import accuracy, load_judge
    from lcm_bench.train.vae import reconstruct

    texts = captions("heldout", 64, 5)
    images = np.stack([render(t, i) for i, t in enumerate(texts)])
    recon = reconstruct(AutoencoderKL.from_pretrained(VAE), images)
    psnr = 10 * np.log10(255**2 / np.mean((recon.astype(np.float64) - images) ** 2))
    assert psnr > 30, psnr
    assert accuracy(load_judge(JUDGE), recon, _truth(texts))["all"] >= 0.9


@shipped
def test_shipped_clip_scores_matched_pairs_above_shuffled():
    from lcm_bench.models.clip import load_clip
    from lcm_bench.train.shapes_clip import MODEL, evaluate_clip

    texts = captions("heldout", 64, 9)
    images = np.stack([render(t, i) for i, t in enumerate(texts)])
    scores = evaluate_clip(load_clip(MODEL, str(CLIP / "open_clip_model.safetensors")), images, texts)
    assert scores["clip_score_matched"] > scores["clip_score_shuffled"] + 30, scores
    assert scores["retrieval_top1"] > 0.3, scores
    card = json.loads((CLIP / "card.json").read_text())
    assert card["eval_heldout"]["retrieval_top1"] > 0.3


def test_clip_steps_lower_the_loss(tmp_path):
    from lcm_bench.train.shapes_clip import train_clip
    from lcm_bench.train.training_loop import Budget

    card = train_clip(tmp_path / "clip", Budget(steps=30, batch=32, n_train=512, n_test=64, log_every=10))
    assert card["loss_history"][-1][1] < card["loss_history"][0][1]
    assert (tmp_path / "clip" / "open_clip_model.safetensors").is_file()
