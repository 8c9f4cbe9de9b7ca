"""HPSv2 and HPSv2.1 (Wu et al. 2023, tgxs002/HPSv2 ``img_score.py``): open_clip ViT-H-14 with the HPS checkpoint
loaded over it; the score is the cosine of the normalised image and caption embeddings (about 0.25 to 0.32; the
HPSv2 benchmark prints 100 x that). Images go through HPSv2's validation transform: ``ToTensor``, then
``ResizeMaxSize`` (longest side to 224, bicubic on the float tensor, zero padding); option ``resize: image`` resizes
the uint8 image instead (lcm-bench's computation before 2026-12-07)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lcm_bench.core.errors import UserError
from lcm_bench.models.scorers.files import Published, load_checked, locate, read_state
from lcm_bench.models.scorers.preprocess import HPS_RESIZES
from lcm_bench.models.scorers.text import TextCache

CHECKPOINTS = {
    "v2.0": Published("HPS_v2_compressed.pt", "xswu/HPSv2", "about 1.9 GB", "Apache-2.0", "checkpoint"),
    "v2.1": Published("HPS_v2.1_compressed.pt", "xswu/HPSv2", "about 1.9 GB", "Apache-2.0", "checkpoint"),
}
ARCHITECTURE = "ViT-H-14"
VERSIONS = {"hpsv2": "v2.0", "hpsv2.1": "v2.1"}


def files(name: str, options: Mapping[str, Any]) -> list[Published]:
    return [CHECKPOINTS[VERSIONS[name]]]


def backbones(options: Mapping[str, Any]) -> list[tuple[str, dict]]:
    """Other extractors whose weights it reads: none (the HPS checkpoint holds the whole CLIP)."""
    return []


def preprocessing(options: Mapping[str, Any]) -> str | None:
    """Its preprocessing's revision (part of its weights digest) where it is not the one before 2026-12-07 (the
    uint8 resize, ``resize: image``), so scores of either are cached apart."""
    if options.get("resize", "tensor") == "image":
        return None
    return "longest side resized on the float tensor, as HPSv2's validation transform"


def _check_version(path: Path, version: str, field: str) -> None:
    """A published checkpoint of another HPS version under this one's metric is refused: the scales differ."""
    for other, item in CHECKPOINTS.items():
        if other != version and path.name == item.name:
            metric = next(name for name, each in VERSIONS.items() if each == other)
            raise UserError(f"{field}.checkpoint: '{path.name}' is HPS {other}, not {version}; use metric {metric}")


@dataclass
class HpsScorer:
    clip: Any
    text: TextCache
    size: int
    resize_on: str = "tensor"

    def resize(self):
        return HPS_RESIZES[self.resize_on](self.size)

    def score(self, images, captions: list[str]):
        """Cosine of the image's and its caption's normalised embeddings; images (B, 3, S, S) in [0, 255]."""
        return (self.clip.image_features(images) * self.text(captions)).sum(dim=-1)


def load(name: str, options: Mapping[str, Any], device: str, field: str, weights: Sequence[Path] = ()) -> HpsScorer:
    """Metric ``name``'s HPS version over open_clip ``model`` (ViT-H-14 unless given)."""
    from lcm_bench.models.clip import load_clip

    version = VERSIONS[name]
    path = locate(CHECKPOINTS[version], options, field, weights)
    _check_version(path, version, field)
    architecture = str(options.get("model", ARCHITECTURE))
    clip = load_clip(architecture, "random", "cpu", field)
    what = f"an HPS checkpoint for open_clip {architecture}"
    load_checked(clip.model, read_state(path, field), field, path, what)
    clip.model.to(device).eval()
    clip.device = device
    text = TextCache(lambda captions: clip.text_features(captions)[0])
    return HpsScorer(clip, text, clip.image_size, str(options.get("resize", "tensor")))
