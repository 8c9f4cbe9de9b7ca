"""The gate's verdict as a pull-request comment: the verdict, counts per outcome, notes, every finding that is not
a pass."""

from __future__ import annotations

from typing import Any

from lcm_bench.gate.check import OUTCOMES, GateResult


def summary_markdown(result: GateResult) -> str:
    """A pull-request comment: the verdict, counts per outcome, notes, then every finding that is not a pass."""
    counts, failures = result.counts(), result.failures()
    allowed = [
        f"{counts[o]} {o} allowed by {flag}"
        for o, flag, on in (
            ("missing", "--allow-missing", result.allow_missing),
            ("not comparable", "--allow-incomparable", result.allow_incomparable),
        )
        if on and counts[o]
    ]
    verdict = "FAIL: " + ", ".join(f"{n} {o}" for o, n in failures.items()) if failures else "PASS"
    if allowed and not failures:
        verdict += f" ({'; '.join(allowed)})"
    lines = [
        f"### lcm-bench quality gate: {verdict}",
        "",
        ", ".join(f"{n} {o}" for o, n in counts.items() if n) or "nothing to compare",
        "",
    ]
    lines += [f"- {note}" for note in result.notes] + ([""] if result.notes else [])
    shown = [f for f in result.findings if f.outcome != "pass"]
    if shown:
        lines += [
            "| outcome | cell | metric | baseline | run | allowed margin | note |",
            "|---|---|---|---|---|---|---|",
        ]
        for f in sorted(shown, key=lambda f: OUTCOMES.index(f.outcome)):
            lines.append(
                f"| {f.outcome} | {f.cell} | `{f.metric}` | {_fmt(f.baseline)} | {_fmt(f.value)} | {_fmt(f.margin)} | "
                f"{f.detail} |"
            )
    return "\n".join(lines) + "\n"


def _fmt(value: Any) -> str:
    return "–" if value is None else f"{value:.4g}"
