"""Suite files: YAML -> validated frozen dataclasses -> the grid of cells.

A suite names its methods (a model, a sampler, a guidance setting and options, each with a name) crossed with the
axes steps, prompts, hardware and seeds; a method may override the suite's steps. The older form crosses models x
samplers x guidance_scales instead. Either way ``include`` adds sub-grids and ``exclude`` removes matching cells
(asv's ``matrix`` semantics), and ``extends`` inherits another suite: keys in the child replace the parent's.
Every unknown key or impossible value is a one-line ``UserError``.
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path
from typing import Any

import yaml

from lcm_bench.core.errors import UserError
from lcm_bench.core.hardware import parse_hardware
from lcm_bench.core.paths import packaged, suites_dir
from lcm_bench.core.registry import did_you_mean
from lcm_bench.core.spec import (
    GUIDANCE_MODES,
    SAVE_IMAGES,
    CellSpec,
    LoraSpec,
    Method,
    MetricSpec,
    ModelSpec,
    PromptSetSpec,
    ReferenceSpec,
    SamplerSpec,
    Suite,
    stable_hash,
)
from lcm_bench.core.textfiles import read_text
from lcm_bench.domain.prompts import FORMATS, PROMPT_SETS, content_hash, infer_format, read_prompts
from lcm_bench.domain.published import check_published
from lcm_bench.metrics.catalogue import EXTRACTOR_NAMES, EXTRACTOR_OPTIONS, INCEPTION_MODES, METRICS
from lcm_bench.models.catalogue import MODELS
from lcm_bench.models.resolve import check_reference
from lcm_bench.sampling.samplers import SCHEDULER_OPTIONS, check_sampler

SUITE_VERSION = 1
AXES = {
    "models": "model",
    "samplers": "sampler",
    "steps": "steps",
    "guidance_scales": "guidance_scale",
    "prompts": "prompts",
    "hardware": "hardware",
    "seeds": "seed",
}
MAX_STEPS = 10_000
"""A ceiling for any suite; the model's scheduler sets the real one (checked before compute, lcm_bench.checks)."""
MAX_GUIDANCE = 100.0
GRID_KEYS = ("models", "samplers", "guidance_scales")
METHOD_AXES = ("steps", "prompts", "hardware", "seed")
METHOD_FIELDS = {"name", "model", "sampler", "guidance_scale", "guidance", "steps", "timestep_spacing"}
FILE_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
SCALARS = ("num_images", "batch_size", "chunk_size", "resolution", "negative_prompt", "save_images", "warmup")
TOP_KEYS = {
    "version",
    "name",
    "description",
    "published",
    "extends",
    "include",
    "exclude",
    "metrics",
    "methods",
    *AXES,
    *SCALARS,
}
DEFAULTS: dict[str, Any] = {
    "steps": [1, 2, 4, 8],
    "guidance_scales": [7.5],
    "hardware": ["cpu-fp32"],
    "seeds": [0],
    "num_images": 8,
    "batch_size": 4,
    "chunk_size": 1000,
    "resolution": None,
    "negative_prompt": "",
    "save_images": "all",
    "warmup": 1,
}


def _unknown_keys(mapping: dict, allowed: set[str] | dict, field: str) -> None:
    for key in mapping:
        if key not in allowed:
            raise UserError(f"{field}: unknown key '{key}'{did_you_mean(str(key), list(allowed))}")


def _as_list(value: Any, field: str) -> list:
    if value is None:
        raise UserError(f"{field}: must not be empty")
    items = value if isinstance(value, list) else [value]
    if not items:
        raise UserError(f"{field}: must list at least one value")
    return items


