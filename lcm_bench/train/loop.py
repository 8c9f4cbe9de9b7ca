"""A small training loop: seeded batches, AdamW, optional EMA, progress, atomic checkpoints and resume."""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ..store import write_atomic


def save_checkpoint(path: Path, state: dict) -> None:
    """torch.save to bytes, then an atomic rename: a reader never meets a half-written file."""
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomic(path, buffer.getvalue())


def train(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.nn.Module, int, torch.Generator], torch.Tensor],
    steps: int,
    checkpoint: Path,
    lr: float = 1e-3,
    ema_decay: float | None = None,
    seed: int = 0,
    log_every: int = 100,
    checkpoint_every: int = 500,
    desc: str = "train",
) -> tuple[torch.nn.Module, list[tuple[int, float]]]:
    """Run ``steps`` optimisation steps of ``loss_fn(model, step, generator)``; resumes from ``checkpoint``.

    Returns the EMA model (or the model) and the logged (step, mean loss) history."""
    from tqdm import tqdm

    torch.manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 200))
    ema = copy.deepcopy(model).eval().requires_grad_(False) if ema_decay else None
    generator = torch.Generator().manual_seed(seed)
    start, history = 0, []
    if checkpoint.is_file():
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        generator.set_state(state["generator"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        start, history = state["step"], [tuple(h) for h in state["history"].tolist()]
    model.train()
    running, count, began = 0.0, 0, time.time()
    bar = tqdm(range(start, steps), initial=start, total=steps, desc=desc, file=sys.stderr, dynamic_ncols=True)
    for step in bar:
        loss = loss_fn(model, step, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        if ema is not None:
            with torch.no_grad():
                for e, p in zip(ema.parameters(), model.parameters(), strict=True):
                    e.lerp_(p, 1 - ema_decay)
        running, count = running + loss.item(), count + 1
        if (step + 1) % log_every == 0 or step + 1 == steps:
            history.append((step + 1, running / count))
            bar.set_postfix(loss=f"{running / count:.4f}")
            running, count = 0.0, 0
        if (step + 1) % checkpoint_every == 0 or step + 1 == steps:
            save_checkpoint(
                checkpoint,
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(),
                    "generator": generator.get_state(),
                    "ema": ema.state_dict() if ema is not None else {},
                    "step": step + 1,
                    "history": torch.tensor(history or [(0, 0.0)], dtype=torch.float64),
                },
            )
    bar.close()
    model.eval()
    if steps > start:
        print(
            f"{desc}: {steps - start} steps in {time.time() - began:.0f} s, last loss {history[-1][1]:.4f}",
            file=sys.stderr,
        )
    return (ema if ema is not None else model), history
