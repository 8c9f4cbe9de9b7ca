"""The ``runtimes`` axis: named deployment settings crossed with methods, steps and hardware.

An entry is a setting's name (``compile``, ``channels-last``, ``eager``) or a mapping with a ``name`` and one or more
settings, each with its options: ``{name: tiny, tiny-decoder: {weights: shapes-tiny-decoder}}``, ``{name: tuned,
channels-last: {}, compile: {mode: max-autotune}}``. Only options that differ from their defaults enter a cell's
identity, and ``eager`` (no settings) none at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lcm_bench.core.errors import UserError
from lcm_bench.core.registry import did_you_mean
from lcm_bench.core.spec import EAGER, RuntimeSpec
from lcm_bench.models.runtimes import REQUIRED, RUNTIME_SETTINGS, Option
from lcm_bench.suite.fields import file_safe, str_field, unknown_keys


def _value(option: Option, value: Any, field: str, base_dir: Path) -> Any:
    checked = option.check(value, field)
    if option.path and isinstance(checked, str) and (base_dir / checked).expanduser().exists():
        return str((base_dir / checked).expanduser().resolve())
    return checked


def parse_setting(name: str, options: Any, where: str, base_dir: Path) -> tuple[str, tuple[tuple[str, Any], ...]]:
    """One setting of the runtime entry at ``where`` and the options it is given that differ from their defaults
    (each checked)."""
    if name not in RUNTIME_SETTINGS:
        known = [EAGER.name, *RUNTIME_SETTINGS.in_order()]
        raise UserError(f"{where}: unknown runtime setting '{name}'{did_you_mean(name, known)}")
    setting, field = RUNTIME_SETTINGS.get(name), f"{where}.{name}"
    options = {} if options is None or options is True else options
    if not isinstance(options, dict):
        raise UserError(f"{field}: expected a mapping of options ({', '.join(setting.options) or 'none'})")
    unknown_keys(options, setting.options, field)
    missing = [k for k, o in setting.options.items() if o.default is REQUIRED and k not in options]
    if missing:
        raise UserError(f"{field}: missing {', '.join(missing)} (e.g. {{name: ..., {name}: {{{missing[0]}: ...}}}})")
    given = {k: _value(setting.options[k], v, f"{field}.{k}", base_dir) for k, v in options.items()}
    return name, tuple(sorted((k, v) for k, v in given.items() if v != setting.options[k].default))


def parse_runtime(entry: Any, field: str, base_dir: Path) -> RuntimeSpec:
    """A runtime entry: a setting's name (or ``eager``), or ``{name: ..., SETTING: {options}, ...}``."""
    if entry == EAGER.name:
        return EAGER
    if isinstance(entry, str):
        return RuntimeSpec(entry, (parse_setting(entry, None, field, base_dir),))
    if not isinstance(entry, dict) or not entry:
        raise UserError(f"{field}: expected a setting's name or {{name: NAME, SETTING: {{options}}}}")
    settings = {k: v for k, v in entry.items() if k != "name"}
    if not settings:
        raise UserError(f"{field}: give at least one setting ({', '.join(RUNTIME_SETTINGS.in_order())})")
    default_name = next(iter(settings)) if len(settings) == 1 else None
    name = entry.get("name", default_name)
    if name is None:
        raise UserError(f"{field}.name: missing; a runtime of several settings needs a name")
    name = file_safe(str_field(name, f"{field}.name"), f"{field}.name")
    if name == EAGER.name:
        raise UserError(f"{field}.name: 'eager' is the runtime without settings")
    parsed = tuple(parse_setting(k, v, field, base_dir) for k, v in settings.items())
    return RuntimeSpec(name, parsed)


def unique_runtimes(runtimes: list[RuntimeSpec], field: str) -> list[RuntimeSpec]:
    names = [r.name for r in runtimes]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise UserError(f"{field}: names must be unique, '{duplicated[0]}' is listed twice")
    return runtimes
