"""Tables as data (cells, bold marks, a caption) rendered to Markdown, LaTeX and HTML, plus the report's tables:
the paper-style quality table, per-metric tables, the throughput table and the tidy CSV behind them."""

from __future__ import annotations

import csv
import html
import io
import math
from dataclasses import dataclass, field

from lcm_bench.core.spec import EAGER
from lcm_bench.metrics.result_fields import distinct, result_notes
from lcm_bench.report.frame import METHOD_KEYS, aggregate_metrics, method_label, spread

LATEX_ROWS = 35
"""Rows of one LaTeX table: a longer one is split so each part fits a page."""
LATEX_LINE_CHARACTERS = 60
"""Characters of a row (cells, and four for each column's padding) that fit a 10 pt text line."""


def _tex(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#")):
        text = text.replace(a, b)
    return text.replace("±", r"$\pm$").replace("–", "--").replace("†", r"$^\dagger$")


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
        """booktabs tabulars, best values in bold, fit to a page: a table wider than a text line (by its longest
        row, or more than six columns) is scaled to the line width (``\\resizebox``, graphicx), and one longer than
        a page is split into tables of ``LATEX_ROWS`` rows (the later ones captioned "continued")."""
        chunks = [self.rows[i : i + LATEX_ROWS] for i in range(0, len(self.rows), LATEX_ROWS)] or [[]]
        return "".join(self._latex_part(part, k * LATEX_ROWS, k > 0) for k, part in enumerate(chunks))

    def _latex_part(self, rows: list[list[str]], offset: int, continued: bool) -> str:
        longest = max((sum(len(c) + 4 for c in row) for row in [self.columns, *self.rows]), default=0)
        wide = len(self.columns) > 6 or longest > LATEX_LINE_CHARACTERS
        lines = [
            r"\begin{table}[t]",
            r"\centering",
            *([r"\resizebox{\linewidth}{!}{%"] if wide else []),
            r"\begin{tabular}{l" + "r" * (len(self.columns) - 1) + "}",
            r"\toprule",
            " & ".join(_tex(c) for c in self.columns) + r" \\",
        ]
        if self.subheader:
            lines.append(" & ".join(rf"{{\footnotesize {_tex(c)}}}" if c else "" for c in self.subheader) + r" \\")
        lines.append(r"\midrule")
        for i, row in enumerate(rows, offset):
            cells = [rf"\textbf{{{_tex(c)}}}" if self.is_bold(i, j) else _tex(c) for j, c in enumerate(row)]
            lines.append(" & ".join(cells) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}" + ("}" if wide else "")]
        if self.caption:
            lines.append(rf"\caption{{{_tex(self.caption)}{' (continued)' if continued else ''}}}")
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


def _shown_keys(table) -> list[str]:
    return [k for k in ("prompts", "hardware") if table[k].nunique() > 1]


def number(value: float, digits: int) -> str:
    """``digits`` significant digits without switching to exponent notation for values up to 1e6."""
    text = f"{value:.{digits}g}"
    return f"{value:.0f}" if "e+" in text and abs(value) < 1e6 else text


def decimals_for(uncertainty: float) -> int | None:
    """Decimal places that show two significant digits of ``uncertainty`` (None when there is none to go by)."""
    if not (isinstance(uncertainty, (int, float)) and math.isfinite(uncertainty) and uncertainty > 0):
        return None
    return 1 - math.floor(math.log10(uncertainty))


def rounded(value: float, uncertainty: float, digits: int = 4) -> str:
    """``value`` rounded to its uncertainty's second significant digit (``digits`` significant digits without
    one): 1116 with 104 reads 1120, 93.9712 with 0.00051 reads 93.97120."""
    places = decimals_for(uncertainty)
    if places is None:
        return number(value, digits)
    return f"{round(value, places):.{max(places, 0)}f}"


def _value_text(r, mid: str, intervals: bool = True) -> str:
    s = spread(r, mid)
    low = r.get(f"{mid}_ci_low")
    interval = intervals and low is not None and low == low and r["seeds"] == 1
    width = s if not math.isnan(s) else ((r[f"{mid}_ci_high"] - low) / 2 if interval else math.nan)
    text = rounded(r[mid], width)
    if not math.isnan(s):
        text += f" ± {rounded(s, s)}"
    if interval:
        text += f" [{rounded(low, width)}, {rounded(r[f'{mid}_ci_high'], width)}]"
    return text + (" ≈floor" if at_noise_floor(r, mid) else "")


