"""Training the embedded models: a few steps of each lower the loss; checkpoints resume exactly."""

import json

import numpy as np
import pytest
import torch

from lcm_bench.core.paths import embedded_models_dir
from lcm_bench.domain.shapes import HEADS, captions, labels, parse, render
from lcm_bench.train.training_loop import Budget, TrainingPlan, train


def test_domain_is_deterministic_and_parses_its_captions():
    texts = captions("train", 200)
    assert texts == captions("train", 200)
    assert all(parse(t) is not None and parse(t).caption == t for t in texts)
    np.testing.assert_array_equal(render(texts[0], 3), render(texts[0], 3))
    assert np.abs(render(texts[0], 3).astype(int) - render(texts[0], 4)).sum() > 0
    heldout = [parse(t) for t in captions("heldout", 200)]
    from lcm_bench.domain.shapes import HELDOUT_PAIRS

    assert all(any(o in HELDOUT_PAIRS for o in s.objects) for s in heldout)
    assert not any(o in HELDOUT_PAIRS for t in texts for o in parse(t).objects)
    assert set(labels(parse(texts[0]))) == set(HEADS)


def test_resume_continues_exactly(tmp_path):
    def make():
        torch.manual_seed(0)
        return torch.nn.Linear(4, 1)

    data = torch.randn(64, 4)

    def loss_fn(model, step, generator):
        x = data[torch.randint(0, 64, (8,), generator=generator)]
        return (model(x) - x.sum(1, keepdim=True)).pow(2).mean()

    straight, _ = train(make(), loss_fn, tmp_path / "a.pt", TrainingPlan(20, checkpoint_every=5, log_every=5))
    train(make(), loss_fn, tmp_path / "b.pt", TrainingPlan(10, checkpoint_every=5, log_every=5))
    resumed, history = train(make(), loss_fn, tmp_path / "b.pt", TrainingPlan(20, checkpoint_every=5, log_every=5))
    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    assert [s for s, _ in history] == [5, 10, 15, 20]


def _falls(history):
    return history[-1][1] < history[0][1]


def test_judge_steps_lower_the_loss(tmp_path):
    from lcm_bench.train.attribute_judge import train_judge

    card = train_judge(tmp_path / "judge", Budget(steps=40, batch=32, n_train=512, n_test=64, log_every=10))
    assert _falls(card["loss_history"])


def test_vae_steps_lower_the_loss(tmp_path):
    from lcm_bench.domain.judge import Judge, save_judge
    from lcm_bench.train.vae import train_vae

    save_judge(Judge(), tmp_path / "judge", {})
    card = train_vae(tmp_path / "vae", tmp_path / "judge", Budget(40, 16, 512, 64, log_every=10))
    assert _falls(card["loss_history"])
    assert (tmp_path / "vae" / "diffusion_pytorch_model.safetensors").is_file()


def test_teacher_steps_lower_the_loss_and_load_as_a_pipeline(tmp_path):
    from lcm_bench.core.spec import ModelSpec
    from lcm_bench.models.resolve import resolve_model
    from lcm_bench.train.teacher import train_teacher
    from lcm_bench.train.vae import build_vae

    build_vae().save_pretrained(tmp_path / "vae")
    card = train_teacher(tmp_path / "teacher", tmp_path / "vae", Budget(40, 16, 512, log_every=10))
    assert _falls(card["loss_history"])
    resolved = resolve_model(ModelSpec("t", str(tmp_path / "teacher")))
    assert resolved.family == "sd" and not resolved.guidance_embedding


@pytest.mark.skipif(
    not (embedded_models_dir() / "shapes-judge" / "judge.safetensors").is_file(), reason="judge not shipped"
)
def test_shipped_judge_reads_rendered_images():
    from lcm_bench.domain.judge import accuracy, load_judge

    texts = captions("test", 128, 7)
    images = np.stack([render(t, i) for i, t in enumerate(texts)])
    truth = {k: np.array([labels(parse(t))[k] for t in texts]) for k in HEADS}
    scores = accuracy(load_judge(embedded_models_dir() / "shapes-judge"), images, truth)
    assert scores["all"] >= 0.9, scores
    card = json.loads((embedded_models_dir() / "shapes-judge" / "card.json").read_text())
    assert card["accuracy_test"]["all"] >= 0.9


@pytest.mark.parametrize(
    ("model", "module", "function"),
    [
        ("judge", "attribute_judge", "train_judge"),
        ("vae", "vae", "train_vae"),
        ("teacher", "teacher", "train_teacher"),
        ("tiny-decoder", "tiny_decoder", "train_tiny_decoder"),
        ("clip", "shapes_clip", "train_clip"),
    ],
)
def test_a_trainer_entry_hands_over_its_budget_with_the_steps_asked(monkeypatch, tmp_path, model, module, function):
    """``lcm-bench train MODEL --steps N`` trains on the module's budget with N steps; without --steps, on the
    budget as it is."""
    import importlib

    from lcm_bench.train.trainers import TRAINERS

    trainer_module = importlib.import_module(f"lcm_bench.train.{module}")
    seen = []
    monkeypatch.setattr(trainer_module, function, lambda out, *args: seen.append(args) or {})
    TRAINERS.get(model).train(tmp_path, 7)
    TRAINERS.get(model).train(tmp_path, None)
    (asked,), (default,) = [[a for a in args if isinstance(a, Budget)] for args in seen]
    assert default == trainer_module.BUDGET and asked == default.__class__(**{**vars(default), "steps": 7})
