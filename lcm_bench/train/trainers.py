"""The embedded models' trainers, each a registry entry: ``train(out, steps)`` trains one model of the shapes domain
from scratch (seeded, resumable) into ``out`` on its module's ``Budget`` and returns its card. ``lcm-bench train
MODEL`` looks them up here; an entry that builds on another shipped model names it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lcm_bench.core.paths import embedded_models_dir
from lcm_bench.core.registry import Registry


@dataclass(frozen=True)
class Trainer:
    """``train(out, steps)`` trains the model into ``out`` (its module's budget, with ``steps`` optimisation steps
    when given) and returns its card."""

    description: str
    train: Callable[[Path, int | None], dict[str, Any]]


TRAINERS: Registry[Trainer] = Registry("trainer")


def _budget(default, steps: int | None):
    return replace(default, steps=steps) if steps else default


def _judge(out: Path, steps: int | None) -> dict[str, Any]:
    from lcm_bench.train.attribute_judge import BUDGET, train_judge

    return train_judge(out, _budget(BUDGET, steps))


def _vae(out: Path, steps: int | None) -> dict[str, Any]:
    from lcm_bench.train.vae import BUDGET, train_vae

    return train_vae(out, embedded_models_dir() / "shapes-judge", _budget(BUDGET, steps))


def _teacher(out: Path, steps: int | None) -> dict[str, Any]:
    from lcm_bench.train.teacher import BUDGET, train_teacher

    return train_teacher(out, embedded_models_dir() / "shapes-vae", _budget(BUDGET, steps))


def _tiny_decoder(out: Path, steps: int | None) -> dict[str, Any]:
    from lcm_bench.train.tiny_decoder import BUDGET, train_tiny_decoder

    return train_tiny_decoder(out, embedded_models_dir() / "shapes-vae", _budget(BUDGET, steps))


def _clip(out: Path, steps: int | None) -> dict[str, Any]:
    from lcm_bench.train.shapes_clip import BUDGET, train_clip

    return train_clip(out, _budget(BUDGET, steps))


TRAINERS.register("judge", Trainer("the attribute judge (a CNN, one head per attribute)", _judge))
TRAINERS.register("vae", Trainer("the autoencoder (AutoencoderKL), judged by the shipped judge", _vae))
TRAINERS.register("teacher", Trainer("the teacher pipeline on the shipped autoencoder", _teacher))
TRAINERS.register("clip", Trainer("the in-domain open_clip model (CLIP score, CMMD)", _clip))
TRAINERS.register(
    "tiny-decoder",
    Trainer("the autoencoder distilled into AutoencoderTiny's layout (runtime tiny-decoder)", _tiny_decoder),
)
