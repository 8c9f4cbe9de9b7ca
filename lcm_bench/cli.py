"""``lcm-bench``: run / report / validate / list."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .errors import UserError


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        self.exit(2, f"lcm-bench: error: {message}\n")


def cmd_run(args) -> int:
    from .provenance import provenance
    from .report import write_report
    from .runner import run_suite
    from .suite import load_suite

    suite = load_suite(args.suite)
    out = Path(args.out) if args.out else Path("reports") / suite.name
    summary = run_suite(suite, out, provenance(), progress=not args.quiet)
    report = write_report([out]) if not args.no_report else None
    print(
        f"{len(summary.computed)} cells computed, {len(summary.reused)} reused, {len(summary.skipped)} skipped, "
        f"{summary.scored} metric values computed "
        f"-> {out / 'results.csv'}" + (f", {report}" if report else "")
    )
    return 0


def cmd_ref_stats(args) -> int:
    """Compute and cache the reference features (and statistics) every metric of a suite needs."""
    import numpy as np

    from .metrics import METRICS
    from .metrics.distances import feature_stats
    from .metrics.references import reference_features
    from .metrics.scoring import Scorer
    from .store import RunDir
    from .suite import load_suite

    suite = load_suite(args.suite)
    scorer = Scorer(RunDir("."), suite.references)
    prompt_sets = {c.prompts.name: c.prompts for c in suite.cells}
    for i, metric in enumerate(suite.metrics):
        if not METRICS.get(metric.name).needs_reference:
            continue
        extractor = scorer.extractor(metric, f"metrics[{i}]")
        for name, spec in prompt_sets.items():
            reference = scorer.reference(
                {"name": name, "source": spec.source, "format": spec.format, "column": spec.column}
            )
            features = reference_features(reference, extractor)
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

    from .models import EMBEDDED_DIR
    from .train.cards import write_card

    out = Path(args.out) if args.out else EMBEDDED_DIR / f"shapes-{args.model}"
    kwargs = {"steps": args.steps} if args.steps else {}
    began = time.time()
    if args.model == "judge":
        from .train.judge import train_judge

        card = train_judge(out, **kwargs)
    elif args.model == "clip":
        from .train.clip import train_clip

        card = train_clip(out, **kwargs)
    elif args.model == "vae":
        from .train.vae import train_vae

        card = train_vae(out, EMBEDDED_DIR / "shapes-judge", **kwargs)
    else:
        from .train.teacher import train_teacher

        card = train_teacher(out, EMBEDDED_DIR / "shapes-vae", **kwargs)
    write_card(out, args.model, time.time() - began)
    print(json.dumps({k: v for k, v in card.items() if k != "loss_history"}, indent=1))
    return 0


def cmd_report(args) -> int:
    from .report import write_report

    for path in args.run_dirs:
        if not Path(path).is_dir():
            raise UserError(f"run_dirs: '{path}' is not a directory")
    print(write_report(args.run_dirs, args.out))
    return 0


def cmd_validate(args) -> int:
    from .hardware import unavailable_reason
    from .runner import preflight
    from .suite import load_suite

    suite = load_suite(args.suite)
    runnable = [c for c in suite.cells if unavailable_reason(c.hardware) is None]
    preflight(runnable)
    print(f"suite '{suite.name}' (hash {suite.suite_hash}): {len(suite.cells)} cells, {len(runnable)} runnable here")
    for cell in suite.cells:
        print(f"  {cell.cell_id}")
    return 0


def cmd_list(args) -> int:
    from .models import MODELS
    from .prompts import PROMPT_SETS
    from .samplers import SAMPLERS

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
    from .metrics import EXTRACTOR_NAMES, METRICS

    print("metrics:")
    print("  throughput       NFE per image, images/s, seconds per image and per NFE, phase times, peak memory")
    for name in METRICS:
        m = METRICS.get(name)
        print(f"  {name:16s} {m.description} ({'higher' if m.higher_is_better else 'lower'} is better)")
    print(f"feature extractors: {', '.join(EXTRACTOR_NAMES)}")
    return 0


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="lcm-bench", description="Benchmark few-step diffusion samplers.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    run = sub.add_parser("run", help="run (or resume) a suite; writes records, results.csv and a report")
    run.add_argument("suite", help="suite YAML file")
    run.add_argument("--out", help="run directory (default: reports/<suite name>)")
    run.add_argument("--no-report", action="store_true", help="do not write report.md")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    run.add_argument("--weights-dir", help="folder holding metric weights (Inception, CLIP); also $LCM_BENCH_WEIGHTS")
    run.set_defaults(func=cmd_run)
    report = sub.add_parser("report", help="rebuild the report of one or more run directories from their records")
    report.add_argument("run_dirs", nargs="+")
    report.add_argument("--out", help="where to write report.md (default: the first run directory)")
    report.set_defaults(func=cmd_report)
    validate = sub.add_parser("validate", help="check a suite file and list its cells")
    validate.add_argument("suite")
    validate.set_defaults(func=cmd_validate)
    refs = sub.add_parser("ref-stats", help="compute and cache the reference statistics a suite's metrics need")
    refs.add_argument("suite")
    refs.set_defaults(func=cmd_ref_stats)
    train = sub.add_parser("train", help="train an embedded model of the shapes domain from scratch (resumable)")
    train.add_argument("model", choices=["judge", "vae", "teacher", "clip"])
    train.add_argument("--out", help="output folder (default data/models/shapes-<model>)")
    train.add_argument("--steps", type=int, help="optimisation steps (default: the shipped model's)")
    train.set_defaults(func=cmd_train)
    lst = sub.add_parser("list", help="registered samplers, models, prompt sets and metrics")
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
        print(f"lcm-bench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("lcm-bench: interrupted; finished cells are saved, run the same command to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
