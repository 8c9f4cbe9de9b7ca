"""Baselines of the quality gate: per-cell metric values with their noise and tolerances (each metric's default
from its registry entry), the fingerprint components and the throughput, written from finished runs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lcm_bench.core.errors import UserError
from lcm_bench.core.io import write_atomic
from lcm_bench.core.registry import Registry
from lcm_bench.core.textfiles import read_text
from lcm_bench.metrics.builtins import metric_name_of, metric_of, result_inputs
from lcm_bench.metrics.result_fields import result_noise
from lcm_bench.records.cell_record import CellRecord
from lcm_bench.records.store import load_runs

BASELINE_SCHEMA = 2


THROUGHPUT = {
    "nfe_per_image": {"rel": 0.0, "abs": 0.0, "noise_k": 0.0},
    "seconds_per_image": {"rel": 0.25, "abs": 0.0, "noise_k": 0.0},
    "peak_memory_mb": {"rel": 0.25, "abs": 0.0, "noise_k": 0.0},
    "latency_p90_s": {"rel": 0.25, "abs": 0.0, "noise_k": 0.0},
}
"""Throughput values the gate compares with ``gate_throughput`` (all lower is better); NFE on any machine."""


MACHINE_BOUND = ("seconds_per_image", "peak_memory_mb", "latency_p90_s")
TIME_BOUND = ("seconds_per_image", "latency_p90_s")
"""Throughput values other processes change: not judged when either side was timed under load."""


COMPARABLE = ("n", "mode", "options")


@dataclass(frozen=True)
class GateProfile:
    """Two-sided windows around a reference run's values, per metric name (a relative half-width): a value outside
    its window fails the gate whichever side it leaves, as an accuracy check against a reference implementation
    does. Metrics without a window keep the usual one-sided margin."""

    windows: dict[str, float]
    description: str


GATE_PROFILES: Registry[GateProfile] = Registry("gate profile")
GATE_PROFILES.register(
    "mlperf",
    GateProfile(
        {"fid": 0.02, "clip_score": 0.002},
        "MLPerf Inference text-to-image: FID within 2 % and CLIP score within 0.2 % of the reference run's, "
        "both ways (SDXL: FID 23.0109-23.9501 around 23.4805, CLIP 31.6863-31.8133 around 31.7498)",
    ),
)


def window_bounds(value: float, half_width: float) -> list[float]:
    """[value - w |value|, value + w |value|]."""
    return [value - half_width * abs(value), value + half_width * abs(value)]


def reference_of(metric: dict) -> dict:
    """What a distance's reference set was, without its hash: name, N and preprocessing."""
    reference = metric["reference"]
    return {k: reference.get(k) for k in ("name", "n", "preprocessing")}


def _label(cell: CellRecord) -> str:
    return f"{cell.method} / {cell.steps} steps / s={cell.guidance_scale:g} / {cell.prompts} / seed {cell.seed}" + (
        f" / {cell.runtime}" if cell.runtime else ""
    )


def execution(cell: CellRecord) -> dict[str, Any]:
    """Where throughput was measured: it compares only within one machine, hardware entry, batch size and number of
    processes that shared the work."""
    return {
        "machine": cell.machine,
        "hardware": cell.hardware,
        "batch_size": cell.batch_size,
        "processes": cell.processes,
    }


def make_baseline(
    run_dirs: list[str | Path], tolerance: dict[str, float] | None = None, profile: str | None = None
) -> dict:
    """Baseline entries for every finished cell: metric values with noise and tolerances (each metric's default
    from the registry, overridden by ``tolerance``), two-sided bounds where ``profile`` (a ``GATE_PROFILES`` entry)
    gives the metric a window, the fingerprint components and the throughput."""
    windows = GATE_PROFILES.get(profile, "--profile").windows if profile else {}
    runs, manifests = load_runs(run_dirs)
    cells = {}
    for cell in runs:
        if not cell.ok or not cell.metrics:
            continue
        cells[cell.cell_id] = {
            "label": _label(cell),
            "config_key": cell.config_key,
            "fingerprint": (cell.fingerprint or {}).get("components"),
            "metrics": {
                metric_id: _metric_entry(cell, metric_id, windows, tolerance, profile) for metric_id in cell.metrics
            },
            "throughput": {
                **execution(cell),
                "values": {k: cell.throughput[k] for k in THROUGHPUT if k in cell.throughput},
                "contended": cell.contended,
            },
        }
    if not cells:
        raise UserError(f"baseline: no scored cells in {', '.join(map(str, run_dirs))}")
    versions = [cell.versions for cell in runs if cell.ok]
    return {
        "schema_version": BASELINE_SCHEMA,
        **({"profile": profile} if profile else {}),
        "suites": sorted({m["suite"]["name"] for m in manifests}),
        "provenance": {**manifests[0].get("provenance", {}), "versions": dict(next((v for v in versions if v), {}))},
        "cells": cells,
    }


def _metric_entry(cell: CellRecord, metric_id: str, windows: dict, tolerance: dict | None, profile: str | None) -> dict:
    """A metric's baseline entry: its value, noise and tolerance, what it was computed from, and its window."""
    metric = cell.metrics[metric_id]
    if metric.get("invalid"):
        raise UserError(f"baseline: cell {cell.cell_id} has an invalid {metric_id} ({metric['invalid']})")
    window = windows.get(metric_name_of(metric_id, metric)) if "value" in metric else None
    return {
        "value": metric["value"],
        "higher_is_better": metric["higher_is_better"],
        "noise": result_noise(metric),
        "tolerance": {**metric_of(metric_id, metric).tolerance, **(tolerance or {})},
        **result_inputs(metric),
        **{k: metric.get(k) for k in COMPARABLE},
        **({"reference": reference_of(metric)} if metric.get("reference") else {}),
        **({"bounds": window_bounds(float(metric["value"]), window), "profile": profile} if window else {}),
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
