"""A frozen teacher for distillation: its components, its noise schedule, training latents and guided predictions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lcm_bench.core.errors import UserError
from lcm_bench.models.components import component_folder


@dataclass
class Teacher:
    """Frozen components of a diffusers SD pipeline folder and its noise schedule: a DDPMScheduler of the teacher's
    betas, whose ``alphas_cumprod`` are ``alphas`` (1000 entries)."""

    folder: Path
    unet: torch.nn.Module
    text_encoder: torch.nn.Module
    tokenizer: object
    vae: torch.nn.Module
    noise_schedule: object
    scheduler_config: dict

    @property
    def alphas(self) -> torch.Tensor:
        return self.noise_schedule.alphas_cumprod

    def noised(self, latents: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Forward noising to timesteps ``t``: sqrt(a_t) z + sqrt(1 - a_t) eps (diffusers' ``add_noise``)."""
        return self.noise_schedule.add_noise(latents, noise, t)

    def uncond(self, n: int) -> torch.Tensor:
        """Text states of the empty prompt for ``n`` samples (encoded once)."""
        if not hasattr(self, "_uncond"):
            self._uncond = self.encode_text(self.tokenize([""]))
        return self._uncond.expand(n, -1, -1)

    def encode_text(self, input_ids: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.text_encoder(input_ids)[0]

    def tokenize(self, captions: list[str]) -> torch.Tensor:
        return self.tokenizer(
            captions,
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids

    @torch.no_grad()
    def guided(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor, w: torch.Tensor):
        """Classifier-free guided (eps, x0) in the paper's convention: (1 + w) * cond - w * uncond."""
        eps = self.unet(torch.cat([x, x]), torch.cat([t, t]), encoder_hidden_states=torch.cat([cond, uncond])).sample
        eps_c, eps_u = eps.chunk(2)
        eps = eps_c + w.view(-1, 1, 1, 1) * (eps_c - eps_u)
        return eps, x0_from_eps(x, eps, t, self.alphas)


def x0_from_eps(x: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    a = alphas[t].view(-1, 1, 1, 1)
    return (x - (1 - a).sqrt() * eps) / a.sqrt()


@dataclass(frozen=True)
class Conditioned:
    """A student UNet bound to one batch's conditioning: its text states, its guidance embedding (None for a UNet
    without one) and the noise schedule's ``alphas``."""

    unet: torch.nn.Module
    hidden: torch.Tensor
    w_embedding: torch.Tensor | None
    alphas: torch.Tensor

    def eps(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.unet(x, t, encoder_hidden_states=self.hidden, timestep_cond=self.w_embedding).sample

    def x0(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x0_from_eps(x, self.eps(x, t), t, self.alphas)


def _noise_schedule(scheduler_config: dict, field: str):
    """A DDPMScheduler with the teacher's scaled-linear betas (only its noise schedule is used)."""
    from diffusers import DDPMScheduler

    missing = [k for k in ("beta_start", "beta_end", "num_train_timesteps") if k not in scheduler_config]
    if missing:
        raise UserError(f"{field}: the teacher's scheduler config has no {', '.join(missing)}")
    schedule = {k: scheduler_config[k] for k in ("beta_start", "beta_end", "num_train_timesteps")}
    return DDPMScheduler(**schedule, beta_schedule="scaled_linear")


def load_teacher(folder: Path, field: str = "--teacher", guidance_embedding: bool = False) -> Teacher:
    """Load an SD-layout (epsilon-prediction) pipeline folder; one-line errors for anything else. A UNet with a
    guidance embedding (an LCM) is required when ``guidance_embedding`` (LCF fine-tunes one), refused otherwise."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    if not (folder / "model_index.json").is_file():
        raise UserError(f"{field}: '{folder}' is not a diffusers pipeline folder (no model_index.json)")
    scheduler_config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    if scheduler_config.get("prediction_type", "epsilon") != "epsilon":
        raise UserError(
            f"{field}: only epsilon-prediction teachers are supported, not {scheduler_config['prediction_type']}"
        )
    unet = UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=torch.float32).eval().requires_grad_(False)
    if unet.config.time_cond_proj_dim is not None and not guidance_embedding:
        raise UserError(f"{field}: '{folder}' already takes a guidance embedding; distil from a CFG teacher")
    if unet.config.time_cond_proj_dim is None and guidance_embedding:
        raise UserError(f"{field}: LCF fine-tunes an LCM; '{folder}' has no guidance embedding")
    if scheduler_config.get("beta_schedule", "scaled_linear") != "scaled_linear":
        raise UserError(f"{field}: only the scaled_linear noise schedule (Stable Diffusion's) is supported")
    return Teacher(
        folder,
        unet,
        CLIPTextModel.from_pretrained(component_folder(folder, "text_encoder"), torch_dtype=torch.float32)
        .eval()
        .requires_grad_(False),
        CLIPTokenizer.from_pretrained(component_folder(folder, "tokenizer")),
        AutoencoderKL.from_pretrained(component_folder(folder, "vae"), torch_dtype=torch.float32)
        .eval()
        .requires_grad_(False),
        _noise_schedule(scheduler_config, field),
        scheduler_config,
    )


@dataclass
class LatentData:
    latents: torch.Tensor
    input_ids: torch.Tensor
    captions: list[str]


def training_latents(teacher: Teacher, data: str, n: int) -> LatentData:
    """Scaled VAE latents and token ids of the training images: ``shapes`` (the embedded domain's train split) or a
    JSON-lines file of {"image": path, "caption": text}."""
    from lcm_bench.train.vae import encode

    if data == "shapes":
        from lcm_bench.train.splits import rendered

        shapes = rendered("train", n)
        images, captions = shapes.images, shapes.captions
    else:
        images, captions = _jsonl_images(Path(data), teacher.vae.config.sample_size)
    latents = encode(teacher.vae, images) * teacher.vae.config.scaling_factor
    return LatentData(latents, teacher.tokenize(captions), captions)


def _jsonl_images(path: Path, size: int) -> tuple[np.ndarray, list[str]]:
    from PIL import Image

    if not path.is_file():
        raise UserError(f"--data: '{path}' is neither 'shapes' nor a JSON-lines file of {{image, caption}}")
    images, captions = [], []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            image = Image.open(path.parent / row["image"]).convert("RGB")
        except (ValueError, KeyError, OSError) as error:
            raise UserError(f"--data: {path} line {number}: needs an 'image' file and a 'caption' ({error})") from None
        images.append(np.asarray(image.resize((size, size), Image.Resampling.BICUBIC)))
        captions.append(str(row["caption"]))
    if not images:
        raise UserError(f"--data: {path} holds no rows")
    return np.stack(images), captions
