"""A cell's record, typed: what the stages after a run (the gate, the report) read of a finished or skipped cell.

``CellRecord.read`` is the one reader of a record's keys for them; it takes every schema ``records.store`` reads (a
key an earlier schema lacks reads as absent). A metric's result stays the metric's own dictionary
(``lcm_bench.metrics.result_fields`` says what its fields mean). The record as read stays on the object, as
``raw``, for the functions of ``lcm_bench.records`` that flatten it (results.csv rows, per-category rows, scored
cells); nothing outside ``lcm_bench.records`` reads ``raw``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from lcm_bench.metrics.scored_cell import PromptSource, ScoredCell
from lcm_bench.records.fingerprints import fingerprint_value


@dataclass(frozen=True)
class AuthorsSettings:
    """Which of a method's settings came from its checkpoint's card (``lcm_bench.models.cards``), from where, the
    step counts its authors trained for, and whether this cell ran at one of them."""

    source: str
    from_card: tuple[str, ...]
    trained_steps: tuple[int, ...]
    at_trained_steps: bool

    @classmethod
    def read(cls, card: Mapping | None) -> AuthorsSettings | None:
        if not card:
            return None
        return cls(card["source"], tuple(card["from_card"]), tuple(card["trained_steps"]), card["at_trained_steps"])


@dataclass(frozen=True)
class CellRecord:
    """One cell's record: its place in the grid, its status, its metric results, its timing and where it ran."""

    cell_id: str
    status: str | None
    method: str
    model: str
    sampler_label: str
    steps: int
    guidance_scale: float
    prompts: str
    seed: int
    runtime: str | None
    hardware: str
    batch_size: int | None
    machine: str | None
    metrics: Mapping[str, dict]
    throughput: Mapping[str, Any]
    fingerprint: dict | None
    config_key: str | None
    versions: Mapping[str, str]
    authors: AuthorsSettings | None
    raw: dict = field(repr=False, compare=False)

    @classmethod
    def read(cls, record: dict) -> CellRecord:
        spec = record["spec"]
        provenance = record.get("provenance") or {}
        return cls(
            cell_id=record["cell_id"],
            status=record.get("status"),
            method=method_of(record),
            model=spec["model"]["name"],
            sampler_label=record.get("sampler_label", spec["sampler"]["name"]),
            steps=spec["steps"],
            guidance_scale=spec["guidance_scale"],
            prompts=spec["prompts"]["name"],
            seed=spec["seed"],
            runtime=(spec.get("runtime") or {}).get("name"),
            hardware=spec["hardware"]["name"],
            batch_size=spec.get("batch_size"),
            machine=machine_label(provenance.get("machine") or {}),
            metrics=MappingProxyType(record.get("metrics") or {}),
            throughput=MappingProxyType(record.get("throughput") or {}),
            fingerprint=record.get("fingerprint"),
            config_key=record.get("config_key"),
            versions=MappingProxyType(provenance.get("versions") or {}),
            authors=AuthorsSettings.read(record.get("authors_settings")),
            raw=record,
        )

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def contended(self) -> bool:
        """Whether its timing ran while other processes used the CPU."""
        return bool(self.throughput.get("contended") or (self.throughput.get("load") or {}).get("contended"))

    @property
    def other_cores(self) -> float | None:
        """How many cores other processes kept busy while it was timed."""
        return (self.throughput.get("load") or {}).get("other_cores")

    @property
    def processes(self) -> int:
        """How many processes shared its generation."""
        return self.throughput.get("processes", 1)

    def digest(self) -> str:
        """sha256 of the record as read: what a report drawn from it depends on."""
        return hashlib.sha256(json.dumps(self.raw, sort_keys=True, default=str).encode()).hexdigest()

    def scored(self) -> ScoredCell:
        """What scoring needs of this finished cell (its images, prompts and chunks)."""
        return scored_cell(self.raw)

    @property
    def invalid_reasons(self) -> set[str]:
        """Why its metric results are invalid (images with NaN or inf), one reason per kind; empty when valid."""
        return {m["invalid"] for m in self.metrics.values() if m.get("invalid")}


def scored_cell(record: dict) -> ScoredCell:
    """What scoring needs of a finished cell, read from its record."""
    spec, height, width = record["spec"], record.get("height"), record.get("width")
    prompts = spec["prompts"]
    return ScoredCell(
        cell_id=record["cell_id"],
        fingerprint=record.get("fingerprint"),
        fingerprint_value=fingerprint_value(record),
        prompts=PromptSource(prompts["name"], prompts["source"], prompts["format"], prompts.get("column")),
        prompt_indices=tuple(s["prompt_index"] for s in record["samples"]),
        num_images=spec["num_images"],
        nonfinite_images=len(record.get("nonfinite_images") or []),
        size=(height, width) if height and width else None,
        chunks=tuple((c["start"], c["stop"]) for c in record.get("chunks") or []),
    )


def machine_label(machine: Mapping) -> str | None:
    """What ran a cell, for merging throughput across machines: the GPUs, else the CPU and its core count."""
    if not machine:
        return None
    if machine.get("cuda"):
        return ", ".join(machine["cuda"]["devices"])
    return f"{machine.get('cpu')} x{machine.get('cpu_count')}"


def method_of(record: dict) -> str:
    """The record's row label: its suite's method name, or model / sampler for a grid suite."""
    spec = record["spec"]
    return spec.get("method") or f"{spec['model']['name']} / {record.get('sampler_label', spec['sampler']['name'])}"
