"""A run directory: one JSON record per finished cell (written atomically), a manifest, and results.csv.

Layout: ``manifest.json``, ``cells/<cell_id>.json``, ``chunks/<cell_id>/<start>-<stop>.json`` (a record per finished
chunk, lcm_bench.run.chunks), ``images/<cell_id>/NNNNN.png``, ``results.csv``, ``report.md``, and ``.leases/`` (lock
files). A cell is finished when its record exists and its content fingerprint matches what would produce it now;
resuming skips it. Writes go to a temporary file in the same folder and are renamed into place, so a killed run never
leaves a half-written file behind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from lcm_bench.core.errors import UserError
from lcm_bench.core.io import warn, write_atomic, write_json
from lcm_bench.core.spec import EAGER
from lcm_bench.metrics.result_fields import result_columns
from lcm_bench.records.cell_record import CellRecord

SCHEMA_VERSION = 2
READABLE_SCHEMAS = (1, 2)
RESULT_COLUMNS = (
    "cell_id",
    "status",
    "method",
    "model",
    "sampler",
    "sampler_label",
    "steps",
    "guidance_scale",
    "paper_w",
    "guidance_mode",
    "prompts",
    "hardware",
    "runtime",
    "device",
    "dtype",
    "seed",
    "num_images",
    "batch_size",
    "height",
    "width",
    "nfe_per_image",
    "images_per_s",
    "seconds_per_image",
    "seconds_per_image_low",
    "seconds_per_image_high",
    "timing_repeats",
    "contended",
    "other_cores",
    "bulk_seconds_per_image",
    "seconds_per_nfe",
    "text_encoding_s_per_image",
    "denoising_s_per_image",
    "vae_decoding_s_per_image",
    "peak_memory_mb",
    "memory_kind",
    "timestep_spacing",
    "timesteps",
    "original_inference_steps",
    "reason",
)

INTEGER_COLUMNS = {
    "steps",
    "seed",
    "num_images",
    "batch_size",
    "height",
    "width",
    "original_inference_steps",
    "warmup_batches",
}


def read_record(path: Path) -> dict | None:
    """A record, or None when absent; a torn or corrupt record (a crash of the machine) is reported in one line and
    set aside as ``<name>.corrupt`` so its cell is assembled or computed again."""
    try:
        record = json.loads(path.read_text())
        valid = isinstance(record, dict) and isinstance(record.get("cell_id"), str) and "spec" in record
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        valid = False
    if not valid:
        warn(f"record '{path}' is corrupt; moved aside to {path.name}.corrupt, its cell will be recomputed")
        os.replace(path, path.with_name(path.name + ".corrupt"))
        return None
    if record.get("schema_version") not in READABLE_SCHEMAS:
        raise UserError(f"{path}: schema_version {record.get('schema_version')} is not one of {list(READABLE_SCHEMAS)}")
    return record


def image_name(index: int) -> str:
    """The file name of a cell's image ``index`` in its images folder."""
    return f"{index:05d}.png"


