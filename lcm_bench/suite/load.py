"""Suite files: YAML -> validated frozen dataclasses -> the grid of cells.

A suite names its methods (a model, a sampler, a guidance setting and options, each with a name) crossed with the
axes steps, prompts, hardware and seeds; a method may override the suite's steps. The older form crosses models x
samplers x guidance_scales instead. Either way ``include`` adds sub-grids and ``exclude`` removes matching cells
(asv's ``matrix`` semantics), and ``extends`` inherits another suite: keys in the child replace the parent's.
Every unknown key or impossible value is a one-line ``UserError``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from lcm_bench.core.errors import UserError
from lcm_bench.core.paths import packaged, suites_dir
from lcm_bench.core.spec import (
    EAGER,
    SAVE_IMAGES,
    CellSpec,
    Method,
    MetricSpec,
    ReferenceSpec,
    Suite,
    TimingPolicy,
    stable_hash,
)
from lcm_bench.core.textfiles import read_text
from lcm_bench.domain.published import check_published
from lcm_bench.metrics.builtins import METRICS, check_images
from lcm_bench.metrics.extractors import EXTRACTORS
from lcm_bench.suite.builtin import suite_path
from lcm_bench.suite.fields import as_list, float_field, int_field, str_field, unknown_keys
from lcm_bench.suite.grid import (
    AXES,
    GRID_KEYS,
    METHOD_AXES,
    exclude_rules,
    included_cells,
    method_cells,
    parse_axis,
    parse_resolution,
    product_cells,
    unique_cells,
)
from lcm_bench.suite.methods import parse_methods
from lcm_bench.suite.metrics import parse_metric
from lcm_bench.suite.pairs import reference_pairs
from lcm_bench.suite.prompt_entries import parse_references
from lcm_bench.suite.runtime_axis import unique_runtimes

SUITE_VERSION = 1
SCALARS = ("num_images", "batch_size", "chunk_size", "resolution", "negative_prompt", "save_images", "warmup")
TOP_KEYS = {
    "version",
    "name",
    "description",
    "published",
    "extends",
    "include",
    "exclude",
    "metrics",
    "methods",
    "timing",
    *AXES,
    *SCALARS,
}
DEFAULTS: dict[str, Any] = {
    "steps": [1, 2, 4, 8],
    "guidance_scales": [7.5],
    "hardware": ["cpu-fp32"],
    "runtimes": [EAGER.name],
    "seeds": [0],
    "num_images": 8,
    "batch_size": 4,
    "chunk_size": 1000,
    "resolution": None,
    "negative_prompt": "",
    "save_images": "all",
    "warmup": 1,
}


def _parse_yaml(path: Path) -> dict[str, Any]:
    text = read_text(path, "suite", "suite file")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or exc
        raise UserError(f"{path}: not valid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a suite must be a mapping of keys to values")
    return data


def read_suite_dict(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The suite's mapping with ``extends`` applied (child keys replace the parent's)."""
    path = path.resolve()
    if path in seen:
        raise UserError(f"{path}: extends forms a cycle ({' -> '.join(p.name for p in (*seen, path))})")
    data = _parse_yaml(path)
    if "extends" in data:
        parent_path = path.parent / str_field(data["extends"], "extends")
        parent = read_suite_dict(parent_path, (*seen, path))
        parent.pop("name", None)
        parent.pop("description", None)
        if "methods" in data:
            parent = {k: v for k, v in parent.items() if k not in GRID_KEYS}
        if any(k in data for k in GRID_KEYS):
            parent.pop("methods", None)
        data = {**parent, **{k: v for k, v in data.items() if k != "extends"}}
    data["_base_dir"] = data.get("_base_dir", str(path.parent))
    return data


def load_suite(path: str | Path) -> Suite:
    """Parse, validate and expand a suite file, or a built-in suite given by name."""
    path = suite_path(path) if isinstance(path, str) else Path(path)
    try:
        return _load(path)
    except UserError as exc:
        message = str(exc)
        message = message if message.startswith(str(path)) else f"{path}: {message}"
        if path.parent == suites_dir() and packaged():
            message += f" (a built-in suite; `lcm-bench init NAME --from {path.stem}` copies it here to edit its paths)"
        raise UserError(message) from None


