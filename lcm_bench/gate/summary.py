"""The CI quality gate: a baseline of per-cell metric values with tolerances, and a check of a run against it.

Cells are matched by configuration key (the cell id): what was asked, never where files lie or how it was batched.
A metric of a cell regresses when it is worse than the baseline by more than the allowed margin
max(rel * |baseline|, abs, noise_k * noise), where noise is the baseline's own spread (standard deviation over
disjoint image subsets, or a quarter of its bootstrap interval), when it leaves the two-sided bounds [low, high] a
baseline may set (MLPerf-style quality targets), or when it is not a finite number. It improves when better by
more than the margin. A metric computed with other extractor weights, another reference set, mode, options or
sample count is "not comparable"; a baseline value the run lacks is "missing".

The gate fails closed (asv's compare counts a missing benchmark as worse): exit 1 on any regressed, missing or not
comparable value unless ``allow_missing`` / ``allow_incomparable`` say otherwise. Where a cell's fingerprint
differs from the baseline's (new weights, same configuration: the normal CI case) the summary names the changed
components. Throughput is gated only on request, and only between the same machine, hardware entry, batch size
and process count.
"""

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
