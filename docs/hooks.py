"""MkDocs hook: the CLI reference page is rendered from lcm-bench's argument parser at build time. Also the README's
figures from the committed showcase (``python docs/hooks.py`` rewrites the README's ``<!-- showcase:NAME -->`` blocks
from ``reports/showcase/quickstart/tables``; tests/test_docs.py fails when a block differs from what this makes)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

MARKER = "<!-- cli-reference -->"
ROOT = Path(__file__).resolve().parent.parent
SHOWCASE_TABLES = ROOT / "reports" / "showcase" / "quickstart" / "tables"
README_METHODS = {
    "teacher-ddim": "teacher + DDIM",
    "teacher-dpmsolver++": "teacher + DPM-Solver++",
    "guided-distill": "Guided-Distill",
    "lcm": "LCM",
    "lcm-lora": "LCM-LoRA (s = 1)",
}
HELD_OUT = "shapes-heldout"


def cli_reference() -> str:
    import os

    from lcm_bench.cli.main import build_parser

    os.environ["COLUMNS"] = "110"

    parser = build_parser()
    sections = [f"### `lcm-bench`\n\n```\n{parser.format_help()}```\n"]
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, sub in subparsers.choices.items():
        sections.append(f"### `lcm-bench {name}`\n\n```\n{sub.format_help()}```\n")
    return "\n".join(sections)


def on_page_markdown(markdown: str, page, config, files) -> str:
    return markdown.replace(MARKER, cli_reference()) if MARKER in markdown else markdown


def _rows(name: str) -> list[dict[str, str]]:
    with open(SHOWCASE_TABLES / name, newline="") as f:
        return list(csv.DictReader(f))


def _fd_t() -> dict[tuple[str, int], tuple[float, float, float]]:
    """FD-T to the teacher on the held-out prompts: (method, steps) -> (mean, interval low, high)."""
    rows = _rows("quality_long.csv")
    return {
        (r["method"], int(r["steps"])): (float(r["mean"]), float(r["ci_low"]), float(r["ci_high"]))
        for r in rows
        if r["prompts"] == HELD_OUT and r["metric"].startswith("fd_t_")
    }


def _fd_t_table() -> str:
    values = _fd_t()
    steps = sorted({s for _, s in values})
    best = {s: min(values[m, s][0] for m in README_METHODS if (m, s) in values) for s in steps}
    lines = [
        f"| FD-T (judge), `{HELD_OUT}` | " + " | ".join(f"{s} step{'s' * (s > 1)}" for s in steps) + " |",
        "|---|" + "---|" * len(steps),
    ]
    for method, label in README_METHODS.items():
        cells = []
        for s in steps:
            mean, low, high = values[method, s]
            cell = f"{mean:.0f} [{low:.0f}, {high:.0f}]"
            cells.append(f"**{cell}**" if mean == best[s] else cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _speedup(row: dict[str, str], column: str) -> tuple[str, str]:
    nfe, time = (part.strip().rstrip("x") for part in row[column].split("/"))
    return nfe, time


def _iso_quality() -> str:
    """The iso-quality sentence: the target (the weakest method's best FD-T) and what LCM needs against the
    teacher's solvers to reach it."""
    values = _fd_t()
    weakest = "lcm-lora"
    target, steps = min((v[0], s) for (m, s), v in values.items() if m == weakest)
    name = README_METHODS[weakest].split(" (")[0]
    rows = {r["method"].split(" /")[0]: r for r in _rows(f"speedup_{HELD_OUT}.csv")}
    nfe = {m: float(rows[m]["NFE to target"]) for m in ("lcm", "teacher-ddim", "teacher-dpmsolver++")}
    ddim = _speedup(rows["lcm"], next(c for c in rows["lcm"] if c.startswith("speedup vs teacher-ddim")))
    dpmpp = _speedup(rows["lcm"], next(c for c in rows["lcm"] if c.startswith("speedup vs teacher-dpmsolver++")))
    return (
        f"to reach the FD-T the weakest method reaches at its best ({target:.0f}, {name} at {steps} steps), "
        f"LCM needs {nfe['lcm']:.2g} NFE against {nfe['teacher-ddim']:g} for DDIM and "
        f"{nfe['teacher-dpmsolver++']:g} for DPM-Solver++: {ddim[0]}x and {dpmpp[0]}x fewer network evaluations, "
        f"{ddim[1]}x and {dpmpp[1]}x less time per image."
    )


def readme_blocks() -> dict[str, str]:
    """The README's figures, made from the committed showcase."""
    return {"fd-t-heldout": _fd_t_table(), "iso-quality": _iso_quality()}


BLOCK = re.compile(r"(<!-- showcase:(?P<name>[a-z0-9-]+) -->\n)(?P<body>.*?)(\n<!-- /showcase -->)", re.S)


def readme_with_blocks(text: str) -> str:
    """``text`` with every showcase block's body made anew."""
    blocks = readme_blocks()
    return BLOCK.sub(lambda m: m.group(1) + blocks[m.group("name")] + m.group(4), text)


if __name__ == "__main__":
    readme = ROOT / "README.md"
    readme.write_text(readme_with_blocks(readme.read_text()))
