"""Reported against measured: a published table (``lcm_bench.domain.published``) beside a run's own numbers."""

from __future__ import annotations

from lcm_bench.domain.published import DESCRIPTIONS, published_rows
from lcm_bench.report.frame import METHOD_KEYS, aggregate_metrics
from lcm_bench.report.tables import Table


def overlay_table(frame, name: str, distance: dict | None, clip: dict | None) -> Table | None:
    """Rows: each published method, then the measured method(s) with the same sampler; columns FID and CLIP at
    the published step counts. Measured values keep their own scale: compare orderings across domains."""
    rows = [r for r in published_rows() if r["table"] == name]
    steps = sorted({r["steps"] for r in rows})
    metrics = [m for m in (distance, clip) if m is not None and m["id"] in frame.columns]
    if not metrics:
        return None
    measured = aggregate_metrics(frame, metrics)
    columns = ["method", "source"] + [f"{label} {s}" for label in ("FID", "CLIP") for s in steps]
    out = []
    for method in dict.fromkeys(r["method"] for r in rows):
        paper = {r["steps"]: r for r in rows if r["method"] == method}
        sampler = next(iter(paper.values()))["sampler"]
        out.append([method, "reported"] + [f"{paper[s][k]:.2f}" for k in ("fid", "clip") for s in steps])
        mine = measured[measured["sampler_label"] == sampler]
        for key, group in mine.groupby(METHOD_KEYS, sort=False, dropna=False):
            row = dict(zip(METHOD_KEYS, key, strict=True))
            by_steps = group.set_index("steps")
            cells = []
            for m in (distance, clip):
                for s in steps:
                    value = by_steps.loc[s, m["id"]] if m is not None and s in by_steps.index else float("nan")
                    cells.append(f"{value:.4g}" if value == value else "–")
            out.append([method, f"measured: {row['model']}, s={row['guidance_scale']:g}, {row['prompts']}", *cells])
    labels = " and ".join(m["label"] for m in metrics)
    return Table(columns, out, caption=f"{DESCRIPTIONS[name]}; measured columns are {labels}")
