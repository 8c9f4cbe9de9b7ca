"""Paper-style figures (matplotlib, PNG and PDF, one colour per method in every figure): quality against steps,
distance against CLIP score across guidance scales, quality against cost with the Pareto front and the
iso-quality target, cost against steps, and quality along distillation."""

from __future__ import annotations

import math
from pathlib import Path

from lcm_bench.report.frame import (
    METHOD_KEYS,
    PALETTE,
    aggregate_metrics,
    method_label,
    method_name,
    spread,
)
from lcm_bench.report.speedup import crossing

MARKERS = "osD^v<>Pp*"
LINESTYLES = ["-", "--", ":", "-."]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path) -> Path:
    """PNG (shown by the reports) and PDF (for papers) side by side, each written atomically."""
    import io

    from lcm_bench.core.io import write_atomic

    for target, options in ((path, {"dpi": 130, "format": "png"}), (path.with_suffix(".pdf"), {"format": "pdf"})):
        buffer = io.BytesIO()
        fig.savefig(buffer, **options)
        write_atomic(target, buffer.getvalue())
    _pyplot().close(fig)
    return path


def _log2_steps(ax, steps) -> None:
    import matplotlib.ticker

    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(steps))
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.get_xaxis().set_minor_locator(matplotlib.ticker.NullLocator())


def _axis_label(metric: dict) -> str:
    return f"{metric['label']} ({'higher' if metric['higher_is_better'] else 'lower'} is better)"


def _grid(n_rows: int, n_cols: int, width: float = 5.0, height: float = 3.8):
    plt = _pyplot()
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(width * n_cols, height * n_rows + 0.9), squeeze=False)
    return fig, axes


FONT = {"title": 9, "label": 9, "ticks": 8, "legend": 8}
"""One type scale for every figure: readable at a paper column's width and on screen."""


def _legend(fig, axes):
    """One legend for the figure, below the axes, with as many columns as fit its width (never clipped)."""
    handles, labels = {}, []
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in handles:
                handles[label] = handle
                labels.append(label)
    if not labels:
        return None
    renderer = fig.canvas.get_renderer()
    for ncol in range(min(4, len(labels)), 0, -1):
        legend = fig.legend(
            [handles[x] for x in labels], labels, loc="lower center", ncol=ncol, fontsize=FONT["legend"], frameon=False
        )
        if legend.get_window_extent(renderer).width <= 0.98 * fig.bbox.width or ncol == 1:
            return legend
        legend.remove()
    return None


def _label(ax, xlabel: str, ylabel: str, title: str) -> None:
    ax.set_xlabel(xlabel, fontsize=FONT["label"])
    ax.set_ylabel(ylabel, fontsize=FONT["label"])
    ax.set_title(title, fontsize=FONT["title"])
    ax.tick_params(labelsize=FONT["ticks"])
    ax.grid(True, alpha=0.3)


def _finish(fig, axes, path: Path) -> Path:
    """Legend below the axes, the axes laid out in the space above it (measured, so nothing is clipped)."""
    legend = _legend(fig, axes)
    height = legend.get_window_extent(fig.canvas.get_renderer()).height / fig.bbox.height if legend else 0.0
    fig.tight_layout(rect=(0, min(height + 0.01, 0.6), 1, 1))
    return save(fig, path)


def _plain_log(ax, axis: str = "x") -> None:
    """A log axis labelled with plain numbers at 1, 2 and 5 of each decade (no 10^k, no crowded minor labels)."""
    import matplotlib.ticker

    target = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    target.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    target.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    target.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _scales(table) -> dict[str, list]:
    """Each method's guidance scales: a method run at several gets one line style per scale."""
    scales: dict[str, set] = {}
    for _, row in table.iterrows():
        scales.setdefault(method_name(row), set()).add(row["guidance_scale"])
    return {name: sorted(values) for name, values in scales.items()}


