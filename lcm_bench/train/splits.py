"""Rendered splits of the shapes domain, cached as .npy (no pickles) under the lcm-bench cache."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lcm_bench.core.io import on_terminal
from lcm_bench.core.paths import cache_dir
from lcm_bench.domain.shapes import DOMAIN_VERSION, HEADS, captions, labels, parse, render

SPLIT_SEEDS = {"train": 0, "test": 1, "heldout": 2, "all": 3}


@dataclass
class ShapesData:
    images: np.ndarray
    captions: list[str]
    labels: dict[str, np.ndarray]


def rendered(split: str, n: int, size: int = 32, progress: bool = True) -> ShapesData:
    """``n`` captions of ``split`` with one rendered image each (render seed = index), cached."""
    from tqdm import tqdm

    texts = captions(split, n, SPLIT_SEEDS[split])
    folder = cache_dir() / "data" / f"shapes-v{DOMAIN_VERSION}-{split}-{n}-{size}"
    images_path = folder / "images.npy"
    if not images_path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        images = np.stack(
            [
                render(t, i, size)
                for i, t in enumerate(tqdm(texts, desc=f"rendering {split}", disable=not on_terminal(progress)))
            ]
        )
        tmp = folder / "images.tmp.npy"
        np.save(tmp, images)
        tmp.replace(images_path)
    images = np.load(images_path, allow_pickle=False)
    scene_labels = [labels(parse(t)) for t in texts]
    return ShapesData(images, texts, {k: np.array([lab[k] for lab in scene_labels]) for k in HEADS})
