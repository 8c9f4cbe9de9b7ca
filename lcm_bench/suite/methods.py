"""Methods and their parts: a model (a registered name, a local folder, a hub id, LoRAs, or a student the suite
distils), a sampler with its options and guidance, guidance scales, optional own steps and text length. A method
naming a registered checkpoint with authors' settings (``lcm_bench.models.cards``) takes every one of them it does
not write itself; values that equal what the spec would hold without them are left out, so a suite that already
wrote the authors' settings keeps its cell ids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lcm_bench.core.errors import UserError
from lcm_bench.core.spec import CardSettings, LoraSpec, Method, ModelSpec, SamplerSpec
from lcm_bench.models.cards import AuthorsSettings
from lcm_bench.models.catalogue import MODELS
from lcm_bench.models.resolve import check_reference
from lcm_bench.sampling.guidance import GUIDANCE
from lcm_bench.sampling.samplers import SAMPLERS, SCHEDULER_OPTIONS, check_sampler
from lcm_bench.suite.fields import (
    DEFAULT_GUIDANCE_SCALES,
    MAX_GUIDANCE,
    MAX_STEPS,
    as_list,
    file_safe,
    float_field,
    int_field,
    str_field,
    unknown_keys,
)

METHOD_FIELDS = {
    "name",
    "model",
    "sampler",
    "guidance_scale",
    "guidance",
    "steps",
    "timestep_spacing",
    "text_length",
    "resolution_binning",
}
MAX_TEXT_LENGTH = 4096
MODEL_FIELDS = {"name", "source", "path", "loras", "guidance_embedding", "distill"}


def absolute_if_local(source: str, base: Path) -> str:
    """A source naming an existing file or folder (and no registered model) as an absolute path, so neither the
    configuration key nor resolution depends on the working directory; anything else as it is."""
    path = base / Path(source).expanduser()
    return str(path.resolve()) if source not in MODELS and path.exists() else source


def parse_models(entry: Any, field: str, base_dir: Path) -> list[ModelSpec]:
    """One model, or one per snapshot of a student the suite distils (``distill:``; lcm_bench.suite.student_entries)."""
    if isinstance(entry, dict) and "distill" in entry:
        from lcm_bench.suite.student_entries import parse_distill

        unknown_keys(entry, {"name", "distill"}, field)
        return parse_distill(
            entry["distill"], str_field(entry.get("name"), f"{field}.name"), f"{field}.distill", base_dir
        )
    return [parse_model(entry, field, base_dir)]


def parse_lora(entry: Any, field: str, base_dir: Path) -> LoraSpec:
    if isinstance(entry, str):
        entry = {"source": entry}
    if not isinstance(entry, dict):
        raise UserError(f"{field}: expected a LoRA source or a mapping, got {entry!r}")
    unknown_keys(entry, {"source", "path", "weight", "weight_name"}, field)
    source = entry.get("source")
    if isinstance(source, str):
        source = absolute_if_local(source, base_dir)
    if "path" in entry:
        source = str((base_dir / Path(str_field(entry["path"], f"{field}.path")).expanduser()).resolve())
    return LoraSpec(
        source=str_field(source, f"{field}.source"),
        weight=float_field(entry.get("weight", 1.0), f"{field}.weight", -10.0, 10.0),
        weight_name=entry.get("weight_name"),
    )


def _model_source(entry: dict, field: str, base_dir: Path) -> str:
    if "path" in entry and "source" in entry:
        raise UserError(f"{field}: give either 'path' or 'source', not both")
    if "path" in entry:
        source = str((base_dir / Path(str_field(entry["path"], f"{field}.path")).expanduser()).resolve())
        if not Path(source).exists():
            raise UserError(f"{field}.path: '{source}' does not exist")
    else:
        source = absolute_if_local(str_field(entry.get("source", entry.get("name")), f"{field}.source"), Path.cwd())
    check_reference(source, f"{field}.path" if "path" in entry else field)
    return source


def parse_model(entry: Any, field: str, base_dir: Path) -> ModelSpec:
    if isinstance(entry, str):
        check_reference(entry, field)
        source = absolute_if_local(entry, Path.cwd())
        return ModelSpec(name=Path(source).name if source != entry else entry, source=source)
    if not isinstance(entry, dict):
        raise UserError(f"{field}: expected a model name or a mapping, got {entry!r}")
    unknown_keys(entry, MODEL_FIELDS, field)
    source = _model_source(entry, field, base_dir)
    name = str_field(entry.get("name", Path(source).name), f"{field}.name")
    entries = as_list(entry["loras"], f"{field}.loras") if "loras" in entry else []
    loras = tuple(parse_lora(lora, f"{field}.loras[{i}]", base_dir) for i, lora in enumerate(entries))
    embedding = entry.get("guidance_embedding")
    if embedding is not None and not isinstance(embedding, bool):
        raise UserError(f"{field}.guidance_embedding: expected true or false, got {embedding!r}")
    return ModelSpec(name=name, source=source, loras=loras, guidance_embedding=embedding)


def parse_sampler(entry: Any, field: str) -> SamplerSpec:
    """A sampler name or mapping; a sampler that needs a guidance kind (guided-distill: an embedding) gets it."""
    if isinstance(entry, str):
        spec = SamplerSpec(name=entry)
    elif isinstance(entry, dict):
        unknown_keys(entry, {"name", "guidance", "timestep_spacing", *SCHEDULER_OPTIONS}, field)
        guidance = entry.get("guidance", "auto")
        if guidance != "auto" and guidance not in GUIDANCE:
            raise UserError(f"{field}.guidance: '{guidance}' is not one of {['auto', *GUIDANCE.names()]}")
        options = tuple(sorted((k, _hashable(v)) for k, v in entry.items() if k in SCHEDULER_OPTIONS))
        spec = SamplerSpec(
            str_field(entry.get("name"), f"{field}.name"), guidance, entry.get("timestep_spacing"), options
        )
    else:
        raise UserError(f"{field}: expected a sampler name or a mapping, got {entry!r}")
    needed = check_sampler(spec, field).guidance
    if needed is None:
        return spec
    if spec.guidance not in ("auto", needed):
        raise UserError(
            f"{field}.guidance: sampler '{spec.name}' needs {GUIDANCE.get(needed).noun}, not {spec.guidance}"
        )
    return SamplerSpec(spec.name, needed, spec.timestep_spacing, spec.options)


def _written_sampler(entry: dict, field: str) -> dict:
    """The sampler as the method writes it (a name or a mapping; nothing where it names none), with the sampler
    options written on the method itself merged in."""
    sampler = entry.get("sampler", {})
    base = sampler if isinstance(sampler, dict) else {"name": sampler}
    if not isinstance(base, dict) or not isinstance(base.get("name", ""), str):
        raise UserError(f"{field}.sampler: expected a sampler name or a mapping, got {sampler!r}")
    options = {k: v for k, v in entry.items() if k in SCHEDULER_OPTIONS or k in ("guidance", "timestep_spacing")}
    return {**base, **options}


def _card_sampler(card: AuthorsSettings) -> dict:
    """The authors' sampler without the values its registered definition already defaults to."""
    entry = card.sampler_entry()
    definition = SAMPLERS.get(card.sampler)
    if "timestep_spacing" in entry and entry["timestep_spacing"] == definition.spacing:
        del entry["timestep_spacing"]
    if "eta" in entry and entry["eta"] == definition.step_kwargs.get("eta"):
        del entry["eta"]
    return entry