def _style(row, colours: dict, scales: dict[str, list]) -> dict:
    """Colour, marker and line style per method (so methods that overlap stay visible); a method run at several
    guidance scales gets one line style per scale."""
    name = method_name(row)
    own = scales.get(name, [])
    index = own.index(row["guidance_scale"]) if row["guidance_scale"] in own else 0
    method = list(colours).index(name) if name in colours else 0
    return {
        "color": colours[name],
        "linestyle": LINESTYLES[(method + index) % len(LINESTYLES)],
        "marker": MARKERS[method % len(MARKERS)],
        "markersize": 5,
    }


def quality_vs_steps(frame, metrics: list[dict], colours: dict, path: Path) -> Path | None:
    """One panel per (prompt set, metric): the metric against steps (log2 axis), error bars = seed spread."""
    metrics = [m for m in metrics if m["id"] in frame.columns and frame[m["id"]].notna().any()]
    table = aggregate_metrics(frame, metrics)
    if not metrics or table.empty:
        return None
    prompt_sets = list(dict.fromkeys(table["prompts"]))
    scales = _scales(table)
    fig, axes = _grid(len(prompt_sets), len(metrics))
    for i, prompts in enumerate(prompt_sets):
        for j, m in enumerate(metrics):
            ax = axes[i][j]
            for key, group in table[table["prompts"] == prompts].groupby(METHOD_KEYS, sort=False, dropna=False):
                row = dict(zip(METHOD_KEYS, key, strict=True))
                group = group[group[m["id"]].notna()].sort_values("steps")
                if group.empty:
                    continue
                errors = [spread(r, m["id"]) for _, r in group.iterrows()]
                errors = [0.0 if math.isnan(e) else e for e in errors]
                ax.errorbar(
                    group["steps"],
                    group[m["id"]],
                    yerr=errors,
                    capsize=3,
                    label=method_label(row),
                    **_style(row, colours, scales),
                )
            floor = f"{m['id']}_noise_floor"
            values = table[table["prompts"] == prompts][floor].dropna() if floor in table.columns else []
            if len(values):
                ax.axhline(float(values.mean()), color="grey", linestyle=":", linewidth=1, label="noise floor")
            _log2_steps(ax, table["steps"].unique())
            _label(ax, "sampling steps", _axis_label(m), f"{m['label']} — {prompts}")
    return _finish(fig, axes, path)


def guidance_curves(frame, distance: dict, clip: dict, colours: dict, path: Path) -> Path | None:
    """The paper's guidance study: distance against CLIP score across guidance scales, one curve per method and
    step count, points labelled with paper w. Drawn only where a method ran at two or more scales."""
    if distance is None or clip is None:
        return None
    table = aggregate_metrics(frame, [distance, clip]).dropna(subset=[distance["id"], clip["id"]])
    keys = ["method", "model", "sampler_label", "prompts", "hardware", "runtime", "steps"]
    curves = [(k, g) for k, g in table.groupby(keys, sort=False) if g["guidance_scale"].nunique() > 1]
    if not curves:
        return None
    rows = [dict(zip(keys, k, strict=True)) for k, _ in curves]
    prompt_sets = list(dict.fromkeys(r["prompts"] for r in rows))
    all_steps = sorted({r["steps"] for r in rows})
    fig, axes = _grid(1, len(prompt_sets), width=6.0, height=4.6)
    for key, group in curves:
        row = dict(zip(keys, key, strict=True))
        ax = axes[0][prompt_sets.index(row["prompts"])]
        group = group.sort_values("guidance_scale")
        index = all_steps.index(row["steps"])
        ax.plot(
            group[clip["id"]],
            group[distance["id"]],
            color=colours[method_name(row)],
            marker=MARKERS[index % 10],
            linestyle=LINESTYLES[index % 4],
            label=f"{method_name(row)}, {row['steps']} step{'s' * (row['steps'] > 1)}",
        )
        for _, r in group.iterrows():
            ax.annotate(
                f"w={r['guidance_scale'] - 1:g}",
                (r[clip["id"]], r[distance["id"]]),
                fontsize=6,
                xytext=(3, 3),
                textcoords="offset points",
            )
    for ax, prompts in zip(axes[0], prompt_sets, strict=True):
        title = f"Guidance: {distance['label']} against {clip['label']} — {prompts}"
        _label(ax, _axis_label(clip), _axis_label(distance), title)
    return _finish(fig, axes, path)


