"""Model cards: a README.md in each shipped model's folder, written from the card.json its training produced."""

from __future__ import annotations

import json
from pathlib import Path

DESCRIPTIONS = {
    "judge": "Attribute judge of the shapes domain: a small CNN with one head per attribute (background, layout, "
    "shape and colour of each object, size). Trained on every colour-shape pair (split `all`), so it can "
    "judge held-out compositions. Its pooled features are the in-domain extractor `shapes-judge`.",
    "clip": "In-domain CLIP evaluator: open_clip model `lcm-bench-shapes-clip` (custom config shipped with lcm-bench, "
    "open_clip's BPE tokenizer), trained contrastively on every colour-shape pair, separately from the teacher. "
    "Use it as `clip_score` / `cmmd` / CLIP-FD backbone with `model: lcm-bench-shapes-clip` and "
    "`pretrained: data/models/shapes-clip/open_clip_model.safetensors`.",
    "vae": "Autoencoder of the embedded pipeline: diffusers AutoencoderKL, 32x32x3 images to 8x8x4 latents; "
    "`scaling_factor` is 1 / std of the training latents, as in Stable Diffusion.",
    "tiny-decoder": "Tiny decoder of the embedded autoencoder: diffusers AutoencoderTiny (TAESD's layout) with two "
    "upsampling stages (the shapes VAE downsamples 4x), three 48-channel blocks; it takes the scaled latents a "
    "pipeline denoises (`scaling_factor` 1, as TAESD), its decoder distilled from the shapes VAE's decoder on "
    "encoded renders and noise-perturbed latents, its encoder from the VAE's scaled posterior means. Use it with "
    "the runtime setting `tiny-decoder: {weights: shapes-tiny-decoder}`.",
    "teacher": "Teacher of the embedded default: a StableDiffusionPipeline folder (real CLIP BPE tokenizer from "
    "open_clip's vocabulary, max 32 tokens; CLIPTextModel; UNet2DConditionModel; the embedded VAE; SD's "
    "scaled-linear noise schedule, epsilon prediction), trained from scratch with 10 % caption dropout so "
    "classifier-free guidance works.",
    "lcm": "Latent Consistency Model of the embedded teacher, distilled with LCD (Luo et al. 2023, Algorithm 1): "
    "the teacher's UNet plus a guidance embedding (`time_cond_proj_dim`), trained towards an EMA target one guided "
    "solver step earlier on the skipping-step grid; saved as a LatentConsistencyModelPipeline folder. Sample with "
    "the `lcm` sampler; `guidance_scale` = 1 + w.",
    "lcm-lora": "LCM-LoRA of the embedded teacher: the same distillation training only LoRA weights (no guidance "
    "embedding; target = the student without gradient). diffusers LoRA format: "
    "`pipe.load_lora_weights(...)` onto shapes-teacher, or `loras: [...]` in a suite; sample with `lcm`.",
    "lcf": "Latent consistency fine-tuning (LCF, Luo et al. 2023): an LCM fine-tuned on a dataset with the "
    "consistency-training objective (the target's input is the same data latent noised one skipping step earlier; "
    "no teacher). Sample with the `lcm` sampler.",
    "guided-distill": "Guided-distillation students of the embedded teacher (Meng et al. 2023): stage 1 distils "
    "classifier-free guidance into a w-conditioned student, stage 2 halves its DDIM steps progressively; the "
    "student with most steps is the `unet` folder, the others are in `students/<steps>` (`students.json` maps "
    "steps to folders). Sample with the `guided-distill` sampler at a kept step count; lcm-bench picks that step "
    "count's student.",
}


def _flatten(prefix: str, value) -> list[str]:
    if isinstance(value, dict):
        return [line for k, v in value.items() for line in _flatten(f"{prefix}.{k}" if prefix else k, v)]
    if isinstance(value, float):
        return [f"| {prefix} | {value:.4g} |"]
    return [f"| {prefix} | {value} |"]


def write_card(
    folder: Path,
    model: str,
    wall_seconds: float | None = None,
    command: str | None = None,
    measured: dict | None = None,
) -> Path:
    """Render ``card.json`` (after adding the wall time, the command that reproduces it, and ``measured`` quality
    figures, if given) as the folder's README.md."""
    card = json.loads((folder / "card.json").read_text())
    if wall_seconds is not None:
        card["train_wall_seconds"] = round(wall_seconds, 1)
    if command is not None:
        card["reproduce"] = command
    if measured is not None:
        card["measured"] = {**card.get("measured", {}), **measured}
    (folder / "card.json").write_text(json.dumps(card, indent=1))
    command = card.get("reproduce", f"lcm-bench train {model}")
    history = card.get("loss_history", [])
    rows = [line for k, v in card.items() if k not in ("loss_history", "reproduce") for line in _flatten(k, v)]
    lines = [
        f"# shapes-{model}",
        "",
        DESCRIPTIONS[model],
        "",
        f"Reproduce: `{command}` (seeded; resumes from its checkpoint if interrupted).",
        "",
        "| figure | value |",
        "|---|---|",
        *rows,
        "",
    ]
    stages = history if isinstance(history, dict) else {"": history}
    for stage, values in stages.items():
        if values:
            lines += [
                f"Loss{f' ({stage})' if stage else ''}: {values[0][1]:.4g} at step {int(values[0][0])} -> "
                f"{values[-1][1]:.4g} at step {int(values[-1][0])}.",
                "",
            ]
    path = folder / "README.md"
    path.write_text("\n".join(lines))
    return path
