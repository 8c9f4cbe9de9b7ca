"""``lcm-bench``: the parser built from the command registry, and the one place errors become exit codes (a
``UserError`` is one line and exit 2, never a traceback)."""

from __future__ import annotations

import os
import sys

from lcm_bench.cli import data, gate, reports, runs, suites, training  # noqa: F401 - each registers its commands
from lcm_bench.cli.commands import COMMANDS, ArgumentParser
from lcm_bench.core.errors import UserError

ORDER = (
    "run", "merge", "plan", "report", "validate", "data", "ref-stats", "train", "distill", "baseline", "check",
    "compare", "init", "list",
)  # fmt: skip
"""The order ``lcm-bench --help`` lists the commands in: a run's life first, then the gate, then the helpers."""


def version_line() -> str:
    """``lcm-bench 0.1.0 (installed package)`` or ``(checkout <commit>)``."""
    from lcm_bench import __version__
    from lcm_bench.core.provenance import source_of

    return f"lcm-bench {__version__} ({source_of()})"


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="lcm-bench", description="Benchmark few-step diffusion samplers.")
    parser.add_argument("--version", action="version", version=version_line())
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    for name in (*ORDER, *(n for n in COMMANDS.names() if n not in ORDER)):
        entry = COMMANDS.get(name)
        entry.add_arguments(sub.add_parser(name, help=entry.help))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if callable(getattr(sys.stdout, "reconfigure", None)):
        sys.stdout.reconfigure(line_buffering=True)
    try:
        return COMMANDS.get(args.command).run(args)
    except UserError as exc:
        for line in exc.lines():
            print(f"lcm-bench: error: {line}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("lcm-bench: interrupted; finished cells are saved, run the same command to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
