"""Running suites: ``run`` (run, resume, score, report), ``merge`` (assemble and score a sharded run) and ``plan``
(each shard's chunks with their NFE)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lcm_bench.cli.commands import ArgumentParser, add_weights_dir, command, existing_dirs, weights_dirs
from lcm_bench.core.errors import UserError


def _run_arguments(parser: ArgumentParser) -> None:
    parser.add_argument("suite", help="suite YAML file, or a built-in suite's name (lcm-bench list)")
    parser.add_argument("--out", help="run directory (default: reports/<suite name>)")
    parser.add_argument("--no-report", action="store_true", help="do not write report.md")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_weights_dir(parser)
    parser.add_argument(
        "--shard",
        help="generate only share I of N (0-based) of the suite's chunks, such as 0/4; 'auto' reads a Slurm array or "
        "a Kubernetes indexed job; score with lcm-bench merge",
    )
    parser.add_argument(
        "--threads", type=int, help="torch threads in this process (default: torch's, shared among local processes)"
    )
    parser.add_argument(
        "--pin-devices",
        action="store_true",
        help="under torchrun/accelerate, allow hardware entries that name a GPU (cuda:N) instead of cuda:LOCAL_RANK",
    )


def _closing_line(summary, out: Path, report: Path | None) -> str:
    loaded = len(summary.contended)
    load = f"; {loaded} cells timed under load (other processes used the CPU: marked, not gated)" if loaded else ""
    return (
        f"{len(summary.computed)} cells computed, {len(summary.reused)} reused, {len(summary.skipped)} skipped, "
        f"{summary.scored} metric values computed "
        f"-> {out / 'results.csv'}" + (f", {report}" if report else "") + f"; {summary.chunks} chunks generated{load}"
    )


@command("run", "run (or resume) a suite; writes records, results.csv and a report", _run_arguments)
def run(args: argparse.Namespace) -> int:
    from lcm_bench.core.provenance import provenance
    from lcm_bench.report import write_report
    from lcm_bench.run.launcher import launched
    from lcm_bench.run.runner import RunOptions, run_suite
    from lcm_bench.run.sharding import parse_shard
    from lcm_bench.suite.load import load_suite

    shard, world, weights = parse_shard(args.shard), launched(), weights_dirs(args)
    suite = load_suite(args.suite)
    out = Path(args.out) if args.out else Path("reports") / suite.name
    if not args.out and (world is None or world.is_main):
        print(f"suite '{suite.name}': run directory {out.resolve()} (./reports/<suite> by default; --out to choose)")
    options = RunOptions(not args.quiet, shard, args.threads, args.pin_devices, tuple(weights))
    summary = run_suite(suite, out, provenance, options, world)
    if world is not None and not world.is_main:
        return 0
    if shard is not None:
        waiting = f", {len(summary.pending)} await other shards" if summary.pending else ""
        print(
            f"shard {shard}: {summary.chunks} chunks generated, {len(summary.computed)} cells assembled{waiting}; "
            f"when every shard is done: lcm-bench merge {out}"
        )
        return 0
    report = write_report([out]) if not args.no_report else None
    print(_closing_line(summary, out, report))
    if summary.recomputed:
        print(f"recomputed {summary.recompute_note()}")
    if len(summary.skipped) == len(suite.cells):
        reasons = "; ".join(dict.fromkeys(entry["reason"] for entry in summary.skipped))
        raise UserError(f"run: no cell of '{suite.name}' can run on this machine: {reasons}")
    return 0


def _merge_arguments(parser: ArgumentParser) -> None:
    parser.add_argument("run_dir")
    parser.add_argument("--no-report", action="store_true", help="do not write report.md")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_weights_dir(parser)


@command("merge", "assemble, score and report a run whose chunks were spread over shards", _merge_arguments)
def merge(args: argparse.Namespace) -> int:
    """Assemble and score a run whose chunks were spread over shards; exit 1 while chunks are missing."""
    from lcm_bench.report import write_report
    from lcm_bench.run.merge import merge_run

    existing_dirs([args.run_dir], "run_dir")
    summary = merge_run(args.run_dir, progress=not args.quiet, weights=weights_dirs(args))
    if summary.missing:
        count = sum(len(chunks) for chunks in summary.missing.values())
        print(f"{count} chunks of {len(summary.missing)} cells are still missing:")
        for cell_id, chunks in summary.missing.items():
            print(f"  {cell_id}: images " + ", ".join(f"{u.start}..{u.stop - 1}" for u in chunks))
        print(f"{len(summary.assembled)} cells assembled; run the missing shards again, then merge")
        return 1
    report = write_report([args.run_dir]) if not args.no_report else None
    wall = summary.wall
    rate = f", {wall['images_per_s']:.3g} images/s wall clock over {wall['processes']} processes" if wall else ""
    print(
        f"{len(summary.assembled)} cells assembled, {summary.scored} metric values computed{rate} "
        f"-> {Path(args.run_dir) / 'results.csv'}" + (f", {report}" if report else "")
    )
    return 0


def _plan_arguments(parser: ArgumentParser) -> None:
    parser.add_argument("suite")
    parser.add_argument("--shards", type=int, default=1, help="number of shards (default 1)")
    parser.add_argument(
        "--chunks", "--units", action="store_true", help="also list every chunk (--units: its old name)"
    )


def _nfe_counter(runnable: list, modes: dict[str, str]):
    """NFE per image of a cell id, and whether it is exact (counted as the run will) or the spec's estimate."""
    from lcm_bench.run.sharding import estimated_nfe
    from lcm_bench.sampling.guidance import nfe_per_image

    by_id = {c.cell_id: c for c in runnable}

    def nfe(cell_id: str) -> tuple[int, bool]:
        cell = by_id[cell_id]
        if cell_id in modes:
            return nfe_per_image(cell.sampler.name, cell.steps, modes[cell_id], cell.guidance_scale), True
        return estimated_nfe(cell), False

    return nfe


