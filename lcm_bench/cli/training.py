"""Training the embedded models: ``train`` (one model of the shapes domain from scratch) and ``distill`` (a student
of a teacher by a registered distillation method)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from lcm_bench.cli.commands import ArgumentParser, command
from lcm_bench.core.errors import UserError


def _train_arguments(parser: ArgumentParser) -> None:
    from lcm_bench.train.trainers import TRAINERS

    parser.add_argument("model", choices=TRAINERS.in_order())
    parser.add_argument("--out", help="output folder (default data/models/shapes-<model> of a checkout, else ./)")
    parser.add_argument("--steps", type=int, help="optimisation steps (default: the shipped model's)")


def _print_card(card: dict) -> None:
    import json

    print(json.dumps({k: v for k, v in card.items() if k != "loss_history"}, indent=1))


@command("train", "train an embedded model of the shapes domain from scratch (resumable)", _train_arguments)
def train(args: argparse.Namespace) -> int:
    """Train one embedded model from scratch (seeded, resumable); prints its figures."""
    import time

    from lcm_bench.core.paths import model_output_dir
    from lcm_bench.train.readmes import write_card
    from lcm_bench.train.trainers import TRAINERS

    out = Path(args.out) if args.out else model_output_dir() / f"shapes-{args.model}"
    began = time.time()
    card = TRAINERS.get(args.model).train(out, args.steps)
    write_card(out, args.model, time.time() - began, command=f"lcm-bench train {args.model}")
    _print_card(card)
    return 0


def _config_fields() -> dict[str, tuple[str, object]]:
    """Every option of the distillation methods' configs: name -> (the methods that take it, default). An option of
    a base config shared by every method is listed once, as taken by all methods."""
    from lcm_bench.train.distill.config import StudentConfig
    from lcm_bench.train.distill.distillers import DISTILLERS

    configs = {StudentConfig: "all methods"}
    for name, distiller in DISTILLERS.items():
        taking = configs.get(distiller.config, "")
        configs[distiller.config] = f"{taking}, {name}" if taking else name
    fields = {}
    for config, methods in configs.items():
        for field in dataclasses.fields(config):
            fields.setdefault(field.name, (methods, field.default))
    return fields


def _steps_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected step counts such as 8,4,2,1, got '{text}'") from None


def _distill_arguments(parser: ArgumentParser) -> None:
    from lcm_bench.train.distill.distillers import DISTILLERS

    parser.add_argument("method", choices=DISTILLERS.in_order())
    parser.add_argument(
        "--teacher",
        default="shapes-teacher",
        help="teacher (for lcf: the LCM to fine-tune): registered name, folder or hub id",
    )
    parser.add_argument("--out", help="output folder (default data/models/shapes-<method> of a checkout, else ./)")
    parser.add_argument("--data", default="shapes", help="'shapes' or a JSON-lines file of {image, caption}")
    for name, (methods, default) in _config_fields().items():
        is_tuple = isinstance(default, tuple)
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            type=_steps_list if is_tuple else type(default),
            default=None,
            help=f"({methods}; default {','.join(map(str, default)) if is_tuple else default})",
        )


def _distill_config(args: argparse.Namespace, config_class: type) -> tuple[object, dict]:
    """The method's config from the options given; an option of another method is a one-line error."""
    names = {f.name for f in dataclasses.fields(config_class)}
    given = {k: v for k, v in vars(args).items() if k in _config_fields() and v is not None}
    for name in given:
        if name not in names:
            raise UserError(f"--{name.replace('_', '-')}: not an option of {args.method}")
    config = config_class(**given)
    config.validate()
    return config, given


def _distill_command(args: argparse.Namespace, given: dict) -> str:
    flags = [f"--teacher {args.teacher}"] if args.teacher != "shapes-teacher" else []
    flags += [
        f"--{k.replace('_', '-')} {','.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in given.items()
    ]
    return " ".join([f"lcm-bench distill {args.method}", *flags])


@command("distill", "distil LCM, LCM-LoRA or guided-distillation students (resumable)", _distill_arguments)
def distill(args: argparse.Namespace) -> int:
    """Distil a student from a teacher pipeline by a registered method (seeded, resumable); prints its figures."""
    import time

    from lcm_bench.core.io import write_json
    from lcm_bench.core.libraries import quiet_libraries
    from lcm_bench.core.paths import model_output_dir
    from lcm_bench.suite.student_entries import teacher_folder
    from lcm_bench.train.distill.config import DistillRun
    from lcm_bench.train.distill.distillers import DISTILLERS
    from lcm_bench.train.distill.frozen_teacher import load_teacher, training_latents
    from lcm_bench.train.readmes import write_card

    distiller = DISTILLERS.get(args.method)
    config, given = _distill_config(args, distiller.config)
    quiet_libraries()
    folder = teacher_folder(args.teacher, Path.cwd(), "--teacher")
    out = Path(args.out) if args.out else model_output_dir() / f"shapes-{args.method}"
    began = time.time()
    teacher = load_teacher(folder, guidance_embedding=distiller.lcm_teacher)
    card = distiller.run(
        args.method, teacher, training_latents(teacher, args.data, config.n_train), config, DistillRun(out)
    )
    write_json(out / "card.json", card)
    write_card(out, args.method, time.time() - began, command=_distill_command(args, given))
    _print_card(card)
    return 0
