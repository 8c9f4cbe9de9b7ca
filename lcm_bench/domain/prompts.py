"""Prompt sets: loaders for text, CSV/TSV, JSONL, Parquet, COCO captions and PartiPrompts, and a registry.

A prompt set is an ordered tuple of strings plus a content hash; ``select`` picks a deterministic subset.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import re
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
    categories: tuple[str, ...] = ()
    annotator: str | None = None
    licence: str | None = None

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
        annotator="shapes",
    ),
)
PROMPT_SETS.register(
    "shapes-test",
    BuiltinPromptSet(
        "prompts/shapes-test.txt",
        "txt",
        references={"generator": "shapes", "per_prompt": 1, "size": 32},
        description="1,000 held-out captions drawn like the training ones (shapes domain v3)",
        annotator="shapes",
    ),
)
PROMPT_SETS.register(
    "shapes-heldout",
    BuiltinPromptSet(
        "prompts/shapes-heldout.txt",
        "txt",
        references={"generator": "shapes", "per_prompt": 1, "size": 32},
        description="1,000 captions with colour-shape pairs never seen in training (compositional generalisation)",
        annotator="shapes",
    ),
)
PROMPT_SETS.register(
    "photo-mini",
    BuiltinPromptSet("prompts/photo-mini.txt", "txt", description="24 everyday photo captions"),
)
PROMPT_SETS.register(
    "partiprompts",
    BuiltinPromptSet(
        "prompts/partiprompts/PartiPrompts.tsv",
        "parti",
        description="PartiPrompts (P2, Yu et al. 2022): 1,632 prompts in 12 categories and 11 challenges",
        categories=("Category", "Challenge"),
        licence="Apache-2.0 (prompts/partiprompts/LICENSE, from github.com/google-research/parti)",
    ),
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
    ``suffixes`` the file suffixes that imply it; ``rows(path, field)`` every row as a mapping, for formats whose
    rows carry metadata columns (categories)."""

    read: Callable[[Path, str | None, str], list[str]]
    suffixes: tuple[str, ...] = ()
    rows: Callable[[Path, str], list[dict]] | None = None
    default_column: str = "prompt"
    categories: tuple[str, ...] = ()
    """The category columns its rows always carry (used unless a suite names others)."""


FORMATS: Registry[PromptFormat] = Registry("prompt format")


def _table_rows(delimiter: str) -> Callable[[Path, str], list[dict]]:
    def rows(path: Path, field: str) -> list[dict]:
        text = read_text(path, field, "prompt file")
        return list(csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter))

    return rows


def _from_rows(rows: Callable[[Path, str], list[dict]], default_column: str) -> Callable:
    def read(path: Path, column: str | None, field: str) -> list[str]:
        return _column(rows(path, field), column or default_column, path, field)

    return read


def _lines(path: Path, column: str | None, field: str) -> list[str]:
    return [line.strip() for line in read_text(path, field, "prompt file").splitlines()]


def _jsonl_rows(path: Path, field: str) -> list[dict]:
    return [json.loads(line) for line in read_text(path, field, "prompt file").splitlines() if line.strip()]


def _parquet_rows(path: Path, field: str) -> list[dict]:
    import pandas as pd

    return pd.read_parquet(path).to_dict("records")


def _coco(path: Path, column: str | None, field: str) -> list[str]:
    """COCO captions: every annotation's caption, ordered by image id then annotation id."""
    data = json.loads(read_text(path, field, "prompt file"))
    annotations = data.get("annotations") if isinstance(data, dict) else None
    if not isinstance(annotations, list):
        raise UserError(f"{field}: '{path}' is not a COCO captions file (no 'annotations' list)")
    return [str(a["caption"]).strip() for a in sorted(annotations, key=lambda a: (a["image_id"], a["id"]))]


def _tabular(rows: Callable, suffixes: tuple[str, ...], column: str = "prompt", categories: tuple[str, ...] = ()):
    return PromptFormat(_from_rows(rows, column), suffixes, rows, column, categories)


FORMATS.register("txt", PromptFormat(_lines, (".txt",)))
FORMATS.register("csv", _tabular(_table_rows(","), (".csv",)))
FORMATS.register("tsv", _tabular(_table_rows("\t"), (".tsv",)))
FORMATS.register("jsonl", _tabular(_jsonl_rows, (".jsonl",)))
FORMATS.register("parquet", _tabular(_parquet_rows, (".parquet",)))
FORMATS.register("coco", PromptFormat(_coco, (".json",)))
FORMATS.register("parti", _tabular(_table_rows("\t"), (), "Prompt"))


