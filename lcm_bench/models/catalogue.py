"""The model catalogue: registered checkpoints, and model kinds, each a resolver from a registered entry to the
files it needs (a pipeline folder, a UNet to swap in, LoRAs to fuse), so nothing outside a kind tests its name.

Kinds: ``pipeline`` (a Hub pipeline), ``unet`` (a Hub UNet on its ``base`` pipeline), ``lora`` (a Hub LoRA on its
``base``), ``tiny`` (a random-weight pipeline of the entry's family, built here), ``embedded`` and ``embedded-lora``
(trained here, shipped in ``data/models``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lcm_bench.core.errors import MissingResourceError, raise_missing
from lcm_bench.core.paths import cache_dir, embedded_models_dir
from lcm_bench.core.registry import Registry
from lcm_bench.models import cards
from lcm_bench.models.cards import AuthorsSettings
from lcm_bench.models.hub import locate_file, locate_repo

LORA_FILE = "pytorch_lora_weights.safetensors"


@dataclass(frozen=True)
class KnownModel:
    """A registered checkpoint: its Hub repo (or shipped folder name), its ``kind`` (an entry of MODEL_KINDS), the
    ``base`` it builds on, the command that rebuilds a shipped model, what it is and what its authors recommend
    (``settings``, applied to a method that names only the model)."""

    repo: str
    kind: str = "pipeline"
    base: str | None = None
    guidance_embedding: bool = False
    family: str = "sd"
    resolution: int = 512
    weight_name: str | None = None
    description: str = ""
    rebuild: str | None = None
    gated: bool = False
    settings: AuthorsSettings | None = None


@dataclass
class ModelFiles:
    """Where a model's files are: the pipeline folder, a UNet replacing its own, and LoRAs (path, weight, file name)."""

    pipeline_path: Path
    unet_path: Path | None = None
    loras: list[tuple[Path, float, str | None]] = field(default_factory=list)


@dataclass(frozen=True)
class ModelKind:
    """``resolve(name, known, field)``: the files of a registered model; ``lora(name, known, field)``: the adapter
    file or folder when a suite names it as a LoRA (None for kinds that are no LoRA); ``where(known)``: what
    ``lcm-bench list`` shows."""

    resolve: Callable[[str, KnownModel, str], ModelFiles]
    where: Callable[[KnownModel], str]
    lora: Callable[[str, KnownModel, str], Path] | None = None


