"""Small synthetic dataset layouts, as the datasets' own files are laid out: COCO (a captions file in COCO's format,
several captions per image, unordered, and a folder of JPEG images of varied sizes, one of them greyscale) and
MJHQ-30K (meta_data.json of image id -> category and prompt, and mjhq30k_imgs/<category>/<id>.jpg)."""

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


MJHQ_CATEGORIES = ("animals", "art", "fashion", "food", "indoor", "landscape", "logo", "people", "plants", "vehicles")


def make_mjhq(root: Path, images: int = 12, seed: int = 0, flat: bool = False) -> tuple[Path, Path]:
    """Write ``meta_data.json`` and ``mjhq30k_imgs/`` (category folders, or one flat folder) under ``root``."""
    rng = random.Random(seed)
    folder, meta = root / "mjhq30k_imgs", {}
    for n in range(images):
        image_id = f"{rng.getrandbits(160):040x}"
        category = MJHQ_CATEGORIES[n % len(MJHQ_CATEGORIES)]
        meta[image_id] = {"category": category, "prompt": f"  {rng.choice(WORDS)} in the style of {category} "}
        side = rng.choice([48, 64, 40])
        pixels = np.random.default_rng(n + seed).integers(0, 256, (side, side + n % 3, 3), dtype=np.uint8)
        path = folder / (f"{image_id}.jpg" if flat else f"{category}/{image_id}.jpg")
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path, quality=90)
    path = root / "meta_data.json"
    path.write_text(json.dumps(dict(sorted(meta.items(), key=lambda item: rng.random()))))
    return path, folder
