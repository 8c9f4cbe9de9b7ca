"""Samplers as diffusers schedulers: a registry of definitions and a fresh, configured scheduler per batch.

Every sampler runs through one loop (``lcm_bench.sampling.loop``); a sampler is a registry entry: a scheduler
class, its config overrides, a default timestep spacing, the guidance kind it needs, whether it samples a distilled
student and whether it walks LCM's skipping-step schedule. Few-step baselines default to ``trailing``
spacing (Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps Are Flawed"). As diffusers' Stable
Diffusion pipelines do, ``clip_sample`` is turned off (latents are not confined to [-1, 1]).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lcm_bench.core.errors import UserError
from lcm_bench.core.registry import Registry
from lcm_bench.core.spec import SamplerSpec

SPACINGS = ("leading", "trailing", "linspace")


def set_custom_timesteps(scheduler, timesteps: list, device: str, options: dict[str, Any]) -> None:
    """A published schedule, one timestep per step, as diffusers' schedulers take custom ``timesteps``."""
    scheduler.set_timesteps(None, device=device, timesteps=timesteps, **options)


@dataclass(frozen=True)
class Walk:
    """How the loop walks a sampler's scheduler: further ``set_timesteps`` arguments for a step count, the
    timesteps it steps at, the scale of the initial noise and what the final latent is (a scheduler's own
    ``init_noise_sigma`` and last sample, for all but SCM), and how a published schedule is set (``custom``)."""

    options: Callable[[int], dict[str, Any]] = lambda steps: {}
    points: Callable[[Any], Any] = lambda scheduler: scheduler.timesteps
    start: Callable[[Any], float] = lambda scheduler: getattr(scheduler, "init_noise_sigma", 1.0)
    end: Callable[[Any, Any], Any] = lambda scheduler, latents: latents
    custom: Callable[[Any, list, str, dict[str, Any]], None] = set_custom_timesteps


def _scm_custom(scheduler, timesteps: list, device: str, options: dict[str, Any]) -> None:
    """A published sCM schedule (TrigFlow times, one per step): SCMScheduler takes it with the final 0 appended
    (steps + 1 values) and neither its default start nor its two-step midpoint."""
    points = [float(t) for t in timesteps] + [0.0]
    scheduler.set_timesteps(
        len(timesteps), timesteps=points, device=device, max_timesteps=None, intermediate_timesteps=None
    )


def _scm_options(steps: int) -> dict[str, Any]:
    """SanaSprintPipeline's schedule: from pi/2 (1.5708) to 0, through 1.3 at two steps."""
    return {"max_timesteps": 1.57080, "intermediate_timesteps": 1.3 if steps == 2 else None}


SCM_WALK = Walk(
    _scm_options,
    lambda scheduler: scheduler.timesteps[:-1],
    lambda scheduler: scheduler.config.sigma_data,
    lambda scheduler, latents: latents / scheduler.config.sigma_data,
    _scm_custom,
)
"""sCM sampling in TrigFlow time (Lu & Song 2024): noise scaled by sigma_data, a step at every timestep but the
final 0, the last x0 prediction divided by sigma_data."""


@dataclass(frozen=True)
class SamplerDef:
    """``guidance``: the guidance kind the sampler needs (None: any the model takes); ``distilled``: it samples a
    few-step student (a report sets it apart from the teacher's baselines); ``skipping_schedule``: its timesteps
    follow LCM's skipping-step schedule over ``original_inference_steps``, which bounds its steps; ``objectives``:
    what the models it samples predict (``noise``: a diffusion's noise, v or x0; ``flow``: a rectified flow's
    velocity; ``trigflow``: TrigFlow's); ``flow_config``: its scheduler's settings on a flow model (flow sigmas with
    the model's shift); ``walk``: how the loop walks its scheduler; ``evaluations(steps)``: how many times it calls
    the network for a step count."""

    scheduler: str
    config: dict[str, Any] = field(default_factory=dict)
    spacing: str | None = "trailing"
    step_kwargs: dict[str, Any] = field(default_factory=dict)
    guidance: str | None = None
    description: str = ""
    distilled: bool = False
    skipping_schedule: bool = False
    objectives: tuple[str, ...] = ("noise",)
    flow_config: dict[str, Any] = field(default_factory=dict)
    walk: Walk = field(default_factory=Walk)
    evaluations: Callable[[int], int] = lambda steps: steps


