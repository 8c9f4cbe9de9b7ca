"""The deployment axis in a report: latency percentiles and peak throughput (MLPerf SingleStream and Offline), and
each runtime's speed-up over eager beside its quality cost, as a table and a plot."""

from __future__ import annotations

from lcm_bench.core.spec import EAGER
from lcm_bench.report.frame import method_label
from lcm_bench.report.tables import Table, number

PEER_KEYS = ["method", "model", "sampler_label", "guidance_scale", "prompts", "hardware", "machine", "steps"]
LATENCY_COLUMNS = ("latency_mean_s", "latency_p50_s", "latency_p90_s", "latency_p99_s")


def _ok(frame):
    ok = frame[frame["status"] == "ok"]
    return ok.assign(machine=ok["machine"].fillna("unknown") if "machine" in ok.columns else "unknown")


def latency_table(frame) -> Table | None:
    """Per method, runtime and steps (mean over seeds and prompt sets): the number of single-image queries, the
    latency mean and p50 / p90 / p99, peak throughput and the batch size it was reached at, and compile time."""
    ok = _ok(frame)
    if "latency_queries" not in ok.columns and "peak_images_per_s" not in ok.columns:
        return None
    columns = [c for c in (*LATENCY_COLUMNS, "latency_queries", "peak_images_per_s", "peak_batch_size",
                           "compile_seconds") if c in ok.columns]  # fmt: skip
    table = ok.groupby([*PEER_KEYS, "runtime"], sort=False, dropna=False)[columns].mean().reset_index()
    header = ["method", "hardware", "steps", "queries", "mean / p50 / p90 / p99 ms", "peak images/s (batch)",
              "compile s"]  # fmt: skip
    rows = [_latency_row(r) for _, r in table.iterrows()]
    caption = (
        "Latency of single-image queries issued one after another (MLPerf SingleStream; nearest-rank "
        "percentiles) and peak throughput over a batch-size sweep (MLPerf Offline); compile time apart"
    )
    return Table(header, rows, caption=caption)


def _present(r, column: str) -> bool:
    return column in r and r[column] == r[column]


def _latency_row(r) -> list[str]:
    queries = f"{int(r['latency_queries'])}" if _present(r, "latency_queries") else "–"
    latency = " / ".join(number(r[c] * 1e3, 3) for c in LATENCY_COLUMNS) if _present(r, "latency_p90_s") else "–"
    peak = (
        f"{number(r['peak_images_per_s'], 3)} ({int(r['peak_batch_size'])})"
        if _present(r, "peak_images_per_s")
        else "–"
    )
    compiled = number(r["compile_seconds"], 3) if _present(r, "compile_seconds") else "–"
    return [method_label(r), r["hardware"], str(int(r["steps"])), queries, latency, peak, compiled]


def runtime_comparison(frame, metrics: list[dict]):
    """Per method, steps and runtime (mean over seeds): ms per image, the speed-up over the eager cell of the same
    method, steps, hardware and machine, and each metric beside its change from eager. Empty where the frame has
    one runtime."""
    import pandas as pd

    ok = _ok(frame)
    if "runtime" not in ok.columns or ok["runtime"].nunique() < 2:
        return pd.DataFrame()
    mids = [m["id"] for m in metrics if m["id"] in ok.columns]
    columns = ["seconds_per_image", *[c for c in ("latency_p90_s",) if c in ok.columns], *mids]
    table = ok.groupby([*PEER_KEYS, "runtime"], sort=False, dropna=False)[columns].mean().reset_index()
    eager = table[table["runtime"] == EAGER.name].set_index(PEER_KEYS)
    rows = []
    for _, r in table.iterrows():
        key = tuple(r[k] for k in PEER_KEYS)
        base = eager.loc[key] if key in eager.index else None
        row = r.to_dict()
        row["speedup"] = base["seconds_per_image"] / r["seconds_per_image"] if base is not None else float("nan")
        for mid in mids:
            row[f"{mid}_delta"] = r[mid] - base[mid] if base is not None else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def runtime_table(frame, metrics: list[dict]) -> Table | None:
    """The runtime comparison as a table: speed-up over eager beside each metric and its change from eager."""
    table = runtime_comparison(frame, metrics)
    if table.empty:
        return None
    shown = [m for m in metrics if m["id"] in table.columns]
    sets = table["prompts"].nunique() > 1
    header = ["method", "runtime", *(["prompts"] if sets else []), "hardware", "steps", "ms/image", "speed-up vs eager",
              *[f"{m['label']} (Δ vs eager)" for m in shown]]  # fmt: skip
    rows = []
    for _, r in table.iterrows():
        cells = [method_label({**r, "runtime": EAGER.name}), r["runtime"], *([r["prompts"]] if sets else [])]
        cells += [r["hardware"], str(int(r["steps"]))]
        cells += [number(r["seconds_per_image"] * 1e3, 3), _times(r["speedup"])]
        cells += [_with_delta(r[m["id"]], r[f"{m['id']}_delta"], r["runtime"]) for m in shown]
        rows.append(cells)
    caption = "Each runtime's speed-up over eager (same method, steps, hardware and machine) and its quality cost"
    return Table(header, rows, caption=caption)


def _times(value: float) -> str:
    return "–" if value != value else f"{value:.2f}x"


def _with_delta(value: float, delta: float, runtime: str) -> str:
    if value != value:
        return "–"
    if runtime == EAGER.name or delta != delta:
        return number(value, 4)
    return f"{number(value, 4)} ({delta:+.3g})"