def _int(value: Any, field: str, minimum: int, maximum: int = 2**31 - 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{field}: expected an integer in {minimum}..{maximum}, got {value!r}")
    if not minimum <= value <= maximum:
        raise UserError(f"{field}: must be in {minimum}..{maximum}, got {value}")
    return value


def _float(value: Any, field: str, minimum: float, maximum: float = 1e6) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{field}: expected a number in [{minimum:g}, {maximum:g}], got {value!r}")
    if not math.isfinite(value) or not minimum <= value <= maximum:
        raise UserError(f"{field}: must be a finite number in [{minimum:g}, {maximum:g}], got {value!r}")
    return float(value)


def _str(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise UserError(f"{field}: expected a non-empty string, got {value!r}")
    return value


def _absolute_if_local(source: str, base: Path) -> str:
    """A source naming an existing file or folder (and no registered model) as an absolute path, so neither the
    configuration key nor resolution depends on the working directory; anything else as it is."""
    path = base / Path(source).expanduser()
    return str(path.resolve()) if source not in MODELS and path.exists() else source


def parse_models(entry: Any, field: str, base_dir: Path) -> list[ModelSpec]:
    """One model, or one per snapshot of a student the suite distils (``distill:``, see lcm_bench.students)."""
    if isinstance(entry, dict) and "distill" in entry:
        from lcm_bench.suite.students import parse_distill

        _unknown_keys(entry, {"name", "distill"}, field)
        return parse_distill(entry["distill"], _str(entry.get("name"), f"{field}.name"), f"{field}.distill", base_dir)
    return [parse_model(entry, field, base_dir)]


def parse_model(entry: Any, field: str, base_dir: Path) -> ModelSpec:
    if isinstance(entry, str):
        check_reference(entry, field)
        source = _absolute_if_local(entry, Path.cwd())
        return ModelSpec(name=Path(source).name if source != entry else entry, source=source)
    if not isinstance(entry, dict):
        raise UserError(f"{field}: expected a model name or a mapping, got {entry!r}")
    _unknown_keys(entry, {"name", "source", "path", "loras", "guidance_embedding", "distill"}, field)
    if "path" in entry and "source" in entry:
        raise UserError(f"{field}: give either 'path' or 'source', not both")
    if "path" in entry:
        source = str((base_dir / Path(_str(entry["path"], f"{field}.path")).expanduser()).resolve())
    else:
        source = _absolute_if_local(_str(entry.get("source", entry.get("name")), f"{field}.source"), Path.cwd())
    check_reference(source, f"{field}.path" if "path" in entry else field)
    name = _str(entry.get("name", Path(source).name), f"{field}.name")
    loras = []
    for i, lora in enumerate(_as_list(entry.get("loras", []), f"{field}.loras") if "loras" in entry else []):
        lfield = f"{field}.loras[{i}]"
        if isinstance(lora, str):
            lora = {"source": lora}
        if not isinstance(lora, dict):
            raise UserError(f"{lfield}: expected a LoRA source or a mapping, got {lora!r}")
        _unknown_keys(lora, {"source", "path", "weight", "weight_name"}, lfield)
        lsource = lora.get("source")
        if isinstance(lsource, str):
            lsource = _absolute_if_local(lsource, base_dir)
        if "path" in lora:
            lsource = str((base_dir / Path(_str(lora["path"], f"{lfield}.path")).expanduser()).resolve())
        loras.append(
            LoraSpec(
                source=_str(lsource, f"{lfield}.source"),
                weight=_float(lora.get("weight", 1.0), f"{lfield}.weight", -10.0, 10.0),
                weight_name=lora.get("weight_name"),
            )
        )
    embedding = entry.get("guidance_embedding")
    if embedding is not None and not isinstance(embedding, bool):
        raise UserError(f"{field}.guidance_embedding: expected true or false, got {embedding!r}")
    return ModelSpec(name=name, source=source, loras=tuple(loras), guidance_embedding=embedding)


def parse_sampler(entry: Any, field: str) -> SamplerSpec:
    if isinstance(entry, str):
        spec = SamplerSpec(name=entry)
    elif isinstance(entry, dict):
        _unknown_keys(entry, {"name", "guidance", "timestep_spacing", *SCHEDULER_OPTIONS}, field)
        guidance = entry.get("guidance", "auto")
        if guidance not in GUIDANCE_MODES:
            raise UserError(f"{field}.guidance: '{guidance}' is not one of {list(GUIDANCE_MODES)}")
        options = tuple(sorted((k, v) for k, v in entry.items() if k in SCHEDULER_OPTIONS))
        spec = SamplerSpec(_str(entry.get("name"), f"{field}.name"), guidance, entry.get("timestep_spacing"), options)
    else:
        raise UserError(f"{field}: expected a sampler name or a mapping, got {entry!r}")
    sampler = check_sampler(spec, field)
    if sampler.requires_embedding and spec.guidance == "cfg":
        raise UserError(f"{field}.guidance: sampler '{spec.name}' needs a guidance embedding, not cfg")
    if sampler.requires_embedding:
        spec = SamplerSpec(spec.name, "embedding", spec.timestep_spacing, spec.options)
    return spec


def parse_method(entry: Any, field: str, base_dir: Path) -> list[Method]:
    """One method entry; a distilled model with several snapshots gives one method per snapshot (``name@N``)."""
    if not isinstance(entry, dict):
        raise UserError(f"{field}: expected a mapping such as {{name: lcm, model: shapes-lcm, sampler: lcm}}")
    _unknown_keys(entry, METHOD_FIELDS | SCHEDULER_OPTIONS, field)
    name = _str(entry.get("name"), f"{field}.name")
    if not FILE_SAFE.match(name):
        raise UserError(
            f"{field}.name: '{name}' is not file-safe (letters, digits, '_', '.', '+', '-'; a letter or digit first)"
        )
    for key in ("model", "sampler"):
        if key not in entry:
            raise UserError(f"{field}.{key}: missing; a method names a model and a sampler")
    sampler = entry["sampler"]
    options = {k: v for k, v in entry.items() if k in SCHEDULER_OPTIONS or k in ("guidance", "timestep_spacing")}
    if options:
        base = sampler if isinstance(sampler, dict) else {"name": sampler}
        if not isinstance(base, dict):
            raise UserError(f"{field}.sampler: expected a sampler name or a mapping, got {sampler!r}")
        sampler = {**base, **options}
    sampler_spec = parse_sampler(sampler, f"{field}.sampler")
    scales = entry.get("guidance_scale", DEFAULTS["guidance_scales"])
    scales = _as_list(scales, f"{field}.guidance_scale")
    scales = tuple(_float(v, f"{field}.guidance_scale", 0.0, MAX_GUIDANCE) for v in scales)
    steps = None
    if "steps" in entry:
        steps = tuple(_int(v, f"{field}.steps", 1, MAX_STEPS) for v in _as_list(entry["steps"], f"{field}.steps"))
    models = parse_models(entry["model"], f"{field}.model", base_dir)
    return [
        Method(name if len(models) == 1 else f"{name}@{m.name.rsplit('@', 1)[-1]}", m, sampler_spec, scales, steps)
        for m in models
    ]


def parse_methods(entries: list, base_dir: Path) -> list[Method]:
    """Every method, with unique names and one meaning per model name."""
    methods = [m for i, e in enumerate(entries) for m in parse_method(e, f"methods[{i}]", base_dir)]
    seen: dict[str, Method] = {}
    models: dict[str, ModelSpec] = {}
    for method in methods:
        if method.name in seen:
            raise UserError(f"methods: the name '{method.name}' is used twice; every method needs its own")
        seen[method.name] = method
        if models.setdefault(method.model.name, method.model) != method.model:
            raise UserError(
                f"methods[{method.name}].model: the model name '{method.model.name}' already stands for another "
                "model in this suite; give this one its own name"
            )
    return methods


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
        _unknown_keys(refs, {"generator", "per_prompt", "size"}, field)
        from lcm_bench.metrics.references import GENERATORS

        GENERATORS.get(str(refs["generator"]), f"{field}.generator")
        options = (
            ("per_prompt", _int(refs.get("per_prompt", 32), f"{field}.per_prompt", 1, 100_000)),
            ("size", _int(refs.get("size", 32), f"{field}.size", 8, 4096)),
        )
        return ReferenceSpec("generator", refs["generator"], options)
    _unknown_keys(refs, {"path", "column"}, field)
    path = (base_dir / Path(_str(refs.get("path"), f"{field}.path")).expanduser()).resolve()
    if not path.exists():
        raise UserError(f"{field}.path: '{path}' does not exist")
    if path.is_dir():
        from lcm_bench.metrics.references import image_files

        image_files(path, f"{field}.path")
        return ReferenceSpec("folder", str(path))
    if path.suffix != ".parquet":
        raise UserError(f"{field}.path: '{path}' is neither a folder of images nor a .parquet file")
    return ReferenceSpec("parquet", str(path), (("column", _str(refs.get("column", "image"), f"{field}.column")),))


def parse_metric(entry: Any, field: str, base_dir: Path = Path(".")) -> MetricSpec:
    if isinstance(entry, str):
        entry = {"name": entry}
    if not isinstance(entry, dict):
        raise UserError(f"{field}: expected a metric name or a mapping, got {entry!r}")
    name = _str(entry.get("name"), f"{field}.name")
    definition = METRICS.get(name, f"{field}.name")
    allowed = {"name", *definition.defaults} | (EXTRACTOR_OPTIONS if "extractor" in definition.defaults else set())
    _unknown_keys(entry, allowed, field)
    options = {**definition.defaults, **{k: v for k, v in entry.items() if k != "name"}}
    for key, value in options.items():
        default = definition.defaults.get(key, "")
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise UserError(f"{field}.{key}: expected true or false, got {value!r}")
        elif isinstance(default, int):
            _int(value, f"{field}.{key}", 1, 1_000_000)
        elif isinstance(default, float):
            _float(value, f"{field}.{key}", 0.0)
        else:
            _str(value, f"{field}.{key}")
    for key in ("pretrained", "weights"):
        value = options.get(key)
        if isinstance(value, str) and ("/" in value or value.endswith((".safetensors", ".pt", ".pth"))):
            path = (base_dir / Path(value).expanduser()).resolve()
            if not path.exists():
                raise UserError(f"{field}.{key}: '{path}' does not exist")
            options[key] = str(path)
    extractor = options.get("extractor", "inception" if name == "fid" else None)
    if extractor is not None and extractor not in EXTRACTOR_NAMES:
        raise UserError(
            f"{field}.extractor: unknown extractor '{extractor}'{did_you_mean(extractor, list(EXTRACTOR_NAMES))}"
        )
    if extractor == "inception" and options.get("mode", "clean") not in INCEPTION_MODES:
        raise UserError(f"{field}.mode: '{options['mode']}' is not one of {list(INCEPTION_MODES)}")
    if extractor not in (None, "inception"):
        options.pop("mode", None)
    if extractor == "clip" and "model" not in options:
        raise UserError(
            f"{field}: extractor clip needs model: (an open_clip name) and pretrained: (tag, file or random)"
        )
    return MetricSpec(name, tuple(sorted(options.items())))


def parse_prompts(entry: Any, field: str, base_dir: Path) -> PromptSetSpec:
    if isinstance(entry, str):
        builtin = PROMPT_SETS.get(entry, field)
        path, fmt, column, name = builtin.path, builtin.format, builtin.column, entry
    elif isinstance(entry, dict):
        _unknown_keys(entry, {"name", "path", "format", "column", "references"}, field)
        path = (base_dir / Path(_str(entry.get("path"), f"{field}.path")).expanduser()).resolve()
        fmt = entry.get("format") or infer_format(path)
        if fmt not in FORMATS:
            raise UserError(f"{field}.format: '{fmt}' is not one of {list(FORMATS)}")
        column = entry.get("column")
        name = _str(entry.get("name", path.stem), f"{field}.name")
    else:
        raise UserError(f"{field}: expected a prompt-set name or a mapping, got {entry!r}")
    prompts = read_prompts(Path(path), fmt, column, field)
    return PromptSetSpec(name, str(path), fmt, column, content_hash(prompts), len(prompts))


def _resolution(value: Any) -> tuple[int | None, int | None]:
    if value is None:
        return None, None
    pair = value if isinstance(value, list) else [value, value]
    if len(pair) != 2:
        raise UserError(f"resolution: expected an integer or [height, width], got {value!r}")
    height, width = (_int(v, "resolution", 8, 16384) for v in pair)
    if height % 8 or width % 8:
        raise UserError(f"resolution: height and width must be multiples of 8, got {height}x{width}")
    return height, width


def parse_axis(axis: str, values: list, field: str, base_dir: Path, known: dict[str, dict]) -> list:
    """Parse one axis's values; in include rules a name may refer to an entry of the suite's own axes."""
    parsers = {
        "model": lambda v, f: parse_models(v, f, base_dir),
        "sampler": parse_sampler,
        "steps": lambda v, f: _int(v, f, 1, MAX_STEPS),
        "guidance_scale": lambda v, f: _float(v, f, 0.0, MAX_GUIDANCE),
        "prompts": lambda v, f: parse_prompts(v, f, base_dir),
        "hardware": parse_hardware,
        "seed": lambda v, f: _int(v, f, 0, 2**63 - 1),
    }
    named = known.get(axis, {})
    parsed = [
        named[v] if isinstance(v, str) and v in named else parsers[axis](v, f"{field}[{i}]")
        for i, v in enumerate(values)
    ]
    if axis == "model":
        return [m for entry in parsed for m in (entry if isinstance(entry, list) else [entry])]
    return parsed


def read_suite_dict(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The suite's mapping with ``extends`` applied (child keys replace the parent's)."""
    path = path.resolve()
    if path in seen:
        raise UserError(f"{path}: extends forms a cycle ({' -> '.join(p.name for p in (*seen, path))})")
    text = read_text(path, "suite", "suite file")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or exc
        raise UserError(f"{path}: not valid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a suite must be a mapping of keys to values")
    if "extends" in data:
        parent_path = path.parent / _str(data["extends"], "extends")
        parent = read_suite_dict(parent_path, (*seen, path))
        parent.pop("name", None)
        parent.pop("description", None)
        if "methods" in data:
            parent = {k: v for k, v in parent.items() if k not in GRID_KEYS}
        if any(k in data for k in GRID_KEYS):
            parent.pop("methods", None)
        data = {**parent, **{k: v for k, v in data.items() if k != "extends"}}
    data["_base_dir"] = data.get("_base_dir", str(path.parent))
    return data


def _matches(values: dict[str, Any], rule: dict[str, Any]) -> bool:
    for key, wanted in rule.items():
        options = wanted if isinstance(wanted, list) else [wanted]
        if values[key] not in options:
            return False
    return True


def _rule(entry: Any, field: str, methods: dict[str, Method] | None) -> dict[str, Any]:
    """An include/exclude rule; ``method`` names must be the suite's own (only in a suite with methods)."""
    if not isinstance(entry, dict) or not entry:
        raise UserError(f"{field}: expected a mapping of axis values, e.g. {{method: lcm, steps: 1}}")
    _unknown_keys(entry, {"method", *AXES.values()}, field)
    if "method" in entry:
        if methods is None:
            raise UserError(f"{field}.method: only a suite with methods: has method names; match model or sampler")
        for name in _as_list(entry["method"], f"{field}.method"):
            if name not in methods:
                raise UserError(f"{field}.method: no method '{name}'{did_you_mean(str(name), list(methods))}")
    return entry


def method_cells(methods: list[Method], axes: dict[str, list], common: dict, rule: dict | None = None) -> list:
    """Each method crossed with steps (its own, or the suite's), prompts, hardware and seeds; an include ``rule``
    narrows the methods and replaces axis values."""
    rule = rule or {}
    chosen = [m for m in methods if "method" not in rule or _matches({"method": m.name}, {"method": rule["method"]})]
    cells = []
    for m in chosen:
        steps = rule.get("steps") or m.steps or axes["steps"]
        scales = rule.get("guidance_scale") or m.guidance_scales
        for scale, step, prompts, hardware, seed in itertools.product(
            scales, steps, axes["prompts"], axes["hardware"], axes["seed"]
        ):
            cells.append(
                CellSpec(
                    model=m.model,
                    sampler=m.sampler,
                    steps=step,
                    guidance_scale=scale,
                    prompts=prompts,
                    hardware=hardware,
                    seed=seed,
                    method=m.name,
                    **common,
                )
            )
    return cells


def builtin_suites() -> dict[str, Path]:
    """The suites that ship with lcm-bench, by name (the file's stem)."""
    return {p.stem: p for p in sorted(suites_dir().glob("*.yaml"))}


def shipped_baseline(name: str) -> Path | None:
    """The baseline that ships with a built-in suite (``suites/baselines/<name>.json``), if any."""
    path = suites_dir() / "baselines" / f"{name}.json"
    return path if path.is_file() else None


def baseline_path(text: str) -> Path:
    """A baseline file, or the name of a built-in suite whose baseline ships (``ci-quality``), from any directory."""
    path = Path(text)
    if path.exists() or path.suffix or len(path.parts) > 1:
        return path
    shipped = shipped_baseline(text)
    if shipped is not None:
        return shipped
    names = [name for name in builtin_suites() if shipped_baseline(name)]
    raise UserError(
        f"--baseline: '{text}' is neither a file nor a built-in suite with a shipped baseline ({', '.join(names)})"
    )


def suite_summary(path: Path) -> str:
    """A built-in suite's ``description``, else the first line of its leading comment."""
    text = path.read_text()
    description = (yaml.safe_load(text) or {}).get("description")
    if description:
        return description
    first = next((line for line in text.splitlines() if line.startswith("#")), "")
    return first.lstrip("# ").strip()


def suite_path(text: str) -> Path:
    """A suite file, or the name of a built-in suite (``quickstart``, ``ci-quality``, ...) from any directory."""
    path = Path(text)
    if path.exists() or path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        return path
    suites = builtin_suites()
    if text in suites:
        return suites[text]
    hint = did_you_mean(text, list(suites)) or f" (built-in suites: {', '.join(suites)})"
    raise UserError(f"suite: '{text}' is neither a file nor a built-in suite{hint}")


def load_suite(path: str | Path) -> Suite:
    """Parse, validate and expand a suite file, or a built-in suite given by name."""
    path = suite_path(path) if isinstance(path, str) else Path(path)
    try:
        return _load(path)
    except UserError as exc:
        message = str(exc)
        message = message if message.startswith(str(path)) else f"{path}: {message}"
        if path.parent == suites_dir() and packaged():
            message += f" (a built-in suite; `lcm-bench init NAME --from {path.stem}` copies it here to edit its paths)"
        raise UserError(message) from None


def _load(path: Path) -> Suite:
    raw = read_suite_dict(path)
    base_dir = Path(raw.pop("_base_dir"))
    _unknown_keys(raw, TOP_KEYS, "suite")
    if "version" not in raw:
        raise UserError(f"version: missing; add 'version: {SUITE_VERSION}'")
    if raw["version"] != SUITE_VERSION:
        raise UserError(f"version: {raw['version']!r} is not supported (supported: {SUITE_VERSION})")
    uses_methods = "methods" in raw
    mixed = [k for k in GRID_KEYS if k in raw]
    if uses_methods and mixed:
        raise UserError(
            f"methods: a suite lists either methods or {' x '.join(GRID_KEYS)}, not both "
            f"(it also has {', '.join(mixed)})"
        )
    for required in ("methods", "prompts") if uses_methods else ("models", "samplers", "prompts"):
        if required not in raw:
            raise UserError(f"{required}: missing; a suite must name at least one")
    data = {**DEFAULTS, **raw}

    axes: dict[str, list] = {}
    for key, axis in AXES.items():
        if not uses_methods or axis in METHOD_AXES:
            axes[axis] = parse_axis(axis, _as_list(data[key], key), key, base_dir, {})
    methods = parse_methods(_as_list(data["methods"], "methods"), base_dir) if uses_methods else None
    names = [m.name for m in axes.get("model", [])]
    if len(set(names)) != len(names):
        raise UserError(f"models: names must be unique, got {names}")
    height, width = _resolution(data["resolution"])
    if data["save_images"] not in SAVE_IMAGES:
        raise UserError(f"save_images: '{data['save_images']}' is not one of {list(SAVE_IMAGES)}")
    common = {
        "num_images": _int(data["num_images"], "num_images", 1, 10_000_000),
        "batch_size": _int(data["batch_size"], "batch_size", 1, 65536),
        "height": height,
        "width": width,
        "negative_prompt": data["negative_prompt"] if isinstance(data["negative_prompt"], str) else "",
        "save_images": data["save_images"],
        "warmup": _int(data["warmup"], "warmup", 0, 1000),
        "chunk_size": _int(data["chunk_size"], "chunk_size", 1, 10_000_000),
    }

    def cells_of(grid: dict[str, list]) -> list[CellSpec]:
        combos = itertools.product(*grid.values())
        return [CellSpec(**dict(zip(grid, combo, strict=True)), **common) for combo in combos]

    by_name = {m.name: m for m in methods} if methods is not None else None
    cells = method_cells(methods, axes, common) if methods is not None else cells_of(axes)
    known = {
        axis: {v.name: v for v in axes[axis]} for axis in ("model", "sampler", "prompts", "hardware") if axis in axes
    }
    for i, entry in enumerate(_as_list(data["include"], "include") if "include" in data else []):
        rule = _rule(entry, f"include[{i}]", by_name)
        parsed = {
            k: parse_axis(k, _as_list(v, k), f"include[{i}].{k}", base_dir, known)
            for k, v in rule.items()
            if k != "method"
        }
        if methods is None:
            cells += cells_of({**axes, **parsed})
        else:
            if "model" in parsed or "sampler" in parsed:
                raise UserError(f"include[{i}]: in a suite with methods, add a method instead of a model or sampler")
            narrowed = {k: v for k, v in {**rule, **parsed}.items() if k in ("method", "steps", "guidance_scale")}
            cells += method_cells(methods, {**axes, **parsed}, common, narrowed)
    excludes = (
        [_rule(e, f"exclude[{i}]", by_name) for i, e in enumerate(_as_list(data["exclude"], "exclude"))]
        if "exclude" in data
        else []
    )
    metrics = (
        tuple(parse_metric(e, f"metrics[{i}]", base_dir) for i, e in enumerate(_as_list(data["metrics"], "metrics")))
        if "metrics" in data
        else ()
    )
    if len({m.metric_id for m in metrics}) != len(metrics):
        raise UserError("metrics: the same metric is listed twice")
    prompt_entries = _as_list(data["prompts"], "prompts")
    references = {
        spec.name: parse_references(entry, f"prompts[{i}]", base_dir)
        for i, (spec, entry) in enumerate(zip(axes["prompts"], prompt_entries, strict=True))
    }
    for i, metric in enumerate(metrics):
        if metrics and common["save_images"] != "all":
            raise UserError(
                f"save_images: metrics score the saved images, so it must be 'all' (is '{common['save_images']}')"
            )
        if METRICS.get(metric.name).needs_reference:
            for name, ref in references.items():
                if ref is None:
                    raise UserError(
                        f"metrics[{i}]: {metric.name} needs reference images, but prompt set '{name}' has "
                        "none; give it references: {path: DIR} or {generator: NAME}"
                    )
    unique: dict[str, CellSpec] = {}
    for cell in cells:
        if not any(_matches(cell.axis_values(), rule) for rule in excludes):
            unique.setdefault(cell.cell_id, cell)
    if not unique:
        raise UserError("exclude: removes every cell of the suite")
    name = str(raw.get("name") or path.stem)
    published = None
    if raw.get("published") is not None:
        published = check_published(_str(raw["published"], "published"))
    canonical = [c.configuration() for c in unique.values()]
    return Suite(
        name=name,
        version=SUITE_VERSION,
        description=str(raw.get("description", "")),
        published=published,
        cells=tuple(unique.values()),
        source=str(path),
        suite_hash=stable_hash(canonical, 16),
        metrics=metrics,
        references=references,
    )
