"""The CI quality gate: a baseline of per-cell metric values with tolerances, and a check of a run against it.

Cells are matched by configuration key (the cell id): what was asked, never where files lie or how it was batched.
A metric of a cell regresses when it is worse than the baseline by more than the allowed margin
max(rel * |baseline|, abs, noise_k * noise), where noise is the baseline's own spread (standard deviation over
disjoint image subsets, or a quarter of its bootstrap interval), when it leaves the two-sided bounds [low, high] a
baseline may set (MLPerf-style quality targets), or when it is not a finite number. It improves when better by
more than the margin. A metric computed with other extractor weights, another reference set, mode, options or
sample count is "not comparable"; a baseline value the run lacks is "missing".

The gate fails closed (asv's compare counts a missing benchmark as worse): exit 1 on any regressed, missing or not
comparable value unless ``allow_missing`` / ``allow_incomparable`` say otherwise. Where a cell's fingerprint
differs from the baseline's (new weights, same configuration: the normal CI case) the summary names the changed
components. Throughput is gated only on request, and only between the same machine, hardware entry, batch size
and process count.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError
from .fingerprint import changed_components, describe_change
from .metrics import metric_of, result_inputs
from .store import load_runs, machine_label, method_of, version_changes, write_atomic
from .textfiles import read_text

BASELINE_SCHEMA = 2
OUTCOMES = ("regressed", "missing", "not comparable", "improved", "pass")
THROUGHPUT = {
    "nfe_per_image": {"rel": 0.0, "abs": 0.0, "noise_k": 0.0},
    "seconds_per_image": {"rel": 0.25, "abs": 0.0, "noise_k": 0.0},
    "peak_memory_mb": {"rel": 0.25, "abs": 0.0, "noise_k": 0.0},
}
"""Throughput values the gate compares with ``gate_throughput`` (all lower is better); NFE on any machine."""
MACHINE_BOUND = ("seconds_per_image", "peak_memory_mb")
COMPARABLE = ("n", "mode", "options")


def _noise(metric: dict) -> float:
    if "subsets" in metric:
        return float(metric["subsets"]["std"])
    if "ci95" in metric:
        low, high = metric["ci95"]
        return (high - low) / 4
    return 0.0


def _label(record: dict) -> str:
    spec = record["spec"]
    return (
        f"{method_of(record)} / {spec['steps']} steps / s={spec['guidance_scale']:g} / {spec['prompts']['name']} / "
        f"seed {spec['seed']}"
    )


def _execution(record: dict) -> dict[str, Any]:
    """Where throughput was measured: it compares only within one machine, hardware entry, batch size and number of
    processes that shared the work."""
    spec = record["spec"]
    return {
        "machine": machine_label((record.get("provenance") or {}).get("machine", {})),
        "hardware": spec["hardware"]["name"],
        "batch_size": spec.get("batch_size"),
        "processes": (record.get("throughput") or {}).get("processes", 1),
    }


def make_baseline(run_dirs: list[str | Path], tolerance: dict[str, float] | None = None) -> dict:
    """Baseline entries for every finished cell: metric values with noise and tolerances (each metric's default
    from the registry, overridden by ``tolerance``), the fingerprint components and the throughput."""
    records, manifests = load_runs(run_dirs)
    cells = {}
    for record in records:
        if record.get("status") != "ok" or not record.get("metrics"):
            continue
        entries = {}
        for metric_id, metric in record["metrics"].items():
            if metric.get("invalid"):
                raise UserError(f"baseline: cell {record['cell_id']} has an invalid {metric_id} ({metric['invalid']})")
            entries[metric_id] = {
                "value": metric["value"],
                "higher_is_better": metric["higher_is_better"],
                "noise": _noise(metric),
                "tolerance": {**metric_of(metric_id, metric).tolerance, **(tolerance or {})},
                **result_inputs(metric),
                **{k: metric.get(k) for k in COMPARABLE},
            }
        throughput = record.get("throughput", {})
        cells[record["cell_id"]] = {
            "label": _label(record),
            "config_key": record.get("config_key"),
            "fingerprint": (record.get("fingerprint") or {}).get("components"),
            "metrics": entries,
            "throughput": {
                **_execution(record),
                "values": {k: throughput[k] for k in THROUGHPUT if k in throughput},
            },
        }
    if not cells:
        raise UserError(f"baseline: no scored cells in {', '.join(map(str, run_dirs))}")
    versions = [(r.get("provenance") or {}).get("versions") for r in records if r.get("status") == "ok"]
    return {
        "schema_version": BASELINE_SCHEMA,
        "suites": sorted({m["suite"]["name"] for m in manifests}),
        "provenance": {**manifests[0].get("provenance", {}), "versions": next((v for v in versions if v), {})},
        "cells": cells,
    }


def read_baseline(path: str | Path) -> dict:
    path = Path(path)
    try:
        baseline = json.loads(read_text(path, "--baseline", "baseline file"))
    except ValueError as error:
        raise UserError(f"--baseline: '{path}' is not JSON ({error})") from None
    if not isinstance(baseline, dict) or not isinstance(baseline.get("schema_version"), int):
        raise UserError(f"--baseline: '{path}' is not an lcm-bench baseline (schema_version {BASELINE_SCHEMA})")
    if baseline["schema_version"] != BASELINE_SCHEMA:
        raise UserError(
            f"--baseline: '{path}' has schema_version {baseline['schema_version']}, this lcm-bench reads "
            f"{BASELINE_SCHEMA}; regenerate it: lcm-bench run SUITE --out RUN && lcm-bench baseline RUN --out {path}"
        )
    if not isinstance(baseline.get("cells"), dict):
        raise UserError(f"--baseline: '{path}' has no 'cells' mapping")
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


@dataclass
class GateResult:
    findings: list[Finding]
    notes: list[str] = field(default_factory=list)
    allow_missing: bool = False
    allow_incomparable: bool = False

    def counts(self) -> dict[str, int]:
        return {o: sum(f.outcome == o for f in self.findings) for o in OUTCOMES}

    def failures(self) -> dict[str, int]:
        """Outcomes that fail the gate, with their counts."""
        counts = self.counts()
        failing = ["regressed"]
        failing += [] if self.allow_missing else ["missing"]
        failing += [] if self.allow_incomparable else ["not comparable"]
        return {o: counts[o] for o in failing if counts[o]}

    @property
    def exit_code(self) -> int:
        return 1 if self.failures() else 0


def judge_value(entry: dict, value: float, higher_is_better: bool) -> tuple[str, float, str]:
    """Outcome, allowed margin and a reason for one value against its baseline entry."""
    tolerance = {"rel": 0.0, "abs": 0.0, "noise_k": 0.0, **entry.get("tolerance", {})}
    base = float(entry["value"])
    margin = max(tolerance["rel"] * abs(base), tolerance["abs"], tolerance["noise_k"] * float(entry.get("noise", 0)))
    if not math.isfinite(value):
        return "regressed", margin, "not a finite number"
    low, high = entry.get("bounds", [None, None])
    if (low is not None and value < low) or (high is not None and value > high):
        return "regressed", margin, f"outside the bounds [{low}, {high}]"
    worse = (base - value) if higher_is_better else (value - base)
    if worse > margin:
        return "regressed", margin, ""
    if -worse > margin:
        return "improved", margin, ""
    return "pass", margin, ""


def judge_metric(entry: dict, metric: dict) -> tuple[str, float, str]:
    """Like judge_value, after checking that the two values were measured the same way; an invalid value (images
    with NaN or inf) is a regression whatever else changed."""
    if metric.get("invalid"):
        return "regressed", 0.0, f"invalid: {metric['invalid']}"
    inputs = result_inputs(metric)
    if entry.get("extractor_digest") != inputs["extractor_digest"]:
        return "not comparable", 0.0, f"extractor weights changed ({metric.get('extractor')})"
    if entry.get("reference_hash") != inputs["reference_hash"]:
        return "not comparable", 0.0, "reference set changed"
    differ = [k for k in COMPARABLE if metric.get(k) != entry.get(k)]
    if differ:
        return "not comparable", 0.0, ", ".join(f"{k} {entry.get(k)} -> {metric.get(k)}" for k in differ)
    return judge_value(entry, float(metric["value"]), entry["higher_is_better"])


def _throughput_findings(label: str, cell: dict, record: dict | None) -> list[Finding]:
    base = cell.get("throughput", {})
    findings = []
    for name, tolerance in THROUGHPUT.items():
        if name not in base.get("values", {}):
            continue
        entry = {"value": base["values"][name], "tolerance": tolerance}
        value = (record or {}).get("throughput", {}).get(name)
        if value is None:
            findings.append(Finding(label, name, "missing", entry["value"]))
            continue
        where = _execution(record)
        then = {k: base.get(k, 1 if k == "processes" else None) for k in where}
        if name in MACHINE_BOUND and any(where[k] != then[k] for k in where):
            detail = ", ".join(f"{k} {then[k]} -> {where[k]}" for k in where if where[k] != then[k])
            findings.append(Finding(label, name, "not comparable", entry["value"], value, None, detail))
            continue
        outcome, margin, detail = judge_value(entry, float(value), False)
        findings.append(Finding(label, name, outcome, entry["value"], value, margin, detail))
    return findings


def check(
    baseline: dict,
    run_dirs: list[str | Path],
    gate_throughput: bool = False,
    allow_missing: bool = False,
    allow_incomparable: bool = False,
) -> GateResult:
    records, _ = load_runs(run_dirs)
    by_id = {r["cell_id"]: r for r in records if r.get("status") == "ok"}
    result = GateResult([], allow_missing=allow_missing, allow_incomparable=allow_incomparable)
    for cell_id, cell in sorted(baseline["cells"].items()):
        record = by_id.get(cell_id)
        label = cell.get("label", cell_id)
        if record is not None and cell.get("fingerprint"):
            base, run = {"components": cell["fingerprint"]}, record.get("fingerprint")
            if changed_components(base, run):
                reason = describe_change(record["spec"]["model"]["name"], record.get("sampler_label", ""), base, run)
                result.notes.append(f"{label}: {reason}")
        for metric_id, entry in sorted(cell["metrics"].items()):
            metric = (record or {}).get("metrics", {}).get(metric_id)
            if metric is None:
                detail = "cell not in the run" if record is None else "metric not computed"
                result.findings.append(Finding(label, metric_id, "missing", entry["value"], detail=detail))
                continue
            outcome, margin, detail = judge_metric(entry, metric)
            result.findings.append(Finding(label, metric_id, outcome, entry["value"], metric["value"], margin, detail))
        if gate_throughput:
            result.findings += _throughput_findings(label, cell, record)
    extra = sorted(set(by_id) - set(baseline["cells"]))
    if extra:
        result.notes.append(f"{len(extra)} cells of the run are not in the baseline (not gated): {', '.join(extra)}")
    changes = version_changes(list(by_id.values()), baseline.get("provenance", {}).get("versions") or {})
    if changes:
        result.notes.append("library versions differ from the baseline's: " + "; ".join(changes))
    return result


def summary_markdown(result: GateResult) -> str:
    """A pull-request comment: the verdict, counts per outcome, notes, then every finding that is not a pass."""
    counts, failures = result.counts(), result.failures()
    allowed = [
        f"{counts[o]} {o} allowed by {flag}"
        for o, flag, on in (
            ("missing", "--allow-missing", result.allow_missing),
            ("not comparable", "--allow-incomparable", result.allow_incomparable),
        )
        if on and counts[o]
    ]
    verdict = "FAIL: " + ", ".join(f"{n} {o}" for o, n in failures.items()) if failures else "PASS"
    if allowed and not failures:
        verdict += f" ({'; '.join(allowed)})"
    lines = [
        f"### lcm-bench quality gate: {verdict}",
        "",
        ", ".join(f"{n} {o}" for o, n in counts.items() if n) or "nothing to compare",
        "",
    ]
    lines += [f"- {note}" for note in result.notes] + ([""] if result.notes else [])
    shown = [f for f in result.findings if f.outcome != "pass"]
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