def _compbench_rows(path: Path, field: str) -> list[dict]:
    """T2I-CompBench's prompt folder (``color_val.txt``, ``spatial_val.txt``, ...): every file's prompts in file-name
    order, each row's ``sub-category`` the file's name without its split (color, spatial, non_spatial, ...)."""
    if not path.is_dir():
        raise UserError(f"{field}: a t2i-compbench prompt set is the folder of its .txt files; '{path}' is not one")
    files = sorted(path.glob("*.txt"))
    if not files:
        raise UserError(f"{field}: '{path}' holds no .txt prompt files (color_val.txt, spatial_val.txt, ...)")
    return [
        {"prompt": line.strip(), "sub-category": re.sub(r"_(val|train|test)$", "", file.stem)}
        for file in files
        for line in read_text(file, field, "prompt file").splitlines()
        if line.strip()
    ]


FORMATS.register("t2i-compbench", _tabular(_compbench_rows, (), categories=("sub-category",)))


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
    if not path.exists():
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


def read_categories(
    path: Path, fmt: str, column: str | None, categories: tuple[str, ...], field: str = "prompts"
) -> dict[str, list[str]]:
    """Each category column's value for every prompt ``read_prompts`` keeps (rows with an empty prompt dropped
    alike); a column that is absent, or empty in some row, is one line naming it."""
    entry = FORMATS.get(fmt, f"{field}.format")
    if entry.rows is None:
        raise UserError(
            f"{field}.categories: a {fmt} file carries no columns; categories need one of "
            f"{[n for n, f in FORMATS.items() if f.rows]}"
        )
    rows = [r for r in entry.rows(path, field) if str(r.get(column or entry.default_column, ""))]
    labels: dict[str, list[str]] = {}
    for name in categories:
        if rows and name not in rows[0]:
            raise UserError(f"{field}.categories: '{name}' is not a column of {path} (columns: {', '.join(rows[0])})")
        values = [str(r.get(name) or "").strip() for r in rows]
        empty = [i for i, v in enumerate(values) if not v or v == "nan"]
        if empty:
            raise UserError(
                f"{field}.categories: column '{name}' of {path} is empty in {len(empty)} of {len(values)} rows "
                f"(first: row {empty[0] + 1}); give every prompt a category"
            )
        labels[name] = values
    return labels


def annotate(prompts: tuple[str, ...], annotator: str, field: str = "prompts") -> dict[str, list[str]]:
    """Category columns an annotator derives from the prompts themselves."""
    derive = ANNOTATORS.get(annotator, f"{field}.categories")
    rows = [derive(p) for p in prompts]
    bad = next((p for p, r in zip(prompts, rows, strict=True) if r is None), None)
    if bad is not None:
        raise UserError(f"{field}.categories: the {annotator} annotator cannot read {bad!r}")
    return {name: [r[name] for r in rows] for name in rows[0]} if rows else {}


def _shapes_categories(prompt: str) -> dict[str, str] | None:
    from lcm_bench.domain.shapes import categories

    return categories(prompt)


ANNOTATORS: Registry[Callable[[str], dict[str, str] | None]] = Registry("category annotator")
ANNOTATORS.register("shapes", _shapes_categories)


def categories_of(
    path: Path, fmt: str, column: str | None, categories: tuple[str, ...], annotator: str | None
) -> dict[str, list[str]]:
    """A prompt file's categories per prompt: its annotator's, its category columns', or none."""
    if annotator:
        return annotate(read_prompts(path, fmt, column), annotator)
    return read_categories(path, fmt, column, categories) if categories else {}


def prompt_categories(spec) -> dict[str, list[str]]:
    """A suite's prompt set's categories per prompt (a ``PromptSetSpec``)."""
    return categories_of(Path(spec.source), spec.format, spec.column, spec.categories, spec.annotator)


def content_hash(prompts: tuple[str, ...]) -> str:
    return hashlib.sha256("\n".join(prompts).encode()).hexdigest()[:16]


def select(prompts: tuple[str, ...], num_images: int, seed: int) -> list[int]:
    """Deterministic prompt index for each image: a seeded subset in file order, cycling when N > len(prompts)."""
    if num_images <= len(prompts):
        return sorted(random.Random(f"prompts:{seed}").sample(range(len(prompts)), num_images))
    return [i % len(prompts) for i in range(num_images)]
