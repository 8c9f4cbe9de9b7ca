"""Prompt sets: loaders for text, CSV/TSV, JSONL, Parquet, COCO captions and PartiPrompts, and a registry.

A prompt set is an ordered tuple of strings plus a content hash; ``select`` picks a deterministic subset.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
from dataclasses import dataclass
from pathlib import Path

from lcm_bench.core.errors import UserError
from lcm_bench.core.paths import data_dir
from lcm_bench.core.registry import Registry
from lcm_bench.core.textfiles import read_text

FORMATS = ("txt", "csv", "tsv", "jsonl", "parquet", "coco", "parti")


@dataclass(frozen=True)
class BuiltinPromptSet:
    """A prompt set that ships in ``data/``; ``file`` is relative to it, resolved when asked."""

    file: str
    format: str
    column: str | None = None
    description: str = ""
    references: dict | None = None

    @property
    def path(self) -> Path:
        return data_dir() / self.file


PROMPT_SETS: Registry[BuiltinPromptSet] = Registry("prompt set")
PROMPT_SETS.register(
    "shapes-mini",
    BuiltinPromptSet(
        "prompts/shapes-mini.txt",
        "txt",
        description="32 captions of the shapes domain (test split), for quick runs",
        references={"generator": "shapes", "per_prompt": 16, "size": 32},
    ),
)
PROMPT_SETS.register(
    "shapes-test",
    BuiltinPromptSet(
        "prompts/shapes-test.txt",
        "txt",
        references={"generator": "shapes", "per_prompt": 1, "size": 32},
        description="1,000 held-out captions drawn like the training ones (shapes domain v3)",
    ),
)
PROMPT_SETS.register(
    "shapes-heldout",
    BuiltinPromptSet(
        "prompts/shapes-heldout.txt",
        "txt",
        references={"generator": "shapes", "per_prompt": 1, "size": 32},
        description="1,000 captions with colour-shape pairs never seen in training (compositional generalisation)",
    ),
)
PROMPT_SETS.register(
    "photo-mini",
    BuiltinPromptSet("prompts/photo-mini.txt", "txt", description="24 everyday photo captions"),
)


def infer_format(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("txt", "csv", "tsv", "jsonl", "parquet"):
        return suffix
    if suffix == "json":
        return "coco"
    raise UserError(f"prompts: cannot tell the format of '{path}' from its suffix; set format: one of {list(FORMATS)}")


def _column(rows: list[dict], column: str, path: Path, field: str) -> list[str]:
    if not rows:
        return []
    if column not in rows[0]:
        raise UserError(f"{field}.column: '{column}' is not a column of {path} (columns: {', '.join(rows[0])})")
    return [str(row[column]) for row in rows]


def read_prompts(path: Path, fmt: str, column: str | None, field: str = "prompts") -> tuple[str, ...]:
    """Read the prompts of one file; ``column`` names the field for tabular formats."""
    if not path.is_file():
        raise UserError(f"{field}: prompt file '{path}' does not exist")
    if fmt not in FORMATS:
        raise UserError(f"{field}.format: '{fmt}' is not one of {list(FORMATS)}")
    text = read_text(path, field, "prompt file") if fmt != "parquet" else ""
    try:
        if fmt == "txt":
            prompts = [line.strip() for line in text.splitlines()]
        elif fmt in ("csv", "tsv", "parti"):
            delimiter = "," if fmt == "csv" else "\t"
            rows = list(csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter))
            prompts = _column(rows, column or ("Prompt" if fmt == "parti" else "prompt"), path, field)
        elif fmt == "jsonl":
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
            prompts = _column(rows, column or "prompt", path, field)
        elif fmt == "parquet":
            import pandas as pd

            frame = pd.read_parquet(path)
            prompts = _column(frame.to_dict("records"), column or "prompt", path, field)
        else:
            data = json.loads(text)
            annotations = data.get("annotations") if isinstance(data, dict) else None
            if not isinstance(annotations, list):
                raise UserError(f"{field}: '{path}' is not a COCO captions file (no 'annotations' list)")
            prompts = [str(a["caption"]).strip() for a in sorted(annotations, key=lambda a: (a["image_id"], a["id"]))]
    except UserError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, csv.Error, OSError) as exc:
        raise UserError(f"{field}: cannot read '{path}' as {fmt}: {exc}") from None
    prompts = [p for p in prompts if p]
    if not prompts:
        raise UserError(f"{field}: '{path}' holds no prompts")
    return tuple(prompts)


def content_hash(prompts: tuple[str, ...]) -> str:
    return hashlib.sha256("\n".join(prompts).encode()).hexdigest()[:16]


def select(prompts: tuple[str, ...], num_images: int, seed: int) -> list[int]:
    """Deterministic prompt index for each image: a seeded subset in file order, cycling when N > len(prompts)."""
    if num_images <= len(prompts):
        return sorted(random.Random(f"prompts:{seed}").sample(range(len(prompts)), num_images))
    return [i % len(prompts) for i in range(num_images)]
