"""``lcm-bench``: run / merge / plan / report / validate / ref-stats / train / distill / baseline / check / compare /
list."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from lcm_bench.core.errors import UserError


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        self.exit(2, f"lcm-bench: error: {message}\n")


def cmd_run(args) -> int:
    from lcm_bench.core.provenance import provenance
    from lcm_bench.report import write_report
    from lcm_bench.run.launcher import launched
    from lcm_bench.run.runner import run_suite
    from lcm_bench.run.units import parse_shard
    from lcm_bench.suite.parse import load_suite

    shard = parse_shard(args.shard)
    world = launched()
    suite = load_suite(args.suite)
    out = Path(args.out) if args.out else Path("reports") / suite.name
    if not args.out and (world is None or world.is_main):
        print(f"suite '{suite.name}': run directory {out.resolve()} (./reports/<suite> by default; --out to choose)")
    summary = run_suite(
        suite,
        out,
        provenance(),
        progress=not args.quiet,
        shard=shard,
        threads=args.threads,
        world=world,
        pin_devices=args.pin_devices,
    )
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
    print(
        f"{len(summary.computed)} cells computed, {len(summary.reused)} reused, {len(summary.skipped)} skipped, "
        f"{summary.scored} metric values computed "
        f"-> {out / 'results.csv'}" + (f", {report}" if report else "") + f"; {summary.chunks} chunks generated"
    )
    if summary.recomputed:
        print(f"recomputed {summary.recompute_note()}")
    return 0


def cmd_merge(args) -> int:
    """Assemble and score a run whose units were spread over shards; exit 1 while units are missing."""
    from lcm_bench.report import write_report
    from lcm_bench.run.merge import merge_run

    if not Path(args.run_dir).is_dir():
        raise UserError(f"run_dir: '{args.run_dir}' is not a directory")
    summary = merge_run(args.run_dir, progress=not args.quiet)
    if summary.missing:
        count = sum(len(units) for units in summary.missing.values())
        print(f"{count} units of {len(summary.missing)} cells are still missing:")
        for cell_id, units in summary.missing.items():
            print(f"  {cell_id}: images " + ", ".join(f"{u.start}..{u.stop - 1}" for u in units))
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


def cmd_plan(args) -> int:
    """Print each shard's units with their images and NFE (counted as the run will; ``~`` an estimate where a
    student is not distilled yet). Shares are balanced by the spec's estimate, which every shard computes alike."""
    from lcm_bench.run.preflight import preflight
    from lcm_bench.run.runner import split_available
    from lcm_bench.run.units import assign, estimated_nfe
    from lcm_bench.sampling.samplers import nfe_per_image
    from lcm_bench.suite.parse import load_suite
    from lcm_bench.suite.students import pending

    if args.shards < 1:
        raise UserError(f"--shards: expected an integer >= 1, got {args.shards}")
    suite = load_suite(args.suite)
    runnable, skipped = split_available(suite.cells)
    untrained = set(pending({c.model for c in runnable}))
    _, modes = preflight([c for c in runnable if c.model not in untrained])
    by_id = {c.cell_id: c for c in runnable}

    def nfe(cell_id: str) -> tuple[int, bool]:
        cell = by_id[cell_id]
        if cell_id in modes:
            return nfe_per_image(cell.steps, modes[cell_id], cell.guidance_scale), True
        return estimated_nfe(cell), False

    shares = assign(runnable, args.shards)
    print(
        f"suite '{suite.name}': {len(runnable)} cells runnable here ({len(skipped)} skipped), "
        f"{sum(len(s) for s in shares)} units, {args.shards} shard{'s' * (args.shards > 1)}"
    )
    for index, share in enumerate(shares):
        counted = [(u, *nfe(u.cell_id)) for u in share]
        total = sum(u.images * per for u, per, _ in counted)
        exact = all(known for *_, known in counted)
        images = sum(u.images for u in share)
        print(f"shard {index}/{args.shards}: {len(share)} units, {images} images, {'' if exact else '~'}{total} NFE")
        if args.units:
            for u, per, known in counted:
                print(f"  {u.cell_id} images {u.start}..{u.stop - 1} ({'' if known else '~'}{u.images * per} NFE)")
    return 0


