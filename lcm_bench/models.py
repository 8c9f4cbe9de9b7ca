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

from .components import component_folder, load_shared_components
from .errors import MissingResourceError, UserError
from .paths import cache_dir, data_dir, offline
from .registry import Registry, did_you_mean
from .spec import Hardware, ModelSpec

EMBEDDED_DIR = data_dir() / "models"


@dataclass(frozen=True)
class KnownModel:
    """A registered checkpoint. ``kind``: pipeline, unet (on ``base``), lora (on ``base``), tiny (built here),
    embedded or embedded-lora (trained here, shipped in data/models)."""

    repo: str
    kind: str = "pipeline"
    base: str | None = None
    guidance_embedding: bool = False
    family: str = "sd"
    resolution: int = 512
    weight_name: str | None = None
    description: str = ""


MODELS: Registry[KnownModel] = Registry("model")
for _name, _model in {
    "tiny-sd": KnownModel(
        "tiny-sd", "tiny", resolution=32, description="tiny random-weight SD pipeline (harness checks)"
    ),
    "tiny-lcm": KnownModel(
        "tiny-lcm",
        "tiny",
        guidance_embedding=True,
        resolution=32,
        description="tiny random-weight SD pipeline whose UNet takes a guidance embedding (LCM-style)",
    ),
    "tiny-sdxl": KnownModel(
        "tiny-sdxl",
        "tiny",
        family="sdxl",
        resolution=32,
        description="tiny random-weight SDXL-layout pipeline (two text encoders, text_time conditioning)",
    ),
    "shapes-teacher": KnownModel(
        "shapes-teacher",
        "embedded",
        resolution=32,
        description="embedded teacher trained here on the shapes domain (data/models/shapes-teacher)",
    ),
    "shapes-lcm": KnownModel(
        "shapes-lcm",
        "embedded",
        guidance_embedding=True,
        resolution=32,
        description="LCM distilled here (LCD) from shapes-teacher (data/models/shapes-lcm)",
    ),
    "shapes-guided-distill": KnownModel(
        "shapes-guided-distill",
        "embedded",
        guidance_embedding=True,
        resolution=32,
        description="guided-distillation students (8/4/2/1 steps) of shapes-teacher",
    ),
    "shapes-lcm-lora": KnownModel(
        "shapes-lcm-lora",
        "embedded-lora",
        base="shapes-teacher",
        resolution=32,
        description="LCM-LoRA distilled here from shapes-teacher (data/models/shapes-lcm-lora)",
    ),
    "sd-1.5": KnownModel("stable-diffusion-v1-5/stable-diffusion-v1-5", description="Stable Diffusion 1.5"),
    "sd-2.1-base": KnownModel("stabilityai/stable-diffusion-2-1-base", description="Stable Diffusion 2.1 base (512)"),
    "dreamshaper-7": KnownModel("Lykon/dreamshaper-7", description="Dreamshaper v7 (SD-1.5 fine-tune)"),
    "lcm-dreamshaper-v7": KnownModel(
        "SimianLuo/LCM_Dreamshaper_v7", guidance_embedding=True, description="LCM distilled from Dreamshaper v7"
    ),
    "sdxl-base": KnownModel(
        "stabilityai/stable-diffusion-xl-base-1.0", family="sdxl", resolution=1024, description="SDXL base 1.0"
    ),
    "ssd-1b": KnownModel("segmind/SSD-1B", family="sdxl", resolution=1024, description="Segmind SSD-1B"),
    "lcm-lora-sdv1-5": KnownModel(
        "latent-consistency/lcm-lora-sdv1-5", "lora", base="sd-1.5", description="LCM-LoRA on SD-1.5"
    ),
    "lcm-lora-sdxl": KnownModel(
        "latent-consistency/lcm-lora-sdxl",
        "lora",
        base="sdxl-base",
        family="sdxl",
        resolution=1024,
        description="LCM-LoRA on SDXL base",
    ),
    "lcm-lora-ssd-1b": KnownModel(
        "latent-consistency/lcm-lora-ssd-1b",
        "lora",
        base="ssd-1b",
        family="sdxl",
        resolution=1024,
        description="LCM-LoRA on SSD-1B",
    ),
    "lcm-sdxl": KnownModel(
        "latent-consistency/lcm-sdxl",
        "unet",
        base="sdxl-base",
        guidance_embedding=True,
        family="sdxl",
        resolution=1024,
        description="LCM UNet distilled from SDXL",
    ),
    "lcm-ssd-1b": KnownModel(
        "latent-consistency/lcm-ssd-1b",
        "unet",
        base="ssd-1b",
        guidance_embedding=True,
        family="sdxl",
        resolution=1024,
        description="LCM UNet distilled from SSD-1B",
    ),
}.items():
    MODELS.register(_name, _model)


def tiny_path(name: str) -> Path:
    from .tiny import TINY_VERSION, build_tiny_pipeline

    path = cache_dir() / "models" / f"{name}-v{TINY_VERSION}"
    if not (path / "model_index.json").is_file():
        known = MODELS.get(name)
        build_tiny_pipeline(path, guidance_embedding=known.guidance_embedding, family=known.family)
    return path


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
    folder = EMBEDDED_DIR / name
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


def quiet_libraries() -> None:
    import warnings

    import diffusers
    import transformers

    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(diffusers|transformers)\.")
    warnings.filterwarnings("ignore", message=".*deprecated.*", category=FutureWarning)
    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def load_pipeline(resolved: ResolvedModel, hardware: Hardware, steps: int | None = None):
    """Load the diffusers pipeline for a resolved model onto ``hardware``; LoRAs are fused into the weights; a
    guided-distillation folder gives the student of ``steps``."""
    from diffusers import DiffusionPipeline, UNet2DConditionModel

    from .hardware import torch_dtype

    quiet_libraries()
    dtype = torch_dtype(hardware)
    kwargs: dict[str, Any] = {"torch_dtype": dtype, "local_files_only": True}
    unet_path = resolved.unet_for(steps, "steps") if steps is not None else resolved.unet_path
    if unet_path is not None:
        kwargs["unet"] = UNet2DConditionModel.from_pretrained(unet_path, torch_dtype=dtype)
    try:
        kwargs.update(load_shared_components(resolved.pipeline_path, dtype))
        pipe = DiffusionPipeline.from_pretrained(resolved.pipeline_path, **kwargs)
    except (OSError, ValueError) as exc:
        raise UserError(f"models: cannot load '{resolved.spec.name}' from {resolved.pipeline_path}: {exc}") from None
    if getattr(pipe, "safety_checker", None) is not None:
        pipe.safety_checker = None
    if resolved.lora_paths:
        names = []
        for i, (path, _, weight_name) in enumerate(resolved.lora_paths):
            name = f"adapter{i}"
            lora_kwargs = {"weight_name": weight_name} if weight_name else {}
            if path.is_file():
                lora_kwargs["weight_name"] = path.name
                path = path.parent
            try:
                pipe.load_lora_weights(str(path), adapter_name=name, **lora_kwargs)
            except (OSError, ValueError, KeyError) as exc:
                raise UserError(f"models: cannot load LoRA {path} for '{resolved.spec.name}': {exc}") from None
            names.append(name)
        pipe.set_adapters(names, [w for _, w, _ in resolved.lora_paths])
        pipe.fuse_lora(adapter_names=names)
        pipe.unload_lora_weights()
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(hardware.device)