class RunDir:
    """A run directory: every path in it is named here (docs/run-directory.md lays them out), and its records and
    manifest are read and written here."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def cells_dir(self) -> Path:
        return self.path / "cells"

    def record_path(self, cell_id: str) -> Path:
        return self.cells_dir / f"{cell_id}.json"

    def images_dir(self, cell_id: str) -> Path:
        return self.path / "images" / cell_id

    @property
    def all_images_dir(self) -> Path:
        return self.path / "images"

    def grid_path(self, cell_id: str) -> Path:
        return self.path / "images" / f"{cell_id}.grid.png"

    def chunk_record_path(self, cell_id: str, chunk_name: str) -> Path:
        return self.path / "chunks" / cell_id / f"{chunk_name}.json"

    def timing_path(self, cell_id: str) -> Path:
        return self.path / "timings" / f"{cell_id}.json"

    def features_dir(self, cell_id: str) -> Path:
        return self.path / "features" / cell_id

    @property
    def leases_dir(self) -> Path:
        return self.path / ".leases"

    def cell_leases(self, cell_id: str) -> Path:
        return self.leases_dir / cell_id

    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    @property
    def results_csv(self) -> Path:
        return self.path / "results.csv"

    @property
    def results_by_category_csv(self) -> Path:
        return self.path / "results_by_category.csv"

    @property
    def report_md(self) -> Path:
        return self.path / "report.md"

    @property
    def report_html(self) -> Path:
        return self.path / "report.html"

    @property
    def tables_dir(self) -> Path:
        return self.path / "tables"

    @property
    def plots_dir(self) -> Path:
        return self.path / "plots"

    def write_record(self, record: dict) -> None:
        write_json(self.record_path(record["cell_id"]), {"schema_version": SCHEMA_VERSION, **record})

    def record(self, cell_id: str) -> dict | None:
        return read_record(self.record_path(cell_id))

    def discard_record(self, cell_id: str) -> None:
        """Forget a stale cell's record (first, so a kill leaves it unfinished), grid and features; its images stay
        until the chunks that own them are generated again."""
        import shutil

        self.record_path(cell_id).unlink(missing_ok=True)
        self.grid_path(cell_id).unlink(missing_ok=True)
        shutil.rmtree(self.features_dir(cell_id), ignore_errors=True)

    def records(self) -> dict[str, dict]:
        out = {}
        for file in sorted(self.cells_dir.glob("*.json")) if self.cells_dir.is_dir() else []:
            record = read_record(file)
            if record is not None:
                out[record["cell_id"]] = record
        return out

    def write_metric_result(self, record: dict, metric_id: str, result: dict) -> None:
        """Write ``record`` back with ``result`` as its metric ``metric_id``'s."""
        record.setdefault("metrics", {})[metric_id] = result
        self.write_record({k: v for k, v in record.items() if k != "schema_version"})

    def manifest(self) -> dict | None:
        path = self.manifest_path
        return json.loads(path.read_text()) if path.is_file() else None

    def write_manifest(self, manifest: dict) -> None:
        write_json(self.manifest_path, {"schema_version": SCHEMA_VERSION, **manifest})


def with_prompt_files(record: dict, sources: dict[str, str]) -> dict:
    """``record`` pointing at ``sources``' file for its prompt set where given (a run directory may have moved
    between machines)."""
    prompts = record["spec"]["prompts"]
    prompts["source"] = sources.get(prompts["name"], prompts["source"])
    return record


def metric_result(record: dict, metric_id: str) -> dict | None:
    """The record's stored result of metric ``metric_id``; None when it has none."""
    return (record.get("metrics") or {}).get(metric_id)


def load_runs(paths: list[str | Path]) -> tuple[list[CellRecord], list[dict]]:
    """Records and manifests of one or more run directories (later runs win for the same cell id); only the cells
    of each run's current suite (a record left by an earlier version of the suite stays on disk, unreported)."""
    records: dict[str, dict] = {}
    manifests = []
    for path in paths:
        run = RunDir(path)
        manifest = run.manifest()
        if manifest is None:
            raise UserError(f"run directory '{path}' has no manifest.json (is it an lcm-bench run?)")
        manifests.append(manifest)
        for skipped in manifest.get("skipped", []):
            records.setdefault(skipped["cell_id"], skipped)
        current = set(manifest.get("cells", []))
        records.update({k: v for k, v in run.records().items() if not current or k in current})
    return [CellRecord.read(r) for r in records.values()], manifests


def version_changes(cells: list[CellRecord], reference: dict | None = None) -> list[str]:
    """Libraries whose recorded versions differ between cells (or from ``reference`` versions):
    ``torch 2.4.0 (3 cells) / 2.5.1 (9 cells)``."""
    from collections import Counter

    seen: dict[str, Counter] = {}
    for cell in cells:
        for name, version in cell.versions.items():
            seen.setdefault(name, Counter())[version] += 1
    lines = []
    for name, counts in sorted(seen.items()):
        expected = (reference or {}).get(name)
        if len(counts) > 1 or (reference is not None and expected not in counts):
            found = " / ".join(f"{v} ({n} cell{'s' if n != 1 else ''})" for v, n in counts.most_common())
            lines.append(f"{name} {found}" + (f", baseline {expected}" if reference is not None else ""))
    return lines


