"""Working with suites: ``validate`` (methods x steps with NFE), ``check-weights`` (the metric weights files a suite
needs), ``ref-stats`` (reference statistics), ``init`` (a starter suite) and ``list`` (what is built in and
registered)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lcm_bench.cli.commands import ArgumentParser, add_weights_dir, command, weights_dirs
from lcm_bench.core.errors import UserError


def _validate_arguments(parser: ArgumentParser) -> None:
    parser.add_argument("suite")
    parser.add_argument("--cells", action="store_true", help="also list every cell id")
    add_weights_dir(parser)


@command("validate", "check a suite file; print its methods x steps with NFE per image", _validate_arguments)
def validate(args: argparse.Namespace) -> int:
    from lcm_bench.core.hardware import unavailable_reason
    from lcm_bench.run.preflight import preflight, resolve_all
    from lcm_bench.suite.load import load_suite
    from lcm_bench.suite.student_entries import pending

    weights, suite = weights_dirs(args), load_suite(args.suite)
    runnable = [c for c in suite.cells if unavailable_reason(c.hardware) is None]
    untrained = set(pending({c.model for c in suite.cells}))
    checked = [c for c in suite.cells if c.model not in untrained]
    _, modes = preflight(checked, resolve_all(checked, metrics=suite.metrics, weights=weights))
    print(f"suite '{suite.name}' (hash {suite.suite_hash}): {len(suite.cells)} cells, {len(runnable)} runnable here")
    if untrained:
        print(f"students to distil on the first run: {', '.join(sorted(m.name for m in untrained))}")
    print(grid_table(suite.cells, modes))
    if args.cells:
        for cell in suite.cells:
            print(f"  {cell.cell_id}")
    return 0


def _check_weights_arguments(parser: ArgumentParser) -> None:
    parser.add_argument("suite")
    add_weights_dir(parser)


@command(
    "check-weights",
    "list every metric weights file a suite needs: where it was found, or what is missing",
    _check_weights_arguments,
)
def check_weights(args: argparse.Namespace) -> int:
    """Each metric's weights files as found on disk (path and size), or, for what is absent, the line saying where
    it comes from and where to put it; exit 2 when anything is missing. Nothing is downloaded."""
    from lcm_bench.suite.load import load_suite

    weights, suite = weights_dirs(args), load_suite(args.suite)
    lines, missing = [], 0
    for i, metric in enumerate(suite.metrics):
        found, absent = _metric_weights(metric, f"metrics[{i}]", weights)
        lines += [f"{'ok':<8} {metric.metric_id:<12} {each}" for each in found]
        lines += [f"{'missing':<8} {metric.metric_id:<12} {each}" for each in absent]
        missing += len(absent)
    print("\n".join(lines))
    print(f"{missing} missing" if missing else "every weights file is in place")
    return 2 if missing else 0


def _metric_weights(metric, field: str, weights) -> tuple[list[str], list[str]]:
    """(files found, lines for what is missing) of one metric's extractor, looked up offline."""
    from lcm_bench.core.errors import MissingResourceError, MissingResources
    from lcm_bench.core.paths import forced_offline
    from lcm_bench.metrics.builtins import METRICS
    from lcm_bench.metrics.extractors import EXTRACTORS

    name, options = METRICS.get(metric.name).extractor(dict(metric.options))
    entry = EXTRACTORS.get(name)
    with forced_offline():
        sources = entry.sources(options, weights)
        if sources is not None:
            return [_described(s) for s in sources], []
        try:
            entry.build(options, "cpu", field, weights)
        except MissingResources as exc:
            return [], [line for error in exc.errors for line in error.lines()]
        except MissingResourceError as exc:
            return [], exc.lines()
    return [f"{name} (built without files)"], []


def _described(source) -> str:
    if isinstance(source, Path):
        return f"{source} ({source.stat().st_size:,} bytes)"
    return f"{source} (named, read by its library)"


