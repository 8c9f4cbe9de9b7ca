"""The quality gate: ``baseline`` (write one from runs), ``check`` (a run against a baseline) and ``compare`` (a run
against another run). Exit 0 on a pass, 1 on a regressed, missing or not comparable value, 2 on bad input."""

from __future__ import annotations

import argparse
from pathlib import Path

from lcm_bench.cli.commands import ArgumentParser, command, existing_dirs, finite


def _add_tolerance_options(parser: ArgumentParser) -> None:
    parser.add_argument("--rel", type=float, help="relative tolerance (default 0.1; 0 for attribute accuracy)")
    parser.add_argument("--abs", type=float, help="absolute tolerance (default 0; 0.03 for attribute accuracy)")
    parser.add_argument("--noise-k", type=float, help="allowed multiples of the baseline's noise (default 2)")


def _add_gate_options(parser: ArgumentParser) -> None:
    parser.add_argument("--summary", help="also write the Markdown summary to this file (a PR comment)")
    parser.add_argument(
        "--allow-missing", action="store_true", help="pass although baseline values are missing from the run"
    )
    parser.add_argument(
        "--allow-incomparable",
        action="store_true",
        help="pass although values were measured differently (extractor weights, reference set, N, mode, options)",
    )
    parser.add_argument(
        "--gate-throughput",
        action="store_true",
        help="also gate NFE, seconds per image and peak memory (timings only on the same machine, hardware, batch)",
    )
    _add_tolerance_options(parser)


def _tolerance(args: argparse.Namespace) -> dict[str, float]:
    given = {"rel": args.rel, "abs": args.abs, "noise_k": args.noise_k}
    for name, value in given.items():
        finite(value, f"--{name.replace('_', '-')}", 0)
    return {k: v for k, v in given.items() if v is not None}


def _gate(baseline: dict, run_dirs: list[str], args: argparse.Namespace) -> int:
    from lcm_bench.core.io import write_atomic
    from lcm_bench.gate.check import check
    from lcm_bench.gate.summary import summary_markdown

    existing_dirs(run_dirs, "run directories")
    result = check(
        baseline,
        run_dirs,
        gate_throughput=args.gate_throughput,
        allow_missing=args.allow_missing,
        allow_incomparable=args.allow_incomparable,
    )
    text = summary_markdown(result)
    print(text)
    if args.summary:
        write_atomic(Path(args.summary), text.encode())
    return result.exit_code


def _baseline_arguments(parser: ArgumentParser) -> None:
    from lcm_bench.gate.baseline import GATE_PROFILES

    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    parser.add_argument("--out", required=True, help="baseline JSON file to write")
    profiles = "; ".join(f"{name}: {GATE_PROFILES.get(name).description}" for name in GATE_PROFILES.in_order())
    parser.add_argument("--profile", help=f"two-sided windows around the run's values ({profiles})".replace("%", "%%"))
    _add_tolerance_options(parser)


@command("baseline", "write a quality baseline (values, noise, tolerances) from runs", _baseline_arguments)
def baseline(args: argparse.Namespace) -> int:
    """Write a baseline (per-cell metric values, noise and tolerances) from finished runs."""
    from lcm_bench.gate.baseline import make_baseline, write_baseline

    made = make_baseline(args.run_dirs, _tolerance(args), args.profile)
    write_baseline(made, args.out)
    windows = sum("bounds" in entry for cell in made["cells"].values() for entry in cell["metrics"].values())
    profiled = f" ({windows} values in {args.profile}'s windows)" if args.profile else ""
    print(f"baseline of {len(made['cells'])} cells{profiled} -> {args.out}")
    return 0


def _check_arguments(parser: ArgumentParser) -> None:
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    parser.add_argument(
        "--baseline",
        required=True,
        help="baseline JSON file (lcm-bench baseline), or a built-in suite whose baseline ships (ci-quality)",
    )
    _add_gate_options(parser)


@command(
    "check",
    "gate a run against a baseline file: exit 1 on a regressed, missing or not comparable value",
    _check_arguments,
)
def check(args: argparse.Namespace) -> int:
    """Exit 0 when every baseline value passed (or improved), 1 on a regressed, missing or not comparable value
    (unless allowed), 2 on bad input."""
    from lcm_bench.gate.baseline import read_baseline
    from lcm_bench.suite.builtin import baseline_path

    loaded = read_baseline(baseline_path(args.baseline))
    tolerance = _tolerance(args)
    if tolerance:
        for cell in loaded["cells"].values():
            for entry in cell["metrics"].values():
                entry["tolerance"] = {**entry.get("tolerance", {}), **tolerance}
    return _gate(loaded, args.run_dirs, args)


def _compare_arguments(parser: ArgumentParser) -> None:
    parser.add_argument("baseline_run")
    parser.add_argument("run")
    _add_gate_options(parser)


@command("compare", "gate RUN against BASELINE_RUN directly", _compare_arguments)
def compare(args: argparse.Namespace) -> int:
    """Check RUN against BASELINE_RUN directly (default tolerances unless given)."""
    from lcm_bench.gate.baseline import make_baseline

    existing_dirs([args.baseline_run], "baseline_run")
    return _gate(make_baseline([args.baseline_run], _tolerance(args)), [args.run], args)
