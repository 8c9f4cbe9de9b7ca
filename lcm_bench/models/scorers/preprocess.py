"""The reference implementations' image preprocessing, on uint8 HxWx3 arrays (PIL bicubic, as torchvision's
``Resize`` does on PIL images): CLIP's shortest side then a centre crop (ImageReward, PickScore, the aesthetic
predictor) and HPSv2's longest side then zero padding to a square (open_clip's ``ResizeMaxSize``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image


def shortest_side_crop(size: int, crop: int | None = None, offset: str = "round") -> Callable[[np.ndarray], np.ndarray]:
    """Resize(size, bicubic) then CenterCrop(crop, by default size); the crop's offset rounded as torchvision's
    ``CenterCrop`` rounds it (``round``) or floored as transformers' image processors floor it (``floor``)."""
    crop = crop or size
    place = {"round": lambda excess: int(round(excess / 2.0)), "floor": lambda excess: excess // 2}[offset]

    def resize(image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        short, long = sorted((height, width))
        new_long = int(size * long / short)
        new_height, new_width = (size, new_long) if height <= width else (new_long, size)
        resized = np.asarray(Image.fromarray(image).resize((new_width, new_height), Image.BICUBIC))
        top, left = place(new_height - crop), place(new_width - crop)
        return resized[top : top + crop, left : left + crop]

    return resize


def longest_side_pad(size: int) -> Callable[[np.ndarray], np.ndarray]:
    """open_clip's ResizeMaxSize(size): the longest side to ``size`` (bicubic), then zero padding, centred."""

    def resize(image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        scale = size / float(max(height, width))
        new_height, new_width = round(height * scale), round(width * scale)
        resized = np.asarray(Image.fromarray(image).resize((new_width, new_height), Image.BICUBIC))
        out = np.zeros((size, size, 3), np.uint8)
        top, left = (size - new_height) // 2, (size - new_width) // 2
        out[top : top + new_height, left : left + new_width] = resized
        return out

    return resize


def normalise(images, mean: tuple[float, ...], std: tuple[float, ...]):
    """(B, 3, S, S) images in [0, 255] to ToTensor's [0, 1], then Normalize(mean, std), on the images' device."""
    import torch

    shift = torch.tensor(mean, device=images.device).view(1, 3, 1, 1) * 255
    scale = torch.tensor(std, device=images.device).view(1, 3, 1, 1) * 255
    return (images - shift) / scale