MODEL_KINDS: Registry[ModelKind] = Registry("model kind")


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
    "tiny-pixart": KnownModel(
        "tiny-pixart",
        "tiny",
        family="pixart-alpha",
        resolution=32,
        description="tiny random-weight PixArt-alpha pipeline (T5, DiT with learned variance)",
    ),
    "tiny-sd3": KnownModel(
        "tiny-sd3",
        "tiny",
        family="sd3",
        resolution=32,
        description="tiny random-weight SD3 pipeline (two CLIPs and T5, MMDiT, rectified flow)",
    ),
    "tiny-flux": KnownModel(
        "tiny-flux",
        "tiny",
        family="flux",
        guidance_embedding=True,
        resolution=32,
        description="tiny random-weight FLUX.1-dev-like pipeline (distilled guidance, dynamic shifting)",
    ),
    "tiny-flux-schnell": KnownModel(
        "tiny-flux-schnell",
        "tiny",
        family="flux",
        resolution=32,
        description="tiny random-weight FLUX.1-schnell-like pipeline (no guidance, shift 1)",
    ),
    "tiny-sana": KnownModel(
        "tiny-sana",
        "tiny",
        family="sana",
        resolution=32,
        description="tiny random-weight SANA pipeline (Gemma 2, linear DiT, DC-AE)",
    ),
    "tiny-sana-sprint": KnownModel(
        "tiny-sana-sprint",
        "tiny",
        family="sana-sprint",
        guidance_embedding=True,
        resolution=32,
        description="tiny random-weight SANA-Sprint pipeline (sCM, guidance embedding)",
    ),
    "tiny-pixart-sigma": KnownModel(
        "tiny-pixart-sigma",
        "tiny",
        family="pixart-sigma",
        resolution=32,
        description="tiny random-weight PixArt-Sigma pipeline (T5 over 300 tokens)",
    ),
    "shapes-teacher": KnownModel(
        "shapes-teacher",
        "embedded",
        resolution=32,
        rebuild="lcm-bench train teacher",
        description="embedded teacher trained here on the shapes domain (data/models/shapes-teacher)",
    ),
    "shapes-lcm": KnownModel(
        "shapes-lcm",
        "embedded",
        guidance_embedding=True,
        resolution=32,
        rebuild="lcm-bench distill lcm",
        description="LCM distilled here (LCD) from shapes-teacher (data/models/shapes-lcm)",
    ),
    "shapes-guided-distill": KnownModel(
        "shapes-guided-distill",
        "embedded",
        guidance_embedding=True,
        resolution=32,
        rebuild="lcm-bench distill guided-distill",
        description="guided-distillation students (8/4/2/1 steps) of shapes-teacher",
    ),
    "shapes-lcm-lora": KnownModel(
        "shapes-lcm-lora",
        "embedded-lora",
        base="shapes-teacher",
        resolution=32,
        rebuild="lcm-bench distill lcm-lora",
        description="LCM-LoRA distilled here from shapes-teacher (data/models/shapes-lcm-lora)",
    ),
    "sd-1.5": KnownModel("stable-diffusion-v1-5/stable-diffusion-v1-5", description="Stable Diffusion 1.5"),
    "sd-2.1-base": KnownModel("stabilityai/stable-diffusion-2-1-base", description="Stable Diffusion 2.1 base (512)"),
    "dreamshaper-7": KnownModel("Lykon/dreamshaper-7", description="Dreamshaper v7 (SD-1.5 fine-tune)"),
    "lcm-dreamshaper-v7": KnownModel(
        "SimianLuo/LCM_Dreamshaper_v7",
        guidance_embedding=True,
        description="LCM distilled from Dreamshaper v7",
        settings=cards.lcm((4,), 8.0, "https://huggingface.co/SimianLuo/LCM_Dreamshaper_v7 (model card)", (1, 2, 4, 8)),
    ),
    "sdxl-base": KnownModel(
        "stabilityai/stable-diffusion-xl-base-1.0", family="sdxl", resolution=1024, description="SDXL base 1.0"
    ),
    "sd-turbo": KnownModel(
        "stabilityai/sd-turbo",
        description="SD-Turbo: SD 2.1 adversarially distilled (ADD); Stability AI Community licence",
        settings=cards.adversarial(cards.ADD),
    ),
    "sdxl-turbo": KnownModel(
        "stabilityai/sdxl-turbo",
        family="sdxl",
        description="SDXL-Turbo: SDXL adversarially distilled (ADD), 512 px; Stability AI Community licence",
        settings=cards.adversarial(cards.ADD),
    ),
    "ssd-1b": KnownModel("segmind/SSD-1B", family="sdxl", resolution=1024, description="Segmind SSD-1B"),
    "lcm-lora-sdv1-5": KnownModel(
        "latent-consistency/lcm-lora-sdv1-5",
        "lora",
        base="sd-1.5",
        description="LCM-LoRA on SD-1.5",
        settings=cards.lcm((4,), 1.0, cards.LCM_LORA, (2, 4, 8)),
    ),
    "lcm-lora-sdxl": KnownModel(
        "latent-consistency/lcm-lora-sdxl",
        "lora",
        base="sdxl-base",
        family="sdxl",
        resolution=1024,
        description="LCM-LoRA on SDXL base",
        settings=cards.lcm(
            (4,), 1.0, "https://huggingface.co/latent-consistency/lcm-lora-sdxl (model card)", (2, 4, 8)
        ),
    ),
    "lcm-lora-ssd-1b": KnownModel(
        "latent-consistency/lcm-lora-ssd-1b",
        "lora",
        base="ssd-1b",
        family="sdxl",
        resolution=1024,
        description="LCM-LoRA on SSD-1B",
        settings=cards.lcm(
            (4,), 1.0, "https://huggingface.co/latent-consistency/lcm-lora-ssd-1b (model card)", (2, 4, 8)
        ),
    ),
    "lcm-sdxl": KnownModel(
        "latent-consistency/lcm-sdxl",
        "unet",
        base="sdxl-base",
        guidance_embedding=True,
        family="sdxl",
        resolution=1024,
        description="LCM UNet distilled from SDXL",
        settings=cards.lcm((4,), 8.0, "https://huggingface.co/latent-consistency/lcm-sdxl (model card)", (1, 2, 4, 8)),
    ),
    "pixart-alpha-512": KnownModel(
        "PixArt-alpha/PixArt-XL-2-512x512", family="pixart-alpha", description="PixArt-alpha XL-2 at 512 px"
    ),
    "pixart-alpha-1024": KnownModel(
        "PixArt-alpha/PixArt-XL-2-1024-MS",
        family="pixart-alpha",
        resolution=1024,
        description="PixArt-alpha XL-2 at 1024 px (multi-scale, resolution and aspect conditioning)",
    ),
    "pixart-lcm": KnownModel(
        "PixArt-alpha/PixArt-LCM-XL-2-1024-MS",
        family="pixart-alpha",
        resolution=1024,
        description="PixArt-LCM: LCM of PixArt-alpha 1024 (no w-embedding)",
        settings=cards.lcm(
            (4,), 0.0, "https://huggingface.co/PixArt-alpha/PixArt-LCM-XL-2-1024-MS (model card, author's reply)"
        ),
    ),
    "pixart-sigma-1024": KnownModel(
        "PixArt-alpha/PixArt-Sigma-XL-2-1024-MS",
        family="pixart-sigma",
        resolution=1024,
        description="PixArt-Sigma XL-2 at 1024 px",
    ),
    "sd3-medium": KnownModel(
        "stabilityai/stable-diffusion-3-medium-diffusers",
        family="sd3",
        resolution=1024,
        gated=True,
        description="Stable Diffusion 3 Medium (flow-euler, shift 3, CFG 7)",
    ),
    "sd3.5-medium": KnownModel(
        "stabilityai/stable-diffusion-3.5-medium",
        family="sd3",
        resolution=1024,
        gated=True,
        description="Stable Diffusion 3.5 Medium (flow-euler, shift 3, CFG 4.5)",
    ),
    "sd3.5-large-turbo": KnownModel(
        "stabilityai/stable-diffusion-3.5-large-turbo",
        family="sd3",
        resolution=1024,
        gated=True,
        description="SD3.5 Large Turbo, adversarially distilled",
        settings=AuthorsSettings(
            "flow-euler",
            (4,),
            0.0,
            "https://huggingface.co/stabilityai/stable-diffusion-3.5-large-turbo (model card)",
        ),
    ),
    "flux.1-schnell": KnownModel(
        "black-forest-labs/FLUX.1-schnell",
        family="flux",
        resolution=1024,
        description="FLUX.1 [schnell], timestep-distilled (Apache-2.0)",
        settings=AuthorsSettings(
            "flow-euler",
            (4,),
            0.0,
            "https://huggingface.co/black-forest-labs/FLUX.1-schnell (model card) and black-forest-labs/flux "
            "(reference code: 256 T5 tokens for schnell)",
            text_length=256,
            trained=(1, 2, 3, 4),
        ),
    ),
    "flux.1-dev": KnownModel(
        "black-forest-labs/FLUX.1-dev",
        family="flux",
        resolution=1024,
        guidance_embedding=True,
        gated=True,
        description="FLUX.1 [dev], guidance-distilled (dynamic shift, guidance as given)",
        settings=AuthorsSettings(
            "flow-euler",
            (50,),
            3.5,
            "https://huggingface.co/black-forest-labs/FLUX.1-dev (model card)",
        ),
    ),
    "sana-1600m-1024": KnownModel(
        "Efficient-Large-Model/Sana_1600M_1024px_diffusers",
        family="sana",
        resolution=1024,
        description="SANA 1600M at 1024 px (dpmsolver++ in flow mode, shift 3, CFG 4.5)",
    ),
    "sana-sprint-1.6b": KnownModel(
        "Efficient-Large-Model/Sana_Sprint_1.6B_1024px_diffusers",
        family="sana-sprint",
        resolution=1024,
        guidance_embedding=True,
        description="SANA-Sprint 1.6B at 1024 px (guidance as given)",
        settings=AuthorsSettings(
            "scm",
            (2,),
            4.5,
            "https://huggingface.co/Efficient-Large-Model/Sana_Sprint_1.6B_1024px_diffusers (model card) and "
            "SanaSprintPipeline's defaults",
            trained=(1, 2, 4),
        ),
    ),
    "hyper-sd15-1step-lora": KnownModel(
        "ByteDance/Hyper-SD",
        "lora",
        base="sd-1.5",
        weight_name="Hyper-SD15-1step-lora.safetensors",
        description="Hyper-SD unified 1-step LoRA on SD-1.5",
        settings=cards.tcd((1,), 1.0, 0.0, cards.HYPER_SD, (1, 2, 4, 8)),
    ),
    **{
        f"hyper-sd15-{n}steps-lora": KnownModel(
            "ByteDance/Hyper-SD",
            "lora",
            base="sd-1.5",
            weight_name=f"Hyper-SD15-{n}steps-lora.safetensors",
            description=f"Hyper-SD {n}-step LoRA on SD-1.5",
            settings=cards.ddim_trailing(n, 0.0, cards.HYPER_SD),
        )
        for n in (2, 4, 8)
    },
    "hyper-sdxl-1step-unet": KnownModel(
        "ByteDance/Hyper-SD",
        "unet-file",
        base="sdxl-base",
        family="sdxl",
        resolution=1024,
        weight_name="Hyper-SDXL-1step-Unet.safetensors",
        description="Hyper-SD 1-step SDXL UNet",
        settings=cards.published_timesteps((800,), cards.HYPER_SD),
    ),
    **{
        f"sdxl-lightning-{n}step-unet": KnownModel(
            "ByteDance/SDXL-Lightning",
            "unet-file",
            base="sdxl-base",
            family="sdxl",
            resolution=1024,
            weight_name=f"sdxl_lightning_{n}step_unet.safetensors",
            description=f"SDXL-Lightning {n}-step UNet",
            settings=cards.euler_trailing(n, cards.LIGHTNING),
        )
        for n in (2, 4, 8)
    },
    "sdxl-lightning-1step-unet": KnownModel(
        "ByteDance/SDXL-Lightning",
        "unet-file",
        base="sdxl-base",
        family="sdxl",
        resolution=1024,
        weight_name="sdxl_lightning_1step_unet_x0.safetensors",
        description="SDXL-Lightning 1-step x0 UNet",
        settings=cards.euler_trailing(1, cards.LIGHTNING, prediction_type="sample"),
    ),
    **{
        f"sdxl-lightning-{n}step-lora": KnownModel(
            "ByteDance/SDXL-Lightning",
            "lora",
            base="sdxl-base",
            family="sdxl",
            resolution=1024,
            weight_name=f"sdxl_lightning_{n}step_lora.safetensors",
            description=f"SDXL-Lightning {n}-step LoRA",
            settings=cards.euler_trailing(n, cards.LIGHTNING),
        )
        for n in (2, 4, 8)
    },
    "tcd-sd15-lora": KnownModel(
        "h1t/TCD-SD15-LoRA",
        "lora",
        base="sd-1.5",
        description="TCD LoRA on SD-1.5",
        settings=cards.tcd((4,), 0.3, 0.0, cards.TCD, (2, 4, 8)),
    ),
    "tcd-sdxl-lora": KnownModel(
        "h1t/TCD-SDXL-LoRA",
        "lora",
        base="sdxl-base",
        family="sdxl",
        resolution=1024,
        description="TCD LoRA on SDXL",
        settings=cards.tcd((4,), 0.3, 0.0, "https://huggingface.co/h1t/TCD-SDXL-LoRA (model card)", (2, 4, 8)),
    ),
    "dmd2-sdxl-4step-unet": KnownModel(
        "tianweiy/DMD2",
        "unet-file",
        base="sdxl-base",
        family="sdxl",
        resolution=1024,
        weight_name="dmd2_sdxl_4step_unet_fp16.bin",
        description="DMD2 4-step SDXL UNet (CC-BY-NC)",
        settings=cards.published_timesteps((999, 749, 499, 249), cards.DMD2),
    ),
    "dmd2-sdxl-1step-unet": KnownModel(
        "tianweiy/DMD2",
        "unet-file",
        base="sdxl-base",
        family="sdxl",
        resolution=1024,
        weight_name="dmd2_sdxl_1step_unet_fp16.bin",
        description="DMD2 1-step SDXL UNet (CC-BY-NC)",
        settings=cards.published_timesteps((399,), cards.DMD2),
    ),
    **{
        f"pcm-sd15-{cfg}-{n}step-lora": KnownModel(
            "wangfuyun/PCM_Weights",
            "lora",
            base="sd-1.5",
            weight_name=f"sd15/pcm_sd15_{cfg}_{n}step_converted.safetensors",
            description=f"PCM {n}-phase SD-1.5 LoRA, {cfg}",
            settings=cards.tcd((n,), 0.0, scale, cards.PCM),
        )
        for cfg, scale, phases in (("smallcfg", 0.0, (2, 4, 8, 16)), ("normalcfg", 7.5, (4, 8, 16)))
        for n in phases
    },
    "lcm-ssd-1b": KnownModel(
        "latent-consistency/lcm-ssd-1b",
        "unet",
        base="ssd-1b",
        guidance_embedding=True,
        family="sdxl",
        resolution=1024,
        description="LCM UNet distilled from SSD-1B",
        settings=cards.lcm(
            (4,), 8.0, "https://huggingface.co/latent-consistency/lcm-ssd-1b (model card)", (1, 2, 4, 8)
        ),
    ),
}.items():
    MODELS.register(_name, _model)


