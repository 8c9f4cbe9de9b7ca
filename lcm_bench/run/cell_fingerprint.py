"""A cell's content fingerprint: what produced its images, component by component.

Components: the digest of every weight folder the cell loads (pipeline components, the step's student UNet, LoRAs; a
model card in a folder shared as a component is not part of it), the Hub snapshot revision where there is one, the
resolved scheduler config (without ``_diffusers_version`` / ``_use_default_values``, so a diffusers upgrade that
changes nothing keeps every cell) and ``GENERATION_VERSION`` of the sampling loop. A finished cell is reused only
while its fingerprint is unchanged; when it is not, the components that differ say why (``weights of m changed
(unet)``).
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Any

from lcm_bench.core.digests import digest_cache, files_digest, folder_digest
from lcm_bench.core.spec import CellSpec, SamplerSpec, stable_hash
from lcm_bench.models.components import component_folder
from lcm_bench.models.families import FAMILIES

UNUSED_COMPONENTS = {"scheduler", "safety_checker", "feature_extractor", "image_encoder"}
DROPPED_SCHEDULER_KEYS = {"_diffusers_version", "_use_default_values"}
MODEL_CARD_FILES = frozenset({"README.md", "card.json"})


def weights_digest(path: Path) -> str:
    """A single weights file's digest, or a weights folder's without its model card."""
    return files_digest([path], path.parent) if path.is_file() else folder_digest(path, ignore=MODEL_CARD_FILES)


def model_components(resolved, steps: int) -> dict[str, str]:
    """Digests of what ``load_pipeline(resolved, ..., steps)`` reads."""
    root = resolved.pipeline_path
    index = json.loads((root / "model_index.json").read_text())
    unet = resolved.unet_for(steps, "steps")
    out = {"pipeline": files_digest([root / "model_index.json"], root)}
    for name, entry in sorted(index.items()):
        if name.startswith("_") or name in UNUSED_COMPONENTS or not isinstance(entry, list) or entry[0] is None:
            continue
        folder = Path(unet) if name == "unet" and unet is not None else component_folder(root, name)
        out[f"weights:{name}"] = weights_digest(folder)
    for i, (path, _, weight_name) in enumerate(resolved.lora_paths):
        if path.is_file() or weight_name:
            file = path if path.is_file() else path / weight_name
            out[f"lora:{i}"] = files_digest([file], file.parent)
        else:
            out[f"lora:{i}"] = folder_digest(path)
    if "snapshots" in root.parts:
        out["revision"] = root.parts[root.parts.index("snapshots") + 1]
    return out


def scheduler_digest(pipeline_path: Path, sampler: SamplerSpec, objective: str = "noise") -> str:
    """Hash of the scheduler config a sampler resolves to on this model, for what the model predicts (memoised
    per diffusers version; a diffusion model's key is as it was before flow models came)."""
    config_file = pipeline_path / "scheduler" / "scheduler_config.json"
    raw = config_file.read_text()
    version = metadata.version("diffusers")
    key = f"scheduler|{stable_hash(raw, 16)}|{stable_hash(sampler.__dict__, 16)}|diffusers=={version}"
    key += "" if objective == "noise" else f"|{objective}"

    def resolve() -> str:
        import warnings

        import diffusers

        from lcm_bench.sampling.samplers import build_scheduler

        base = json.loads(raw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            base_config = getattr(diffusers, base["_class_name"]).from_config(base).config
            scheduler, step_kwargs, _ = build_scheduler(sampler, base_config, objective)
        config = {k: v for k, v in dict(scheduler.config).items() if k not in DROPPED_SCHEDULER_KEYS}
        return stable_hash({"config": config, "class": type(scheduler).__name__, "step": step_kwargs}, 16)

    return digest_cache().memo(key, resolve)


def cell_fingerprint(cell: CellSpec, resolved, memo: dict | None = None) -> dict[str, Any]:
    """{"value": hash of the components, "components": {...}} for one cell. ``resolved`` is its ResolvedModel (None
    for a student the suite distils: its cache key already hashes the teacher's weights and every option)."""
    from lcm_bench.sampling.generation import GENERATION_VERSION, HALF_PRECISION_VERSION

    memo = {} if memo is None else memo
    if cell.model.distill:
        components = {"weights:student": cell.model.source, "scheduler": stable_hash(cell.sampler.__dict__, 16)}
    else:
        model_key = (cell.model, str(resolved.unet_for(cell.steps, "steps")))
        if model_key not in memo:
            memo[model_key] = model_components(resolved, cell.steps)
        scheduler_key = (resolved.pipeline_path, cell.sampler)
        if scheduler_key not in memo:
            objective = FAMILIES.get(resolved.family).objective
            memo[scheduler_key] = scheduler_digest(resolved.pipeline_path, cell.sampler, objective)
        components = {**memo[model_key], "scheduler": memo[scheduler_key]}
    components["generation"] = str(GENERATION_VERSION)
    if cell.hardware.dtype != "fp32":
        components["half_precision"] = str(HALF_PRECISION_VERSION)
    if not cell.runtime.eager:
        if ("runtime", cell.runtime) not in memo:
            memo["runtime", cell.runtime] = runtime_components(cell)
        components.update(memo["runtime", cell.runtime])
    return {"value": stable_hash(components, 16), "components": components}


def runtime_components(cell: CellSpec) -> dict[str, str]:
    """The cell's runtime as its configuration key has it (paths by no path), the digests of the files its settings
    read (a tiny decoder's weights) and the versions of the runtime libraries they run on."""
    from lcm_bench.models.runtimes import runtime_files, runtime_versions

    out = {"runtime": stable_hash(cell.configuration()["runtime"], 16)}
    for name, files in runtime_files(cell.runtime).items():
        out |= {f"runtime:{name}:{i}": weights_digest(path) for i, path in enumerate(files)}
    return out | {f"runtime:{k}": v for k, v in runtime_versions(cell.runtime).items()}