FLOW_SOLVER = {"use_flow_sigmas": True, "prediction_type": "flow_prediction"}
"""A multistep solver on a flow model (diffusers' flow mode: sigmas of the flow, the model's shift as
``flow_shift``)."""

SAMPLERS: Registry[SamplerDef] = Registry("sampler")
for _name, _def in {
    "ddim": SamplerDef("DDIMScheduler", step_kwargs={"eta": 0.0}, description="DDIM (Song et al. 2021), eta = 0"),
    "dpmsolver": SamplerDef(
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver", "solver_order": 2, "final_sigmas_type": "sigma_min"},
        description="DPM-Solver-2, multistep (Lu et al. 2022); diffusers ends it at sigma_min",
    ),
    "dpmsolver++": SamplerDef(
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "solver_order": 2},
        description="DPM-Solver++(2M) (Lu et al. 2022); on a flow model, in flow mode",
        objectives=("noise", "flow"),
        flow_config=FLOW_SOLVER,
    ),
    "euler": SamplerDef("EulerDiscreteScheduler", description="Euler (Karras et al. 2022), no churn"),
    "euler-ancestral": SamplerDef(
        "EulerAncestralDiscreteScheduler",
        description="Euler ancestral (k-diffusion's sample_euler_ancestral, eta 1): each step adds fresh noise from "
        "each sample's own generator; SD-Turbo and SDXL-Turbo sample with it",
    ),
    "unipc": SamplerDef(
        "UniPCMultistepScheduler",
        description="UniPC-2M (Zhao et al. 2023); on a flow model, in flow mode",
        objectives=("noise", "flow"),
        flow_config=FLOW_SOLVER,
    ),
    "scm": SamplerDef(
        "SCMScheduler",
        spacing=None,
        description="sCM consistency sampling in TrigFlow time (Lu & Song 2024), as SANA-Sprint samples",
        distilled=True,
        objectives=("trigflow",),
        walk=SCM_WALK,
    ),
    "flow-euler": SamplerDef(
        "FlowMatchEulerDiscreteScheduler",
        spacing=None,
        description="Euler on a rectified flow's ODE (Esser et al. 2024), with the model's shift",
        objectives=("flow",),
    ),
    "flow-heun": SamplerDef(
        "FlowMatchHeunDiscreteScheduler",
        spacing=None,
        description="Heun (Karras et al. 2022) on a rectified flow's ODE, the model's shift: 2n - 1 evaluations",
        objectives=("flow",),
        evaluations=lambda steps: 2 * steps - 1,
    ),
    "flow-lcm": SamplerDef(
        "FlowMatchLCMScheduler",
        spacing=None,
        description="multistep consistency sampling on a rectified flow (Luo et al. 2023), the model's shift",
        distilled=True,
        objectives=("flow",),
    ),
    "lcm": SamplerDef(
        "LCMScheduler",
        spacing=None,
        description="multistep consistency sampling (Luo et al. 2023, Alg. 1)",
        distilled=True,
        skipping_schedule=True,
    ),
    "tcd": SamplerDef(
        "TCDScheduler",
        spacing=None,
        step_kwargs={"eta": 0.3},
        description="trajectory consistency distillation sampler (Zheng et al. 2024), gamma = 0.3",
        distilled=True,
        skipping_schedule=True,
    ),
    "guided-distill": SamplerDef(
        "DDIMScheduler",
        step_kwargs={"eta": 0.0},
        guidance="embedding",
        description="w-conditioned student of guided distillation (Meng et al. 2023), DDIM steps",
        distilled=True,
    ),
}.items():
    SAMPLERS.register(_name, _def)

