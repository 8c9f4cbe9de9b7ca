"""Reports rebuilt from records alone: a Markdown table (rows methods, columns steps) and a cost plot."""

from __future__ import annotations

from pathlib import Path

from .store import load_runs, results_frame, write_atomic

METHOD_KEYS = ["model", "sampler_label", "guidance_scale", "prompts", "hardware"]


def method_label(row) -> str:
    return f"{row['model']} / {row['sampler_label']} / s={row['guidance_scale']:g} (w={row['guidance_scale'] - 1:g})"


def by_method_and_steps(frame, columns: tuple[str, ...] = ("seconds_per_image", "nfe_per_image")):
    """Finished cells averaged over seeds: one row per (method, steps)."""
    ok = frame[frame["status"] == "ok"]
    aggregations = {c: (c, "mean") for c in columns if c in ok.columns}
    if columns and columns[0] in ok.columns:
        aggregations[f"{columns[0]}_seed_std"] = (columns[0], "std")
    return ok.groupby(METHOD_KEYS + ["steps"], sort=False).agg(seeds=("seed", "nunique"), **aggregations).reset_index()


def metric_table(frame, metric: dict) -> str:
    """Markdown: rows methods, columns steps, the metric's value (best per column in bold) and its spread."""
    mid = metric["id"]
    extra = tuple(
        c for c in (f"{mid}_subset_std", f"{mid}_ci_low", f"{mid}_ci_high", f"{mid}_noise_floor") if c in frame.columns
    )
    table = by_method_and_steps(frame, (mid, *extra))
    if mid not in table.columns or table[mid].isna().all():
        return ""
    higher = metric["higher_is_better"]
    steps = sorted(table["steps"].unique())
    shown = [k for k in ("prompts", "hardware") if table[k].nunique() > 1]
    group = table.groupby(["steps", *shown])[mid]
    table["best"] = table[mid] == (group.transform("max") if higher else group.transform("min"))
    header = ["method", *shown] + [f"{s} step{'s' if s > 1 else ''}" for s in steps]
    lines = [
        f"### {metric['label']} (`{mid}`, {'higher' if higher else 'lower'} is better)",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for key, group in table.groupby(METHOD_KEYS, sort=False):
        by_steps = group.set_index("steps")
        row = dict(zip(METHOD_KEYS, key, strict=True))
        cells = [method_label(row)] + [str(row[k]) for k in shown]
        for s in steps:
            if s not in by_steps.index or by_steps.loc[s, mid] != by_steps.loc[s, mid]:
                cells.append("–")
                continue
            r = by_steps.loc[s]
            text = f"{r[mid]:.4g}"
            if r["seeds"] > 1:
                text += f" ± {r[f'{mid}_seed_std']:.2g}"
            elif f"{mid}_subset_std" in r and r[f"{mid}_subset_std"] == r[f"{mid}_subset_std"]:
                text += f" ± {r[f'{mid}_subset_std']:.2g}"
            if f"{mid}_ci_low" in r and r[f"{mid}_ci_low"] == r[f"{mid}_ci_low"]:
                text += f" [{r[f'{mid}_ci_low']:.3g}, {r[f'{mid}_ci_high']:.3g}]"
            cells.append(f"**{text}**" if r["best"] else text)
        lines.append("| " + " | ".join(cells) + " |")
    floor_column = f"{mid}_noise_floor"
    if floor_column in table.columns and table[floor_column].notna().any():
        lines += [
            "",
            f"Noise floor (reference against a second draw of real images for the same prompts): "
            f"{table[floor_column].mean():.4g}.",
        ]
    return "\n".join(lines) + "\n"


def steps_table(frame) -> str:
    """Markdown: one row per method, one column per step count, ms per image and NFE per image."""
    table = by_method_and_steps(frame)
    if table.empty:
        return "_No finished cells._\n"
    steps = sorted(table["steps"].unique())
    shown = [k for k in ("prompts", "hardware") if table[k].nunique() > 1]
    header = ["method", *shown] + [f"{s} step{'s' if s > 1 else ''}" for s in steps]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, group in table.groupby(METHOD_KEYS, sort=False):
        row = dict(zip(METHOD_KEYS, key, strict=True))
        by_steps = group.set_index("steps")
        cells = [method_label(row)] + [str(row[k]) for k in shown]
        for s in steps:
            if s in by_steps.index:
                r = by_steps.loc[s]
                cells.append(f"{r['seconds_per_image'] * 1e3:.1f} ms (NFE {r['nfe_per_image']:g})")
            else:
                cells.append("–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def cost_plot(frame, path: Path) -> bool:
    """Seconds per image against steps, one line per method (log2 x axis); PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = by_method_and_steps(frame)
    if ok.empty:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for key, group in ok.groupby(METHOD_KEYS, sort=False):
        group = group.sort_values("steps")
        ax.plot(
            group["steps"],
            group["seconds_per_image"] * 1e3,
            marker="o",
            label=method_label(dict(zip(METHOD_KEYS, key, strict=True))),
        )
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(ok["steps"].unique()))
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("sampling steps")
    ax.set_ylabel("ms per image")
    ax.set_title("Cost against steps")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return True


def training_plot(frame, metric: dict, path: Path) -> bool:
    """For students a suite distils with snapshots (models ``<name>@<iterations>``): the metric against training
    iterations, one line per student and step count (the LCM paper's ablation figures). PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mid = metric["id"]
    ok = frame[(frame["status"] == "ok") & frame["model"].str.contains(r"@\d+$", regex=True)]
    if ok.empty or mid not in ok.columns or ok[mid].isna().all():
        return False
    ok = ok.assign(
        student=ok["model"].str.replace(r"@\d+$", "", regex=True),
        iterations=ok["model"].str.extract(r"@(\d+)$")[0].astype(int),
    )
    table = ok.groupby(["student", "steps", "iterations"], sort=False)[mid].mean().reset_index()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for (student, steps), group in table.groupby(["student", "steps"], sort=False):
        group = group.sort_values("iterations")
        ax.plot(group["iterations"], group[mid], marker="o", label=f"{student}, {steps} step{'s' * (steps > 1)}")
    ax.set_xlabel("training iterations")
    ax.set_ylabel(f"{metric['label']} ({'higher' if metric['higher_is_better'] else 'lower'} is better)")
    ax.set_title(f"{metric['label']} along distillation")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return True


def _metric_meta(records: list[dict], metric_id: str) -> dict:
    for record in records:
        if metric_id in record.get("metrics", {}):
            m = record["metrics"][metric_id]
            return {"label": m["label"], "higher_is_better": m["higher_is_better"]}
    return {"label": metric_id, "higher_is_better": False}


def provenance_lines(manifests: list[dict]) -> list[str]:
    lines = []
    for m in manifests:
        p = m.get("provenance", {})
        git = p.get("git", {})
        versions = p.get("versions", {})
        machine = p.get("machine", {})
        lines.append(
            f"- suite `{m['suite']['name']}` (hash {m['suite']['hash']}), commit {git.get('commit') or 'unknown'}"
            f"{' (dirty)' if git.get('dirty') else ''}, torch {versions.get('torch')}, diffusers "
            f"{versions.get('diffusers')}, {machine.get('cpu')} x{machine.get('cpu_count')}"
            f"{', GPUs: ' + ', '.join(machine['cuda']['devices']) if machine.get('cuda') else ''}"
        )
    return lines


def write_report(run_dirs: list[str | Path], out_dir: str | Path | None = None) -> Path:
    """Write ``report.md`` and ``cost_vs_steps.png`` into ``out_dir`` (default: the first run directory)."""
    records, manifests = load_runs(run_dirs)
    out = Path(out_dir or run_dirs[0])
    frame = results_frame(records)
    plot = out / "plots" / "cost_vs_steps.png"
    parts = [f"# lcm-bench report: {', '.join(m['suite']['name'] for m in manifests)}", ""]
    parts += [
        "Milliseconds per image (text encoding + denoising + VAE decoding, warm-up excluded) and network "
        "evaluations per image. Guidance: diffusers scale s, paper w = s - 1.",
        "",
    ]
    parts += ["## Cost", "", steps_table(frame)]
    if cost_plot(frame, plot):
        parts += ["", f"![cost against steps]({plot.relative_to(out).as_posix()})", ""]
    metrics = {m["id"]: m for manifest in manifests for m in manifest.get("metrics", [])}
    tables = [metric_table(frame, {**m, **_metric_meta(records, mid)}) for mid, m in metrics.items()]
    for mid, m in metrics.items():
        figure = out / "plots" / f"{mid}_vs_training.png"
        if training_plot(frame, {**m, **_metric_meta(records, mid)}, figure):
            parts += [f"![{mid} against training iterations]({figure.relative_to(out).as_posix()})", ""]
    if any(tables):
        parts += [
            "## Quality",
            "",
            "Values are means over seeds; ± is the standard deviation over seeds (over disjoint subsets of a "
            "cell's images when there is one seed); [a, b] is a 95 % bootstrap interval of one seed's images.",
            "",
        ] + [t for t in tables if t]
    skipped = frame[frame["status"] == "skipped"]
    if not skipped.empty:
        parts += ["## Skipped cells", ""]
        for (hardware, reason), group in skipped.groupby(["hardware", "reason"]):
            parts.append(f"- {len(group)} cells on `{hardware}`: {reason}")
        parts.append("")
    parts += ["## Provenance", ""] + provenance_lines(manifests) + [""]
    report = out / "report.md"
    write_atomic(report, "\n".join(parts).encode())
    return report
