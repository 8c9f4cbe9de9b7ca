"""Reading the text files a user hands in (suites, prompt sets, baselines): one-line errors, never a traceback."""

from __future__ import annotations

from pathlib import Path

from lcm_bench.core.errors import UserError


def read_text(path: Path, field: str, what: str) -> str:
    """The UTF-8 text of ``path`` (a leading BOM dropped), or a UserError naming the field: missing, a folder,
    unreadable, binary, not UTF-8, or empty."""
    if not path.exists():
        raise UserError(f"{field}: {what} '{path}' does not exist")
    if path.is_dir():
        raise UserError(f"{field}: {what} '{path}' is a folder, not a file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{field}: cannot read {what} '{path}': {exc.strerror or exc}") from None
    if b"\0" in data:
        raise UserError(f"{field}: {what} '{path}' is binary, not text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{field}: {what} '{path}' is not UTF-8 text (undecodable byte at offset {exc.start})"
        ) from None
    if not text.strip():
        raise UserError(f"{field}: {what} '{path}' is empty")
    return text.removeprefix("\ufeff")