def cmd_ref_stats(args) -> int:
    """Compute and cache the reference features (and statistics) every metric of a suite needs."""
    import numpy as np

    from lcm_bench.metrics.distances import feature_stats
    from lcm_bench.run.scoring import prepare_references
    from lcm_bench.suite.parse import load_suite

    for metric, name, reference, features in prepare_references(load_suite(args.suite)):
        stats = feature_stats(features)
        print(
            f"{metric.metric_id} / {name}: {reference.name}, N={stats.n}, dim={features.shape[1]}, "
            f"hash {reference.content_hash}, |mu|={np.linalg.norm(stats.mu):.4g}, "
            f"tr(sigma)={np.trace(stats.sigma):.4g}"
        )
    return 0


def cmd_train(args) -> int:
    """Train one embedded model from scratch (seeded, resumable); prints its figures."""
    import json
    import time

    from lcm_bench.core.paths import embedded_models_dir, model_output_dir
    from lcm_bench.train.cards import write_card

    out = Path(args.out) if args.out else model_output_dir() / f"shapes-{args.model}"
    kwargs = {"steps": args.steps} if args.steps else {}
    began = time.time()
    if args.model == "judge":
        from lcm_bench.train.judge import train_judge

        card = train_judge(out, **kwargs)
    elif args.model == "clip":
        from lcm_bench.train.clip import train_clip

        card = train_clip(out, **kwargs)
    elif args.model == "vae":
        from lcm_bench.train.vae import train_vae

        card = train_vae(out, embedded_models_dir() / "shapes-judge", **kwargs)
    else:
        from lcm_bench.train.teacher import train_teacher

        card = train_teacher(out, embedded_models_dir() / "shapes-vae", **kwargs)
    write_card(out, args.model, time.time() - began, command=f"lcm-bench train {args.model}")
    print(json.dumps({k: v for k, v in card.items() if k != "loss_history"}, indent=1))
    return 0


def cmd_distill(args) -> int:
    """Distil an LCM (LCD), an LCM-LoRA or guided-distillation students from a teacher pipeline (seeded,
    resumable); prints its figures."""
    import dataclasses
    import json
    import time

    from lcm_bench.core.io import write_json
    from lcm_bench.core.paths import model_output_dir
    from lcm_bench.models.loading import quiet_libraries
    from lcm_bench.suite.students import teacher_folder
    from lcm_bench.train.cards import write_card
    from lcm_bench.train.distill.config import GuidedConfig, LCDConfig
    from lcm_bench.train.distill.guided import distill_guided
    from lcm_bench.train.distill.lcd import distill
    from lcm_bench.train.distill.teacher import load_teacher, training_latents

    config_class = GuidedConfig if args.method == "guided-distill" else LCDConfig
    names = {f.name for f in dataclasses.fields(config_class)}
    given = {k: v for k, v in vars(args).items() if k in _config_fields() and v is not None}
    for name in given:
        if name not in names:
            raise UserError(f"--{name.replace('_', '-')}: not an option of {args.method}")
    config = config_class(**given)
    config.validate()
    quiet_libraries()
    folder = teacher_folder(args.teacher, Path.cwd(), "--teacher")
    out = Path(args.out) if args.out else model_output_dir() / f"shapes-{args.method}"
    began = time.time()
    teacher = load_teacher(folder, guidance_embedding=args.method == "lcf")
    data = training_latents(teacher, args.data, config.n_train)
    if args.method == "guided-distill":
        card = distill_guided(teacher, data, out, config)
    else:
        card = distill(args.method, teacher, data, out, config)
    write_json(out / "card.json", card)
    flags = [f"--teacher {args.teacher}"] if args.teacher != "shapes-teacher" else []
    flags += [
        f"--{k.replace('_', '-')} {','.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in given.items()
    ]
    command = " ".join([f"lcm-bench distill {args.method}", *flags])
    write_card(out, args.method, time.time() - began, command=command)
    print(json.dumps({k: v for k, v in card.items() if k != "loss_history"}, indent=1))
    return 0