def pareto_front(points: list[tuple[float, float]], higher_is_better: bool) -> list[tuple[float, float]]:
    """Points (cost, quality) no other point beats on both cost and quality, sorted by cost."""
    front, best = [], None
    for cost, value in sorted(points, key=lambda p: (p[0], -p[1] if higher_is_better else p[1])):
        if best is None or (value > best if higher_is_better else value < best):
            front.append((cost, value))
            best = value
    return front


def quality_vs_cost(frame, metric: dict, colours: dict, path: Path, targets: dict | None = None) -> Path | None:
    """The metric against NFE and against ms per image (log axes), one line per method over its step counts,
    the Pareto front dashed, and per prompt set the iso-quality target with each method's crossing marked."""
    if metric is None:
        return None
    table = aggregate_metrics(frame, [metric])
    table = table.assign(ms=table["seconds_per_image"] * 1e3)
    table = table[table[metric["id"]].notna()]
    if table.empty:
        return None
    prompt_sets = list(dict.fromkeys(table["prompts"]))
    scales = _scales(table)
    higher = metric["higher_is_better"]
    fig, axes = _grid(len(prompt_sets), 2)
    for i, prompts in enumerate(prompt_sets):
        subset = table[table["prompts"] == prompts]
        target = (targets or {}).get(prompts)
        for j, (column, label) in enumerate((("nfe_per_image", "NFE per image"), ("ms", "ms per image"))):
            ax = axes[i][j]
            for key, group in subset.groupby(METHOD_KEYS, sort=False, dropna=False):
                row = dict(zip(METHOD_KEYS, key, strict=True))
                group = group.sort_values(column)
                style = _style(row, colours, scales)
                ax.plot(group[column], group[metric["id"]], label=method_label(row), **style)
                if target is not None:
                    reached_at = crossing(group, column, metric, target[0])
                    if not math.isnan(reached_at):
                        ax.plot(
                            [reached_at],
                            [target[0]],
                            marker="X",
                            markersize=9,
                            color=style["color"],
                            markeredgecolor="black",
                            linestyle="none",
                        )
            front = pareto_front(list(zip(subset[column], subset[metric["id"]], strict=True)), higher)
            ax.step(
                *zip(*front, strict=True),
                where="post",
                color="black",
                linestyle="--",
                linewidth=1,
                alpha=0.6,
                label="Pareto front",
            )
            if target is not None:
                ax.axhline(target[0], color="grey", linewidth=0.8, linestyle=":", label="iso-quality target")
            _plain_log(ax)
            _label(ax, label, _axis_label(metric), f"{metric['label']} against {label} — {prompts}")
    return _finish(fig, axes, path)


def latency_vs_steps(frame, colours: dict, path: Path) -> Path | None:
    """Milliseconds per image against steps, one line per method and hardware: the throughput table's numbers
    (median timed ms per image, averaged over prompt sets and seeds; error bars the timing interval); points
    timed under load drawn hollow; None below two step counts, where each line is one point the throughput table
    already states."""
    from lcm_bench.report.tables import COST_KEYS, cost_by_method

    table = cost_by_method(frame)
    if table.empty or table["steps"].nunique() < 2:
        return None
    scales = _scales(table)
    fig, axes = _grid(1, 1, width=6.5, height=4.2)
    ax = axes[0][0]
    for _, group in table.groupby([k for k in COST_KEYS if k != "steps"], sort=False):
        row, group = group.iloc[0], group.sort_values("steps")
        ms = group["seconds_per_image"] * 1e3
        errors = [(ms - group["low"] * 1e3).clip(lower=0), (group["high"] * 1e3 - ms).clip(lower=0)]
        style = _style(row, colours, scales)
        ax.errorbar(group["steps"], ms, yerr=errors, capsize=3, label=f"{method_label(row)} / {row['hardware']}",
                    **style)  # fmt: skip
        loaded = group[group["contended"]]
        if not loaded.empty:
            ax.plot(loaded["steps"], loaded["seconds_per_image"] * 1e3, linestyle="none", marker=style["marker"],
                    markerfacecolor="white", markeredgecolor=style["color"], markersize=7)  # fmt: skip
    _log2_steps(ax, table["steps"].unique())
    title = "Cost against steps (mean over prompt sets and seeds; hollow: timed under load)"
    _label(ax, "sampling steps", "ms per image (text + denoise + VAE)", title)
    return _finish(fig, axes, path)


