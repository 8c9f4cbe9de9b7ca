"""CLIP score from image and caption embeddings, as torchmetrics' ``CLIPScore`` computes it."""

from __future__ import annotations

import numpy as np


def cosine_scores(image_features: np.ndarray, text_features: np.ndarray) -> np.ndarray:
    """100 x cosine per (image, caption) pair, as torchmetrics' CLIPScore computes it before averaging."""
    return 100.0 * np.sum(image_features.astype(np.float64) * text_features.astype(np.float64), axis=1)


def clip_score_value(per_image: np.ndarray) -> float:
    """The mean of per-image scores, clamped at 0 after averaging (torchmetrics' CLIPScore)."""
    return max(float(np.mean(per_image)), 0.0)
