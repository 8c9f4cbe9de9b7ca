"""What a metric result's fields add beyond its value: the results.csv columns, the gate's noise and a line under the
report's quality table. ``RESULT_FIELDS`` holds one entry per result key (``ci95``, ``subsets``, ...), applied to
every result that has the key, so a metric whose result carries a new field registers the field in its own module
and records, report and gate follow without a change."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lcm_bench.core.registry import Registry


@dataclass(frozen=True)
class ResultField:
    """``columns(result)``: suffix -> value, each a results.csv column ``<metric id><suffix>``; ``noise(result)``: the
    spread the gate allows noise_k of (the lowest ``noise_rank`` present wins); ``note(frame, metric id, label)``: a
    line for the report, read from the results frame (None when the frame has nothing to say)."""

    columns: Callable[[dict[str, Any]], dict[str, Any]]
    noise: Callable[[dict[str, Any]], float] | None = None
    noise_rank: int = 0
    note: Callable[[Any, str, str], str | None] | None = None


RESULT_FIELDS: Registry[ResultField] = Registry("result field")


def _present(frame, column: str):
    """The column's non-missing values, or None where the frame has none."""
    if column not in frame.columns or not frame[column].notna().any():
        return None
    return frame[column].dropna()


def distinct(frame, column: str) -> str:
    """A column's distinct values, ' / '-joined (integers without '.0'), or '?'."""
    values = frame[column].dropna().unique() if column in frame.columns else []
    return " / ".join(str(int(v)) if isinstance(v, float) and v.is_integer() else str(v) for v in values) or "?"


def _noise_floor_note(frame, mid: str, label: str) -> str | None:
    if _present(frame, f"{mid}_noise_floor") is None:
        return None
    floors = frame.groupby("prompts")[f"{mid}_noise_floor"].mean().dropna()
    values = ", ".join(f"{p} {v:.4g}" for p, v in floors.items())
    return f"Noise floor of {label} (reference against a second real draw, same prompts): {values}."


def _fit_note(frame, mid: str, label: str) -> str | None:
    """For extrapolated distances (FD∞): the residual of their fit in 1/N, which bounds what the intercept means."""
    values = _present(frame, f"{mid}_fit_residual")
    if values is None:
        return None
    return (
        f"{label} is the intercept of a line fitted in 1/N to the distance at subsets of the cell's images; the "
        f"fit's RMS residual is {values.median():.3g} (median over cells; largest {values.max():.3g})."
    )


def _scale_note(frame, mid: str, label: str) -> str | None:
    """For scores whose published versions and scales differ (human-preference scores): which ones the table shows."""
    if _present(frame, f"{mid}_scale") is None:
        return None
    version, scale = distinct(frame, f"{mid}_version"), distinct(frame, f"{mid}_scale")
    return f"{label} (`{mid}`): version {version}; shown as computed: {scale}."


def _measured_against(result: dict[str, Any]) -> dict[str, Any]:
    """What a distance was measured at: N generated, the reference set and its preprocessing, the mode."""
    reference = result["reference"]
    return {
        "_n": result.get("n"),
        "_reference": f"{reference.get('name')} (n={reference.get('n')})",
        "_preprocessing": reference.get("preprocessing") or "not recorded",
        "_mode": result.get("mode"),
    }


RESULT_FIELDS.register(
    "ci95",
    ResultField(
        lambda result: dict(zip(("_ci_low", "_ci_high"), result["ci95"], strict=True)),
        noise=lambda result: (result["ci95"][1] - result["ci95"][0]) / 4,
        noise_rank=1,
    ),
)
RESULT_FIELDS.register(
    "subsets",
    ResultField(
        lambda result: {"_subset_std": result["subsets"]["std"]}, noise=lambda result: result["subsets"]["std"]
    ),
)
RESULT_FIELDS.register(
    "noise_floor", ResultField(lambda result: {"_noise_floor": result["noise_floor"]}, note=_noise_floor_note)
)
RESULT_FIELDS.register("fit", ResultField(lambda result: {"_fit_residual": result["fit"]["residual"]}, note=_fit_note))
RESULT_FIELDS.register(
    "scale",
    ResultField(lambda result: {"_version": result.get("version"), "_scale": result["scale"]}, note=_scale_note),
)
RESULT_FIELDS.register("reference", ResultField(_measured_against))


def result_columns(metric_id: str, result: dict[str, Any]) -> dict[str, Any]:
    """The results.csv columns of one metric result: its value, then every registered field's, in their order."""
    columns = {metric_id: result.get("value")}
    for key in RESULT_FIELDS.in_order():
        if key in result:
            columns |= {metric_id + suffix: v for suffix, v in RESULT_FIELDS.get(key).columns(result).items()}
    return columns


def result_noise(result: dict[str, Any]) -> float:
    """The gate's noise of a result: the field of lowest rank that gives one (0 where none does)."""
    fields = [RESULT_FIELDS.get(k) for k in RESULT_FIELDS.in_order() if k in result]
    ranked = sorted((f for f in fields if f.noise is not None), key=lambda f: f.noise_rank)
    return float(ranked[0].noise(result)) if ranked else 0.0


def result_notes(frame, metric_id: str, label: str) -> list[str]:
    """The report's lines for one metric's column of the results frame, field by field."""
    notes = (RESULT_FIELDS.get(k).note for k in RESULT_FIELDS.in_order())
    lines = (note(frame, metric_id, label) for note in notes if note is not None)
    return [line for line in lines if line]