def _tolerance(args) -> dict[str, float]:
    given = {"rel": args.rel, "abs": args.abs, "noise_k": args.noise_k}
    for name, value in given.items():
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise UserError(f"--{name.replace('_', '-')}: must be a finite number >= 0, got {value}")
    return {k: v for k, v in given.items() if v is not None}


def _gate(baseline: dict, run_dirs: list[str], args) -> int:
    from lcm_bench.gate.check import check
    from lcm_bench.gate.summary import summary_markdown

    for path in run_dirs:
        if not Path(path).is_dir():
            raise UserError(f"run_dirs: '{path}' is not a directory")
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
        from lcm_bench.core.io import write_atomic

        write_atomic(Path(args.summary), text.encode())
    return result.exit_code


def cmd_baseline(args) -> int:
    """Write a baseline (per-cell metric values, noise and tolerances) from finished runs."""
    from lcm_bench.gate.baseline import make_baseline, write_baseline

    baseline = make_baseline(args.run_dirs, _tolerance(args))
    write_baseline(baseline, args.out)
    print(f"baseline of {len(baseline['cells'])} cells -> {args.out}")
    return 0


def cmd_check(args) -> int:
    """Exit 0 when every baseline value passed (or improved), 1 on a regressed, missing or not comparable value
    (unless allowed), 2 on bad input."""
    from lcm_bench.gate.baseline import read_baseline
    from lcm_bench.suite.parse import baseline_path

    baseline = read_baseline(baseline_path(args.baseline))
    if any(v is not None for v in (args.rel, args.abs, args.noise_k)):
        for cell in baseline["cells"].values():
            for entry in cell["metrics"].values():
                entry["tolerance"] = {**entry.get("tolerance", {}), **_tolerance(args)}
    return _gate(baseline, args.run_dirs, args)


def cmd_compare(args) -> int:
    """Check RUN against BASELINE_RUN directly (default tolerances unless given)."""
    from lcm_bench.gate.baseline import make_baseline

    if not Path(args.baseline_run).is_dir():
        raise UserError(f"baseline_run: '{args.baseline_run}' is not a directory")
    return _gate(make_baseline([args.baseline_run], _tolerance(args)), [args.run], args)


def cmd_report(args) -> int:
    from lcm_bench.report import write_report

    for path in args.run_dirs:
        if not Path(path).is_dir():
            raise UserError(f"run_dirs: '{path}' is not a directory")
    if args.target is not None and not math.isfinite(args.target):
        raise UserError(f"--target: must be a finite number, got {args.target}")
    report = write_report(
        args.run_dirs, args.out, published=args.published, target=args.target, target_metric=args.target_metric
    )
    print(f"{report} and {report.with_suffix('.html')}")
    return 0


def cmd_validate(args) -> int:
    from lcm_bench.core.hardware import unavailable_reason
    from lcm_bench.run.preflight import preflight
    from lcm_bench.suite.parse import load_suite
    from lcm_bench.suite.students import pending

    suite = load_suite(args.suite)
    runnable = [c for c in suite.cells if unavailable_reason(c.hardware) is None]
    untrained = set(pending({c.model for c in runnable}))
    _, modes = preflight([c for c in runnable if c.model not in untrained])
    print(f"suite '{suite.name}' (hash {suite.suite_hash}): {len(suite.cells)} cells, {len(runnable)} runnable here")
    if untrained:
        print(f"students to distil on the first run: {', '.join(sorted(m.name for m in untrained))}")
    print(grid_table(suite.cells, modes))
    if args.cells:
        for cell in suite.cells:
            print(f"  {cell.cell_id}")
    return 0


