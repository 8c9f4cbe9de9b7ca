"""The embedded models' trainers, each a registry entry: ``train(out, **options)`` trains one model of the shapes
domain from scratch (seeded, resumable) into ``out`` and returns its card. ``lcm-bench train MODEL`` looks them up
here; an entry that builds on another shipped model names it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lcm_bench.core.paths import embedded_models_dir
from lcm_bench.core.registry import Registry


@dataclass(frozen=True)
class Trainer:
    description: str
    train: Callable[..., dict[str, Any]]


TRAINERS: Registry[Trainer] = Registry("trainer")


def _judge(out: Path, **options) -> dict[str, Any]:
    from lcm_bench.train.attribute_judge import train_judge

    return train_judge(out, **options)


def _vae(out: Path, **options) -> dict[str, Any]:
    from lcm_bench.train.vae import train_vae

    return train_vae(out, embedded_models_dir() / "shapes-judge", **options)


def _teacher(out: Path, **options) -> dict[str, Any]:
    from lcm_bench.train.teacher import train_teacher

    return train_teacher(out, embedded_models_dir() / "shapes-vae", **options)


def _tiny_decoder(out: Path, **options) -> dict[str, Any]:
    from lcm_bench.train.tiny_decoder import train_tiny_decoder

    return train_tiny_decoder(out, embedded_models_dir() / "shapes-vae", **options)


def _clip(out: Path, **options) -> dict[str, Any]:
    from lcm_bench.train.shapes_clip import train_clip

    return train_clip(out, **options)


TRAINERS.register("judge", Trainer("the attribute judge (a CNN, one head per attribute)", _judge))
TRAINERS.register("vae", Trainer("the autoencoder (AutoencoderKL), judged by the shipped judge", _vae))
TRAINERS.register("teacher", Trainer("the teacher pipeline on the shipped autoencoder", _teacher))
TRAINERS.register("clip", Trainer("the in-domain open_clip model (CLIP score, CMMD)", _clip))
TRAINERS.register(
    "tiny-decoder",
    Trainer("the autoencoder distilled into AutoencoderTiny's layout (runtime tiny-decoder)", _tiny_decoder),
)
