"""Model references -> loaded diffusers pipelines (local folders, the Hugging Face cache, LoRA adapters).

A reference is a registry name, a local diffusers folder or a Hugging Face id. Loading never uses
``trust_remote_code``; weights come from safetensors where the checkpoint has them. With ``HF_HUB_OFFLINE`` set
(or no network) a missing checkpoint is a ``MissingResourceError`` that names the files and how to provide them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lcm_bench.core.paths import cache_dir
from lcm_bench.core.registry import Registry


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
    from lcm_bench.models.tiny import TINY_VERSION, build_tiny_pipeline

    path = cache_dir() / "models" / f"{name}-v{TINY_VERSION}"
    if not (path / "model_index.json").is_file():
        known = MODELS.get(name)
        build_tiny_pipeline(path, guidance_embedding=known.guidance_embedding, family=known.family)
    return path