def grid_table(cells, modes: dict[str, str]) -> str:
    """Methods x steps, each entry the NFE per image (``?`` until a student is distilled or where the hardware is
    absent), with how many cells (prompt sets x seeds x hardware) stand behind each entry."""
    from lcm_bench.sampling.samplers import nfe_per_image

    rows: dict[tuple[str, float], dict[int, list]] = {}
    for cell in cells:
        entry = rows.setdefault((cell.method_label, cell.guidance_scale), {}).setdefault(cell.steps, [])
        mode = modes.get(cell.cell_id)
        entry.append("?" if mode is None else str(nfe_per_image(cell.steps, mode, cell.guidance_scale)))
    steps = sorted({s for row in rows.values() for s in row})
    header = ["method", "s", *(f"{s} step{'s' * (s > 1)}" for s in steps)]
    table = [header]
    for (label, scale), row in rows.items():
        table.append([label, f"{scale:g}", *(("/".join(dict.fromkeys(row[s])) if s in row else "") for s in steps)])
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = [
        "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths, strict=True)))
        for r in table
    ]
    per_entry = sorted({len(v) for row in rows.values() for v in row.values()})
    counts = "/".join(map(str, per_entry))
    return f"NFE per image (each entry {counts} cell{'s' * (per_entry != [1])}: prompt sets x seeds x hardware)\n" + (
        "\n".join(lines)
    )


def cmd_init(args) -> int:
    """Write a commented starter suite ``NAME.yaml`` (it validates as written, on the embedded models), or a copy of
    a built-in suite renamed NAME (``--from``)."""
    import re

    from lcm_bench.suite.parse import FILE_SAFE, suite_path

    if not FILE_SAFE.match(args.name):
        raise UserError(f"name: '{args.name}' must be file-safe (letters, digits, _ . + -)")
    out = Path(args.out) if args.out else Path(f"{args.name}.yaml")
    if out.exists():
        raise UserError(f"--out: '{out}' exists; choose another name or --out")
    if args.source:
        source = suite_path(args.source)
        if not source.is_file():
            raise UserError(f"--from: '{args.source}' is neither a suite file nor a built-in suite")
        text = re.sub(r"(?m)^name:.*$", f"name: {args.name}", source.read_text(), count=1)
    else:
        text = (Path(__file__).parent.parent / "suite" / "starter.yaml").read_text().replace("NAME", args.name)
    from lcm_bench.core.io import write_atomic

    write_atomic(out, text.encode())
    print(f"{out}: edit its methods, then lcm-bench validate {out} and lcm-bench run {out}")
    return 0


def cmd_list(args) -> int:
    from lcm_bench.domain.prompts import PROMPT_SETS
    from lcm_bench.models.catalogue import MODELS
    from lcm_bench.sampling.samplers import SAMPLERS
    from lcm_bench.suite.parse import builtin_suites, shipped_baseline, suite_summary

    print("suites (lcm-bench run NAME):")
    for name, path in builtin_suites().items():
        gated = f" (shipped baseline: --baseline {name})" if shipped_baseline(name) else ""
        print(f"  {name:20s} {suite_summary(path)}{gated}")

    print("samplers:")
    for name in SAMPLERS:
        print(f"  {name:16s} {SAMPLERS.get(name).description}")
    print("models:")
    for name in MODELS:
        m = MODELS.get(name)
        print(f"  {name:20s} {m.repo if m.kind != 'tiny' else '(built locally)'}  {m.description}")
    print("prompt sets:")
    for name in PROMPT_SETS:
        print(f"  {name:16s} {PROMPT_SETS.get(name).description}")
    from lcm_bench.metrics.catalogue import EXTRACTOR_NAMES, METRICS

    print("metrics:")
    print("  throughput       NFE per image, images/s, seconds per image and per NFE, phase times, peak memory")
    for name in METRICS:
        m = METRICS.get(name)
        print(f"  {name:16s} {m.description} ({'higher' if m.higher_is_better else 'lower'} is better)")
    print(f"feature extractors: {', '.join(EXTRACTOR_NAMES)}")
    return 0


