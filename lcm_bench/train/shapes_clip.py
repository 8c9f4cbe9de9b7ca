"""The in-domain CLIP evaluator: an open_clip model from a custom config (lcm-bench-shapes-clip), trained
contrastively (InfoNCE, Radford et al. 2021) on rendered shapes with every colour-shape pair, separately from the
teacher, so CLIP score and CLIP-FD have a judge that is not the student's own text encoder."""

from __future__ import annotations

from dataclasses import astuple
from pathlib import Path

import numpy as np
import torch

from lcm_bench.train.training_loop import Budget

MODEL = "lcm-bench-shapes-clip"


def _features(clip, images: np.ndarray, texts: list[str], batch: int = 500):
    image_chunks, text_chunks = [], []
    with torch.inference_mode():
        for i in range(0, len(texts), batch):
            x = torch.from_numpy(np.ascontiguousarray(images[i : i + batch])).permute(0, 3, 1, 2).float()
            image_chunks.append(clip.image_features(x))
            text_chunks.append(clip.text_features(texts[i : i + batch])[0])
    return torch.cat(image_chunks).numpy(), torch.cat(text_chunks).numpy()


def evaluate_clip(clip, images: np.ndarray, texts: list[str]) -> dict[str, float]:
    """Caption-to-image retrieval top-1 among the set, and CLIP score of matched against shuffled pairs."""
    image_f, text_f = _features(clip, images, texts)
    similarity = text_f @ image_f.T
    same_caption = np.array([[a == b for b in texts] for a in texts])
    top1 = float(np.mean(same_caption[np.arange(len(texts)), similarity.argmax(1)]))
    matched = 100 * np.sum(image_f * text_f, axis=1)
    shuffled = 100 * np.sum(image_f * np.roll(text_f, 1, axis=0), axis=1)
    return {
        "retrieval_top1": top1,
        "clip_score_matched": float(matched.mean()),
        "clip_score_shuffled": float(shuffled.mean()),
    }


BUDGET = Budget(steps=400, batch=256, n_train=40000, n_test=1000)


def train_clip(out: Path, budget: Budget = BUDGET) -> dict:
    from safetensors.torch import save_file

    from lcm_bench.core.io import write_json
    from lcm_bench.models.clip import load_clip
    from lcm_bench.train.splits import rendered
    from lcm_bench.train.training_loop import TrainingPlan, train

    steps, batch, n_train, n_test, log_every = astuple(budget)
    data = rendered("all", n_train)
    images = torch.from_numpy(data.images).permute(0, 3, 1, 2).float()
    clip = load_clip(MODEL, "random")
    tokens = clip.tokenizer(data.captions)
    mean = torch.tensor(clip.mean).view(1, 3, 1, 1) * 255
    std = torch.tensor(clip.std).view(1, 3, 1, 1) * 255

    def loss_fn(model, step, generator):
        idx = torch.randint(0, len(images), (batch,), generator=generator)
        image_f = torch.nn.functional.normalize(model.encode_image((images[idx] - mean) / std), dim=-1)
        text_f = torch.nn.functional.normalize(model.encode_text(tokens[idx]), dim=-1)
        logits = model.logit_scale.exp() * image_f @ text_f.T
        same = torch.tensor([[data.captions[a] == data.captions[b] for b in idx.tolist()] for a in idx.tolist()])
        target = same.float() / same.sum(1, keepdim=True)
        return (
            torch.nn.functional.cross_entropy(logits, target) + torch.nn.functional.cross_entropy(logits.T, target)
        ) / 2

    checkpoint, plan = out.parent / f".{out.name}-checkpoint.pt", TrainingPlan(steps, lr=1e-3, log_every=log_every)
    model, history = train(clip.model.train(), loss_fn, checkpoint, plan, desc="clip")
    out.mkdir(parents=True, exist_ok=True)
    weights = out / "open_clip_model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, weights)
    trained = load_clip(MODEL, str(weights))
    card = {
        "model": MODEL,
        "steps": steps,
        "batch": batch,
        "train_images": n_train,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    for split in ("test", "heldout"):
        held = rendered(split, n_test)
        card[f"eval_{split}"] = evaluate_clip(trained, held.images, held.captions)
    card["loss_history"] = history
    write_json(out / "card.json", card)
    return card
