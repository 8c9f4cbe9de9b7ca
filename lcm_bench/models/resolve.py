"""Model references -> the files they need, without loading anything (local folders, the Hugging Face cache,
registered entries through their kind's resolver, LoRA adapters).

A reference is a registry name, a local diffusers folder or a Hugging Face id. With ``HF_HUB_OFFLINE`` set (or no
network) a missing checkpoint is a ``MissingResourceError`` that names the files and how to provide them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lcm_bench.core.errors import MissingResourceError, UserError, raise_missing
from lcm_bench.core.paths import cache_dir
from lcm_bench.core.registry import did_you_mean
from lcm_bench.core.spec import ModelSpec
from lcm_bench.models.catalogue import MODEL_KINDS, MODELS, ModelFiles
from lcm_bench.models.families import FAMILIES, family_of
from lcm_bench.models.hub import is_hub_id, locate_repo, missing_components


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model's files are, without loading them."""

    spec: ModelSpec
    pipeline_path: Path
    unet_path: Path | None
    lora_paths: tuple[tuple[Path, float, str | None], ...]
    guidance_embedding: bool
    family: str
    step_unets: tuple[tuple[int, Path], ...] = ()

    def unet_for(self, steps: int, field: str) -> Path | None:
        """The UNet to sample ``steps`` steps with: a step-specific student (guided distillation) or the default."""
        if not self.step_unets:
            return self.unet_path
        students = dict(self.step_unets)
        if steps not in students:
            raise UserError(
                f"{field}: model '{self.spec.name}' holds students for steps {sorted(students)} only, not {steps}"
            )
        return students[steps]


def step_students(pipeline_path: Path) -> tuple[tuple[int, Path], ...]:
    """``students.json`` of a guided-distillation folder: {steps: sub-folder of that step count's UNet}."""
    index = pipeline_path / "students.json"
    if not index.is_file():
        return ()
    return tuple(sorted((int(k), pipeline_path / v) for k, v in json.loads(index.read_text()).items()))


def _denoiser_config(pipeline_path: Path, unet_path: Path | None, denoiser: str) -> dict[str, Any]:
    """The denoiser's config: a swapped-in UNet folder's, else the pipeline's (a single-file UNet takes its base's)."""
    config = (unet_path if unet_path is not None and unet_path.is_dir() else pipeline_path / denoiser) / "config.json"
    return json.loads(config.read_text()) if config.is_file() else {}


def has_guidance_embedding(config: dict[str, Any]) -> bool:
    """A UNet's w-embedding (``time_cond_proj_dim``, LCM) or a transformer's distilled guidance
    (``guidance_embeds``, FLUX.1-dev)."""
    return config.get("time_cond_proj_dim") is not None or bool(config.get("guidance_embeds"))


def check_reference(source: str, field: str) -> None:
    """Cheap check that a model reference can mean something: registered, an existing path, or a hub id."""
    if source in MODELS or Path(source).expanduser().exists() or is_hub_id(source):
        return
    raise UserError(
        f"{field}: '{source}' is not a registered model{did_you_mean(source, MODELS.names())}, "
        "an existing local folder or a Hugging Face id (org/name)"
    )


def resolve_lora(source: str, field: str) -> Path:
    """A LoRA's file or folder: an existing path, a registered LoRA (through its kind), or a Hugging Face id."""
    path = Path(source).expanduser()
    if path.exists():
        return path
    kind = MODEL_KINDS.get(MODELS.get(source).kind) if source in MODELS else None
    if kind is not None and kind.lora is not None:
        return kind.lora(source, MODELS.get(source), field)
    if is_hub_id(source):
        return locate_repo(source, lora=True)
    raise UserError(f"{field}: LoRA '{source}' is neither an existing file or folder nor a Hugging Face id")


def model_files(spec: ModelSpec, field: str) -> ModelFiles:
    """A student's cached folder, a registered model through its kind's resolver, a local folder or a hub id."""
    if spec.distill:
        pipeline_path = cache_dir() / spec.source
        if not (pipeline_path / "model_index.json").is_file():
            raise MissingResourceError(
                f"{field}: student '{spec.name}' is not distilled yet; `lcm-bench run` trains it"
            )
        return ModelFiles(pipeline_path)
    if spec.source in MODELS:
        known = MODELS.get(spec.source)
        return MODEL_KINDS.get(known.kind).resolve(spec.source, known, field)
    path = Path(spec.source).expanduser()
    if not path.exists():
        check_reference(spec.source, field)
        return ModelFiles(locate_repo(spec.source))
    missing = missing_components(path)
    if missing:
        raise UserError(f"{field}: '{path}' is not a complete diffusers pipeline folder; missing: {', '.join(missing)}")
    return ModelFiles(path)


def resolve_model(spec: ModelSpec, field: str = "models") -> ResolvedModel:
    """Find every file a model needs; raise a one-line error for anything absent (all of them when its pipeline and
    its LoRAs are missing)."""
    missing: list[MissingResourceError] = []
    try:
        files = model_files(spec, field)
    except MissingResourceError as exc:
        missing, files = [exc], None
    loras = []
    for i, lora in enumerate(spec.loras):
        try:
            loras.append((resolve_lora(lora.source, f"{field}.loras[{i}]"), lora.weight, lora.weight_name))
        except MissingResourceError as exc:
            missing.append(exc)
    raise_missing(missing)
    files.loras += loras
    index = json.loads((files.pipeline_path / "model_index.json").read_text())
    family = family_of(index, files.pipeline_path, field)
    denoiser = FAMILIES.get(family).denoiser
    has_embedding = has_guidance_embedding(_denoiser_config(files.pipeline_path, files.unet_path, denoiser))
    if spec.guidance_embedding is not None and spec.guidance_embedding != has_embedding:
        raise UserError(
            f"{field}: model '{spec.name}' declares guidance_embedding: {spec.guidance_embedding} but its "
            f"{denoiser} config has {'one' if has_embedding else 'none'} (time_cond_proj_dim or guidance_embeds)"
        )
    return ResolvedModel(
        spec,
        files.pipeline_path,
        files.unet_path,
        tuple(files.loras),
        has_embedding,
        family,
        step_students(files.pipeline_path),
    )