def tiny_path(name: str) -> Path:
    """A tiny registered model's pipeline folder, built on first use (``$LCM_BENCH_CACHE/models``)."""
    from lcm_bench.models.families import FAMILIES
    from lcm_bench.models.tiny import TINY_VERSION, build_tiny_pipeline

    path = cache_dir() / "models" / f"{name}-v{TINY_VERSION}"
    if not (path / "model_index.json").is_file():
        known = MODELS.get(name)
        build_tiny_pipeline(path, FAMILIES.get(known.family).build_tiny, known.guidance_embedding)
    return path


def embedded(name: str, marker: str, field: str) -> Path:
    """The folder of a model that ships in ``data/models``; a one-line error naming how to rebuild it when absent."""
    known = MODELS.get(name)
    folder = embedded_models_dir() / known.repo
    if not (folder / marker).is_file():
        raise MissingResourceError(
            f"{field}: embedded model '{known.repo}' is missing at {folder}; it ships with lcm-bench (wheel or "
            f"checkout), or rebuild it with `{known.rebuild}`"
        )
    return folder


def _hub(known: KnownModel) -> str:
    return f"{known.repo} (gated)" if known.gated else known.repo


MODEL_KINDS.register(
    "tiny", ModelKind(lambda name, known, field: ModelFiles(tiny_path(name)), lambda known: "(built locally)")
)
MODEL_KINDS.register(
    "embedded",
    ModelKind(
        lambda name, known, field: ModelFiles(embedded(name, "model_index.json", field)),
        _hub,
    ),
)


