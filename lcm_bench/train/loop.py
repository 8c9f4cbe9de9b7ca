"""A small training loop: seeded batches, AdamW (linear warm-up, cosine decay to a tenth), optional EMA, progress,
atomic checkpoints and resume."""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from lcm_bench.core.io import write_atomic


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
    stop_at: int | None = None,
    progress: bool = True,
) -> tuple[torch.nn.Module, list[tuple[int, float]]]:
    """Run ``steps`` optimisation steps of ``loss_fn(model, step, generator)``; resumes from ``checkpoint``.
    ``stop_at`` pauses after that many steps (checkpointed) with the schedule still planned for ``steps``, so
    snapshots along one run equal the straight run's.

    Returns the EMA model (or the model) and the logged (step, mean loss) history."""
    from tqdm import tqdm

    torch.manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, steps))
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
    end = min(steps, stop_at or steps)
    bar = tqdm(
        range(start, end),
        initial=start,
        total=steps,
        desc=desc,
        file=sys.stderr,
        dynamic_ncols=True,
        disable=not progress,
    )
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
        if (step + 1) % log_every == 0 or step + 1 == end:
            history.append((step + 1, running / count))
            bar.set_postfix(loss=f"{running / count:.4f}")
            running, count = 0.0, 0
        if (step + 1) % checkpoint_every == 0 or step + 1 == end:
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
    if end > start:
        print(
            f"{desc}: {end - start} steps in {time.time() - began:.0f} s, last loss {history[-1][1]:.4f}",
            file=sys.stderr,
        )
    return (ema if ema is not None else model), history
