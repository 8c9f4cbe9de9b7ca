"""The attribute judge: a small CNN that reads every attribute of a shapes image (GenEval-style accuracy)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lcm_bench.domain.shapes import HEADS


class Judge(nn.Module):
    """Conv net on 32x32 images with one classification head per attribute; ``features`` are its pooled
    penultimate activations (an in-domain feature extractor). Trained with shifts, noise and blur so that it reads
    decoded (slightly soft) images as well as crisp renders."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.width = width

        def block(i, o):
            return nn.Sequential(
                nn.Conv2d(i, o, 3, padding=1),
                nn.GroupNorm(8, o),
                nn.SiLU(),
                nn.Conv2d(o, o, 3, padding=1),
                nn.GroupNorm(8, o),
                nn.SiLU(),
            )

        self.body = nn.Sequential(
            block(3, width),
            nn.MaxPool2d(2),
            block(width, 2 * width),
            nn.MaxPool2d(2),
            block(2 * width, 2 * width),
            nn.Flatten(),
            nn.Linear(2 * width * 64, 256),
            nn.SiLU(),
        )
        self.heads = nn.ModuleDict({name: nn.Linear(256, n) for name, n in HEADS.items()})

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 256) features of uint8-range (B, 3, 32, 32) float images."""
        return self.body(images / 127.5 - 1)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.features(images)
        return {name: head(h) for name, head in self.heads.items()}


def to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()


def predict(judge: Judge, images: np.ndarray, batch_size: int = 256) -> dict[str, np.ndarray]:
    out: dict[str, list] = {name: [] for name in HEADS}
    device = next(judge.parameters()).device
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            logits = judge(to_tensor(images[start : start + batch_size]).to(device))
            for name in HEADS:
                out[name].append(logits[name].argmax(1).cpu().numpy())
    return {name: np.concatenate(v) for name, v in out.items()}


def accuracy(judge: Judge, images: np.ndarray, labels: dict[str, np.ndarray]) -> dict[str, float]:
    """Per attribute and overall: shape, colour (both objects), position (layout), size, background, all."""
    pred = predict(judge, images)
    hit = {name: pred[name] == labels[name] for name in HEADS}
    groups = {
        "shape": hit["shape_a"] & hit["shape_b"],
        "colour": hit["colour_a"] & hit["colour_b"],
        "position": hit["layout"],
        "size": hit["size"],
        "background": hit["background"],
    }
    groups["all"] = np.logical_and.reduce(list(hit.values()))
    return {name: float(v.mean()) for name, v in groups.items()}


def save_judge(judge: Judge, folder: Path, card: dict) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in judge.state_dict().items()}, folder / "judge.safetensors")
    (folder / "config.json").write_text(json.dumps({"width": judge.width, "heads": HEADS}, indent=1))
    (folder / "card.json").write_text(json.dumps(card, indent=1))


def load_judge(folder: Path) -> Judge:
    from safetensors.torch import load_file

    config = json.loads((folder / "config.json").read_text())
    judge = Judge(config["width"])
    judge.load_state_dict(load_file(folder / "judge.safetensors"))
    return judge.eval()
