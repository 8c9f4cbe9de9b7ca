"""Students a suite asks lcm-bench to distil (``distill:`` in a model entry), trained once and cached.

    models:
      - name: k20-ddim
        distill: {method: lcm, teacher: shapes-teacher, skip: 20, solver: ddim, steps: 500, snapshots: [100, 500]}

Each snapshot becomes a model of its own (``k20-ddim@100``, ``k20-ddim@500``): quality along training, as the
paper's ablation figures show it. One training run serves every snapshot (the learning-rate schedule is planned
for ``steps``), resumes from its checkpoint, and lives under ``$LCM_BENCH_CACHE/students/<method>-<hash>``, keyed
by method, the teacher's weights, data and every option, so a finished student is never retrained (and a
retrained teacher gets new students)."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

from lcm_bench.core.errors import UserError
from lcm_bench.core.paths import cache_dir
from lcm_bench.core.spec import ModelSpec, stable_hash
from lcm_bench.train.distill.distillers import DISTILLERS

DEFAULT_METHOD = "lcm"
KEYS = {"method", "teacher", "data", "snapshots"}


def teacher_folder(teacher: str, base_dir: Path, field: str) -> Path:
    from lcm_bench.models.resolve import resolve_model

    path = (base_dir / Path(teacher).expanduser()).resolve()
    if path.is_dir():
        return path
    return resolve_model(ModelSpec(teacher, teacher), field).pipeline_path


@functools.cache
def _fingerprint(folder: Path) -> str:
    """Content hash of the teacher's UNet weights: a retrained teacher gets new students."""
    import hashlib

    digest = hashlib.sha256()
    for weights in sorted((folder / "unet").glob("*.safetensors")) or sorted((folder / "unet").glob("*.bin")):
        digest.update(weights.read_bytes())
    return digest.hexdigest()[:16]


def parse_distill(entry: dict, name: str, field: str, base_dir: Path) -> list[ModelSpec]:
    """ModelSpecs (one per snapshot) of a model entry's ``distill`` mapping; one-line errors for bad options."""
    if not isinstance(entry, dict):
        raise UserError(f"{field}: expected a mapping of distillation options, got {entry!r}")
    method = entry.get("method", DEFAULT_METHOD)
    in_suites = [name for name, distiller in DISTILLERS.items() if distiller.in_suites]
    if method not in in_suites:
        raise UserError(f"{field}.method: '{method}' is not one of {in_suites} (suites distil LCD students)")
    config_class = DISTILLERS.get(method).config
    options = {f.name: f for f in dataclasses.fields(config_class)}
    for key in entry:
        if key not in KEYS and key not in options:
            raise UserError(f"{field}.{key}: unknown; allowed: {', '.join(sorted(KEYS | set(options)))}")
    values = {}
    for key, option in options.items():
        if key in entry:
            value = entry[key]
            kind = type(option.default)
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if type(value) is not kind:
                raise UserError(f"{field}.{key}: expected {kind.__name__}, got {value!r}")
            values[key] = value
    config = config_class(**values)
    try:
        config.validate()
    except UserError as error:
        raise UserError(f"{field}: {error}") from None
    snapshots = entry.get("snapshots", [config.steps])
    if not isinstance(snapshots, list) or not all(isinstance(s, int) and 0 < s <= config.steps for s in snapshots):
        raise UserError(f"{field}.snapshots: expected a list of step counts in 1..{config.steps}, got {snapshots!r}")
    data = str(entry.get("data", "shapes"))
    teacher = str(entry.get("teacher", "shapes-teacher"))
    folder = teacher_folder(teacher, base_dir, f"{field}.teacher")
    if (base_dir / Path(teacher).expanduser()).is_dir():
        teacher = str(folder)
    key = {"method": method, "teacher": _fingerprint(folder), "data": data, "config": dataclasses.asdict(config)}
    run = f"students/{method}-{stable_hash(key)}"
    return [
        ModelSpec(
            name=f"{name}@{snap}" if len(snapshots) > 1 else name,
            source=f"{run}/step-{snap}",
            distill=(
                ("method", method),
                ("teacher", teacher),
                ("teacher_weights", key["teacher"]),
                ("data", data),
                ("config", tuple(sorted(dataclasses.asdict(config).items()))),
                ("snapshot", snap),
            ),
        )
        for snap in sorted(set(snapshots))
    ]


def student_folder(spec: ModelSpec) -> Path:
    return cache_dir() / spec.source


def pending(specs) -> list[ModelSpec]:
    """Distilled models whose folder does not exist yet."""
    return [s for s in specs if s.distill and not (student_folder(s) / "model_index.json").is_file()]