def _check_top_level(raw: dict[str, Any]) -> bool:
    """Known keys, a supported version, methods or a models x samplers grid; returns whether it lists methods."""
    unknown_keys(raw, TOP_KEYS, "suite")
    if "version" not in raw:
        raise UserError(f"version: missing; add 'version: {SUITE_VERSION}'")
    if raw["version"] != SUITE_VERSION:
        raise UserError(f"version: {raw['version']!r} is not supported (supported: {SUITE_VERSION})")
    uses_methods = "methods" in raw
    mixed = [k for k in GRID_KEYS if k in raw]
    if uses_methods and mixed:
        raise UserError(
            f"methods: a suite lists either methods or {' x '.join(GRID_KEYS)}, not both "
            f"(it also has {', '.join(mixed)})"
        )
    for required in ("methods", "prompts") if uses_methods else ("models", "samplers", "prompts"):
        if required not in raw:
            raise UserError(f"{required}: missing; a suite must name at least one")
    return uses_methods


def with_card_steps(methods: list[Method]) -> list[Method]:
    """Methods that name no steps in a suite that names none run the step counts of their checkpoint's card."""
    return [
        dataclasses.replace(m, steps=m.card_steps, card=dataclasses.replace(m.card, fields=(*m.card.fields, "steps")))
        if m.card_steps and m.card is not None
        else m
        for m in methods
    ]


def _axes(data: dict, uses_methods: bool, base_dir: Path, steps_written: bool) -> tuple[dict[str, list], list | None]:
    axes: dict[str, list] = {}
    for key, axis in AXES.items():
        if not uses_methods or axis in METHOD_AXES:
            axes[axis] = parse_axis(axis, as_list(data[key], key), key, base_dir, {})
    methods = parse_methods(as_list(data["methods"], "methods"), base_dir) if uses_methods else None
    if methods is not None and not steps_written:
        methods = with_card_steps(methods)
    names = [m.name for m in axes.get("model", [])]
    if len(set(names)) != len(names):
        raise UserError(f"models: names must be unique, got {names}")
    unique_runtimes(axes["runtime"], "runtimes")
    return axes, methods


def _common(data: dict) -> dict[str, Any]:
    """The settings every cell shares."""
    height, width = parse_resolution(data["resolution"])
    if data["save_images"] not in SAVE_IMAGES:
        raise UserError(f"save_images: '{data['save_images']}' is not one of {list(SAVE_IMAGES)}")
    return {
        "num_images": int_field(data["num_images"], "num_images", 1, 10_000_000),
        "batch_size": int_field(data["batch_size"], "batch_size", 1, 65536),
        "height": height,
        "width": width,
        "negative_prompt": data["negative_prompt"] if isinstance(data["negative_prompt"], str) else "",
        "save_images": data["save_images"],
        "warmup": int_field(data["warmup"], "warmup", 0, 1000),
        "chunk_size": int_field(data["chunk_size"], "chunk_size", 1, 10_000_000),
    }


def _timing(data: dict) -> TimingPolicy:
    """``timing: {min_repeats, max_repeats, precision, max_seconds, level, ...}``, each optional (TimingPolicy's
    defaults); a ``level`` asked for needs at least the repeats whose median interval reaches it."""
    from lcm_bench.sampling.timers import fewest_repeats

    entry = data.get("timing") or {}
    if not isinstance(entry, dict):
        raise UserError("timing: expected a mapping such as {min_repeats: 6, max_repeats: 10, precision: 0.05}")
    unknown_keys(entry, {f.name for f in dataclasses.fields(TimingPolicy)}, "timing")
    default = TimingPolicy()
    level = float_field(entry.get("level", default.level), "timing.level (the median interval's coverage)", 0.5, 0.999)
    low = int_field(entry.get("min_repeats", default.min_repeats), "timing.min_repeats", 1, 1000)
    if "level" in entry and low < fewest_repeats(level):
        raise UserError(
            f"timing.min_repeats: {low} repeats give no {level:.3g} interval of the median; timing.level {level:.3g} "
            f"needs min_repeats >= {fewest_repeats(level)}"
        )
    high = int_field(entry.get("max_repeats", max(default.max_repeats, low)), "timing.max_repeats", low, 1000)
    precision = float_field(entry.get("precision", default.precision), "timing.precision", 0.0, 1.0)
    seconds = float_field(entry.get("max_seconds", default.max_seconds), "timing.max_seconds", 0.0, 86_400.0)
    queries = entry.get("latency_queries", 0)
    queries = 0 if queries == 0 else int_field(queries, "timing.latency_queries (0, or 100 and more for a p99)", 100)
    peak = entry.get("peak_throughput", False)
    if not isinstance(peak, bool):
        raise UserError(f"timing.peak_throughput: expected true or false, got {peak!r}")
    largest = int_field(entry.get("max_batch_size", default.max_batch_size), "timing.max_batch_size", 1, 65536)
    top_up = float_field(entry.get("top_up", default.top_up), "timing.top_up (extra batches over own)", 0.0, 1000.0)
    return TimingPolicy(low, high, precision, seconds, queries, peak, largest, level, top_up)


