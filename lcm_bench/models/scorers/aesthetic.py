"""The LAION aesthetic predictor v2 (christophschuhmann/improved-aesthetic-predictor, ``simple_inference.py``): an
OpenAI CLIP ViT-L/14 image embedding, L2-normalised, through the MLP of ``sac+logos+ava1-l14-linearMSE.pth`` (a
torch state dict, as the repository ships it); a 1 to 10 scale (about 5 to 6 for today's text-to-image models).
CLIP through open_clip (``ViT-L-14-quickgelu``/``openai``: OpenAI's weights with their QuickGELU), preprocessed as
OpenAI's ``clip.load`` does (shortest side to 224, bicubic; centre crop)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lcm_bench.models.scorers.files import Published, load_checked, locate, read_state
from lcm_bench.models.scorers.heads import mlp_head
from lcm_bench.models.scorers.preprocess import shortest_side_crop

HEAD = Published(
    "sac+logos+ava1-l14-linearMSE.pth",
    "https://github.com/christophschuhmann/improved-aesthetic-predictor",
    "3.7 MB",
    "Apache-2.0",
    "head",
)
CLIP = ("ViT-L-14-quickgelu", "openai")


def files(name: str, options: Mapping[str, Any]) -> list[Published]:
    return [HEAD]


def backbones(options: Mapping[str, Any]) -> list[tuple[str, dict]]:
    """The CLIP whose embeddings the head reads, as the ``clip`` extractor finds its weights."""
    return [("clip", {"model": options.get("model", CLIP[0]), "pretrained": options.get("pretrained", CLIP[1])})]


@dataclass
class AestheticScorer:
    clip: Any
    head: Any
    size: int

    def resize(self):
        return shortest_side_crop(self.size)

    def score(self, images, captions: list[str]):
        """The head's rating of each image's normalised CLIP embedding (captions unused)."""
        return self.head(self.clip.image_features(images)).squeeze(-1)


def load(
    name: str, options: Mapping[str, Any], device: str, field: str, weights: Sequence[Path] = ()
) -> AestheticScorer:
    from lcm_bench.models.clip import load_clip

    path = locate(HEAD, options, field, weights)
    clip = load_clip(str(options.get("model", CLIP[0])), str(options.get("pretrained", CLIP[1])), device, field)
    from torch import nn

    published = nn.Module()
    published.layers = mlp_head(clip.model.visual.output_dim)
    what = f"an aesthetic head for {clip.tag} ({clip.model.visual.output_dim}-d embeddings)"
    load_checked(published, read_state(path, field), field, path, what)
    return AestheticScorer(clip, published.layers.to(device).eval(), clip.image_size)
