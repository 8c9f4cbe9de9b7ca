"""The grid of cells: axes parsed from a suite, methods crossed with them (or models x samplers x guidance scales),
``include`` adding sub-grids and ``exclude`` removing matching cells (asv's ``matrix`` semantics)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from lcm_bench.core.errors import UserError
from lcm_bench.core.hardware import parse_hardware
from lcm_bench.core.registry import did_you_mean
from lcm_bench.core.spec import CellSpec, Method
from lcm_bench.suite.fields import MAX_GUIDANCE, MAX_STEPS, as_list, float_field, int_field, unknown_keys
from lcm_bench.suite.methods import parse_models, parse_sampler
from lcm_bench.suite.prompt_entries import parse_prompts
from lcm_bench.suite.runtime_axis import parse_runtime

AXES = {
    "models": "model",
    "samplers": "sampler",
    "steps": "steps",
    "guidance_scales": "guidance_scale",
    "prompts": "prompts",
    "hardware": "hardware",
    "runtimes": "runtime",
    "seeds": "seed",
}
GRID_KEYS = ("models", "samplers", "guidance_scales")
METHOD_AXES = ("steps", "prompts", "hardware", "runtime", "seed")


def parse_resolution(value: Any) -> tuple[int | None, int | None]:
    if value is None:
        return None, None
    pair = value if isinstance(value, list) else [value, value]
    if len(pair) != 2:
        raise UserError(f"resolution: expected an integer or [height, width], got {value!r}")
    height, width = (int_field(v, "resolution", 8, 16384) for v in pair)
    if height % 8 or width % 8:
        raise UserError(f"resolution: height and width must be multiples of 8, got {height}x{width}")
    return height, width


def parse_axis(axis: str, values: list, field: str, base_dir: Path, known: dict[str, dict]) -> list:
    """Parse one axis's values; in include rules a name may refer to an entry of the suite's own axes."""
    parsers = {
        "model": lambda v, f: parse_models(v, f, base_dir),
        "sampler": parse_sampler,
        "steps": lambda v, f: int_field(v, f, 1, MAX_STEPS),
        "guidance_scale": lambda v, f: float_field(v, f, 0.0, MAX_GUIDANCE),
        "prompts": lambda v, f: parse_prompts(v, f, base_dir),
        "hardware": parse_hardware,
        "runtime": lambda v, f: parse_runtime(v, f, base_dir),
        "seed": lambda v, f: int_field(v, f, 0, 2**63 - 1),
    }
    named = known.get(axis, {})
    parsed = [
        named[v] if isinstance(v, str) and v in named else parsers[axis](v, f"{field}[{i}]")
        for i, v in enumerate(values)
    ]
    if axis == "model":
        return [m for entry in parsed for m in (entry if isinstance(entry, list) else [entry])]
    return parsed


def matches(values: dict[str, Any], rule: dict[str, Any]) -> bool:
    for key, wanted in rule.items():
        options = wanted if isinstance(wanted, list) else [wanted]
        if values[key] not in options:
            return False
    return True


def parse_rule(entry: Any, field: str, methods: dict[str, Method] | None) -> dict[str, Any]:
    """An include/exclude rule; ``method`` names must be the suite's own (only in a suite with methods)."""
    if not isinstance(entry, dict) or not entry:
        raise UserError(f"{field}: expected a mapping of axis values, e.g. {{method: lcm, steps: 1}}")
    unknown_keys(entry, {"method", *AXES.values()}, field)
    if "method" in entry:
        if methods is None:
            raise UserError(f"{field}.method: only a suite with methods: has method names; match model or sampler")
        for name in as_list(entry["method"], f"{field}.method"):
            if name not in methods:
                raise UserError(f"{field}.method: no method '{name}'{did_you_mean(str(name), list(methods))}")
    return entry


def method_cells(methods: list[Method], axes: dict[str, list], common: dict, rule: dict | None = None) -> list:
    """Each method crossed with steps (its own, or the suite's), prompts, hardware, runtimes and seeds; an include
    ``rule`` narrows the methods and replaces axis values."""
    rule = rule or {}
    chosen = [m for m in methods if "method" not in rule or matches({"method": m.name}, {"method": rule["method"]})]
    cells = []
    for m in chosen:
        steps = rule.get("steps") or m.steps or axes["steps"]
        scales = rule.get("guidance_scale") or m.guidance_scales
        for scale, step, prompts, hardware, runtime, seed in itertools.product(
            scales, steps, axes["prompts"], axes["hardware"], axes["runtime"], axes["seed"]
        ):
            axis_values = {
                "steps": step, "guidance_scale": scale, "prompts": prompts, "hardware": hardware, "runtime": runtime
            }  # fmt: skip
            cells.append(
                CellSpec(
                    model=m.model,
                    sampler=m.sampler,
                    seed=seed,
                    method=m.name,
                    text_length=m.text_length,
                    resolution_binning=m.resolution_binning,
                    card=m.card,
                    **axis_values,
                    **common,
                )
            )
    return cells


def product_cells(axes: dict[str, list], common: dict) -> list[CellSpec]:
    """models x samplers x guidance scales x the other axes (a suite without methods)."""
    combos = itertools.product(*axes.values())
    return [CellSpec(**dict(zip(axes, combo, strict=True)), **common) for combo in combos]


def included_cells(data: dict, axes: dict, methods: list[Method] | None, common: dict, base_dir: Path) -> list:
    """The cells every ``include`` rule adds."""
    by_name = {m.name: m for m in methods} if methods is not None else None
    known = {
        axis: {v.name: v for v in axes[axis]}
        for axis in ("model", "sampler", "prompts", "hardware", "runtime")
        if axis in axes
    }
    cells = []
    for i, entry in enumerate(as_list(data["include"], "include") if "include" in data else []):
        rule = parse_rule(entry, f"include[{i}]", by_name)
        parsed = {
            k: parse_axis(k, as_list(v, k), f"include[{i}].{k}", base_dir, known)
            for k, v in rule.items()
            if k != "method"
        }
        if methods is None:
            cells += product_cells({**axes, **parsed}, common)
            continue
        if "model" in parsed or "sampler" in parsed:
            raise UserError(f"include[{i}]: in a suite with methods, add a method instead of a model or sampler")
        narrowed = {k: v for k, v in {**rule, **parsed}.items() if k in ("method", "steps", "guidance_scale")}
        cells += method_cells(methods, {**axes, **parsed}, common, narrowed)
    return cells


def exclude_rules(data: dict, methods: list[Method] | None) -> list[dict[str, Any]]:
    by_name = {m.name: m for m in methods} if methods is not None else None
    entries = as_list(data["exclude"], "exclude") if "exclude" in data else []
    return [parse_rule(e, f"exclude[{i}]", by_name) for i, e in enumerate(entries)]


def unique_cells(cells: list[CellSpec], excludes: list[dict[str, Any]]) -> list[CellSpec]:
    """The cells no exclude rule matches, each cell id once (first occurrence wins)."""
    unique: dict[str, CellSpec] = {}
    for cell in cells:
        if not any(matches(cell.axis_values(), rule) for rule in excludes):
            unique.setdefault(cell.cell_id, cell)
    if not unique:
        raise UserError("exclude: removes every cell of the suite")
    return list(unique.values())