def _metrics(data: dict, base_dir: Path) -> tuple[MetricSpec, ...]:
    entries = as_list(data["metrics"], "metrics") if "metrics" in data else []
    metrics = tuple(parse_metric(e, f"metrics[{i}]", base_dir) for i, e in enumerate(entries))
    if len({m.metric_id for m in metrics}) != len(metrics):
        raise UserError("metrics: the same metric is listed twice")
    return metrics


def _references(data: dict, prompt_sets: list, base_dir: Path) -> dict[str, ReferenceSpec | None]:
    entries = as_list(data["prompts"], "prompts")
    return {
        spec.name: parse_references(entry, f"prompts[{i}]", base_dir)
        for i, (spec, entry) in enumerate(zip(prompt_sets, entries, strict=True))
    }


def _check_metric_inputs(metrics, references: dict[str, ReferenceSpec | None], save_images: str) -> None:
    """Metrics score saved images; a metric that needs reference images has them for every prompt set."""
    for i, metric in enumerate(metrics):
        if save_images != "all":
            raise UserError(f"save_images: metrics score the saved images, so it must be 'all' (is '{save_images}')")
        if METRICS.get(metric.name).needs_reference:
            for name, ref in references.items():
                if ref is None:
                    raise UserError(
                        f"metrics[{i}]: {metric.name} needs reference images, but prompt set '{name}' has "
                        "none; give it references: {path: DIR} or {generator: NAME}"
                    )


def _check_image_counts(metrics, cells: list[CellSpec]) -> None:
    """A metric that needs more images per cell than the suite draws (FD∞), or larger images than its extractor's
    input (Patch FD-T), is one line before anything runs."""
    fewest = min((c.num_images for c in cells), default=0)
    for i, metric in enumerate(metrics):
        definition = METRICS.get(metric.name)
        extractor, _ = definition.extractor(dict(metric.options))
        check_images(definition, fewest, EXTRACTORS.get(extractor).dim, f"metrics[{i}]", dict(metric.options))
        side = EXTRACTORS.get(extractor).input_size
        small = [c for c in cells if c.height and c.width and min(c.height, c.width) <= (side or 0)]
        if definition.crop and small:
            raise UserError(
                f"metrics[{i}]: {metric.name} crops {extractor}'s {side}-px input from full-resolution images, which "
                f"must be larger; cell {small[0].cell_id} draws {small[0].width}x{small[0].height} (use fd_t)"
            )


def _load(path: Path) -> Suite:
    raw = read_suite_dict(path)
    base_dir = Path(raw.pop("_base_dir"))
    uses_methods = _check_top_level(raw)
    data = {**DEFAULTS, **raw}
    axes, methods = _axes(data, uses_methods, base_dir, "steps" in raw)
    common = _common(data)
    cells: list[CellSpec] = method_cells(methods, axes, common) if methods is not None else product_cells(axes, common)
    cells += included_cells(data, axes, methods, common, base_dir)
    excludes = exclude_rules(data, methods)
    metrics = _metrics(data, base_dir)
    references = _references(data, axes["prompts"], base_dir)
    _check_metric_inputs(metrics, references, common["save_images"])
    unique = unique_cells(cells, excludes)
    reference_pairs(metrics, unique)
    _check_image_counts(metrics, unique)
    published = check_published(str_field(raw["published"], "published")) if raw.get("published") is not None else None
    return Suite(
        name=str(raw.get("name") or path.stem),
        version=SUITE_VERSION,
        description=str(raw.get("description", "")),
        published=published,
        cells=tuple(unique),
        source=str(path),
        suite_hash=stable_hash([c.configuration() for c in unique], 16),
        metrics=metrics,
        references=references,
        timing=_timing(raw),
    )
