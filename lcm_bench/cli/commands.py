"""The command registry: each ``lcm-bench`` command is an entry with its help, its arguments and the function that
runs it (asv's ``commands/``: one module per command group, each with ``setup_arguments`` and ``run``)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lcm_bench.core.errors import UserError
from lcm_bench.core.registry import Registry


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        self.exit(2, f"lcm-bench: error: {message}\n")


@dataclass(frozen=True)
class Command:
    help: str
    add_arguments: Callable[[ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: Registry[Command] = Registry("command")


def command(name: str, help: str, add_arguments: Callable[[ArgumentParser], None]) -> Callable:
    """Decorator: register the decorated function as command ``name``."""

    def wrap(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS.register(name, Command(help, add_arguments, run))
        return run

    return wrap


def existing_dirs(paths: list[str], field: str) -> list[Path]:
    for path in paths:
        if not Path(path).is_dir():
            raise UserError(f"{field}: '{path}' is not a directory")
    return [Path(p) for p in paths]


def add_weights_dir(parser: ArgumentParser) -> None:
    parser.add_argument(
        "--weights-dir", help="folder holding metric weights (Inception, CLIP); also $LCM_BENCH_WEIGHTS"
    )


def weights_dirs(args: argparse.Namespace) -> tuple[Path, ...]:
    """``--weights-dir`` as extra folders to find metric weights in (searched before $LCM_BENCH_WEIGHTS)."""
    if not getattr(args, "weights_dir", None):
        return ()
    return tuple(existing_dirs([args.weights_dir], "--weights-dir"))


def finite(value: float | None, flag: str, minimum: float | None = None) -> float | None:
    if value is not None and not (math.isfinite(value) and (minimum is None or value >= minimum)):
        bound = f" >= {minimum:g}" if minimum is not None else ""
        raise UserError(f"{flag}: must be a finite number{bound}, got {value}")
    return value
