"""Metric entries of a suite: a registered metric with its options checked against the entry's defaults and the
extractor it names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lcm_bench.core.errors import UserError
from lcm_bench.core.registry import did_you_mean
from lcm_bench.core.spec import MetricSpec
from lcm_bench.metrics.builtins import EXTRACTOR_OPTIONS, METRICS
from lcm_bench.metrics.extractors import EXTRACTORS
from lcm_bench.suite.fields import float_field, int_field, str_field, unknown_keys

WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".json")
PATH_OPTIONS = ("pretrained", "weights", "checkpoint", "config", "tokenizer", "processor", "head")


def _check_option(key: str, value: Any, default: Any, field: str, choices: tuple[str, ...] = ()) -> None:
    """A value of the type of its default: a flag, a count in 1..1e6, a number >= 0, or a non-empty string; one of
    ``choices`` where the metric names them."""
    if choices and value not in choices:
        raise UserError(f"{field}.{key}: {value!r} is not one of {list(choices)}")
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise UserError(f"{field}.{key}: expected true or false, got {value!r}")
    elif isinstance(default, int):
        int_field(value, f"{field}.{key}", 1, 1_000_000)
    elif isinstance(default, float):
        float_field(value, f"{field}.{key}", 0.0)
    else:
        str_field(value, f"{field}.{key}")


def _local_weights(options: dict[str, Any], field: str, base_dir: Path) -> None:
    """Weights given as a path (relative to the suite) made absolute; a path that does not exist is an error."""
    for key in PATH_OPTIONS:
        value = options.get(key)
        if isinstance(value, str) and ("/" in value or value.endswith(WEIGHT_SUFFIXES)):
            path = (base_dir / Path(value).expanduser()).resolve()
            if not path.exists():
                raise UserError(f"{field}.{key}: '{path}' does not exist")
            options[key] = str(path)


def _check_extractor(options: dict[str, Any], definition, field: str) -> None:
    """The extractor the metric asks for exists and has what it needs; a preprocessing mode it does not have is
    dropped."""
    name, extractor_options = definition.extractor(options)
    if name not in EXTRACTORS:
        raise UserError(f"{field}.extractor: unknown extractor '{name}'{did_you_mean(name, EXTRACTORS.names())}")
    extractor = EXTRACTORS.get(name)
    extractor.check(name, extractor_options, field)
    if not extractor.modes:
        options.pop("mode", None)


def parse_metric(entry: Any, field: str, base_dir: Path = Path(".")) -> MetricSpec:
    if isinstance(entry, str):
        entry = {"name": entry}
    if not isinstance(entry, dict):
        raise UserError(f"{field}: expected a metric name or a mapping, got {entry!r}")
    name = str_field(entry.get("name"), f"{field}.name")
    definition = METRICS.get(name, f"{field}.name")
    allowed = {"name", *definition.defaults, *definition.takes}
    allowed |= EXTRACTOR_OPTIONS if "extractor" in definition.defaults else set()
    unknown_keys(entry, allowed, field)
    if definition.paired and not entry.get("reference"):
        raise UserError(
            f"{field}.reference: {name} compares each image with a reference method's image of the same prompt "
            "and seed; name that method (e.g. reference: teacher-ddim-50, a method of the suite with one steps value)"
        )
    options = {**definition.defaults, **{k: v for k, v in entry.items() if k != "name"}}
    for key, value in options.items():
        _check_option(key, value, definition.defaults.get(key, ""), field, definition.choices.get(key, ()))
    _local_weights(options, field, base_dir)
    _check_extractor(options, definition, field)
    return MetricSpec(name, tuple(sorted(options.items())))
