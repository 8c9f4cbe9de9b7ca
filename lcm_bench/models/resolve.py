"""Model references -> loaded diffusers pipelines (local folders, the Hugging Face cache, LoRA adapters).

A reference is a registry name, a local diffusers folder or a Hugging Face id. Loading never uses
``trust_remote_code``; weights come from safetensors where the checkpoint has them. With ``HF_HUB_OFFLINE`` set
(or no network) a missing checkpoint is a ``MissingResourceError`` that names the files and how to provide them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lcm_bench.core.errors import MissingResourceError, UserError
from lcm_bench.core.paths import cache_dir, embedded_models_dir, offline
from lcm_bench.core.registry import did_you_mean
from lcm_bench.core.spec import ModelSpec
from lcm_bench.models.catalogue import MODELS, tiny_path
from lcm_bench.models.components import component_folder


def _missing_components(folder: Path, unet_only: bool = False) -> list[str]:
    if unet_only:
        names = ["."]
    else:
        index = folder / "model_index.json"
        if not index.is_file():
            return ["model_index.json (and every component folder)"]
        spec = json.loads(index.read_text())
        names = [k for k, v in spec.items() if not k.startswith("_") and isinstance(v, list) and v[0] is not None]
    missing = []
    for name in names:
        comp = component_folder(folder, name)
        if name.startswith("tokenizer"):
            if not comp.is_dir() or not any(comp.iterdir()):
                missing.append(f"{name}/")
            continue
        if name == "scheduler":
            if not (comp / "scheduler_config.json").is_file():
                missing.append("scheduler/scheduler_config.json")
            continue
        if not (comp / "config.json").is_file():
            missing.append(f"{name}/config.json")
        if not any(comp.glob("*.safetensors")) and not any(comp.glob("*.bin")):
            missing.append(f"{name}/*.safetensors")
    return missing


def _how_to_provide(repo: str) -> str:
    return (
        f"on a machine with internet run `huggingface-cli download {repo}` (then copy the HF cache, "
        f"HF_HOME={os.environ.get('HF_HOME', '~/.cache/huggingface')}), or point `path:` at a local copy"
    )


def locate_repo(repo: str, unet_only: bool = False, lora: bool = False) -> Path:
    """Folder of a Hugging Face repo in the local cache; downloads only when online and not HF_HUB_OFFLINE."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(repo, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        folder = None
    missing = ["(nothing cached)"] if folder is None else []
    if folder is not None and not lora:
        missing = _missing_components(folder, unet_only)
    if not missing:
        return folder
    if not offline():
        try:
            return Path(snapshot_download(repo, allow_patterns=None))
        except Exception as exc:  # noqa: BLE001 - any download failure means the same thing to the user
            reason = f"download failed ({type(exc).__name__})"
    else:
        reason = "HF_HUB_OFFLINE is set"
    raise MissingResourceError(
        f"model '{repo}' is not available locally and {reason}; missing: {', '.join(missing)}; " + _how_to_provide(repo)
    )


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


def _unet_config(pipeline_path: Path, unet_path: Path | None) -> dict[str, Any]:
    config = (unet_path or pipeline_path / "unet") / "config.json"
    return json.loads(config.read_text()) if config.is_file() else {}


def _family(pipeline_path: Path, field: str) -> str:
    index = json.loads((pipeline_path / "model_index.json").read_text())
    cls = index.get("_class_name", "")
    if "unet" not in index or "vae" not in index:
        raise UserError(
            f"{field}: {pipeline_path} holds a {cls or 'pipeline'} without a UNet and VAE; lcm-bench samples "
            "UNet latent diffusion pipelines (Stable Diffusion 1.x/2.x, SDXL and their LCM variants)"
        )
    return "sdxl" if "XL" in cls or "text_encoder_2" in index else "sd"


def is_hub_id(source: str) -> bool:
    return source.count("/") == 1 and not source.startswith((".", "/", "~")) and all(source.split("/"))