def quality_vs_latency(frame, metric: dict, colours: dict, path: Path) -> Path | None:
    """Quality against ms per image: one colour per method, one marker per runtime, points labelled with steps
    and each method's runtimes at equal steps joined to its eager point."""
    from lcm_bench.report.deployment import runtime_comparison

    table = runtime_comparison(frame, [metric])
    if table.empty or metric["id"] not in table.columns:
        return None
    table = table.dropna(subset=[metric["id"]])
    runtimes = list(dict.fromkeys(table["runtime"]))
    fig, axes = _grid(1, 1, width=6.5, height=4.4)
    ax = axes[0][0]
    for _, r in table.iterrows():
        marker = MARKERS[runtimes.index(r["runtime"]) % len(MARKERS)]
        ax.plot(r["seconds_per_image"] * 1e3, r[metric["id"]], linestyle="none", marker=marker, markersize=7,
                color=colours.get(method_name(r), "black"))  # fmt: skip
        ax.annotate(f"{int(r['steps'])}", (r["seconds_per_image"] * 1e3, r[metric["id"]]), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")  # fmt: skip
    for name in dict.fromkeys(method_name(r) for _, r in table.iterrows()):
        ax.plot([], [], color=colours.get(name, "black"), linestyle="-", label=name)
    for i, runtime in enumerate(runtimes):
        ax.plot([], [], color="grey", linestyle="none", marker=MARKERS[i % len(MARKERS)], label=runtime)
    wide = table["seconds_per_image"].max() > 5 * table["seconds_per_image"].min()
    if wide:
        _plain_log(ax)
    xlabel = "ms per image" + (" (log)" if wide else "")
    _label(ax, xlabel, _axis_label(metric), "Quality against latency, by runtime")
    return _finish(fig, axes, path)


def training_curves(frame, metric: dict, path: Path) -> Path | None:
    """For students a suite distils with snapshots (models ``<name>@<iterations>``): the metric against training
    iterations, one colour per student and one line style per step count (the LCM paper's ablation figures)."""
    mid = metric["id"]
    ok = frame[(frame["status"] == "ok") & frame["model"].str.contains(r"@\d+$", regex=True)]
    if ok.empty or mid not in ok.columns or ok[mid].isna().all():
        return None
    ok = ok.assign(
        student=ok["model"].str.replace(r"@\d+$", "", regex=True),
        iterations=ok["model"].str.extract(r"@(\d+)$")[0].astype(int),
    )
    table = ok.groupby(["student", "steps", "iterations"], sort=False)[mid].mean().reset_index()
    fig, axes = _grid(1, 1, width=7.0, height=4.5)
    ax = axes[0][0]
    students = list(dict.fromkeys(table["student"]))
    all_steps = sorted(table["steps"].unique())
    for (student, steps), group in table.groupby(["student", "steps"], sort=False):
        group = group.sort_values("iterations")
        k = all_steps.index(steps)
        ax.plot(
            group["iterations"],
            group[mid],
            color=PALETTE[students.index(student) % len(PALETTE)],
            marker=MARKERS[k % len(MARKERS)],
            linestyle=LINESTYLES[k % len(LINESTYLES)],
            label=f"{student}, {steps} step{'s' * (steps > 1)}",
        )
    _label(ax, "training iterations", _axis_label(metric), f"{metric['label']} along distillation")
    return _finish(fig, axes, path)