def at_noise_floor(r, mid: str) -> bool:
    """A distance within two of its spreads of its noise floor (the reference against a second real draw): at this
    N it cannot tell the method's images from real ones."""
    floor, spread_ = r.get(f"{mid}_noise_floor"), _uncertainty(r, mid)
    return floor is not None and floor == floor and r[mid] - floor <= 2 * spread_


def _uncertainty(row, mid: str) -> float:
    """The half-width a value is known to: its seed or subset spread, else half its bootstrap interval, else 0."""
    s = spread(row, mid)
    if not math.isnan(s):
        return s
    low, high = row.get(f"{mid}_ci_low"), row.get(f"{mid}_ci_high")
    return (high - low) / 2 if low is not None and low == low else 0.0


def _best_marks(table, metrics: list[dict], shown: list[str]):
    """Bold the best value of each column only where it is better than the runner-up beyond both uncertainties."""
    marks = {}
    for m in metrics:
        mid, higher, flags = m["id"], m["higher_is_better"], [False] * len(table)
        for _, group in table.groupby(["steps", *shown], dropna=False):
            group = group[group[mid].notna()]
            if len(group) < 2:
                continue
            ordered = group.sort_values(mid, ascending=not higher)
            best, second = ordered.iloc[0], ordered.iloc[1]
            if abs(best[mid] - second[mid]) > _uncertainty(best, mid) + _uncertainty(second, mid):
                flags[table.index.get_loc(ordered.index[0])] = True
        marks[mid] = flags
    return marks


def quality_table(frame, metrics: list[dict], short: dict[str, str] | None = None, caption: str = "") -> Table | None:
    """The paper's layout: rows methods, for each metric one column per step count it has values at (a reference
    method's 50 steps add no column to the distances measured against it); best per column in bold."""
    metrics = [m for m in metrics if m["id"] in frame.columns and frame[m["id"]].notna().any()]
    if not metrics:
        return None
    table = aggregate_metrics(frame, metrics)
    steps = {m["id"]: sorted(table.loc[table[m["id"]].notna(), "steps"].unique()) for m in metrics}
    shown = _shown_keys(table)
    marks = _best_marks(table, metrics, shown)
    short = short or {}
    columns = ["method", *shown] + [f"{short.get(m['id'], m['label'])} {s}" for m in metrics for s in steps[m["id"]]]
    contexts = {m["id"]: (measured_at(frame, m["id"]) or ("", ""))[0] for m in metrics}
    subheader = [""] * (1 + len(shown)) + [contexts[m["id"]] for m in metrics for _ in steps[m["id"]]]
    rows, bold = [], []
    for key, group in table.groupby(METHOD_KEYS, sort=False, dropna=False):
        row = dict(zip(METHOD_KEYS, key, strict=True))
        cells, flags = [method_label(row)] + [str(row[k]) for k in shown], [False] * (1 + len(shown))
        by_steps = {int(r["steps"]): (i, r) for i, r in group.iterrows()}
        for m in metrics:
            for s in steps[m["id"]]:
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


def measured_at(frame, mid: str) -> tuple[str, str] | None:
    """For a distance column: a short line (N and the reference set) and a sentence adding the reference's
    preprocessing and the extractor's mode; None for metrics without a reference."""
    if f"{mid}_reference" not in frame.columns or frame[f"{mid}_reference"].isna().all():
        return None
    subset = frame[frame[mid].notna()]
    n, reference = distinct(subset, f"{mid}_n"), distinct(subset, f"{mid}_reference")
    short = f"N={n} vs {reference}"
    sentence = (
        f"N = {n} generated images per cell against {reference}; reference preprocessing: "
        f"{distinct(subset, f'{mid}_preprocessing')}; extractor mode {distinct(subset, f'{mid}_mode')}"
    )
    return short, sentence


def distance_notes(frame, metrics: list[dict]) -> list[str]:
    """One line per distance metric: what it was measured at (distances compare only at equal N and reference)."""
    notes = [(m, measured_at(frame, m["id"])) for m in metrics if m["id"] in frame.columns]
    return [f"{m['label']} (`{m['id']}`): {context[1]}." for m, context in notes if context]