def check_reference(source: str, field: str) -> None:
    """Cheap check that a model reference can mean something: registered, an existing path, or a hub id."""
    if source in MODELS or Path(source).expanduser().exists() or is_hub_id(source):
        return
    raise UserError(
        f"{field}: '{source}' is not a registered model{did_you_mean(source, MODELS.names())}, "
        "an existing local folder or a Hugging Face id (org/name)"
    )


def _resolve_lora(source: str, field: str) -> Path:
    path = Path(source).expanduser()
    if path.exists():
        return path
    if source in MODELS and MODELS.get(source).kind == "embedded-lora":
        return _embedded(MODELS.get(source).repo, "pytorch_lora_weights.safetensors", field)
    if source in MODELS and MODELS.get(source).kind == "lora":
        return locate_repo(MODELS.get(source).repo, lora=True)
    if is_hub_id(source):
        return locate_repo(source, lora=True)
    raise UserError(f"{field}: LoRA '{source}' is neither an existing file or folder nor a Hugging Face id")


def _embedded(name: str, marker: str, field: str) -> Path:
    folder = embedded_models_dir() / name
    if not (folder / marker).is_file():
        model = name.split("-", 1)[1]
        command = f"lcm-bench distill {model}" if model.startswith("lcm") else f"lcm-bench train {model}"
        raise MissingResourceError(
            f"{field}: embedded model '{name}' is missing at {folder}; it ships with lcm-bench (wheel or checkout), "
            f"or rebuild it with `{command}`"
        )
    return folder


def resolve_model(spec: ModelSpec, field: str = "models") -> ResolvedModel:
    """Find every file a model needs; raise a one-line error for anything absent."""
    unet_path = None
    loras: list[tuple[Path, float, str | None]] = []
    known = MODELS.get(spec.source) if spec.source in MODELS else None
    if spec.distill:
        pipeline_path = cache_dir() / spec.source
        if not (pipeline_path / "model_index.json").is_file():
            raise MissingResourceError(
                f"{field}: student '{spec.name}' is not distilled yet; `lcm-bench run` trains it"
            )
    elif known is not None:
        if known.kind == "tiny":
            pipeline_path = tiny_path(spec.source)
        elif known.kind == "embedded":
            pipeline_path = _embedded(known.repo, "model_index.json", field)
        elif known.kind == "embedded-lora":
            pipeline_path = _embedded(MODELS.get(known.base).repo, "model_index.json", field)
            loras.append((_embedded(known.repo, "pytorch_lora_weights.safetensors", field), 1.0, None))
        elif known.kind == "pipeline":
            pipeline_path = locate_repo(known.repo)
        else:
            pipeline_path = locate_repo(MODELS.get(known.base).repo)
            if known.kind == "unet":
                unet_path = locate_repo(known.repo, unet_only=True)
                if (unet_path / "unet").is_dir():
                    unet_path = unet_path / "unet"
            else:
                loras.append((locate_repo(known.repo, lora=True), 1.0, known.weight_name))
    else:
        path = Path(spec.source).expanduser()
        if path.exists():
            missing = _missing_components(path)
            if missing:
                raise UserError(
                    f"{field}: '{path}' is not a complete diffusers pipeline folder; missing: {', '.join(missing)}"
                )
            pipeline_path = path
        else:
            check_reference(spec.source, field)
            pipeline_path = locate_repo(spec.source)
    for i, lora in enumerate(spec.loras):
        loras.append((_resolve_lora(lora.source, f"{field}.loras[{i}]"), lora.weight, lora.weight_name))
    has_embedding = _unet_config(pipeline_path, unet_path).get("time_cond_proj_dim") is not None
    if spec.guidance_embedding is not None and spec.guidance_embedding != has_embedding:
        raise UserError(
            f"{field}: model '{spec.name}' declares guidance_embedding: {spec.guidance_embedding} "
            f"but its UNet config has time_cond_proj_dim={'set' if has_embedding else 'null'}"
        )
    return ResolvedModel(
        spec,
        pipeline_path,
        unet_path,
        tuple(loras),
        has_embedding,
        _family(pipeline_path, field),
        step_students(pipeline_path),
    )