def _method_sampler(entry: dict, field: str, card: AuthorsSettings | None) -> tuple[SamplerSpec, list[str]]:
    """The method's sampler and the sampler fields taken from the card: the card's sampler where the method names
    none, its options under the method's where the method names the same sampler."""
    if "sampler" not in entry and card is None:
        raise UserError(
            f"{field}.sampler: missing; a method names a model and a sampler (or a registered checkpoint with its "
            "authors' settings: see `lcm-bench list`)"
        )
    written = _written_sampler(entry, field)
    taken: dict = {}
    if card is not None and written.get("name", card.sampler) == card.sampler:
        taken = {k: v for k, v in _card_sampler(card).items() if k not in written}
    return parse_sampler({**taken, **written}, f"{field}.sampler"), ["sampler" if k == "name" else k for k in taken]


def card_of(model: ModelSpec) -> AuthorsSettings | None:
    """The authors' settings of a registered checkpoint (None for anything else)."""
    if model.distill or model.source not in MODELS:
        return None
    return MODELS.get(model.source).settings


def _text_length(entry: dict, field: str, card: AuthorsSettings | None) -> tuple[int | None, list[str]]:
    if "text_length" in entry:
        return int_field(entry["text_length"], f"{field}.text_length", 1, MAX_TEXT_LENGTH), []
    if card is not None and card.text_length is not None:
        return card.text_length, ["text_length"]
    return None, []


def parse_method(entry: Any, field: str, base_dir: Path) -> list[Method]:
    """One method entry; a distilled model with several snapshots gives one method per snapshot (``name@N``)."""
    if not isinstance(entry, dict):
        raise UserError(f"{field}: expected a mapping such as {{name: lcm, model: shapes-lcm, sampler: lcm}}")
    unknown_keys(entry, METHOD_FIELDS | SCHEDULER_OPTIONS, field)
    name = file_safe(str_field(entry.get("name"), f"{field}.name"), f"{field}.name")
    if "model" not in entry:
        raise UserError(f"{field}.model: missing; a method names a model and a sampler")
    models = parse_models(entry["model"], f"{field}.model", base_dir)
    card = card_of(models[0]) if len(models) == 1 else None
    sampler, taken = _method_sampler(entry, field, card)
    default_scales = DEFAULT_GUIDANCE_SCALES if card is None else [card.guidance_scale]
    taken += ["guidance_scale"] if card is not None and "guidance_scale" not in entry else []
    scales = as_list(entry.get("guidance_scale", default_scales), f"{field}.guidance_scale")
    scales = tuple(float_field(v, f"{field}.guidance_scale", 0.0, MAX_GUIDANCE) for v in scales)
    steps = None
    if "steps" in entry:
        steps = tuple(int_field(v, f"{field}.steps", 1, MAX_STEPS) for v in as_list(entry["steps"], f"{field}.steps"))
    text_length, from_card = _text_length(entry, field, card)
    binning = entry.get("resolution_binning", False)
    if not isinstance(binning, bool):
        raise UserError(f"{field}.resolution_binning: expected true or false, got {binning!r}")
    noted = None if card is None else CardSettings(card.source, tuple(taken + from_card), card.trained_steps)
    return [
        Method(
            name if len(models) == 1 else f"{name}@{m.name.rsplit('@', 1)[-1]}",
            m,
            sampler,
            scales,
            steps,
            text_length,
            noted,
            None if card is None or steps else card.steps,
            binning,
        )
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


def _hashable(value: Any) -> Any:
    """A sampler option as a spec holds it: a list (``timesteps``) as a tuple."""
    return tuple(value) if isinstance(value, list) else value
