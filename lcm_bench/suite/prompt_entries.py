"""Prompt sets of a suite (built-in names or files) and their reference images (a folder, a Parquet column of image
bytes, or a registered generator)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lcm_bench.core.errors import UserError
from lcm_bench.core.spec import PromptSetSpec, ReferenceSpec
from lcm_bench.domain.prompts import (
    ANNOTATORS,
    FORMATS,
    PROMPT_SETS,
    annotate,
    content_hash,
    infer_format,
    read_categories,
    read_prompts,
)
from lcm_bench.suite.fields import as_list, int_field, str_field, unknown_keys

PROMPT_KEYS = {"name", "path", "format", "column", "references", "categories"}
DATASET_KEYS = {"dataset", "name", "path", "resolution", "categories"}


def _dataset_folder(entry: dict, field: str, base_dir: Path) -> tuple[str, Path | None]:
    """A prepared dataset's name and folder: ``path`` if given, else the first dataset folder holding it (None
    when it is not prepared yet)."""
    from lcm_bench.core.paths import find_dataset
    from lcm_bench.domain.datasets import MANIFEST, PROTOCOLS, prepare_command, read_manifest

    unknown_keys(entry, DATASET_KEYS, field)
    name = str_field(entry["dataset"], f"{field}.dataset")
    PROTOCOLS.get(name, f"{field}.dataset")
    if entry.get("path") is None:
        folder = find_dataset(name)
    else:
        folder = (base_dir / Path(str_field(entry["path"], f"{field}.path")).expanduser()).resolve()
        if not (folder / MANIFEST).is_file():
            raise UserError(
                f"{field}.path: '{folder}' is not a prepared dataset (no {MANIFEST}); prepare it with "
                f"`{prepare_command(name)} --out {folder}`"
            )
    if folder is not None:
        manifest = read_manifest(folder, f"{field}.path")
        made, resolution = manifest.get("protocol"), (manifest.get("parameters") or {}).get("resolution")
        if made != name:
            raise UserError(f"{field}.path: '{folder}' holds protocol {made}, not {name}")
        wanted = entry.get("resolution")
        if wanted is not None and wanted != resolution:
            raise UserError(f"{field}.resolution: {wanted} asked, but '{folder}' was prepared at {resolution}")
    return name, folder


def _dataset_prompts(entry: dict, field: str, base_dir: Path) -> PromptSetSpec:
    from lcm_bench.core.paths import dataset_dirs
    from lcm_bench.domain.datasets import PROMPTS_FILE, PROTOCOLS, SOURCES, not_prepared

    name, folder = _dataset_folder(entry, field, base_dir)
    label = str_field(entry.get("name", name), f"{field}.name")
    if folder is None:
        missing = str(not_prepared(name, dataset_dirs()))
        return PromptSetSpec(label, "", "tsv", "prompt", f"missing-{name}", 0, missing=missing)
    path = folder / PROMPTS_FILE
    prompts = read_prompts(path, "tsv", "prompt", field)
    own = SOURCES.get(PROTOCOLS.get(name).source).categories
    categories = _categories(entry.get("categories", list(own) or None), prompts, path, "tsv", "prompt", field)
    return PromptSetSpec(label, str(path), "tsv", "prompt", content_hash(prompts), len(prompts), *categories)


def _categories(value: Any, prompts, path: Path, fmt: str, column, field: str) -> tuple[tuple[str, ...], str | None]:
    """``categories``: a list of metadata columns, or the name of an annotator that derives them from prompts;
    checked now (every row has a value), so a bad file stops before any work."""
    if value is None:
        return (), None
    if isinstance(value, str) and value in ANNOTATORS:
        annotate(prompts, value, field)
        return (), value
    columns = tuple(str_field(c, f"{field}.categories") for c in as_list(value, f"{field}.categories"))
    read_categories(path, fmt, column, columns, field)
    return columns, None


def _generated_references(refs: dict, field: str) -> ReferenceSpec:
    from lcm_bench.metrics.references import GENERATORS

    unknown_keys(refs, {"generator", "per_prompt", "size"}, field)
    GENERATORS.get(str(refs["generator"]), f"{field}.generator")
    options = (
        ("per_prompt", int_field(refs.get("per_prompt", 32), f"{field}.per_prompt", 1, 100_000)),
        ("size", int_field(refs.get("size", 32), f"{field}.size", 8, 4096)),
    )
    return ReferenceSpec("generator", refs["generator"], options)


def _file_references(refs: dict, field: str, base_dir: Path) -> ReferenceSpec:
    unknown_keys(refs, {"path", "column"}, field)
    path = (base_dir / Path(str_field(refs.get("path"), f"{field}.path")).expanduser()).resolve()
    if not path.exists():
        raise UserError(f"{field}.path: '{path}' does not exist")
    if path.is_dir():
        from lcm_bench.metrics.references import image_files

        image_files(path, f"{field}.path")
        return ReferenceSpec("folder", str(path))
    if path.suffix != ".parquet":
        raise UserError(f"{field}.path: '{path}' is neither a folder of images nor a .parquet file")
    return ReferenceSpec("parquet", str(path), (("column", str_field(refs.get("column", "image"), f"{field}.column")),))


def parse_references(entry: Any, field: str, base_dir: Path) -> ReferenceSpec | None:
    """A prompt set's reference images: {path: DIR}, {path: FILE.parquet, column: C} or {generator: NAME, ...};
    a prepared dataset's own."""
    if isinstance(entry, dict) and "dataset" in entry:
        _, folder = _dataset_folder(entry, field, base_dir)
        return ReferenceSpec("dataset", str(folder) if folder else "")
    if isinstance(entry, str):
        builtin = PROMPT_SETS.get(entry, field)
        entry = {"references": builtin.references} if builtin.references else {}
        base_dir = Path(".")
    refs = entry.get("references") if isinstance(entry, dict) else None
    if refs is None:
        return None
    field = f"{field}.references"
    if not isinstance(refs, dict):
        raise UserError(f"{field}: expected a mapping such as {{path: DIR}} or {{generator: shapes}}")
    if "generator" in refs:
        return _generated_references(refs, field)
    return _file_references(refs, field, base_dir)


def parse_prompts(entry: Any, field: str, base_dir: Path) -> PromptSetSpec:
    if isinstance(entry, str):
        builtin = PROMPT_SETS.get(entry, field)
        path, fmt, column, name = builtin.path, builtin.format, builtin.column, entry
        categories = builtin.annotator or (list(builtin.categories) if builtin.categories else None)
    elif isinstance(entry, dict) and "dataset" in entry:
        return _dataset_prompts(entry, field, base_dir)
    elif isinstance(entry, dict):
        unknown_keys(entry, PROMPT_KEYS, field)
        path = (base_dir / Path(str_field(entry.get("path"), f"{field}.path")).expanduser()).resolve()
        fmt = entry.get("format") or infer_format(path)
        if fmt not in FORMATS:
            raise UserError(f"{field}.format: '{fmt}' is not one of {FORMATS.in_order()}")
        column = entry.get("column")
        name = str_field(entry.get("name", path.stem), f"{field}.name")
        categories = entry.get("categories", list(FORMATS.get(fmt).categories) or None)
    else:
        raise UserError(f"{field}: expected a prompt-set name or a mapping, got {entry!r}")
    prompts = read_prompts(Path(path), fmt, column, field)
    grouping = _categories(categories, prompts, Path(path), fmt, column, field)
    return PromptSetSpec(name, str(path), fmt, column, content_hash(prompts), len(prompts), *grouping)
