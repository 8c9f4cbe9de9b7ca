"""Human-preference scores as metrics (per image, higher is better): HPSv2, HPSv2.1, ImageReward, PickScore and
the LAION aesthetic predictor. ``SCORERS`` says what each is (label, version, scale, the options it reads, the
module of ``lcm_bench.models.scorers`` that loads it); each is one metric entry here and one extractor entry of the
same name (``preference_extractors``: the scorer, whose 'features' are one score per image for its caption, cached
per cell like any extractor's)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lcm_bench.metrics.entry import CellInputs, register_metric


@dataclass(frozen=True)
class PreferenceScorer:
    label: str
    version: str
    scale: str
    description: str
    takes: frozenset[str]
    module: str
    """The module of ``lcm_bench.models.scorers`` whose ``load`` and ``files`` serve it."""
    defaults: dict[str, Any] = field(default_factory=dict)
    choices: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Options naming one of a few computations (the reference's first and the default), as metrics' choices."""


HPS_RESIZE_CHOICES = ("tensor", "image")
"""HPSv2's resize (``lcm_bench.models.scorers.preprocess.HPS_RESIZES``): on the float tensor as its reference does,
or on the uint8 image (lcm-bench before 2026-12-07)."""

SCORERS = {
    "hpsv2": PreferenceScorer(
        "HPSv2",
        "v2.0",
        "the cosine, about 0.25-0.32; the HPSv2 benchmark prints 100 x it",
        "open_clip ViT-H-14 with HPS_v2_compressed.pt; cosine of the normalised image and caption embeddings "
        "(Wu et al. 2023)",
        frozenset({"model", "checkpoint"}),
        "hps",
        {"resize": "tensor"},
        {"resize": HPS_RESIZE_CHOICES},
    ),
    "hpsv2.1": PreferenceScorer(
        "HPSv2.1",
        "v2.1",
        "the cosine, about 0.25-0.32; not comparable with v2.0's",
        "open_clip ViT-H-14 with HPS_v2.1_compressed.pt; cosine of the normalised image and caption embeddings",
        frozenset({"model", "checkpoint"}),
        "hps",
        {"resize": "tensor"},
        {"resize": HPS_RESIZE_CHOICES},
    ),
    "imagereward": PreferenceScorer(
        "ImageReward",
        "v1.0",
        "a standardised reward, about -2 to 2",
        "BLIP ViT-L image tokens, BERT with cross-attention reading the caption (35 tokens), MLP head (Xu et al. 2023)",
        frozenset({"checkpoint", "config", "tokenizer"}),
        "imagereward",
    ),
    "pickscore": PreferenceScorer(
        "PickScore",
        "v1",
        "logit_scale.exp() x cosine, about 18-23",
        "CLIP ViT-H/14 fine-tuned on Pick-a-Pic, transformers format, laion's processor (Kirstain et al. 2023)",
        frozenset({"checkpoint", "processor"}),
        "pickscore",
    ),
    "aesthetic": PreferenceScorer(
        "aesthetic",
        "LAION v2",
        "a 1-10 rating",
        "OpenAI CLIP ViT-L/14 image embedding, normalised, through sac+logos+ava1-l14-linearMSE.pth's MLP",
        frozenset({"model", "pretrained", "head"}),
        "aesthetic",
    ),
}


def register_preference(name: str, scorer: PreferenceScorer) -> None:
    """Metric ``name``: the mean of its extractor's per-image scores, with a bootstrap interval."""

    @register_metric(
        name,
        label=scorer.label,
        higher_is_better=True,
        kind="per-image",
        measures="preference",
        description=f"{scorer.description}; version {scorer.version}; {scorer.scale}",
        extractor=lambda options: (
            name,
            {k: v for k, v in options.items() if k in scorer.takes | set(scorer.defaults)},
        ),
        takes=scorer.takes,
        defaults=scorer.defaults,
        choices=scorer.choices,
    )
    def preference(inputs: CellInputs) -> dict[str, Any]:
        from lcm_bench.metrics.distances import bootstrap_ci

        scores = inputs.features[:, 0].astype(np.float64)
        low, high = bootstrap_ci(scores)
        return {
            "value": float(scores.mean()),
            "ci95": [float(low), float(high)],
            "per_image": [round(float(v), 5) for v in scores],
            "version": scorer.version,
            "scale": scorer.scale,
        }


for _name, _scorer in SCORERS.items():
    register_preference(_name, _scorer)
