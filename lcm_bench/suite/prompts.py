"""Prompt sets of a suite (built-in names or files) and their reference images (a folder, a Parquet column of image
bytes, or a registered generator)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lcm_bench.core.errors import UserError
from lcm_bench.core.spec import PromptSetSpec, ReferenceSpec
from lcm_bench.domain.prompts import FORMATS, PROMPT_SETS, content_hash, infer_format, read_prompts
from lcm_bench.suite.fields import int_field, str_field, unknown_keys


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
    """A prompt set's reference images: {path: DIR}, {path: FILE.parquet, column: C} or {generator: NAME, ...}."""
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
    elif isinstance(entry, dict):
        unknown_keys(entry, {"name", "path", "format", "column", "references"}, field)
        path = (base_dir / Path(str_field(entry.get("path"), f"{field}.path")).expanduser()).resolve()
        fmt = entry.get("format") or infer_format(path)
        if fmt not in FORMATS:
            raise UserError(f"{field}.format: '{fmt}' is not one of {FORMATS.in_order()}")
        column = entry.get("column")
        name = str_field(entry.get("name", path.stem), f"{field}.name")
    else:
        raise UserError(f"{field}: expected a prompt-set name or a mapping, got {entry!r}")
    prompts = read_prompts(Path(path), fmt, column, field)
    return PromptSetSpec(name, str(path), fmt, column, content_hash(prompts), len(prompts))