def _config_fields() -> dict[str, tuple[str, object]]:
    """Every option of the distillation configs: name -> (the methods that take it, default)."""
    import dataclasses

    from lcm_bench.train.distill.config import GuidedConfig, LCDConfig, StudentConfig

    fields = {}
    for config, methods in (
        (StudentConfig, "all methods"),
        (LCDConfig, "lcm, lcm-lora, lcf"),
        (GuidedConfig, "guided-distill"),
    ):
        for field in dataclasses.fields(config):
            fields.setdefault(field.name, (methods, field.default))
    return fields


def _steps_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected step counts such as 8,4,2,1, got '{text}'") from None


def _add_config_options(parser: ArgumentParser) -> None:
    for name, (methods, default) in _config_fields().items():
        is_tuple = isinstance(default, tuple)
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            type=_steps_list if is_tuple else type(default),
            default=None,
            help=f"({methods}; default {','.join(map(str, default)) if is_tuple else default})",
        )


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


def _add_tolerance_options(parser: ArgumentParser) -> None:
    parser.add_argument("--rel", type=float, help="relative tolerance (default 0.1; 0 for attribute accuracy)")
    parser.add_argument("--abs", type=float, help="absolute tolerance (default 0; 0.03 for attribute accuracy)")
    parser.add_argument("--noise-k", type=float, help="allowed multiples of the baseline's noise (default 2)")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="lcm-bench", description="Benchmark few-step diffusion samplers.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    run = sub.add_parser("run", help="run (or resume) a suite; writes records, results.csv and a report")
    run.add_argument("suite", help="suite YAML file, or a built-in suite's name (lcm-bench list)")
    run.add_argument("--out", help="run directory (default: reports/<suite name>)")
    run.add_argument("--no-report", action="store_true", help="do not write report.md")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    run.add_argument("--weights-dir", help="folder holding metric weights (Inception, CLIP); also $LCM_BENCH_WEIGHTS")
    run.add_argument(
        "--shard",
        help="generate only share I of N (0-based) of the suite's units, such as 0/4; 'auto' reads a Slurm array or "
        "a Kubernetes indexed job; score with lcm-bench merge",
    )
    run.add_argument(
        "--threads", type=int, help="torch threads in this process (default: torch's, shared among local processes)"
    )
    run.add_argument(
        "--pin-devices",
        action="store_true",
        help="under torchrun/accelerate, allow hardware entries that name a GPU (cuda:N) instead of cuda:LOCAL_RANK",
    )
    run.set_defaults(func=cmd_run)
    merge = sub.add_parser("merge", help="assemble, score and report a run whose units were spread over shards")
    merge.add_argument("run_dir")
    merge.add_argument("--no-report", action="store_true", help="do not write report.md")
    merge.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    merge.add_argument("--weights-dir", help="folder holding metric weights (Inception, CLIP); also $LCM_BENCH_WEIGHTS")
    merge.set_defaults(func=cmd_merge)
    plan = sub.add_parser("plan", help="print each shard's units, images and NFE")
    plan.add_argument("suite")
    plan.add_argument("--shards", type=int, default=1, help="number of shards (default 1)")
    plan.add_argument("--units", action="store_true", help="also list every unit")
    plan.set_defaults(func=cmd_plan)
    report = sub.add_parser("report", help="rebuild the report of one or more run directories from their records")
    report.add_argument("run_dirs", nargs="+")
    report.add_argument("--out", help="where to write the report (default: the first run directory)")
    report.add_argument(
        "--published", help="overlay a published table: lcm-table1 or lcm-table2 (default: the suite's own)"
    )
    report.add_argument(
        "--target", type=float, help="iso-quality target value (default: the best baseline's at its most steps)"
    )
    report.add_argument("--target-metric", help="metric id of the iso-quality study (default: the suite's distance)")
    report.set_defaults(func=cmd_report)
    validate = sub.add_parser("validate", help="check a suite file; print its methods x steps with NFE per image")
    validate.add_argument("suite")
    validate.add_argument("--cells", action="store_true", help="also list every cell id")
    validate.set_defaults(func=cmd_validate)
    refs = sub.add_parser("ref-stats", help="compute and cache the reference statistics a suite's metrics need")
    refs.add_argument("suite")
    refs.set_defaults(func=cmd_ref_stats)
    train = sub.add_parser("train", help="train an embedded model of the shapes domain from scratch (resumable)")
    train.add_argument("model", choices=["judge", "vae", "teacher", "clip"])
    train.add_argument("--out", help="output folder (default data/models/shapes-<model> of a checkout, else ./)")
    train.add_argument("--steps", type=int, help="optimisation steps (default: the shipped model's)")
    train.set_defaults(func=cmd_train)
    distill = sub.add_parser("distill", help="distil LCM, LCM-LoRA or guided-distillation students (resumable)")
    distill.add_argument("method", choices=["lcm", "lcm-lora", "guided-distill", "lcf"])
    distill.add_argument(
        "--teacher",
        default="shapes-teacher",
        help="teacher (for lcf: the LCM to fine-tune): registered name, folder or hub id",
    )
    distill.add_argument("--out", help="output folder (default data/models/shapes-<method> of a checkout, else ./)")
    distill.add_argument("--data", default="shapes", help="'shapes' or a JSON-lines file of {image, caption}")
    _add_config_options(distill)
    distill.set_defaults(func=cmd_distill)
    baseline = sub.add_parser("baseline", help="write a quality baseline (values, noise, tolerances) from runs")
    baseline.add_argument("run_dirs", nargs="+")
    baseline.add_argument("--out", required=True, help="baseline JSON file to write")
    _add_tolerance_options(baseline)
    baseline.set_defaults(func=cmd_baseline)
    check = sub.add_parser(
        "check", help="gate a run against a baseline file: exit 1 on a regressed, missing or not comparable value"
    )
    check.add_argument("run_dirs", nargs="+")
    check.add_argument(
        "--baseline",
        required=True,
        help="baseline JSON file (lcm-bench baseline), or a built-in suite whose baseline ships (ci-quality)",
    )
    _add_gate_options(check)
    check.set_defaults(func=cmd_check)
    compare = sub.add_parser("compare", help="gate RUN against BASELINE_RUN directly")
    compare.add_argument("baseline_run")
    compare.add_argument("run")
    _add_gate_options(compare)
    compare.set_defaults(func=cmd_compare)
    init = sub.add_parser("init", help="write a commented starter suite NAME.yaml (or a copy of a built-in one)")
    init.add_argument("name")
    init.add_argument("--out", help="file to write (default NAME.yaml)")
    init.add_argument(
        "--from", dest="source", metavar="SUITE", help="copy this built-in suite (or file) instead of the starter"
    )
    init.set_defaults(func=cmd_init)
    lst = sub.add_parser("list", help="built-in suites, registered samplers, models, prompt sets and metrics")
    lst.set_defaults(func=cmd_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "weights_dir", None):
        if not Path(args.weights_dir).is_dir():
            print(f"lcm-bench: error: --weights-dir: '{args.weights_dir}' is not a directory", file=sys.stderr)
            return 2
        os.environ["LCM_BENCH_WEIGHTS"] = os.pathsep.join([args.weights_dir, os.environ.get("LCM_BENCH_WEIGHTS", "")])
    try:
        return args.func(args)
    except UserError as exc:
        print(f"lcm-bench: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("lcm-bench: interrupted; finished cells are saved, run the same command to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