@command("plan", "print each shard's chunks, images and NFE", _plan_arguments)
def plan(args: argparse.Namespace) -> int:
    """Print each shard's chunks with their images and NFE (counted as the run will; ``~`` an estimate where a
    student is not distilled yet). Shares are balanced by the spec's estimate, which every shard computes alike."""
    from lcm_bench.run.preflight import preflight
    from lcm_bench.run.runner import split_available
    from lcm_bench.run.sharding import assign
    from lcm_bench.suite.load import load_suite
    from lcm_bench.suite.student_entries import pending

    if args.shards < 1:
        raise UserError(f"--shards: expected an integer >= 1, got {args.shards}")
    suite = load_suite(args.suite)
    runnable, skipped = split_available(suite.cells)
    untrained = set(pending({c.model for c in runnable}))
    nfe = _nfe_counter(runnable, preflight([c for c in runnable if c.model not in untrained])[1])
    shares = assign(runnable, args.shards)
    print(
        f"suite '{suite.name}': {len(runnable)} cells runnable here ({len(skipped)} skipped), "
        f"{sum(len(s) for s in shares)} chunks, {args.shards} shard{'s' * (args.shards > 1)}"
    )
    for index, share in enumerate(shares):
        counted = [(u, *nfe(u.cell_id)) for u in share]
        total = sum(u.images * per for u, per, _ in counted)
        exact = all(known for *_, known in counted)
        images = sum(u.images for u in share)
        print(f"shard {index}/{args.shards}: {len(share)} chunks, {images} images, {'' if exact else '~'}{total} NFE")
        if args.chunks:
            for u, per, known in counted:
                print(f"  {u.cell_id} images {u.start}..{u.stop - 1} ({'' if known else '~'}{u.images * per} NFE)")
    return 0