def _embedded_lora(name: str, known: KnownModel, field: str) -> ModelFiles:
    lora = embedded(name, LORA_FILE, field)
    return ModelFiles(embedded(known.base, "model_index.json", field), loras=[(lora, 1.0, None)])


MODEL_KINDS.register(
    "embedded-lora",
    ModelKind(_embedded_lora, _hub, lambda name, known, field: embedded(name, LORA_FILE, field)),
)
MODEL_KINDS.register(
    "pipeline", ModelKind(lambda name, known, field: ModelFiles(locate_repo(known.repo, gated=known.gated)), _hub)
)


def _all_located(*finds: Callable[[], Path]) -> list[Path]:
    """Each path, or every one that is missing reported at once."""
    found, missing = [], []
    for find in finds:
        try:
            found.append(find())
        except MissingResourceError as exc:
            missing.append(exc)
    raise_missing(missing)
    return found


def _unet_on_base(name: str, known: KnownModel, field: str) -> ModelFiles:
    pipeline, unet = _all_located(
        lambda: locate_repo(MODELS.get(known.base).repo), lambda: locate_repo(known.repo, unet_only=True)
    )
    return ModelFiles(pipeline, unet / "unet" if (unet / "unet").is_dir() else unet)


MODEL_KINDS.register("unet", ModelKind(_unet_on_base, _hub))


