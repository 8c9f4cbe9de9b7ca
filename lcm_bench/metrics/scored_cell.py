"""What scoring needs of a finished cell, typed: the scorer's input, which ``lcm_bench.records.cell_record.scored_cell``
reads from a cell's record (the metrics package never reads a record)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lcm_bench.domain.prompts import read_prompts


@dataclass(frozen=True)
class PromptSource:
    """A prompt set as scoring reads it: its name and the file its captions come from."""

    name: str
    source: str
    format: str
    column: str | None = None

    def read(self) -> tuple[str, ...]:
        return read_prompts(Path(self.source), self.format, self.column)


@dataclass(frozen=True)
class ScoredCell:
    """What scoring needs of a finished cell: its id, its content ``fingerprint`` as recorded (caches and paired
    results are keyed by its hash) and that fingerprint's ``fingerprint_value``, its prompt set and each image's
    prompt index, its image count, how many images hold NaN or inf, its image ``size`` (height, width) where
    recorded, and its chunks' sample ranges (``chunks``, whose records hold each image's sha256)."""

    cell_id: str
    fingerprint: Any
    fingerprint_value: str | None
    prompts: PromptSource
    prompt_indices: tuple[int, ...]
    num_images: int
    nonfinite_images: int = 0
    size: tuple[int, int] | None = None
    chunks: tuple[tuple[int, int], ...] = ()
