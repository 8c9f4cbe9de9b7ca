"""Prompt sets: loaders for text, CSV/TSV, JSONL, Parquet, COCO captions and PartiPrompts, and a registry.

A prompt set is an ordered tuple of strings plus a content hash; ``select`` picks a deterministic subset.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lcm_bench.core.errors import UserError
from lcm_bench.core.paths import data_dir
from lcm_bench.core.registry import Registry
from lcm_bench.core.textfiles import read_text


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


def _column(rows: list[dict], column: str, path: Path, field: str) -> list[str]:
    if not rows:
        return []
    if column not in rows[0]:
        raise UserError(f"{field}.column: '{column}' is not a column of {path} (columns: {', '.join(rows[0])})")
    return [str(row[column]) for row in rows]


@dataclass(frozen=True)
class PromptFormat:
    """A prompt file format: ``read(path, column, field)`` the prompts in file order (``column`` for tabular ones);
    ``suffixes`` the file suffixes that imply it."""

    read: Callable[[Path, str | None, str], list[str]]
    suffixes: tuple[str, ...] = ()


FORMATS: Registry[PromptFormat] = Registry("prompt format")


def _table(delimiter: str, default_column: str) -> Callable[[Path, str | None, str], list[str]]:
    def read(path: Path, column: str | None, field: str) -> list[str]:
        text = read_text(path, field, "prompt file")
        rows = list(csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter))
        return _column(rows, column or default_column, path, field)

    return read


def _lines(path: Path, column: str | None, field: str) -> list[str]:
    return [line.strip() for line in read_text(path, field, "prompt file").splitlines()]


def _jsonl(path: Path, column: str | None, field: str) -> list[str]:
    rows = [json.loads(line) for line in read_text(path, field, "prompt file").splitlines() if line.strip()]
    return _column(rows, column or "prompt", path, field)


def _parquet(path: Path, column: str | None, field: str) -> list[str]:
    import pandas as pd

    return _column(pd.read_parquet(path).to_dict("records"), column or "prompt", path, field)


def _coco(path: Path, column: str | None, field: str) -> list[str]:
    """COCO captions: every annotation's caption, ordered by image id then annotation id."""
    data = json.loads(read_text(path, field, "prompt file"))
    annotations = data.get("annotations") if isinstance(data, dict) else None
    if not isinstance(annotations, list):
        raise UserError(f"{field}: '{path}' is not a COCO captions file (no 'annotations' list)")
    return [str(a["caption"]).strip() for a in sorted(annotations, key=lambda a: (a["image_id"], a["id"]))]


FORMATS.register("txt", PromptFormat(_lines, (".txt",)))
FORMATS.register("csv", PromptFormat(_table(",", "prompt"), (".csv",)))
FORMATS.register("tsv", PromptFormat(_table("\t", "prompt"), (".tsv",)))
FORMATS.register("jsonl", PromptFormat(_jsonl, (".jsonl",)))
FORMATS.register("parquet", PromptFormat(_parquet, (".parquet",)))
FORMATS.register("coco", PromptFormat(_coco, (".json",)))
FORMATS.register("parti", PromptFormat(_table("\t", "Prompt")))


def infer_format(path: Path) -> str:
    suffix = path.suffix.lower()
    found = next((name for name, entry in FORMATS.items() if suffix in entry.suffixes), None)
    if found is None:
        raise UserError(
            f"prompts: cannot tell the format of '{path}' from its suffix; set format: one of {FORMATS.in_order()}"
        )
    return found


def read_prompts(path: Path, fmt: str, column: str | None, field: str = "prompts") -> tuple[str, ...]:
    """Read the prompts of one file; ``column`` names the field for tabular formats."""
    if not path.is_file():
        raise UserError(f"{field}: prompt file '{path}' does not exist")
    if fmt not in FORMATS:
        raise UserError(f"{field}.format: '{fmt}' is not one of {FORMATS.in_order()}")
    try:
        prompts = FORMATS.get(fmt).read(path, column, field)
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
