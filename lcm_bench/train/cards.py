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
    "teacher": "Teacher of the embedded default: a StableDiffusionPipeline folder (real CLIP BPE tokenizer from "
    "open_clip's vocabulary, max 32 tokens; CLIPTextModel; UNet2DConditionModel; the embedded VAE; SD's "
    "scaled-linear noise schedule, epsilon prediction), trained from scratch with 10 % caption dropout so "
    "classifier-free guidance works.",
}


def _flatten(prefix: str, value) -> list[str]:
    if isinstance(value, dict):
        return [line for k, v in value.items() for line in _flatten(f"{prefix}.{k}" if prefix else k, v)]
    if isinstance(value, float):
        return [f"| {prefix} | {value:.4g} |"]
    return [f"| {prefix} | {value} |"]


def write_card(folder: Path, model: str, wall_seconds: float | None = None) -> Path:
    card = json.loads((folder / "card.json").read_text())
    if wall_seconds is not None:
        card["train_wall_seconds"] = round(wall_seconds, 1)
        (folder / "card.json").write_text(json.dumps(card, indent=1))
    history = card.get("loss_history", [])
    rows = [line for k, v in card.items() if k != "loss_history" for line in _flatten(k, v)]
    lines = [
        f"# shapes-{model}",
        "",
        DESCRIPTIONS[model],
        "",
        f"Reproduce: `lcm-bench train {model}` (seeded; resumes from its checkpoint if interrupted).",
        "",
        "| figure | value |",
        "|---|---|",
        *rows,
        "",
    ]
    if history:
        lines += [
            f"Loss: {history[0][1]:.4g} at step {int(history[0][0])} -> {history[-1][1]:.4g} at step "
            f"{int(history[-1][0])}.",
            "",
        ]
    path = folder / "README.md"
    path.write_text("\n".join(lines))
    return path