def result_row(cell: CellRecord) -> dict[str, Any]:
    """One results.csv row: the record's spec, schedule and measurements, flattened."""
    record = cell.raw
    spec = record["spec"]
    row: dict[str, Any] = {
        "cell_id": record["cell_id"],
        "status": record["status"],
        "method": cell.method,
        "model": spec["model"]["name"],
        "sampler": spec["sampler"]["name"],
        "sampler_label": record.get("sampler_label", spec["sampler"]["name"]),
        "steps": spec["steps"],
        "guidance_scale": spec["guidance_scale"],
        "paper_w": _paper_w(record),
        "prompts": spec["prompts"]["name"],
        "hardware": spec["hardware"]["name"],
        "runtime": (spec.get("runtime") or {}).get("name", EAGER.name),
        "device": spec["hardware"]["device"],
        "dtype": spec["hardware"]["dtype"],
        "seed": spec["seed"],
        "num_images": spec["num_images"],
        "batch_size": spec["batch_size"],
        "reason": record.get("reason"),
        "machine": cell.machine,
    }
    schedule = record.get("schedule", {})
    row.update(
        {
            "guidance_mode": record.get("guidance_mode"),
            "height": record.get("height"),
            "width": record.get("width"),
            "timestep_spacing": schedule.get("timestep_spacing"),
            "timesteps": " ".join(str(t) for t in schedule.get("timesteps", [])) or None,
            "original_inference_steps": schedule.get("original_inference_steps"),
            **_card_columns(record.get("authors_settings")),
        }
    )
    row.update(_timing_columns(record.get("throughput", {})))
    for name, metric in record.get("metrics", {}).items():
        row.update(result_columns(name, metric))
    return row


def _card_columns(card: dict | None) -> dict[str, Any]:
    """Which settings came from the checkpoint's card and whether the cell ran at a step count it was trained for."""
    if not card:
        return {}
    return {"settings_from_card": " ".join(card["from_card"]) or None, "at_trained_steps": card["at_trained_steps"]}


def _paper_w(record: dict) -> float | None:
    """The paper's w = s - 1 as the record gives it: None where the guidance that ran has no such convention."""
    guidance = record.get("guidance") or {}
    return guidance["paper_w"] if "paper_w" in guidance else record["spec"]["guidance_scale"] - 1.0


def _timing_columns(throughput: dict) -> dict[str, Any]:
    """The record's throughput as flat columns: the timing interval and the machine's load spelled out."""
    flat = {k: v for k, v in throughput.items() if k not in ("seconds_per_image_ci", "load", "peak_sweep")}
    if "seconds_per_image_ci" in throughput:
        flat["seconds_per_image_low"], flat["seconds_per_image_high"] = throughput["seconds_per_image_ci"]
    flat["other_cores"] = (throughput.get("load") or {}).get("other_cores")
    return flat


def results_frame(cells: list[CellRecord]):
    import pandas as pd

    frame = pd.DataFrame([result_row(cell) for cell in cells])
    for column in INTEGER_COLUMNS & set(frame.columns):
        frame[column] = frame[column].astype("Int64")
    ordered = [c for c in RESULT_COLUMNS if c in frame.columns]
    return frame[ordered + [c for c in frame.columns if c not in ordered]]


def write_results_csv(path: Path, records: list[dict]) -> None:
    write_atomic(path, results_frame([CellRecord.read(r) for r in records]).to_csv(index=False).encode())


CATEGORY_KEYS = (
    "cell_id", "method", "model", "sampler_label", "steps", "guidance_scale", "prompts", "hardware", "runtime",
    "seed",
)  # fmt: skip


def category_rows(cells: list[CellRecord]):
    """Long form of every per-category result: one row per (cell, metric, category column, category) with its
    value, 95 % bootstrap interval and N (``results_by_category.csv``)."""
    import pandas as pd

    rows = []
    for cell in cells:
        if not cell.ok:
            continue
        base = {k: v for k, v in result_row(cell).items() if k in CATEGORY_KEYS}
        for metric_id, metric in cell.metrics.items():
            for column, groups in ((metric.get("per_category") or {}).get("columns") or {}).items():
                for label, entry in groups.items():
                    low, high = entry.get("ci95", [None, None])
                    rows.append(
                        {
                            **base,
                            "metric": metric_id,
                            "label": metric.get("label", metric_id),
                            "higher_is_better": metric.get("higher_is_better"),
                            "category": column,
                            "value_of": label,
                            "value": entry["value"],
                            "ci_low": low,
                            "ci_high": high,
                            "n": entry["n"],
                        }
                    )
    return pd.DataFrame(rows, columns=[*CATEGORY_KEYS, "metric", "label", "higher_is_better", "category",
                                       "value_of", "value", "ci_low", "ci_high", "n"])  # fmt: skip


def write_category_csv(path: Path, records: list[dict]) -> None:
    """``results_by_category.csv`` when any result has categories."""
    rows = category_rows([CellRecord.read(r) for r in records])
    if not rows.empty:
        write_atomic(path, rows.to_csv(index=False).encode())