SCHEDULER_OPTIONS = {
    "eta",
    "original_inference_steps",
    "solver_order",
    "lower_order_final",
    "use_karras_sigmas",
    "final_sigmas_type",
    "timestep_scaling",
    "rescale_betas_zero_snr",
    "prediction_type",
    "timesteps",
}
_COMMON = {"prediction_type", "rescale_betas_zero_snr"}
_SOLVER = _COMMON | {"final_sigmas_type", "lower_order_final", "solver_order", "use_karras_sigmas"}
_CONSISTENCY = _COMMON | {"original_inference_steps", "timestep_scaling"}
SCHEDULER_ACCEPTS = {
    "DDIMScheduler": _COMMON | {"eta"},
    "DPMSolverMultistepScheduler": _SOLVER | {"timesteps"},
    "EulerDiscreteScheduler": _COMMON | {"final_sigmas_type", "use_karras_sigmas", "timesteps"},
    "EulerAncestralDiscreteScheduler": _COMMON,
    "UniPCMultistepScheduler": _SOLVER,
    "LCMScheduler": _CONSISTENCY | {"timesteps"},
    "TCDScheduler": _CONSISTENCY | {"eta", "timesteps"},
    "FlowMatchEulerDiscreteScheduler": {"use_karras_sigmas", "timesteps"},
    "FlowMatchHeunDiscreteScheduler": set(),
    "FlowMatchLCMScheduler": {"use_karras_sigmas", "timesteps"},
    "SCMScheduler": {"prediction_type", "timesteps"},
}
"""Which options each scheduler takes (in ``__init__``, ``step`` or, for ``timesteps``, ``set_timesteps``), so a
suite is checked without importing diffusers; tests/test_validation.py compares it with diffusers' signatures."""


def _choice(*allowed):
    return lambda v: v in allowed, f"one of {list(allowed)}"


