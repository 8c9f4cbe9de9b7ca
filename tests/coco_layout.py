"""A small synthetic COCO layout, as COCO's own files are laid out: a captions file in COCO's format (several
captions per image, unordered) and a folder of JPEG images of varied sizes, one of them greyscale."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
from PIL import Image

WORDS = ("a cat", "two dogs", "a red bus", "a bowl of fruit", "a man surfing", "a train", "a kite", "a pizza")


def file_name(split: str, image_id: int) -> str:
    return f"COCO_{split}_{image_id:012d}.jpg" if split.endswith("2014") else f"{image_id:012d}.jpg"


def make_coco(root: Path, split: str = "val2014", images: int = 12, seed: int = 0) -> tuple[Path, Path]:
    """Write ``annotations/captions_<split>.json`` and ``<split>/`` under ``root``; returns both paths."""
    rng = random.Random(seed)
    folder = root / split
    folder.mkdir(parents=True, exist_ok=True)
    entries, annotations, next_id = [], [], 1000
    ids = rng.sample(range(1, 600_000), images)
    for n, image_id in enumerate(ids):
        width, height = rng.choice([(64, 48), (48, 80), (70, 70), (90, 41)])
        pixels = np.random.default_rng(image_id).integers(0, 256, (height, width, 3), dtype=np.uint8)
        image = Image.fromarray(pixels)
        if n == 0:
            image = image.convert("L")
        image.save(folder / file_name(split, image_id), quality=90)
        entries.append({"id": image_id, "file_name": file_name(split, image_id), "width": width, "height": height})
        for _ in range(rng.randint(3, 6)):
            next_id += rng.randint(1, 9)
            caption = f" {rng.choice(WORDS)} next to {rng.choice(WORDS)}  "
            annotations.append({"image_id": image_id, "id": next_id, "caption": caption})
    rng.shuffle(annotations)
    info = {"description": f"COCO {split[-4:]} Dataset", "year": int(split[-4:])}
    path = root / "annotations" / f"captions_{split}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"info": info, "images": entries, "licenses": [], "annotations": annotations}))
    return path, folder


def make_instances(root: Path, split: str = "val2014") -> Path:
    """An instances file (bounding boxes, no captions) of the same split."""
    path = root / "annotations" / f"instances_{split}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    annotation = {"image_id": 1, "id": 1, "bbox": [0, 0, 4, 4], "category_id": 3, "area": 16.0}
    images = [{"id": 1, "file_name": file_name(split, 1)}]
    path.write_text(json.dumps({"images": images, "annotations": [annotation], "categories": []}))
    return path
