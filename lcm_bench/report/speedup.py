"""Iso-quality cost: the NFE and seconds per image each method needs to reach a target quality, interpolated
between measured step counts (linear in log cost), and its speedup over each baseline."""

from __future__ import annotations

import math

from lcm_bench.report.frame import METHOD_KEYS, aggregate_metrics, is_baseline, method_label
from lcm_bench.report.tables import Table


def reaches(value: float, target: float, higher_is_better: bool) -> bool:
    return value >= target if higher_is_better else value <= target


def cost_to_reach(points: list[tuple[float, float]], target: float, higher_is_better: bool) -> float:
    """First crossing of ``target`` along (cost, quality) points sorted by cost; NaN when never reached.
    Between the last miss and the first hit the cost is interpolated linearly in log cost."""
    points = sorted(points)
    for i, (cost, value) in enumerate(points):
        if not reaches(value, target, higher_is_better):
            continue
        if i == 0:
            return cost
        c0, v0 = points[i - 1]
        if v0 == value:
            return cost
        fraction = (target - v0) / (value - v0)
        return math.exp(math.log(c0) + fraction * (math.log(cost) - math.log(c0)))
    return math.nan


def crossing(group, cost_column: str, metric: dict, target: float) -> float:
    """``cost_to_reach`` along one method's rows of an aggregated table."""
    points = zip(group[cost_column], group[metric["id"]], strict=True)
    return cost_to_reach(list(points), target, metric["higher_is_better"])


def default_target(frame, metric: dict) -> tuple[float, str] | None:
    """A target every method reaches: each method's best value over its step counts, and of those the worst (the
    best the weakest method reaches), so the table answers for every method; None without values."""
    table = aggregate_metrics(frame, [metric])
    table = table[table[metric["id"]].notna()]
    if table.empty:
        return None
    higher = metric["higher_is_better"]
    bests = [
        group.loc[group[metric["id"]].idxmax() if higher else group[metric["id"]].idxmin()]
        for _, group in table.groupby(METHOD_KEYS, sort=False, dropna=False)
    ]
    weakest = min(bests, key=lambda r: r[metric["id"]]) if higher else max(bests, key=lambda r: r[metric["id"]])
    steps = int(weakest["steps"])
    source = f"the best {method_label(weakest)} reaches, at {steps} step{'s' * (steps > 1)}: every method reaches it"
    return float(weakest[metric["id"]]), source


def iso_quality(frame, metric: dict, target: float) -> list[dict]:
    """Per method (and prompt set): NFE and seconds per image to reach ``target``."""
    table = aggregate_metrics(frame, [metric])
    out = []
    for key, group in table.groupby(METHOD_KEYS, sort=False, dropna=False):
        row = dict(zip(METHOD_KEYS, key, strict=True))
        group = group[group[metric["id"]].notna()]
        if group.empty:
            continue
        out.append(
            {
                **row,
                "label": method_label(row),
                "baseline": is_baseline(row),
                "nfe": crossing(group, "nfe_per_image", metric, target),
                "seconds": crossing(group, "seconds_per_image", metric, target),
            }
        )
    return out


def speedup_table(rows: list[dict], metric: dict, target: float, target_source: str) -> Table | None:
    """Rows methods of one prompt set; NFE and ms per image to reach the target; speedup (NFE, time) over each
    baseline that reaches it too."""
    if not rows:
        return None
    baselines = [r for r in rows if r["baseline"]]
    columns = ["method", "NFE to target", "ms/image to target"]
    columns += [f"speedup vs {method_label(b)} (NFE / time)" for b in baselines]
    table_rows = []
    for r in rows:
        reached = not math.isnan(r["nfe"])
        cells = [r["label"], f"{r['nfe']:.3g}" if reached else "not reached"]
        cells.append(f"{r['seconds'] * 1e3:.3g}" if reached else "not reached")
        for b in baselines:
            by_nfe, by_time = _ratio(b["nfe"], r["nfe"]), _ratio(b["seconds"], r["seconds"])
            cells.append("–" if b is r or math.isnan(by_nfe) else f"{by_nfe:.2g}x / {by_time:.2g}x")
        table_rows.append(cells)
    direction = "at least" if metric["higher_is_better"] else "at most"
    caption = f"{rows[0]['prompts']}: cost to reach {metric['label']} {direction} {target:.4g} ({target_source})"
    return Table(columns, table_rows, caption=caption)


def _ratio(baseline_cost: float, cost: float) -> float:
    if math.isnan(baseline_cost) or math.isnan(cost) or cost <= 0:
        return math.nan
    return baseline_cost / cost
