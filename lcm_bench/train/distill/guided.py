"""Guided distillation (Meng et al., "On Distillation of Guided Diffusion Models", CVPR 2023), in latent space.

Stage 1 distils the classifier-free-guided teacher into one w-conditioned student (guidance embedding, as LCD's):
its x0 matches the teacher's guided x0 at random t and w. Stage 2 is progressive distillation (Salimans & Ho
2022): a student at N/2 DDIM steps learns to match two DDIM steps of the N-step student, halving N down to one step.
Both stages use the truncated-SNR weighted x0 loss max(SNR, 1) |x0_hat - x0_target|^2. The steps follow diffusers'
DDIMScheduler with trailing spacing (t -> t - 1000 // N; the last step lands on alphas[0]), so the students sample
with the ``guided-distill`` sampler exactly as they were trained."""

from __future__ import annotations

import copy
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from lcm_bench.sampling.guidance import guidance_embedding
from lcm_bench.train.distill.config import DistillRun, GuidedConfig
from lcm_bench.train.distill.frozen_teacher import Conditioned, LatentData, Teacher
from lcm_bench.train.distill.lcd import lcd_student


def ddim_grid(steps: int) -> np.ndarray:
    """diffusers DDIMScheduler trailing timesteps for ``steps`` steps on the 1000-step schedule."""
    return np.round(np.arange(1000, 0, -1000 / steps)).astype(np.int64) - 1