COST_KEYS = ["method", "model", "sampler_label", "guidance_scale", "machine", "hardware", "runtime", "steps"]
PHASE_COLUMNS = ("text_encoding_s_per_image", "denoising_s_per_image", "vae_decoding_s_per_image")


def cost_by_method(frame):
    """Per method, steps, machine and hardware setting, in suite order, over prompt sets and seeds: the median
    timed seconds per image (mean over cells) with the mean of their interval bounds, its phases, NFE, peak
    memory, how many cells and whether any was timed under load. The cost table and figure both show this."""
    ok = frame[frame["status"] == "ok"]
    if ok.empty:
        return ok
    ok = ok.assign(
        machine=ok["machine"].fillna("unknown") if "machine" in ok.columns else "unknown",
        low=ok["seconds_per_image_low"] if "seconds_per_image_low" in ok.columns else ok["seconds_per_image"],
        high=ok["seconds_per_image_high"] if "seconds_per_image_high" in ok.columns else ok["seconds_per_image"],
        contended=ok["contended"].fillna(False).astype(bool) if "contended" in ok.columns else False,
    )
    ok = ok.assign(low=ok["low"].fillna(ok["seconds_per_image"]), high=ok["high"].fillna(ok["seconds_per_image"]))
    columns = ("seconds_per_image", "low", "high", "nfe_per_image", "peak_memory_mb", *PHASE_COLUMNS)
    grouped = ok.groupby(COST_KEYS, sort=False, dropna=False)
    table = grouped.agg(**{c: (c, "mean") for c in columns}, contended=("contended", "any")).reset_index()
    table["cells"] = grouped.size().to_numpy()
    return table


def throughput_table(frame) -> Table | None:
    """Per method, steps, machine and hardware setting (suite order), over seeds and prompt sets: NFE, ms per image
    with its timing interval and phases, images/s (1000 / ms, so the two agree) and peak memory; a cell timed
    under load is marked."""
    table = cost_by_method(frame)
    if table.empty:
        return None
    kinds = frame.dropna(subset=["memory_kind"]).groupby("hardware")["memory_kind"].first().to_dict()
    header = ["method", "machine", "hardware", "steps", "NFE", "ms/image [95 % interval]", "images/s",
              "text / denoise / VAE ms", "peak MB"]  # fmt: skip
    rows = []
    for _, r in table.iterrows():
        ms, low, high = (r[c] * 1e3 for c in ("seconds_per_image", "low", "high"))
        rows.append(
            [
                method_label(r) + (" †" if r["contended"] else ""),
                r["machine"],
                r["hardware"],
                str(int(r["steps"])),
                f"{r['nfe_per_image']:g}",
                f"{number(ms, 3)} [{number(low, 3)}, {number(high, 3)}]",
                number(1e3 / ms, 3),
                " / ".join(number(r[c] * 1e3, 3) for c in PHASE_COLUMNS),
                f"{r['peak_memory_mb']:.0f} ({kinds.get(r['hardware'], '?')})",
            ]
        )
    caption = "Median timed ms per image over repeated whole batches, mean over prompt sets and seeds"
    if table["contended"].any():
        caption += "; † timed while other processes used the CPU (not gated)"
    return Table(header, rows, caption=caption)


def tidy_results(frame, metrics: list[dict]):
    """Long form for CSV: one row per (method, steps, metric) with mean, spread, interval, seeds and cost (and the
    runtime, where not every cell ran eager)."""
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
    long = pd.DataFrame(rows)
    eager_only = "runtime" in long.columns and (long["runtime"] == EAGER.name).all()
    return long.drop(columns="runtime") if eager_only else long


def _long_context(frame, row, mid: str) -> dict[str, str]:
    """N, reference and preprocessing of a (method, steps) row's distance, for the long CSV."""
    if f"{mid}_reference" not in frame.columns:
        return {}
    keys = ("method", "guidance_scale", "prompts", "hardware", "runtime", "steps")
    chosen = frame[mid].notna()
    for key in keys:
        chosen &= frame[key] == row[key]
    match = frame[chosen]
    return {k: distinct(match, f"{mid}_{k}") for k in ("n", "reference", "preprocessing")}


def field_notes(frame, metrics: list[dict]) -> list[str]:
    """The lines each metric's result fields add under the quality table (noise floors, fits, scales)."""
    return [line for m in metrics for line in result_notes(frame, m["id"], m["label"])]
