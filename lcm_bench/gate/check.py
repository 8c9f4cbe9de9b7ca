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

import math
from dataclasses import dataclass, field
from pathlib import Path

from lcm_bench.gate.baseline import COMPARABLE, MACHINE_BOUND, THROUGHPUT, TIME_BOUND, execution, reference_of
from lcm_bench.metrics.builtins import result_inputs
from lcm_bench.records.cell_record import CellRecord
from lcm_bench.records.fingerprints import changed_components, describe_change
from lcm_bench.records.store import load_runs, version_changes

OUTCOMES = ("regressed", "missing", "not comparable", "improved", "pass")


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
        return "not comparable", 0.0, _reference_change(entry, metric)
    differ = [k for k in COMPARABLE if metric.get(k) != entry.get(k)]
    if differ:
        return "not comparable", 0.0, ", ".join(f"{k} {entry.get(k)} -> {metric.get(k)}" for k in differ)
    return judge_value(entry, float(metric["value"]), entry["higher_is_better"])


def _reference_change(entry: dict, metric: dict) -> str:
    """Which of the reference set's name, N and preprocessing differ (a changed content hash at least)."""
    then = entry.get("reference") or {}
    now = reference_of(metric) if metric.get("reference") else {}
    differ = [f"{k} {then.get(k)} -> {now.get(k)}" for k in ("name", "n", "preprocessing") if then.get(k) != now.get(k)]
    return "reference set changed" + (f": {', '.join(differ)}" if then and differ else " (its content)")


def _under_load(base: dict, cell: CellRecord) -> str:
    """Why a time cannot be judged: the run's or the baseline's cell was timed while other processes used the
    CPU (empty when neither was)."""
    if cell.contended:
        return f"timed under load ({cell.other_cores} other cores busy)"
    return "the baseline was timed under load" if base.get("contended") else ""


def _throughput_findings(label: str, cell: dict, record: CellRecord | None) -> list[Finding]:
    base = cell.get("throughput", {})
    findings = []
    for name, tolerance in THROUGHPUT.items():
        if name not in base.get("values", {}):
            continue
        entry = {"value": base["values"][name], "tolerance": tolerance}
        value = record.throughput.get(name) if record is not None else None
        if value is None:
            findings.append(Finding(label, name, "missing", entry["value"]))
            continue
        loaded = _under_load(base, record)
        if name in TIME_BOUND and loaded:
            findings.append(Finding(label, name, "not comparable", entry["value"], value, None, loaded))
            continue
        where = execution(record)
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
    by_id = {r.cell_id: r for r in records if r.ok}
    result = GateResult([], allow_missing=allow_missing, allow_incomparable=allow_incomparable)
    for cell_id, cell in sorted(baseline["cells"].items()):
        record = by_id.get(cell_id)
        label = cell.get("label", cell_id)
        if record is not None and cell.get("fingerprint"):
            base, run = {"components": cell["fingerprint"]}, record.fingerprint
            if changed_components(base, run):
                result.notes.append(f"{label}: {describe_change(record.model, record.sampler_label, base, run)}")
        for metric_id, entry in sorted(cell["metrics"].items()):
            metric = record.metrics.get(metric_id) if record is not None else None
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
