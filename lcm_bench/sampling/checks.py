"""Steps against what a sampler can do on a model, checked before any compute from the scheduler's config."""

from __future__ import annotations

from pathlib import Path

from lcm_bench.core.errors import UserError
from lcm_bench.core.spec import CellSpec
from lcm_bench.models.config_checks import config_json
from lcm_bench.sampling.samplers import SAMPLERS, custom_timesteps


def scheduler_limits(pipeline_path: Path) -> tuple[int, int | None]:
    """(num_train_timesteps, original_inference_steps) of a pipeline's scheduler config."""
    config = config_json(pipeline_path / "scheduler" / "scheduler_config.json")
    return int(config.get("num_train_timesteps", 1000)), config.get("original_inference_steps")


def check_steps(cell: CellSpec, pipeline_path: Path, field: str) -> None:
    """Steps fit the scheduler's training timesteps, and a consistency sampler's original_inference_steps."""
    train, original = scheduler_limits(pipeline_path)
    if cell.steps > train:
        raise UserError(
            f"{field}: {cell.steps} steps exceed the {train} training timesteps of {cell.model.name}'s scheduler"
        )
    custom = custom_timesteps(cell.sampler)
    if custom is not None and len(custom) != cell.steps:
        raise UserError(
            f"{field}: {cell.steps} steps, but sampler '{cell.sampler.name}' was given {len(custom)} timesteps; "
            f"give one timestep per step (steps: [{len(custom)}] for these)"
        )
    if custom is not None and max(custom) > train:
        raise UserError(
            f"{field}: timestep {max(custom)} is beyond the {train} training timesteps of {cell.model.name}"
        )
    if SAMPLERS.get(cell.sampler.name).skipping_schedule and custom is None:
        original = dict(cell.sampler.options).get("original_inference_steps", original or 50)
        if cell.steps > original:
            raise UserError(
                f"{field}: {cell.steps} steps exceed original_inference_steps = {original} of sampler "
                f"'{cell.sampler.name}' (its skipping-step schedule has {original} points); use at most {original} "
                "steps or raise original_inference_steps"
            )
