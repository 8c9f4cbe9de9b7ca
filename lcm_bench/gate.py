"""The CI quality gate: a baseline of per-cell metric values with tolerances, and a check of a run against it.

A metric of a cell regresses when it is worse than the baseline by more than the allowed margin
max(rel * |baseline|, abs, noise_k * noise), where noise is the baseline's own spread (standard deviation over
disjoint image subsets, or half the width of its bootstrap interval); or when it leaves the two-sided bounds
[low, high] a baseline may set (MLPerf-style quality targets). It improves when better by more than the margin.
Cells are matched by cell id (the hash of the whole spec); a metric computed with another mode, extractor or sample
count is "not comparable"; a baseline cell the run lacks is "missing"."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UserError
from .store import load_runs, write_atomic

BASELINE_SCHEMA = 1
DEFAULT_TOLERANCE = {"rel": 0.1, "abs": 0.0, "noise_k": 2.0}
BOUNDED_TOLERANCE = {"rel": 0.0, "abs": 0.03, "noise_k": 2.0}
OUTCOMES = ("regressed", "missing", "not comparable", "improved", "pass")


def _noise(metric: dict) -> float:
    if "subsets" in metric:
        return float(metric["subsets"]["std"])
    if "ci95" in metric:
        low, high = metric["ci95"]
        return (high - low) / 4
    return 0.0


def _comparable_key(metric: dict) -> dict:
    return {"n": metric.get("n"), "mode": metric.get("mode"), "options": metric.get("options")}


def make_baseline(run_dirs: list[str | Path], tolerance: dict[str, float] | None = None) -> dict:
    """Baseline entries for every finished cell's metrics; accuracies and other [0, 1] metrics default to an
    absolute tolerance, distances to a relative one."""
    records, manifests = load_runs(run_dirs)
    cells = {}
    for record in records:
        if record.get("status") != "ok" or not record.get("metrics"):
            continue
        entries = {}
        for metric_id, metric in record["metrics"].items():
            bounded = metric_id.startswith("attribute_accuracy")
            entries[metric_id] = {
                "value": metric["value"],
                "higher_is_better": metric["higher_is_better"],
                "noise": _noise(metric),
                "tolerance": {**(BOUNDED_TOLERANCE if bounded else DEFAULT_TOLERANCE), **(tolerance or {})},
                **_comparable_key(metric),
            }
        cells[record["cell_id"]] = {"label": _label(record), "metrics": entries}
    if not cells:
        raise UserError(f"baseline: no scored cells in {', '.join(map(str, run_dirs))}")
    return {
        "schema_version": BASELINE_SCHEMA,
        "suites": sorted({m["suite"]["name"] for m in manifests}),
        "provenance": manifests[0].get("provenance", {}),
        "cells": cells,
    }


def _label(record: dict) -> str:
    spec = record["spec"]
    return (
        f"{spec['model']['name']} / {record.get('sampler_label', spec['sampler']['name'])} / {spec['steps']} steps / "
        f"s={spec['guidance_scale']:g} / {spec['prompts']['name']} / seed {spec['seed']}"
    )


def read_baseline(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--baseline: '{path}' does not exist")
    try:
        baseline = json.loads(path.read_text())
    except ValueError as error:
        raise UserError(f"--baseline: '{path}' is not JSON ({error})") from None
    if not isinstance(baseline, dict) or baseline.get("schema_version") != BASELINE_SCHEMA:
        raise UserError(f"--baseline: '{path}' is not an lcm-bench baseline (schema_version {BASELINE_SCHEMA})")
    return baseline


def write_baseline(baseline: dict, path: str | Path) -> None:
    write_atomic(Path(path), (json.dumps(baseline, indent=1, sort_keys=True) + "\n").encode())


@dataclass(frozen=True)
class Finding:
    cell: str
    metric: str
    outcome: str
    baseline: float | None = None
    value: float | None = None
    margin: float | None = None
    detail: str = ""


def judge_metric(entry: dict, metric: dict) -> tuple[str, float, str]:
    """Outcome, allowed margin and a reason for one metric of one cell."""
    if _comparable_key(metric) != {k: entry.get(k) for k in ("n", "mode", "options")}:
        return "not comparable", 0.0, f"n/mode/options differ: {_comparable_key(metric)}"
    tolerance = {**DEFAULT_TOLERANCE, **entry.get("tolerance", {})}
    base, value = float(entry["value"]), float(metric["value"])
    margin = max(tolerance["rel"] * abs(base), tolerance["abs"], tolerance["noise_k"] * float(entry.get("noise", 0)))
    low, high = entry.get("bounds", [None, None])
    if (low is not None and value < low) or (high is not None and value > high):
        return "regressed", margin, f"outside the bounds [{low}, {high}]"
    worse = (base - value) if entry["higher_is_better"] else (value - base)
    if worse > margin:
        return "regressed", margin, ""
    if -worse > margin:
        return "improved", margin, ""
    return "pass", margin, ""


def check(baseline: dict, run_dirs: list[str | Path]) -> list[Finding]:
    records, _ = load_runs(run_dirs)
    by_id = {r["cell_id"]: r for r in records if r.get("status") == "ok"}
    findings = []
    for cell_id, cell in sorted(baseline["cells"].items()):
        record = by_id.get(cell_id)
        for metric_id, entry in sorted(cell["metrics"].items()):
            metric = (record or {}).get("metrics", {}).get(metric_id)
            if metric is None:
                findings.append(Finding(cell["label"], metric_id, "missing", entry["value"]))
                continue
            outcome, margin, detail = judge_metric(entry, metric)
            findings.append(Finding(cell["label"], metric_id, outcome, entry["value"], metric["value"], margin, detail))
    return findings


def summary_markdown(findings: list[Finding]) -> str:
    """A pull-request comment: counts per outcome, then every finding that is not a pass."""
    counts = {o: sum(f.outcome == o for f in findings) for o in OUTCOMES}
    verdict = "FAIL: quality regressed" if counts["regressed"] else "PASS"
    lines = [
        f"### lcm-bench quality gate: {verdict}",
        "",
        ", ".join(f"{n} {o}" for o, n in counts.items() if n) or "nothing to compare",
        "",
    ]
    shown = [f for f in findings if f.outcome != "pass"]
    if shown:
        lines += [
            "| outcome | cell | metric | baseline | run | allowed margin | note |",
            "|---|---|---|---|---|---|---|",
        ]
        for f in sorted(shown, key=lambda f: OUTCOMES.index(f.outcome)):
            lines.append(
                f"| {f.outcome} | {f.cell} | `{f.metric}` | {_fmt(f.baseline)} | {_fmt(f.value)} | {_fmt(f.margin)} | "
                f"{f.detail} |"
            )
    return "\n".join(lines) + "\n"


def _fmt(value: Any) -> str:
    return "–" if value is None else f"{value:.4g}"


def exit_code(findings: list[Finding]) -> int:
    return 1 if any(f.outcome == "regressed" for f in findings) else 0
