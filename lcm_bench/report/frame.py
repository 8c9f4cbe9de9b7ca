"""The results frame reduced for reporting: methods, per-(method, steps) aggregates and one colour per method."""

from __future__ import annotations

import math

from lcm_bench.core.spec import EAGER
from lcm_bench.metrics.builtins import METRICS
from lcm_bench.records.cell_record import CellRecord
from lcm_bench.sampling.samplers import SAMPLERS

METHOD_KEYS = ["method", "model", "sampler_label", "guidance_scale", "prompts", "hardware", "runtime"]
PALETTE = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
]  # fmt: skip


def method_name(row) -> str:
    """A method without its operating point: the suite's method name, or model / sampler for a grid suite."""
    method = row.get("method")
    return method if isinstance(method, str) and method else f"{row['model']} / {row['sampler_label']}"


def method_label(row) -> str:
    """The method at its guidance scale, and the paper's w = s - 1 where that convention applies (classifier-free
    guidance and w-embeddings; not FLUX's distilled guidance, nor where a model takes none), and its runtime where
    that is not eager."""
    w = row.get("paper_w", row["guidance_scale"] - 1)
    has_w = w is not None and w == w
    runtime = row.get("runtime", EAGER.name)
    deployed = f" @ {runtime}" if isinstance(runtime, str) and runtime != EAGER.name else ""
    return f"{method_name(row)} / s={row['guidance_scale']:g}" + (f" (w={w:g})" if has_w else "") + deployed


def is_baseline(row) -> bool:
    """Teacher samplers (DDIM, DPM-Solver, ...) as opposed to distilled students."""
    name = row["sampler_label"].split("[")[0]
    return name not in SAMPLERS or not SAMPLERS.get(name).distilled


def method_colours(frame) -> dict[str, str]:
    """One colour per ``method_name``, in order of first appearance, so every figure of a report agrees."""
    names = list(dict.fromkeys(method_name(r) for _, r in frame.iterrows()))
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def metric_columns(mid: str, frame) -> tuple[str, ...]:
    candidates = (mid, f"{mid}_subset_std", f"{mid}_ci_low", f"{mid}_ci_high", f"{mid}_noise_floor")
    return tuple(c for c in candidates if c in frame.columns)


def by_method_and_steps(frame, columns: tuple[str, ...] = ("seconds_per_image", "nfe_per_image")):
    """Finished cells averaged over seeds: one row per (method, steps), with the seed spread of the first column."""
    ok = frame[frame["status"] == "ok"]
    aggregations = {c: (c, "mean") for c in columns if c in ok.columns}
    if columns and columns[0] in ok.columns:
        aggregations[f"{columns[0]}_seed_std"] = (columns[0], "std")
    return (
        ok.groupby(METHOD_KEYS + ["steps"], sort=False, dropna=False)
        .agg(seeds=("seed", "nunique"), **aggregations)
        .reset_index()
    )


def aggregate_metrics(frame, metrics: list[dict]):
    """Per (method, steps): cost (``seconds_per_image``, ``nfe_per_image``) and every metric's seed mean, seed std
    and its other spread columns."""
    columns = tuple(c for m in metrics for c in metric_columns(m["id"], frame))
    table = by_method_and_steps(frame)
    ok = frame[frame["status"] == "ok"]
    grouped = ok.groupby(METHOD_KEYS + ["steps"], sort=False, dropna=False)
    for column in columns:
        table[column] = grouped[column].mean().to_numpy()
    for m in metrics:
        if m["id"] in ok.columns:
            table[f"{m['id']}_seed_std"] = grouped[m["id"]].std().to_numpy()
    return table


def spread(row, mid: str) -> float:
    """The uncertainty shown for a value: seed std when there are seeds, else the subset std, else NaN."""
    if row.get("seeds", 1) > 1 and _finite(row.get(f"{mid}_seed_std")):
        return float(row[f"{mid}_seed_std"])
    if _finite(row.get(f"{mid}_subset_std")):
        return float(row[f"{mid}_subset_std"])
    return math.nan


def _finite(value) -> bool:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def metric_meta(records: list[CellRecord], manifests: list[dict]) -> dict[str, dict]:
    """Metric id -> {id, label, higher_is_better, kind} for every metric the runs declare."""
    meta = {}
    for manifest in manifests:
        for m in manifest.get("metrics", []):
            meta.setdefault(m["id"], {"id": m["id"], "name": m["name"], "label": m["id"], "higher_is_better": False})
    for record in records:
        for mid, m in record.metrics.items():
            if mid in meta:
                meta[mid].update(label=m["label"], higher_is_better=m["higher_is_better"])
    return meta


def _entry(meta: dict):
    return METRICS.get(meta["name"]) if meta["name"] in METRICS else None


def distance_metric(meta: dict[str, dict]) -> dict | None:
    """The suite's first distance between image sets (FID, FD-*, KID, CMMD, FD-T to a reference method; not
    precision and its kin, which grow with quality, nor per-image distances), the paper's main quality column."""
    entries = ((m, _entry(m)) for m in meta.values())
    sets = ("distribution", "paired")
    return next((m for m, e in entries if e and e.kind in sets and not e.higher_is_better and not e.by_image), None)


def clip_metric(meta: dict[str, dict]) -> dict | None:
    """The suite's first text-alignment metric (CLIP score), the other axis of a guidance sweep."""
    return next((m for m in meta.values() if _entry(m) and _entry(m).measures == "text-alignment"), None)
