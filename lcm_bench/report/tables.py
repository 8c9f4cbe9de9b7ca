"""Tables as data (cells, bold marks, a caption) rendered to Markdown, LaTeX and HTML, plus the report's tables:
the paper-style quality table, per-metric tables, the throughput table and the tidy CSV behind them."""

from __future__ import annotations

import csv
import html
import io
import math
from dataclasses import dataclass, field

from lcm_bench.report.frame import METHOD_KEYS, aggregate_metrics, method_label, spread


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]
    bold: list[list[bool]] = field(default_factory=list)
    caption: str = ""
    subheader: list[str] = field(default_factory=list)
    """A second header line (what each column was measured at), empty for most columns."""

    def is_bold(self, i: int, j: int) -> bool:
        return bool(self.bold) and self.bold[i][j]

    def to_markdown(self) -> str:
        lines = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        if self.subheader:
            lines.append("| " + " | ".join(f"_{c}_" if c else "" for c in self.subheader) + " |")
        for i, row in enumerate(self.rows):
            cells = [f"**{c}**" if self.is_bold(i, j) and c else c for j, c in enumerate(row)]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(self.columns)
        writer.writerows(self.rows)
        return buffer.getvalue()

    def to_latex(self) -> str:
        """booktabs tabular, best values in bold."""

        def tex(text: str) -> str:
            for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#")):
                text = text.replace(a, b)
            return text.replace("±", r"$\pm$").replace("–", "--")

        lines = [
            r"\begin{table}[t]",
            r"\centering",
            r"\begin{tabular}{l" + "r" * (len(self.columns) - 1) + "}",
            r"\toprule",
            " & ".join(tex(c) for c in self.columns) + r" \\",
        ]
        if self.subheader:
            lines.append(" & ".join(rf"{{\footnotesize {tex(c)}}}" if c else "" for c in self.subheader) + r" \\")
        lines.append(r"\midrule")
        for i, row in enumerate(self.rows):
            cells = [rf"\textbf{{{tex(c)}}}" if self.is_bold(i, j) else tex(c) for j, c in enumerate(row)]
            lines.append(" & ".join(cells) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}"]
        if self.caption:
            lines.append(rf"\caption{{{tex(self.caption)}}}")
        lines.append(r"\end{table}")
        return "\n".join(lines) + "\n"

    def to_html(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        if self.subheader:
            sub = "".join(f"<th><small>{html.escape(c)}</small></th>" for c in self.subheader)
            head += f"</tr><tr>{sub}"
        body = []
        for i, row in enumerate(self.rows):
            cells = "".join(
                f"<td><b>{html.escape(c)}</b></td>" if self.is_bold(i, j) else f"<td>{html.escape(c)}</td>"
                for j, c in enumerate(row)
            )
            body.append(f"<tr>{cells}</tr>")
        caption = f"<caption>{html.escape(self.caption)}</caption>" if self.caption else ""
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>\n"


def _steps_label(s: int) -> str:
    return f"{s} step{'s' if s > 1 else ''}"


def _shown_keys(table) -> list[str]:
    return [k for k in ("prompts", "hardware") if table[k].nunique() > 1]


def number(value: float, digits: int) -> str:
    """``digits`` significant digits without switching to exponent notation for values up to 1e6."""
    text = f"{value:.{digits}g}"
    return f"{value:.0f}" if "e+" in text and abs(value) < 1e6 else text


def _value_text(r, mid: str, intervals: bool = True) -> str:
    text = number(r[mid], 4)
    s = spread(r, mid)
    if not math.isnan(s):
        text += f" ± {number(s, 2)}"
    low = r.get(f"{mid}_ci_low")
    if intervals and low is not None and low == low and r["seeds"] == 1:
        text += f" [{number(low, 3)}, {number(r[f'{mid}_ci_high'], 3)}]"
    return text


def _best_marks(table, metrics: list[dict], shown: list[str]):
    marks = {}
    for m in metrics:
        group = table.groupby(["steps", *shown], dropna=False)[m["id"]]
        best = group.transform("max") if m["higher_is_better"] else group.transform("min")
        marks[m["id"]] = (table[m["id"]] == best).to_numpy()
    return marks


def quality_table(frame, metrics: list[dict], short: dict[str, str] | None = None, caption: str = "") -> Table | None:
    """The paper's layout: rows methods, for each metric one column per step count; best per column in bold."""
    metrics = [m for m in metrics if m["id"] in frame.columns and frame[m["id"]].notna().any()]
    if not metrics:
        return None
    table = aggregate_metrics(frame, metrics)
    steps = sorted(table["steps"].unique())
    shown = _shown_keys(table)
    marks = _best_marks(table, metrics, shown)
    short = short or {}
    columns = ["method", *shown] + [f"{short.get(m['id'], m['label'])} {s}" for m in metrics for s in steps]
    contexts = {m["id"]: (measured_at(frame, m["id"]) or ("", ""))[0] for m in metrics}
    subheader = [""] * (1 + len(shown)) + [contexts[m["id"]] for m in metrics for _ in steps]
    rows, bold = [], []
    for key, group in table.groupby(METHOD_KEYS, sort=False, dropna=False):
        row = dict(zip(METHOD_KEYS, key, strict=True))
        cells, flags = [method_label(row)] + [str(row[k]) for k in shown], [False] * (1 + len(shown))
        by_steps = {int(r["steps"]): (i, r) for i, r in group.iterrows()}
        for m in metrics:
            for s in steps:
                i, r = by_steps.get(int(s), (None, None))
                if r is None or r[m["id"]] != r[m["id"]]:
                    cells.append("–")
                    flags.append(False)
                else:
                    cells.append(_value_text(r, m["id"], intervals=len(metrics) == 1))
                    flags.append(bool(marks[m["id"]][table.index.get_loc(i)]))
        rows.append(cells)
        bold.append(flags)
    return Table(columns, rows, bold, caption, subheader if any(subheader) else [])


def _values(frame, column: str) -> str:
    values = frame[column].dropna().unique() if column in frame.columns else []
    return " / ".join(str(int(v)) if isinstance(v, float) and v.is_integer() else str(v) for v in values) or "?"


def measured_at(frame, mid: str) -> tuple[str, str] | None:
    """For a distance column: a short line (N and the reference set) and a sentence adding the reference's
    preprocessing and the extractor's mode; None for metrics without a reference."""
    if f"{mid}_reference" not in frame.columns or frame[f"{mid}_reference"].isna().all():
        return None
    subset = frame[frame[mid].notna()]
    n, reference = _values(subset, f"{mid}_n"), _values(subset, f"{mid}_reference")
    short = f"N={n} vs {reference}"
    sentence = (
        f"N = {n} generated images per cell against {reference}; reference preprocessing: "
        f"{_values(subset, f'{mid}_preprocessing')}; extractor mode {_values(subset, f'{mid}_mode')}"
    )
    return short, sentence


def distance_notes(frame, metrics: list[dict]) -> list[str]:
    """One line per distance metric: what it was measured at (distances compare only at equal N and reference)."""
    notes = [(m, measured_at(frame, m["id"])) for m in metrics if m["id"] in frame.columns]
    return [f"{m['label']} (`{m['id']}`): {context[1]}." for m, context in notes if context]


def throughput_table(frame) -> Table | None:
    """Per method, steps, machine and hardware setting, over seeds and prompt sets: NFE, images/s, ms per image
    (± its spread over cells; and its phases) and peak memory."""
    columns = (
        "seconds_per_image",
        "nfe_per_image",
        "images_per_s",
        "text_encoding_s_per_image",
        "denoising_s_per_image",
        "vae_decoding_s_per_image",
        "peak_memory_mb",
    )
    ok = frame[frame["status"] == "ok"]
    if ok.empty:
        return None
    keys = ["method", "model", "sampler_label", "guidance_scale", "machine", "hardware", "steps"]
    ok = ok.assign(machine=ok["machine"].fillna("unknown")) if "machine" in ok.columns else ok.assign(machine="unknown")
    grouped = ok.groupby(keys, sort=False, dropna=False)
    table = grouped.agg(**{c: (c, "mean") for c in columns}).reset_index()
    table["seconds_per_image_std"] = grouped["seconds_per_image"].std().to_numpy()
    table["cells"] = grouped.size().to_numpy()
    kinds = frame.dropna(subset=["memory_kind"]).groupby("hardware")["memory_kind"].first().to_dict()
    header = [
        "method",
        "machine",
        "hardware",
        "steps",
        "NFE",
        "images/s",
        "ms/image",
        "text / denoise / VAE ms",
        "peak MB",
    ]
    rows = []
    for _, r in table.sort_values(["machine", "hardware", "method", "steps"], kind="stable").iterrows():
        jitter = r["seconds_per_image_std"] if r["cells"] > 1 else 0.0
        rows.append(
            [
                method_label(r),
                r["machine"],
                r["hardware"],
                str(int(r["steps"])),
                f"{r['nfe_per_image']:g}",
                f"{r['images_per_s']:.1f}",
                f"{r['seconds_per_image'] * 1e3:.2f} ± {jitter * 1e3:.2f}",
                " / ".join(f"{r[c] * 1e3:.2f}" for c in columns[3:6]),
                f"{r['peak_memory_mb']:.0f} ({kinds.get(r['hardware'], '?')})",
            ]
        )
    return Table(header, rows)


def tidy_results(frame, metrics: list[dict]):
    """Long form for CSV: one row per (method, steps, metric) with mean, spread, interval, seeds and cost."""
    import pandas as pd

    table = aggregate_metrics(frame, metrics)
    rows = []
    for _, r in table.iterrows():
        for m in metrics:
            mid = m["id"]
            if mid not in table.columns or r[mid] != r[mid]:
                continue
            rows.append(
                {
                    **{k: r[k] for k in METHOD_KEYS},
                    "steps": int(r["steps"]),
                    "metric": mid,
                    "higher_is_better": m["higher_is_better"],
                    "mean": r[mid],
                    "spread": spread(r, mid),
                    "ci_low": r.get(f"{mid}_ci_low", math.nan) if r["seeds"] == 1 else math.nan,
                    "ci_high": r.get(f"{mid}_ci_high", math.nan) if r["seeds"] == 1 else math.nan,
                    "noise_floor": r.get(f"{mid}_noise_floor", math.nan),
                    **_long_context(frame, r, mid),
                    "seeds": int(r["seeds"]),
                    "nfe_per_image": r["nfe_per_image"],
                    "seconds_per_image": r["seconds_per_image"],
                }
            )
    return pd.DataFrame(rows)


def _long_context(frame, row, mid: str) -> dict[str, str]:
    """N, reference and preprocessing of a (method, steps) row's distance, for the long CSV."""
    if f"{mid}_reference" not in frame.columns:
        return {}
    keys = ("method", "guidance_scale", "prompts", "hardware", "steps")
    chosen = frame[mid].notna()
    for key in keys:
        chosen &= frame[key] == row[key]
    match = frame[chosen]
    return {k: _values(match, f"{mid}_{k}") for k in ("n", "reference", "preprocessing")}


def noise_floors(frame, metrics: list[dict]) -> list[str]:
    lines = []
    for m in metrics:
        column = f"{m['id']}_noise_floor"
        if column in frame.columns and frame[column].notna().any():
            floors = frame.groupby("prompts")[column].mean().dropna()
            values = ", ".join(f"{p} {v:.4g}" for p, v in floors.items())
            lines.append(f"Noise floor of {m['label']} (reference against a second real draw, same prompts): {values}.")
    return lines
