"""Distillation methods, each a registry entry: its options (a config dataclass), the function that trains it, and
what it needs of its teacher. ``lcm-bench distill METHOD`` and a suite's ``distill:`` entries look methods up here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lcm_bench.core.registry import Registry
from lcm_bench.train.distill.config import GuidedConfig, LCDConfig


@dataclass(frozen=True)
class Distiller:
    """``run(method, teacher, data, config, DistillRun)`` trains a student and returns its card; ``config`` its
    options; ``lcm_teacher``: it fine-tunes an LCM (a teacher with a guidance embedding); ``in_suites``: a suite may
    ask for it (``distill:``), with snapshots along one run."""

    description: str
    config: type
    run: Callable[..., dict[str, Any]]
    lcm_teacher: bool = False
    in_suites: bool = False


DISTILLERS: Registry[Distiller] = Registry("distillation method")


def _lcd(student: Callable, target_network: bool, teacher_free: bool = False) -> Callable[..., dict[str, Any]]:
    """An LCD variant's training function; ``student(lcd)`` picks its student builder from the ``lcd`` module, which
    is imported (with torch and diffusers) only when the variant runs."""

    def run(method, teacher, data, config, session):
        from lcm_bench.train.distill import lcd

        variant = lcd.LCDVariant(method, student(lcd), target_network, teacher_free)
        return lcd.distill(variant, teacher, data, config, session)

    return run


def _guided(method, teacher, data, config, session) -> dict[str, Any]:
    from lcm_bench.train.distill.guided import distill_guided

    return distill_guided(teacher, data, config, session)


DISTILLERS.register(
    "lcm",
    Distiller(
        "Latent Consistency Distillation (Luo et al. 2023, Alg. 1): a w-conditioned consistency model, EMA target",
        LCDConfig,
        _lcd(lambda lcd: lambda t, c: lcd.lcd_student(t, c.w_embedding_dim), target_network=True),
        in_suites=True,
    ),
)
DISTILLERS.register(
    "lcm-lora",
    Distiller(
        "LCM-LoRA (Luo et al. 2023b): the same distillation training LoRA weights only",
        LCDConfig,
        _lcd(lambda lcd: lcd.lora_student, False),
    ),
)
DISTILLERS.register(
    "guided-distill",
    Distiller("guided distillation (Meng et al. 2023): w-conditioned students, halving steps", GuidedConfig, _guided),
)
DISTILLERS.register(
    "lcf",
    Distiller(
        "latent consistency fine-tuning (LCF): an LCM fine-tuned on data without a teacher",
        LCDConfig,
        _lcd(lambda lcd: lcd.teacher_copy, target_network=True, teacher_free=True),
        lcm_teacher=True,
    ),
)
