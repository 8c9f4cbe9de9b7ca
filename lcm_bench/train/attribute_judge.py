"""Training the attribute judge (lcm_bench.domain.judge) on rendered shapes: ``lcm-bench train judge``."""

from __future__ import annotations

from dataclasses import astuple
from pathlib import Path

import torch
from torch import nn

from lcm_bench.domain.judge import Judge, accuracy, save_judge, to_tensor
from lcm_bench.domain.shapes import HEADS
from lcm_bench.train.training_loop import Budget

BUDGET = Budget(steps=2000, batch=128, n_train=40000, n_test=2000)


def train_judge(out: Path, budget: Budget = BUDGET) -> dict:
    from lcm_bench.train.splits import rendered
    from lcm_bench.train.training_loop import TrainingPlan, train

    steps, batch, n_train, n_test, log_every = astuple(budget)
    data = rendered("all", n_train)
    images = to_tensor(data.images)
    targets = {k: torch.from_numpy(v) for k, v in data.labels.items()}
    judge = Judge()

    def loss_fn(model, step, generator):
        idx = torch.randint(0, len(images), (batch,), generator=generator)
        x = images[idx]
        shift = torch.randint(-1, 2, (2,), generator=generator)
        x = torch.roll(x, shifts=(int(shift[0]), int(shift[1])), dims=(2, 3))
        blurred = nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
        amount = torch.rand(batch, 1, 1, 1, generator=generator) * (
            torch.rand(batch, 1, 1, 1, generator=generator) < 0.5
        )
        x = x + amount * (blurred - x)
        noise = torch.randn(x.shape, generator=generator) * 4
        logits = model((x + noise).clamp(0, 255))
        return sum(nn.functional.cross_entropy(logits[k], targets[k][idx]) for k in HEADS)

    checkpoint = out.parent / f".{out.name}-checkpoint.pt"
    judge, history = train(judge, loss_fn, checkpoint, TrainingPlan(steps, lr=2e-3, log_every=log_every), desc="judge")
    test, heldout = rendered("test", n_test), rendered("heldout", n_test)
    card = {
        "steps": steps,
        "batch": batch,
        "train_images": n_train,
        "accuracy_test": accuracy(judge, test.images, test.labels),
        "accuracy_heldout": accuracy(judge, heldout.images, heldout.labels),
        "loss_history": history,
    }
    save_judge(judge, out, card)
    return card
