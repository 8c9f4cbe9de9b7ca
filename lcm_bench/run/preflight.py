"""Runs a suite: check before compute -> claim and generate units (lcm_bench.execute) -> assemble records -> score.

A finished cell (record with today's fingerprint) is never recomputed; an interrupted cell resumes at its first
unfinished chunk. With ``shard`` this process generates only its share of the units and leaves scoring to
``merge_run``, which assembles every cell once all shards are done.
"""

from __future__ import annotations

from lcm_bench.core.errors import UserError
from lcm_bench.core.spec import CellSpec, ModelSpec
from lcm_bench.models.resolve import ResolvedModel, resolve_model
from lcm_bench.sampling.samplers import SAMPLERS


def guidance_mode(cell: CellSpec, resolved: ResolvedModel, field_name: str) -> str:
    """cfg or embedding, from the sampler's request and what the model's UNet takes."""
    wanted = cell.sampler.guidance
    if wanted == "embedding" and not resolved.guidance_embedding:
        reason = (
            f"sampler '{cell.sampler.name}' needs"
            if SAMPLERS.get(cell.sampler.name).requires_embedding
            else "guidance: embedding asks for"
        )
        raise UserError(
            f"{field_name}: {reason} a guidance embedding, but model '{cell.model.name}' has none "
            "(its UNet config has no time_cond_proj_dim); use guidance: cfg or a w-conditioned model"
        )
    if wanted == "auto":
        return "embedding" if resolved.guidance_embedding else "cfg"
    return wanted


def preflight(
    cells: list[CellSpec], resolved: dict[ModelSpec, ResolvedModel] | None = None
) -> tuple[dict[ModelSpec, ResolvedModel], dict[str, str]]:
    """Resolve every model the runnable cells need and check what their configs allow (guidance, steps,
    resolution, LoRA keys); errors surface before any work (students the suite distils must be trained first:
    lcm_bench.students.ensure_students)."""
    from lcm_bench.models.checks import check_lora, check_resolution
    from lcm_bench.sampling.checks import check_steps

    resolved = {} if resolved is None else resolved
    modes: dict[str, str] = {}
    for cell in cells:
        where = f"methods[{cell.method}]" if cell.method else f"models[{cell.model.name}]"
        if cell.model not in resolved:
            model = resolved[cell.model] = resolve_model(cell.model, f"models[{cell.model.name}]")
            for i, (path, _, weight_name) in enumerate(model.lora_paths):
                check_lora(path, weight_name, model.unet_path or model.pipeline_path / "unet", f"{where}.loras[{i}]")
        model = resolved[cell.model]
        modes[cell.cell_id] = guidance_mode(cell, model, f"samplers[{cell.sampler.name}]")
        unet = model.unet_for(cell.steps, f"{where} at steps: {cell.steps}")
        check_steps(cell, model.pipeline_path, f"{where}.steps")
        check_resolution(cell, model.pipeline_path, unet)
    return resolved, modes