def _unet_file_on_base(name: str, known: KnownModel, field: str) -> ModelFiles:
    """A UNet published as one weights file (SDXL-Lightning, Hyper-SD's 1-step UNet, DMD2) on its base pipeline's
    UNet config."""
    base = MODELS.get(known.base)
    pipeline, unet = _all_located(
        lambda: locate_repo(base.repo, gated=base.gated),
        lambda: locate_file(known.repo, known.weight_name, known.gated),
    )
    return ModelFiles(pipeline, unet)


MODEL_KINDS.register("unet-file", ModelKind(_unet_file_on_base, lambda known: f"{known.repo}/{known.weight_name}"))


def _lora_file(known: KnownModel) -> Path:
    """A registered LoRA: its file where the repo holds several, else the repo's folder."""
    if known.weight_name:
        return locate_file(known.repo, known.weight_name, known.gated)
    return locate_repo(known.repo, lora=True)


def _lora_on_base(name: str, known: KnownModel, field: str) -> ModelFiles:
    pipeline, lora = _all_located(lambda: locate_repo(MODELS.get(known.base).repo), lambda: _lora_file(known))
    return ModelFiles(pipeline, loras=[(lora, 1.0, None)])


MODEL_KINDS.register(
    "lora",
    ModelKind(
        _lora_on_base,
        lambda known: f"{known.repo}/{known.weight_name}" if known.weight_name else known.repo,
        lambda name, known, field: _lora_file(known),
    ),
)
