"""Typed reads of suite fields: each bad value is a one-line ``UserError`` naming the field and what is allowed."""

from __future__ import annotations

import math
import re
from typing import Any

from lcm_bench.core.errors import UserError
from lcm_bench.core.registry import did_you_mean

FILE_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def unknown_keys(mapping: dict, allowed: set[str] | dict, field: str) -> None:
    for key in mapping:
        if key not in allowed:
            raise UserError(f"{field}: unknown key '{key}'{did_you_mean(str(key), list(allowed))}")


def as_list(value: Any, field: str) -> list:
    if value is None:
        raise UserError(f"{field}: must not be empty")
    items = value if isinstance(value, list) else [value]
    if not items:
        raise UserError(f"{field}: must list at least one value")
    return items


def int_field(value: Any, field: str, minimum: int, maximum: int = 2**31 - 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{field}: expected an integer in {minimum}..{maximum}, got {value!r}")
    if not minimum <= value <= maximum:
        raise UserError(f"{field}: must be in {minimum}..{maximum}, got {value}")
    return value


def float_field(value: Any, field: str, minimum: float, maximum: float = 1e6) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{field}: expected a number in [{minimum:g}, {maximum:g}], got {value!r}")
    if not math.isfinite(value) or not minimum <= value <= maximum:
        raise UserError(f"{field}: must be a finite number in [{minimum:g}, {maximum:g}], got {value!r}")
    return float(value)


def str_field(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise UserError(f"{field}: expected a non-empty string, got {value!r}")
    return value


def file_safe(name: str, field: str) -> str:
    if not FILE_SAFE.match(name):
        raise UserError(
            f"{field}: '{name}' is not file-safe (letters, digits, '_', '.', '+', '-'; a letter or digit first)"
        )
    return name


MAX_STEPS = 10_000
"""A ceiling for any suite; the model's scheduler sets the real one (checked before compute, run.preflight)."""
MAX_GUIDANCE = 100.0
DEFAULT_GUIDANCE_SCALES = [7.5]
