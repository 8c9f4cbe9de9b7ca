"""Checks before compute: every model a suite's runnable cells need is resolved and what its configs allow
(guidance, steps, resolution, LoRA keys) is checked, so errors surface before any work."""

from __future__ import annotations

from pathlib import Path

from lcm_bench.core.errors import MissingResourceError, MissingResources, UserError, raise_missing
from lcm_bench.core.paths import offline
from lcm_bench.core.spec import CellSpec, ModelSpec
from lcm_bench.models.families import FAMILIES
from lcm_bench.models.resolve import ResolvedModel, resolve_model
from lcm_bench.sampling.guidance import GUIDANCE, auto_guidance
from lcm_bench.sampling.samplers import SAMPLERS


def check_family_sampler(cell: CellSpec, resolved: ResolvedModel, field_name: str) -> None:
    """The sampler samples what the model's family predicts (a diffusion's noise, a rectified flow's velocity)."""
    family = FAMILIES.get(resolved.family)
    if family.objective in SAMPLERS.get(cell.sampler.name).objectives:
        return
    fitting = [name for name in SAMPLERS if family.objective in SAMPLERS.get(name).objectives]
    raise UserError(
        f"{field_name}: sampler '{cell.sampler.name}' cannot sample model '{cell.model.name}', a {resolved.family} "
        f"model ({family.objective} prediction); its samplers: {', '.join(fitting)}"
    )


def check_text_length(cell: CellSpec, resolved: ResolvedModel, field_name: str) -> None:
    """A text length only for a family whose text encoder takes one (T5, Gemma: not CLIP's fixed 77 tokens)."""
    if cell.text_length is None or FAMILIES.get(resolved.family).text_length is not None:
        return
    takes = [name for name in FAMILIES.names() if FAMILIES.get(name).text_length is not None]
    raise UserError(
        f"{field_name}: model '{cell.model.name}' is a {resolved.family} model, whose CLIP text encoder reads a "
        f"fixed 77 tokens; text_length applies to {', '.join(takes)}"
    )


def check_binning(cell: CellSpec, resolved: ResolvedModel, denoiser_folder: Path, field_name: str) -> None:
    """Resolution binning only for a family whose pipeline bins (PixArt, SANA), on a transformer whose sample size
    the pipeline has an aspect-ratio table for."""
    from lcm_bench.models.config_checks import config_json

    if not cell.resolution_binning:
        return
    family = FAMILIES.get(resolved.family)
    if family.bins is None:
        takes = [name for name in FAMILIES.names() if FAMILIES.get(name).bins is not None]
        raise UserError(
            f"{field_name}: model '{cell.model.name}' is a {resolved.family} model, whose pipeline does not bin "
            f"resolutions; resolution_binning applies to {', '.join(takes)}"
        )
    sample_size = config_json(denoiser_folder / "config.json").get("sample_size")
    if family.bins(sample_size) is None:
        raise UserError(
            f"{field_name}: the {resolved.family} pipeline has no aspect-ratio table for a transformer of sample_size "
            f"{sample_size} (model '{cell.model.name}'); leave resolution_binning off"
        )


def guidance_mode(cell: CellSpec, resolved: ResolvedModel, field_name: str) -> str:
    """cfg or embedding, from the sampler's request and what the model's family and denoiser take."""
    wanted = cell.sampler.guidance
    family = FAMILIES.get(resolved.family)
    if wanted == "auto":
        return auto_guidance(family.guidance, resolved.guidance_embedding)
    if wanted not in family.guidance:
        raise UserError(
            f"{field_name}: guidance: {wanted} does not apply to model '{cell.model.name}', a {resolved.family} "
            f"model (it takes: {', '.join(family.guidance)})"
        )
    kind = GUIDANCE.get(wanted)
    if kind.needs_embedding and not resolved.guidance_embedding:
        needed = SAMPLERS.get(cell.sampler.name).guidance
        reason = f"sampler '{cell.sampler.name}' needs" if needed else f"guidance: {wanted} asks for"
        raise UserError(
            f"{field_name}: {reason} {kind.noun}, but model '{cell.model.name}' has none "
            f"(its {family.denoiser} config has no time_cond_proj_dim or guidance_embeds); use guidance: "
            f"{family.guidance[0]} or a model with one"
        )
    return wanted


