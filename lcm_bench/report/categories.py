"""Results per category (PartiPrompts' categories and challenges, the shapes domain's object count, relation and
seen / unseen pair, a user's own columns): for every per-image metric, a table per category column (methods x
steps rows, one column per category, the value with its 95 % bootstrap interval) and a figure (the metric by
category for each method, one panel per step count, the interval as error bars)."""

from __future__ import annotations

from pathlib import Path

from lcm_bench.report.frame import METHOD_KEYS, method_colours, method_label, method_name
from lcm_bench.report.tables import Table, number, rounded

GROUP_KEYS = [*METHOD_KEYS, "steps", "metric", "category", "value_of"]


def aggregate(rows):
    """Per (method, steps, metric, column, category): the value averaged over seeds with their spread, the
    interval kept only for a single seed (as the quality table does), N summed."""
    grouped = rows.groupby(GROUP_KEYS, sort=False, dropna=False)
    table = grouped.agg(
        value=("value", "mean"),
        seed_std=("value", "std"),
        ci_low=("ci_low", "mean"),
        ci_high=("ci_high", "mean"),
        n=("n", "sum"),
        seeds=("seed", "nunique"),
        label=("label", "first"),
        higher_is_better=("higher_is_better", "first"),
    ).reset_index()
    several = table["seeds"] > 1
    table.loc[several, ["ci_low", "ci_high"]] = float("nan")
    return table


def category_table(table, metric: str, column: str) -> Table:
    """Rows methods x steps, one column per category of ``column``: value [interval]; the best per category in bold."""
    chosen = table[(table["metric"] == metric) & (table["category"] == column)]
    labels = list(dict.fromkeys(sorted(chosen["value_of"])))
    higher = bool(chosen["higher_is_better"].iloc[0])
    counts = chosen.groupby("value_of")["n"].max()
    peers = chosen.groupby(["steps", "prompts", "hardware", "value_of"], dropna=False)["value"]
    best = peers.transform("max" if higher else "min")
    chosen = chosen.assign(best=chosen["value"] == best)
    shown = [k for k in ("prompts", "hardware") if chosen[k].nunique() > 1]
    header = ["method", *shown, "steps"] + [f"{label} (n={counts[label]})" for label in labels]
    rows, bold = [], []
    for key, group in chosen.groupby(METHOD_KEYS + ["steps"], sort=False, dropna=False):
        row = dict(zip(METHOD_KEYS + ["steps"], key, strict=True))
        by_label = {r["value_of"]: r for _, r in group.iterrows()}
        cells = [method_label(row), *(str(row[k]) for k in shown), str(int(row["steps"]))]
        flags = [False] * len(cells)
        for label in labels:
            r = by_label.get(label)
            cells.append("–" if r is None else _with_interval(r))
            flags.append(bool(r is not None and r["best"]))
        rows.append(cells)
        bold.append(flags)
    caption = (
        f"{chosen['label'].iloc[0]} by {column} ([95 % bootstrap interval] over the images of each category; ± the "
        "standard deviation over seeds where there are several)"
    )
    return Table(header, rows, bold, caption)


def _with_interval(r) -> str:
    """The value rounded to its uncertainty: ± the seed standard deviation, or its bootstrap interval."""
    if r["seeds"] > 1:
        return f"{rounded(r['value'], r['seed_std'])} ± {rounded(r['seed_std'], r['seed_std'])}"
    if r["ci_low"] == r["ci_low"]:
        width = (r["ci_high"] - r["ci_low"]) / 2
        return f"{rounded(r['value'], width)} [{rounded(r['ci_low'], width)}, {rounded(r['ci_high'], width)}]"
    return number(r["value"], 4)


def category_figure(table, metric: str, frame, path: Path) -> Path | None:
    """The metric by category for each method: one row of panels per category column, one panel per step count,
    grouped bars with the interval as error bars."""
    from lcm_bench.report.plots import _pyplot, save

    chosen = table[table["metric"] == metric]
    if chosen.empty:
        return None
    columns, steps = list(dict.fromkeys(chosen["category"])), sorted(chosen["steps"].unique())
    colours = method_colours(frame)
    plt = _pyplot()
    fig, axes = plt.subplots(len(columns), len(steps), figsize=(3.6 * len(steps), 2.8 * len(columns)), squeeze=False)
    for i, column in enumerate(columns):
        for j, step in enumerate(steps):
            _bars(axes[i][j], chosen[(chosen["category"] == column) & (chosen["steps"] == step)], colours)
            axes[i][j].set_title(f"{column}, {int(step)} step{'s' if step > 1 else ''}", fontsize=9)
        axes[i][0].set_ylabel(chosen["label"].iloc[0])
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="upper center", ncol=min(4, len(names)), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    return save(fig, path)


def _bars(ax, panel, colours: dict[str, str]) -> None:
    """Grouped bars, one per (method, prompt set), the second and later prompt sets hatched; error bars are the
    bootstrap interval (one seed) or the seed standard deviation (several)."""
    labels = sorted(panel["value_of"].unique())
    sets = list(dict.fromkeys(panel["prompts"]))
    shown = [f"{method_label(r)} / {r['prompts']}" if len(sets) > 1 else method_label(r) for _, r in panel.iterrows()]
    panel = panel.assign(shown=shown, name=[method_name(r) for _, r in panel.iterrows()])
    methods = list(dict.fromkeys(shown))
    width = 0.8 / max(len(methods), 1)
    for k, label in enumerate(methods):
        rows = panel[panel["shown"] == label]
        name, hatch = rows["name"].iloc[0], "//" if sets.index(rows["prompts"].iloc[0]) else None
        rows = rows.groupby("value_of")[["value", "ci_low", "ci_high", "seed_std"]].mean().reindex(labels)
        x = [i + (k - (len(methods) - 1) / 2) * width for i in range(len(labels))]
        ax.bar(x, rows["value"].to_numpy(), width, yerr=_errors(rows), color=colours.get(name), label=label,
               hatch=hatch, edgecolor="white", linewidth=0, capsize=2)  # fmt: skip
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)


def _errors(rows):
    low = (rows["value"] - rows["ci_low"]).where(rows["ci_low"].notna(), rows["seed_std"])
    high = (rows["ci_high"] - rows["value"]).where(rows["ci_high"].notna(), rows["seed_std"])
    return [low.fillna(0).clip(lower=0).to_numpy(), high.fillna(0).clip(lower=0).to_numpy()]