def _aligned(table: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    return [
        "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths, strict=True)))
        for r in table
    ]


def grid_table(cells, modes: dict[str, str]) -> str:
    """Methods x steps, each entry the NFE per image (``?`` until a student is distilled or where the hardware is
    absent), with how many cells (prompt sets x seeds x hardware) stand behind each entry."""
    from lcm_bench.sampling.guidance import nfe_per_image

    rows: dict[tuple[str, float], dict[int, list]] = {}
    for cell in cells:
        entry = rows.setdefault((cell.method_label, cell.guidance_scale), {}).setdefault(cell.steps, [])
        mode = modes.get(cell.cell_id)
        entry.append(
            "?" if mode is None else str(nfe_per_image(cell.sampler.name, cell.steps, mode, cell.guidance_scale))
        )
    steps = sorted({s for row in rows.values() for s in row})
    table = [["method", "s", *(f"{s} step{'s' * (s > 1)}" for s in steps)]]
    for (label, scale), row in rows.items():
        table.append([label, f"{scale:g}", *(("/".join(dict.fromkeys(row[s])) if s in row else "") for s in steps)])
    per_entry = sorted({len(v) for row in rows.values() for v in row.values()})
    counts = "/".join(map(str, per_entry))
    title = f"NFE per image (each entry {counts} cell{'s' * (per_entry != [1])}: prompt sets x seeds x hardware)"
    return title + "\n" + "\n".join(_aligned(table))


def _ref_stats_arguments(parser: ArgumentParser) -> None:
    parser.add_argument("suite")
    add_weights_dir(parser)


@command("ref-stats", "compute and cache the reference statistics a suite's metrics need", _ref_stats_arguments)
def ref_stats(args: argparse.Namespace) -> int:
    """Compute and cache the reference features (and statistics) every metric of a suite needs."""
    import numpy as np

    from lcm_bench.metrics.distances import feature_stats
    from lcm_bench.run.scoring import ScoringPlan, prepare_references
    from lcm_bench.suite.load import load_suite

    plan = ScoringPlan.of(load_suite(args.suite), weights_dirs(args))
    for metric, name, reference, features in prepare_references(plan):
        stats = feature_stats(features)
        print(
            f"{metric.metric_id} / {name}: {reference.name} ({reference.preprocessing}), N={stats.n}, "
            f"dim={features.shape[1]}, "
            f"hash {reference.content_hash}, |mu|={np.linalg.norm(stats.mu):.4g}, "
            f"tr(sigma)={np.trace(stats.sigma):.4g}"
        )
    return 0


def _init_arguments(parser: ArgumentParser) -> None:
    parser.add_argument("name")
    parser.add_argument("--out", help="file to write (default NAME.yaml)")
    parser.add_argument(
        "--from", dest="source", metavar="SUITE", help="copy this built-in suite (or file) instead of the starter"
    )


@command("init", "write a commented starter suite NAME.yaml (or a copy of a built-in one)", _init_arguments)
def init(args: argparse.Namespace) -> int:
    """Write a commented starter suite ``NAME.yaml`` (it validates as written, on the embedded models), or a copy of
    a built-in suite renamed NAME (``--from``)."""
    import re

    from lcm_bench.core.io import write_atomic
    from lcm_bench.suite.builtin import starter_text, suite_path
    from lcm_bench.suite.fields import FILE_SAFE

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
        text = starter_text(args.name)
    write_atomic(out, text.encode())
    print(f"{out}: edit its methods, then lcm-bench validate {out} and lcm-bench run {out}")
    return 0


def _list_suites() -> None:
    from lcm_bench.suite.builtin import builtin_suites, shipped_baseline, suite_summary

    print("suites (lcm-bench run NAME):")
    for name, path in builtin_suites().items():
        gated = f" (shipped baseline: --baseline {name})" if shipped_baseline(name) else ""
        print(f"  {name:20s} {suite_summary(path)}{gated}")


def _list_registries() -> None:
    from lcm_bench.domain.datasets import PROTOCOLS
    from lcm_bench.domain.prompts import PROMPT_SETS
    from lcm_bench.metrics.builtins import METRICS
    from lcm_bench.metrics.extractors import EXTRACTORS
    from lcm_bench.models.catalogue import MODEL_KINDS, MODELS
    from lcm_bench.models.families import FAMILIES
    from lcm_bench.models.runtimes import REQUIRED, RUNTIME_SETTINGS
    from lcm_bench.models.tiny_decoders import TINY_DECODERS
    from lcm_bench.sampling.samplers import SAMPLERS

    print("samplers:")
    for name in SAMPLERS:
        print(f"  {name:16s} {SAMPLERS.get(name).description}")
    print("model families (read from a pipeline's model_index.json):")
    for name in FAMILIES:
        family = FAMILIES.get(name)
        samplers = [s for s in SAMPLERS if family.objective in SAMPLERS.get(s).objectives]
        print(f"  {name:16s} {family.description}")
        print(f"  {'':16s}   samplers: {', '.join(samplers)}; guidance: {', '.join(family.guidance)}")
    print("models:")
    for name in MODELS:
        m = MODELS.get(name)
        print(f"  {name:20s} {MODEL_KINDS.get(m.kind).where(m)}  {m.description}")
        if m.settings is not None:
            print(f"  {'':20s}   authors' settings: {m.settings.describe()}")
            print(f"  {'':20s}   from: {m.settings.source}")
    print("prompt sets:")
    for name in PROMPT_SETS:
        print(f"  {name:16s} {PROMPT_SETS.get(name).description}{_category_counts(PROMPT_SETS.get(name))}")
    print("datasets (prepared once: lcm-bench data coco|mjhq; a suite names one with prompts: [{dataset: NAME}]):")
    for name in PROTOCOLS:
        p = PROTOCOLS.get(name)
        print(f"  {name:18s} {p.describe()}; {p.used_by}")
    print("runtime settings (a suite's runtimes: [eager, NAME, {name: N, SETTING: {options}}]):")
    for name, setting in RUNTIME_SETTINGS.items():
        options = ", ".join(
            f"{k}={'required' if o.default is REQUIRED else o.default}" for k, o in setting.options.items()
        )
        print(f"  {name:16s} {setting.description}" + (f" ({options})" if options else ""))
    print(f"tiny decoders: {', '.join(TINY_DECODERS.in_order())}")
    print("metrics:")
    print("  throughput         NFE per image, images/s, seconds per image and per NFE, phase times, peak memory;")
    print("                     with timing.latency_queries / peak_throughput: latency p50/p90/p99, peak images/s")
    for name in METRICS:
        m = METRICS.get(name)
        direction = "higher" if m.higher_is_better else "lower"
        extractor = m.default_extractor()
        weights = EXTRACTORS.get(extractor).weights if extractor in EXTRACTORS else ""
        print(f"  {name:18s} {m.kind}, {direction} is better; needs {m.needs(weights)}. {m.description}")
    print(f"feature extractors: {', '.join(EXTRACTORS.in_order())}")


def _category_counts(builtin) -> str:
    """`` (categories: Category 12, Challenge 11)`` for a built-in set with categories."""
    from lcm_bench.domain.prompts import categories_of

    labels = categories_of(builtin.path, builtin.format, builtin.column, builtin.categories, builtin.annotator)
    if not labels:
        return ""
    counts = ", ".join(f"{column} {len(set(values))}" for column, values in labels.items())
    licence = f"; licence {builtin.licence}" if builtin.licence else ""
    return f" (categories: {counts}{licence})"


@command("list", "built-in suites, registered samplers, models, prompt sets and metrics", lambda parser: None)
def list_all(args: argparse.Namespace) -> int:
    _list_suites()
    _list_registries()
    return 0