def _missing_metric_weights(metrics, weights) -> list[MissingResourceError]:
    """Offline, every metric weights file that is not on disk, as its extractor reports it (online, building the
    extractor downloads it)."""
    from lcm_bench.metrics.builtins import METRICS
    from lcm_bench.metrics.extractors import EXTRACTORS

    missing = []
    for i, metric in enumerate(metrics if offline() else ()):
        name, options = METRICS.get(metric.name).extractor(dict(metric.options))
        entry = EXTRACTORS.get(name)
        if entry.sources(options, weights) is not None:
            continue
        try:
            entry.build(options, "cpu", f"metrics[{i}]", weights)
        except MissingResources as exc:
            missing += exc.errors
        except MissingResourceError as exc:
            missing.append(exc)
    return missing


def resolve_all(
    cells: list[CellSpec], resolved: dict | None = None, metrics=(), weights: tuple[Path, ...] = ()
) -> dict[ModelSpec, ResolvedModel]:
    """Resolve every model the cells need (students the suite distils aside), find every metric weights file and
    prepared dataset; what is missing is reported all at once, one line each, before any work."""
    resolved = {} if resolved is None else resolved
    missing: dict[str, MissingResourceError] = {}
    for cell in cells:
        if cell.model.distill or cell.model in resolved:
            continue
        try:
            resolved[cell.model] = resolve_model(cell.model, f"models[{cell.model.name}]")
        except MissingResourceError as exc:
            for each in exc.errors if isinstance(exc, MissingResources) else [exc]:
                missing.setdefault(str(each), each)
    for exc in _missing_metric_weights(metrics, weights):
        missing.setdefault(str(exc), exc)
    for cell in cells:
        if cell.prompts.missing:
            missing.setdefault(cell.prompts.missing, MissingResourceError(cell.prompts.missing))
    raise_missing(list(missing.values()))
    return resolved


def preflight(
    cells: list[CellSpec], resolved: dict[ModelSpec, ResolvedModel] | None = None
) -> tuple[dict[ModelSpec, ResolvedModel], dict[str, str]]:
    """Resolve every model the runnable cells need and check what their configs allow (guidance, steps,
    resolution, LoRA keys); errors surface before any work (students the suite distils must be trained first:
    lcm_bench.run.students.ensure_students)."""
    from lcm_bench.models.config_checks import check_lora, check_resolution
    from lcm_bench.sampling.checks import check_steps

    resolved = {} if resolved is None else resolved
    modes: dict[str, str] = {}
    loras_checked: set[ModelSpec] = set()
    for cell in cells:
        where = f"methods[{cell.method}]" if cell.method else f"models[{cell.model.name}]"
        if cell.model not in resolved:
            resolved[cell.model] = resolve_model(cell.model, f"models[{cell.model.name}]")
        model = resolved[cell.model]
        if cell.model not in loras_checked:
            loras_checked.add(cell.model)
            for i, (path, _, weight_name) in enumerate(model.lora_paths):
                check_lora(path, weight_name, model.unet_path or model.pipeline_path / "unet", f"{where}.loras[{i}]")
        check_family_sampler(cell, model, f"{where}.sampler")
        check_text_length(cell, model, f"{where}.text_length")
        modes[cell.cell_id] = guidance_mode(cell, model, f"samplers[{cell.sampler.name}]")
        unet = model.unet_for(cell.steps, f"{where} at steps: {cell.steps}")
        check_steps(cell, model.pipeline_path, f"{where}.steps")
        family = FAMILIES.get(model.family)
        folder = unet if unet is not None and unet.is_dir() else model.pipeline_path / family.denoiser
        check_resolution(cell, model.pipeline_path, folder, family.layout.multiple)
        check_binning(cell, model, folder, f"{where}.resolution_binning")
    return resolved, modes
