"""Latent Consistency Distillation (Luo et al. 2023, arXiv 2310.04378, Algorithm 1) and LCM-LoRA (arXiv 2311.05556).

One step: draw a point of the skipping-step DDIM grid t_{n+k}, noise the data latent to it, take one guided teacher
ODE-solver step to t_n, and pull the student's consistency function at t_{n+k} towards the target network's at t_n.
The consistency function is f(x, t) = c_skip(t) x + c_out(t) x0(x, t) with Stable Diffusion's discrete boundary
scalings (timestep scaling 10, as diffusers' LCMScheduler). LCD: the student takes w through a guidance embedding
and the target is an EMA of the student; LCM-LoRA: only LoRA weights train, there is no guidance embedding, and the
target is the student itself without gradient (as diffusers' train_lcm_distill_lora_sd_wds.py)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from lcm_bench.sampling.guidance import guidance_embedding
from lcm_bench.train.distill.config import DistillRun, LCDConfig
from lcm_bench.train.distill.frozen_teacher import Conditioned, LatentData, Teacher
from lcm_bench.train.distill.solvers import SOLVERS

LORA_TARGETS = [
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
    "proj_in",
    "proj_out",
    "ff.net.0.proj",
    "ff.net.2",
    "conv1",
    "conv2",
    "conv_shortcut",
    "downsamplers.0.conv",
    "upsamplers.0.conv",
    "time_emb_proj",
]


def boundary_scalings(t: torch.Tensor, timestep_scaling: float = 10.0, sigma_data: float = 0.5):
    """c_skip, c_out of LCMScheduler.get_scalings_for_boundary_condition_discrete (c_skip(0) = 1, c_out(0) = 0)."""
    scaled = (timestep_scaling * t.float()).view(-1, 1, 1, 1)
    c_skip = sigma_data**2 / (scaled**2 + sigma_data**2)
    c_out = scaled / (scaled**2 + sigma_data**2) ** 0.5
    return c_skip, c_out


def skipping_grid(skip: int) -> torch.Tensor:
    """t_n of the skipping-step schedule: k-1, 2k-1, ..., 1000-1 (diffusers' DDIMSolver)."""
    n = 1000 // skip
    return (torch.arange(1, n + 1) * skip).round().long() - 1


def consistency(net: Conditioned, x: torch.Tensor, t: torch.Tensor, timestep_scaling: float) -> torch.Tensor:
    """f(x, t) = c_skip(t) x + c_out(t) x0(x, t)."""
    c_skip, c_out = boundary_scalings(t, timestep_scaling)
    return c_skip * x + c_out * net.x0(x, t)


class ConsistencyStudent(torch.nn.Module):
    """The online student and its target network (an EMA copy for LCD; none for LCM-LoRA)."""

    def __init__(self, unet, ema: bool):
        super().__init__()
        self.unet = unet
        self.target = copy.deepcopy(unet).requires_grad_(False) if ema else None

    @torch.no_grad()
    def update_target(self, decay: float) -> None:
        for target, online in zip(self.target.parameters(), self.unet.parameters(), strict=True):
            target.lerp_(online, 1 - decay)


def prediction_and_target(
    student: ConsistencyStudent, teacher: Teacher, batch: dict, config: LCDConfig, teacher_free: bool = False
):
    """f_theta(z_{t_{n+k}}, w, c, t_{n+k}) and the stop-gradient target f_target(Psi(z_{t_{n+k}}), w, c, t_n) on one
    batch: ``latents``, ``cond``/``uncond`` text states, ``index`` into the skipping grid, ``noise`` and
    paper-convention ``w`` (one each per sample). ``teacher_free`` (LCF, consistency training as Song et al. 2023):
    Psi is the same data latent noised to t_n with the same noise, no teacher evaluation."""
    grid = skipping_grid(config.skip)
    start = grid[batch["index"]]
    end = (start - config.skip).clamp(min=0)
    alphas = teacher.alphas
    noisy = teacher.noised(batch["latents"], batch["noise"], start)
    w = batch["w"]
    embedded = student.unet.config.time_cond_proj_dim is not None
    dim = student.unet.config.time_cond_proj_dim
    w_embedding = guidance_embedding(w, dim, len(w), torch.float32) if embedded else None
    online = Conditioned(student.unet, batch["cond"], w_embedding, alphas)
    prediction = consistency(online, noisy, start, config.timestep_scaling)

    def guided(x, t):
        return teacher.guided(x, t, batch["cond"], batch["uncond"], w)

    with torch.no_grad():
        if teacher_free:
            previous = teacher.noised(batch["latents"], batch["noise"], end)
        else:
            previous = SOLVERS.get(config.solver)(guided, noisy, start, end, alphas)
        target_net = student.target if student.target is not None else student.unet
        target = consistency(replace(online, unet=target_net), previous, end, config.timestep_scaling)
    return prediction, target


def lcd_loss(
    student: ConsistencyStudent, teacher: Teacher, batch: dict, config: LCDConfig, teacher_free: bool = False
) -> torch.Tensor:
    """Huber (pseudo-Huber, c = ``huber_c``) or L2 distance between prediction and target."""
    prediction, target = prediction_and_target(student, teacher, batch, config, teacher_free)
    if config.loss == "l2":
        return torch.nn.functional.mse_loss(prediction.float(), target.float())
    return (torch.sqrt((prediction.float() - target.float()) ** 2 + config.huber_c**2) - config.huber_c).mean()


def draw_batch(data: LatentData, teacher: Teacher, config: LCDConfig, generator: torch.Generator, empty: torch.Tensor):
    n = config.batch
    idx = torch.randint(0, len(data.latents), (n,), generator=generator)
    ids = data.input_ids[idx].clone()
    if config.caption_dropout:
        ids[torch.rand(n, generator=generator) < config.caption_dropout] = empty[0]
    return {
        "latents": data.latents[idx],
        "cond": teacher.encode_text(ids),
        "uncond": teacher.uncond(n),
        "index": torch.randint(0, config.grid_size, (n,), generator=generator),
        "noise": torch.randn(data.latents[idx].shape, generator=generator),
        "w": config.w_min + (config.w_max - config.w_min) * torch.rand(n, generator=generator),
    }


def lcd_student(teacher: Teacher, w_embedding_dim: int):
    """The teacher's UNet with a guidance embedding whose projection starts at zero (so f starts at the teacher)."""
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_config({**teacher.unet.config, "time_cond_proj_dim": w_embedding_dim})
    missing, unexpected = unet.load_state_dict(teacher.unet.state_dict(), strict=False)
    assert not unexpected and all("cond_proj" in key for key in missing), (missing, unexpected)
    torch.nn.init.zeros_(unet.time_embedding.cond_proj.weight)
    return unet.train().requires_grad_(True)


def lora_student(teacher: Teacher, config: LCDConfig):
    """The teacher's UNet with a trainable LoRA (peft, rank r, alpha r, Gaussian init: B = 0, so f starts at the
    teacher) on attention, feed-forward, convolution and time-embedding layers."""
    from peft import LoraConfig

    unet = copy.deepcopy(teacher.unet).requires_grad_(False)
    present = {name.rsplit(".", 1)[-1] for name, _ in unet.named_modules()} | {
        ".".join(name.split(".")[-2:]) for name, _ in unet.named_modules()
    }
    targets = [t for t in LORA_TARGETS if t in present]
    unet.add_adapter(
        LoraConfig(
            r=config.lora_rank, lora_alpha=config.lora_rank, init_lora_weights="gaussian", target_modules=targets
        )
    )
    return unet.train()


@dataclass(frozen=True)
class LCDVariant:
    """What differs between LCD (``lcm``), LCM-LoRA and LCF (``method``, their registered names): the student built
    from the teacher, whether an EMA target network is kept (and the student saved as an LCM pipeline; else its LoRA
    alone), and whether the target is the data point itself (no teacher evaluation)."""

    method: str
    student: Callable[[Teacher, LCDConfig], torch.nn.Module]
    target_network: bool
    teacher_free: bool = False


def distill(variant: LCDVariant, teacher: Teacher, data: LatentData, config: LCDConfig, session: DistillRun):
    """Train the ``variant``'s student with the resumable loop; save it under ``session.out`` (after
    ``session.stop_at`` of ``config.steps`` when given: a snapshot along the run)."""
    from lcm_bench.train.training_loop import TrainingPlan, train

    config.validate()
    student = ConsistencyStudent(variant.student(teacher, config), variant.target_network)
    empty = teacher.tokenize([""])

    def loss_fn(model, step, generator):
        if model.target is not None:
            model.update_target(config.ema)
        batch = draw_batch(data, teacher, config, generator, empty)
        return lcd_loss(model, teacher, batch, config, teacher_free=variant.teacher_free)

    stop_at = session.stop_at
    plan = TrainingPlan(
        config.steps, lr=config.lr, seed=config.seed, log_every=session.log_every, checkpoint_every=200, stop_at=stop_at
    )
    desc = f"distill {variant.method}"
    trained, history = train(student, loss_fn, session.checkpoint_file, plan, desc=desc, progress=session.progress)
    card = {
        "method": variant.method,
        "teacher": str(teacher.folder),
        **asdict(config),
        "trained_steps": min(config.steps, stop_at or config.steps),
        "loss_history": history,
    }
    if variant.target_network:
        trained.update_target(config.ema)
        save_lcm_pipeline(teacher, trained.target, config, session.out)
    else:
        save_lora(trained.unet, session.out)
    return card


def teacher_copy(teacher: Teacher, config: LCDConfig) -> torch.nn.Module:
    """LCF's student: the LCM itself, fine-tuned."""
    return copy.deepcopy(teacher.unet).train().requires_grad_(True)


def save_lcm_pipeline(teacher: Teacher, unet, config: LCDConfig, out: Path) -> None:
    """A LatentConsistencyModelPipeline folder: the teacher's VAE, text encoder and tokenizer, the student UNet and
    an LCMScheduler whose original_inference_steps is the skipping grid's size."""
    from diffusers import LatentConsistencyModelPipeline, LCMScheduler

    from lcm_bench.models.tiny import save_pipeline

    schedule = {k: v for k, v in teacher.scheduler_config.items() if k.startswith(("beta", "num_train"))}
    scheduler = LCMScheduler(
        **schedule,
        original_inference_steps=config.grid_size,
        timestep_scaling=config.timestep_scaling,
        clip_sample=False,
        set_alpha_to_one=True,
    )
    pipe = LatentConsistencyModelPipeline(
        vae=teacher.vae,
        text_encoder=teacher.text_encoder,
        tokenizer=teacher.tokenizer,
        unet=unet.eval(),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    save_pipeline(pipe, out)


def save_lora(unet, out: Path) -> None:
    """LoRA weights in peft key format (pytorch_lora_weights.safetensors) that ``load_lora_weights`` reads back
    exactly (diffusers 0.42 drops attention layers of a ``convert_state_dict_to_diffusers`` state dict)."""
    import os
    import shutil
    import tempfile

    from diffusers import StableDiffusionPipeline
    from peft.utils import get_peft_model_state_dict

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    layers = get_peft_model_state_dict(unet)
    StableDiffusionPipeline.save_lora_weights(tmp, unet_lora_layers=layers, safe_serialization=True)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