def _alpha(alphas: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """alphas[t], with alphas[0] for t < 0 (SD's DDIM config: set_alpha_to_one false)."""
    return torch.where(t >= 0, alphas[t.clamp(min=0)], alphas[0]).view(-1, 1, 1, 1)


def ddim_step(x: torch.Tensor, x0: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor, alphas: torch.Tensor):
    a, a_next = _alpha(alphas, t), _alpha(alphas, t_next)
    eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
    return a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps


def truncated_snr_loss(x0_hat: torch.Tensor, x0_target: torch.Tensor, t: torch.Tensor, alphas: torch.Tensor):
    a = alphas[t]
    weight = torch.clamp(a / (1 - a), min=1.0)
    return (weight * (x0_hat - x0_target).pow(2).mean(dim=(1, 2, 3))).mean()


def progressive_target(previous: Conditioned, x: torch.Tensor, t: torch.Tensor, steps: int) -> torch.Tensor:
    """x0 target for one student step t -> t - 1000 // steps that lands where two steps of ``previous`` land
    (Salimans & Ho 2022, Algorithm 2)."""
    stride, alphas = 1000 // steps, previous.alphas
    middle, end = t - stride // 2, t - stride
    with torch.no_grad():
        x_mid = ddim_step(x, previous.x0(x, t), t, middle, alphas)
        x_end = ddim_step(x_mid, previous.x0(x_mid, middle), middle, end, alphas)
    a, a_end = _alpha(alphas, t), _alpha(alphas, end)
    ratio = (1 - a_end).sqrt() / (1 - a).sqrt()
    return (x_end - ratio * x) / (a_end.sqrt() - ratio * a.sqrt())


def _batch(data: LatentData, teacher: Teacher, config: GuidedConfig, generator, timesteps: torch.Tensor | None = None):
    """Latents, their text states, noise and paper-convention ``w``, and ``t`` drawn from ``timesteps`` (all 1000
    when None), one each per sample."""
    n = config.batch
    idx = torch.randint(0, len(data.latents), (n,), generator=generator)
    w = config.w_min + (config.w_max - config.w_min) * torch.rand(n, generator=generator)
    batch = {
        "latents": data.latents[idx],
        "cond": teacher.encode_text(data.input_ids[idx]),
        "uncond": teacher.uncond(n),
        "noise": torch.randn(data.latents[idx].shape, generator=generator),
        "w": w,
    }
    if timesteps is None:
        batch["t"] = torch.randint(0, 1000, (n,), generator=generator)
    else:
        batch["t"] = timesteps[torch.randint(0, len(timesteps), (n,), generator=generator)]
    return batch


def conditioned(student, teacher: Teacher, batch: dict) -> Conditioned:
    """The w-conditioned ``student`` on the batch's text states and guidance values."""
    dim = student.config.time_cond_proj_dim
    embedding = guidance_embedding(batch["w"], dim, len(batch["w"]), torch.float32)
    return Conditioned(student, batch["cond"], embedding, teacher.alphas)


def stage1_loss(student, teacher: Teacher, batch: dict) -> torch.Tensor:
    t = batch["t"]
    x = teacher.noised(batch["latents"], batch["noise"], t)
    _, x0_teacher = teacher.guided(x, t, batch["cond"], batch["uncond"], batch["w"])
    x0_hat = conditioned(student, teacher, batch).x0(x, t)
    return truncated_snr_loss(x0_hat, x0_teacher, t, teacher.alphas)


def stage2_loss(student, previous, teacher: Teacher, batch: dict, steps: int) -> torch.Tensor:
    t = batch["t"]
    x = teacher.noised(batch["latents"], batch["noise"], t)
    target = progressive_target(conditioned(previous, teacher, batch), x, t, steps)
    x0_hat = conditioned(student, teacher, batch).x0(x, t)
    return truncated_snr_loss(x0_hat, target, t, teacher.alphas)


def distill_guided(teacher: Teacher, data: LatentData, config: GuidedConfig, session: DistillRun) -> dict:
    """Both stages; every stage checkpoints and resumes. Saves the kept students under ``session.out`` (see
    :func:`save_students`) and returns the card."""
    from lcm_bench.train.training_loop import TrainingPlan, train

    config.validate()
    dim = config.w_embedding_dim
    out, log_every = session.out, session.log_every
    checkpoints = out.parent / f".{out.name}-checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)

    def stage1(model, step, generator):
        return stage1_loss(model, teacher, _batch(data, teacher, config, generator))

    student = lcd_student(teacher, dim)
    plan = TrainingPlan(config.stage1_steps, lr=config.lr, seed=config.seed, log_every=log_every, checkpoint_every=200)
    student, history = train(student, stage1, checkpoints / "stage1.pt", plan, desc="guided stage 1")
    histories = {f"stage1 ({config.start_steps} steps)": history}
    kept = {}
    for steps in config.halvings():
        previous = copy.deepcopy(student).eval().requires_grad_(False)
        grid = torch.from_numpy(ddim_grid(steps))

        def stage2(model, step, generator, previous=previous, grid=grid, steps=steps):
            return stage2_loss(model, previous, teacher, _batch(data, teacher, config, generator, grid), steps)

        student = copy.deepcopy(previous).train().requires_grad_(True)
        plan = TrainingPlan(
            config.stage2_steps, lr=config.lr, seed=config.seed + steps, log_every=log_every, checkpoint_every=200
        )
        student, history = train(
            student, stage2, checkpoints / f"stage2-{steps}.pt", plan, desc=f"guided {steps} steps"
        )
        histories[f"stage2 ({steps} steps)"] = history
        if steps in config.keep:
            kept[steps] = copy.deepcopy(student).eval()
    save_students(teacher, kept, out)
    return {"method": "guided-distill", "teacher": str(teacher.folder), **asdict(config), "loss_history": histories}


def save_students(teacher: Teacher, students: dict[int, torch.nn.Module], out: Path) -> None:
    """A StableDiffusionPipeline folder whose ``unet`` is the student with the most steps, each other student under
    ``students/<steps>``, and ``students.json`` mapping steps to folders (lcm-bench picks the one a cell asks for)."""
    import os
    import shutil
    import tempfile

    from diffusers import DDIMScheduler

    from lcm_bench.models.tiny import sd_pipeline

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    most = max(students)
    pipe = sd_pipeline(teacher.vae, teacher.text_encoder, teacher.tokenizer, students[most])
    schedule = {k: v for k, v in teacher.scheduler_config.items() if k.startswith(("beta", "num_train"))}
    pipe.scheduler = DDIMScheduler(**schedule, clip_sample=False, set_alpha_to_one=False, timestep_spacing="trailing")
    pipe.save_pretrained(tmp, safe_serialization=True)
    folders = {str(s): "unet" if s == most else f"students/{s}" for s in sorted(students)}
    for steps, unet in students.items():
        if steps != most:
            unet.save_pretrained(tmp / folders[str(steps)], safe_serialization=True)
    (tmp / "students.json").write_text(json.dumps(folders, indent=1))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
