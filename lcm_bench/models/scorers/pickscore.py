"""PickScore v1 (Kirstain et al. 2023, yuvalkirstain/PickScore): a CLIP ViT-H/14 in transformers' format with the
processor of laion/CLIP-ViT-H-14-laion2B-s32B-b79K; score = logit_scale.exp() x the cosine of the image's and
caption's projected embeddings (about 18 to 23; re-implementations that drop the logit scale print about 0.2).
The image processor's steps (shortest side to its size, bicubic; centre crop; its mean and std) are restated
from ``preprocessor_config.json``; the tokenizer is the processor folder's own (77 tokens, truncated)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lcm_bench.models.scorers.files import Published, load_checked, locate, read_state
from lcm_bench.models.scorers.preprocess import normalise, shortest_side_crop
from lcm_bench.models.scorers.text import TextCache

MODEL = Published(
    "PickScore_v1",
    "yuvalkirstain/PickScore_v1",
    "about 3.9 GB",
    "MIT",
    "checkpoint",
    ("config.json", "model.safetensors|pytorch_model.bin"),
)
PROCESSOR = Published(
    "CLIP-ViT-H-14-laion2B-s32B-b79K",
    "laion/CLIP-ViT-H-14-laion2B-s32B-b79K",
    "about 4 MB (the processor files only)",
    "MIT",
    "processor",
    ("preprocessor_config.json", "tokenizer.json|vocab.json"),
)
MAX_TOKENS = 77


def files(name: str, options: Mapping[str, Any]) -> list[Published]:
    return [MODEL, PROCESSOR]


def backbones(options: Mapping[str, Any]) -> list[tuple[str, dict]]:
    """Other extractors whose weights it reads: none."""
    return []


def weights_file(folder: Path) -> Path:
    return next(p for p in (folder / "model.safetensors", folder / "pytorch_model.bin") if p.is_file())


def _side(value: Any, key: str) -> int:
    return int(value[key]) if isinstance(value, dict) else int(value)


def preprocessing(options: Mapping[str, Any]) -> str:
    """Its preprocessing's revision (part of its weights digest): before 2026-12-07 the crop's offset was rounded as
    torchvision rounds it, which moved a non-square image's crop by a pixel where the excess is odd."""
    return "centre crop offset floored, as transformers' CLIPImageProcessor"


@dataclass
class PickScorer:
    model: Any
    tokenizer: Any
    size: int
    crop: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    device: str

    def __post_init__(self):
        self.text = TextCache(self._text_embeddings)

    def resize(self):
        return shortest_side_crop(self.size, self.crop, offset="floor")

    def _text_embeddings(self, captions: list[str]):
        import torch

        tokens = self.tokenizer(captions, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt").to(
            self.device
        )
        pooled = self.model.text_model(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask).pooler_output
        return torch.nn.functional.normalize(self.model.text_projection(pooled), dim=-1)

    def score(self, images, captions: list[str]):
        """logit_scale.exp() x cosine; images (B, 3, S, S) in [0, 255]."""
        import torch

        pixels = normalise(images.to(self.device), self.mean, self.std)
        pooled = self.model.vision_model(pixel_values=pixels).pooler_output
        image = torch.nn.functional.normalize(self.model.visual_projection(pooled), dim=-1)
        return self.model.logit_scale.exp() * (image * self.text(captions)).sum(dim=-1)


def load(name: str, options: Mapping[str, Any], device: str, field: str, weights: Sequence[Path] = ()) -> PickScorer:
    from transformers import AutoTokenizer, CLIPConfig, CLIPModel

    folder, processor = locate(MODEL, options, field, weights), locate(PROCESSOR, options, field, weights)
    model = CLIPModel(CLIPConfig.from_pretrained(str(folder)))
    path = weights_file(folder)
    load_checked(model, read_state(path, field), field, path, "a CLIP checkpoint for its config.json")
    settings = json.loads((processor / "preprocessor_config.json").read_text())
    return PickScorer(
        model.to(device).eval(),
        AutoTokenizer.from_pretrained(str(processor)),
        _side(settings.get("size", 224), "shortest_edge"),
        _side(settings.get("crop_size", 224), "height"),
        tuple(settings["image_mean"]),
        tuple(settings["image_std"]),
        device,
    )