OPTION_VALUES = {
    "eta": (lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "original_inference_steps": (lambda v: _integer(v) and 1 <= v <= 1000, "an integer in 1..1000"),
    "solver_order": (lambda v: _integer(v) and 1 <= v <= 3, "1, 2 or 3"),
    "lower_order_final": _choice(True, False),
    "use_karras_sigmas": _choice(True, False),
    "rescale_betas_zero_snr": _choice(True, False),
    "final_sigmas_type": _choice("zero", "sigma_min"),
    "timestep_scaling": (lambda v: _number(v) and 0 < v <= 1e6, "a number > 0"),
    "prediction_type": _choice("epsilon", "v_prediction", "sample"),
    "timesteps": (
        lambda v: (
            isinstance(v, (list, tuple))
            and len(v) > 0
            and all(_number(t) and t >= 0 for t in v)
            and all(a > b for a, b in zip(v, v[1:], strict=False))
        ),
        "a non-empty list of decreasing timesteps >= 0 (the checkpoint's published schedule), one per step",
    ),
}


def _number(value) -> bool:
    import math

    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_sampler(spec: SamplerSpec, field: str) -> SamplerDef:
    sampler = SAMPLERS.get(spec.name, field)
    if spec.timestep_spacing is not None and spec.timestep_spacing not in SPACINGS:
        raise UserError(f"{field}.timestep_spacing: '{spec.timestep_spacing}' is not one of {list(SPACINGS)}")
    accepted = SCHEDULER_ACCEPTS.get(sampler.scheduler, SCHEDULER_OPTIONS)
    for key, value in spec.options:
        if key not in SCHEDULER_OPTIONS:
            raise UserError(
                f"{field}: unknown sampler option '{key}' (allowed: {', '.join(sorted(SCHEDULER_OPTIONS))})"
            )
        if key not in accepted:
            raise UserError(
                f"{field}.{key}: sampler '{spec.name}' ({sampler.scheduler}) does not take this option "
                f"(it takes: {', '.join(sorted(accepted))})"
            )
        valid, allowed = OPTION_VALUES[key]
        if not valid(value):
            raise UserError(f"{field}.{key}: expected {allowed}, got {value!r}")
    return sampler


def custom_timesteps(spec: SamplerSpec) -> list | None:
    """The schedule a sampler was given step by step (a checkpoint's published timesteps), else None."""
    timesteps = dict(spec.options).get("timesteps")
    return None if timesteps is None else list(timesteps)


def _model_shift(cls, base_config: dict[str, Any]) -> dict[str, float]:
    """A flow model's shift (``shift`` in a FlowMatch scheduler's config, ``flow_shift`` in a flow-mode solver's)
    under the name ``cls`` takes it."""
    shift = base_config.get("shift", base_config.get("flow_shift", 1.0))
    takes = inspect.signature(cls.__init__).parameters
    return {name: shift for name in ("shift", "flow_shift") if name in takes}


def build_scheduler(spec: SamplerSpec, base_config: dict[str, Any], objective: str = "noise"):
    """A fresh scheduler from the model's scheduler config (on a flow model, in the sampler's flow mode with the
    model's shift); returns it, the step() keyword arguments and whether step() takes a generator."""
    import diffusers

    sampler = SAMPLERS.get(spec.name)
    cls = getattr(diffusers, sampler.scheduler)
    options = dict(spec.options)
    takes = {
        name for method in (cls.__init__, cls.step, cls.set_timesteps) for name in inspect.signature(method).parameters
    }
    ignored = sorted(set(options) - takes)
    if ignored:
        raise UserError(f"samplers: {spec.label}: this diffusers' {cls.__name__} does not take {', '.join(ignored)}")
    step_kwargs = dict(sampler.step_kwargs)
    options.pop("timesteps", None)
    if "eta" in options:
        step_kwargs["eta"] = options.pop("eta")
    overrides = {**sampler.config, **options}
    if objective == "flow":
        overrides = {**overrides, **sampler.flow_config, **_model_shift(cls, base_config)}
    if "clip_sample" in inspect.signature(cls.__init__).parameters:
        overrides.setdefault("clip_sample", False)
    spacing = spec.timestep_spacing or sampler.spacing
    if spacing is not None:
        overrides["timestep_spacing"] = spacing
    try:
        scheduler = cls.from_config(dict(base_config), **overrides)
    except ValueError as exc:
        raise UserError(f"samplers: {spec.label} cannot be built from this model's scheduler config: {exc}") from None
    accepted = inspect.signature(scheduler.step).parameters
    return scheduler, {k: v for k, v in step_kwargs.items() if k in accepted}, "generator" in accepted


def _number_of(timestep) -> int | float:
    """A timestep as recorded: an integer for a diffusion's discrete timesteps, a float for a flow's (sigma x 1000)."""
    value = float(timestep)
    return int(value) if value.is_integer() else round(value, 4)


def schedule_info(spec: SamplerSpec, scheduler, step_kwargs: dict[str, Any]) -> dict[str, Any]:
    """What a record needs to reproduce the schedule: spacing, resolved timesteps, LCM's original steps."""
    config = scheduler.config
    skipping = SAMPLERS.get(spec.name).skipping_schedule
    return {
        "scheduler": type(scheduler).__name__,
        "timestep_spacing": "lcm-skipping" if skipping else config.get("timestep_spacing"),
        "timesteps": [_number_of(t) for t in scheduler.timesteps],
        "original_inference_steps": config.get("original_inference_steps"),
        "prediction_type": config.get("prediction_type"),
        "scheduler_order": getattr(scheduler, "order", 1),
        "step_kwargs": step_kwargs,
    }
