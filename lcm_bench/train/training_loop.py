"""A small training loop: seeded batches, AdamW (linear warm-up, cosine decay to a tenth), optional EMA, progress,
atomic checkpoints and resume."""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lcm_bench.core.io import on_terminal, write_atomic


def save_checkpoint(path: Path, state: dict) -> None:
    """torch.save to bytes, then an atomic rename: a reader never meets a half-written file."""
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomic(path, buffer.getvalue())


def warmup_cosine(step: int, steps: int, warmup: int = 200, floor: float = 0.1) -> float:
    """Learning-rate factor: linear warm-up, then cosine decay from 1 to ``floor`` at ``steps``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, steps - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class Budget:
    """How much a trainer of an embedded model trains and measures: ``steps`` optimisation steps of ``batch``
    examples drawn from ``n_train`` rendered training images, ``n_test`` images per held-out split to measure on, the
    loss logged every ``log_every`` steps. Each trainer has its own default (its module's ``BUDGET``)."""

    steps: int
    batch: int
    n_train: int
    n_test: int = 2000
    log_every: int = 100


@dataclass(frozen=True)
class TrainingPlan:
    """How the loop trains: ``steps`` optimisation steps (the length its learning-rate schedule is planned for), AdamW
    at ``lr``, an EMA of the weights at ``ema_decay`` (none when None), seeded by ``seed``; the loss logged every
    ``log_every`` steps and a checkpoint every ``checkpoint_every``; ``stop_at`` pauses after that many steps
    (checkpointed), so that snapshots along one run equal the straight run's."""

    steps: int
    lr: float = 1e-3
    ema_decay: float | None = None
    seed: int = 0
    log_every: int = 100
    checkpoint_every: int = 500
    stop_at: int | None = None


@dataclass
class Training:
    """What a run of the loop carries from step to step, and what its checkpoint holds."""

    model: torch.nn.Module
    params: list
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LambdaLR
    ema: torch.nn.Module | None
    generator: torch.Generator
    start: int = 0
    history: list = field(default_factory=list)

    def state(self, step: int) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "generator": self.generator.get_state(),
            "ema": self.ema.state_dict() if self.ema is not None else {},
            "step": step,
            "history": torch.tensor(self.history or [(0, 0.0)], dtype=torch.float64),
        }

    def restore(self, checkpoint: Path) -> None:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.generator.set_state(state["generator"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.start, self.history = state["step"], [tuple(h) for h in state["history"].tolist()]


def _begin(model: torch.nn.Module, plan: TrainingPlan) -> Training:
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=plan.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, plan.steps))
    ema = copy.deepcopy(model).eval().requires_grad_(False) if plan.ema_decay else None
    return Training(model, params, optimizer, schedule, ema, torch.Generator().manual_seed(plan.seed))


def _step(run: Training, loss_fn: Callable, step: int, ema_decay: float | None) -> float:
    loss = loss_fn(run.model, step, run.generator)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(run.params, 1.0)
    run.optimizer.step()
    run.schedule.step()
    if run.ema is not None:
        with torch.no_grad():
            for e, p in zip(run.ema.parameters(), run.model.parameters(), strict=True):
                e.lerp_(p, 1 - ema_decay)
    return loss.item()


def train(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.nn.Module, int, torch.Generator], torch.Tensor],
    checkpoint: Path,
    plan: TrainingPlan,
    desc: str = "train",
    progress: bool = True,
) -> tuple[torch.nn.Module, list[tuple[int, float]]]:
    """Run ``plan``'s optimisation steps of ``loss_fn(model, step, generator)``; resumes from ``checkpoint``.
    torch's global random state is seeded for the loop and restored after it.

    Returns the EMA model (or the model) and the logged (step, mean loss) history."""
    from tqdm import tqdm

    steps = plan.steps
    with torch.random.fork_rng():
        torch.manual_seed(plan.seed)
        run = _begin(model, plan)
        if checkpoint.is_file():
            run.restore(checkpoint)
        model.train()
        running, count, began = 0.0, 0, time.time()
        end = min(steps, plan.stop_at or steps)
        bar = tqdm(
            range(run.start, end),
            initial=run.start,
            total=steps,
            desc=desc,
            file=sys.stderr,
            dynamic_ncols=True,
            disable=not on_terminal(progress),
        )
        for step in bar:
            running, count = running + _step(run, loss_fn, step, plan.ema_decay), count + 1
            if (step + 1) % plan.log_every == 0 or step + 1 == end:
                run.history.append((step + 1, running / count))
                bar.set_postfix(loss=f"{running / count:.4f}")
                running, count = 0.0, 0
            if (step + 1) % plan.checkpoint_every == 0 or step + 1 == end:
                save_checkpoint(checkpoint, run.state(step + 1))
        bar.close()
    model.eval()
    if end > run.start:
        print(
            f"{desc}: {end - run.start} steps in {time.time() - began:.0f} s, last loss {run.history[-1][1]:.4f}",
            file=sys.stderr,
        )
    return (run.ema if run.ema is not None else model), run.history
