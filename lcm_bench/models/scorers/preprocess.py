"""The reference implementations' image preprocessing, on uint8 HxWx3 arrays: CLIP's shortest side then a centre
crop (ImageReward, PickScore, the aesthetic predictor; PIL bicubic, as torchvision's ``Resize`` does on PIL images)
and HPSv2's longest side then zero padding to a square (open_clip's ``ResizeMaxSize``), on the uint8 image or, as
HPSv2's own transform does it, on the float tensor ``ToTensor`` makes of it."""

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


def square_resize(size: int) -> Callable[[np.ndarray], np.ndarray]:
    """torchvision's ``Resize((size, size), BICUBIC)`` on a PIL image (dgm-eval's DINOv2 transform): PIL's bicubic
    resize of the uint8 image to a square."""
    return lambda image: np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC))


def _longest_side(size: int, height: int, width: int) -> tuple[int, int]:
    scale = size / float(max(height, width))
    return round(height * scale), round(width * scale)


def _padded(resized: np.ndarray, size: int) -> np.ndarray:
    """``resized`` centred on a zero square of side ``size`` (the odd pixel of padding below and right)."""
    height, width = resized.shape[:2]
    out = np.zeros((size, size, 3), resized.dtype)
    top, left = (size - height) // 2, (size - width) // 2
    out[top : top + height, left : left + width] = resized
    return out


def longest_side_pad(size: int) -> Callable[[np.ndarray], np.ndarray]:
    """open_clip's ResizeMaxSize(size) on the PIL image: the longest side to ``size`` (bicubic, uint8), then zero
    padding, centred."""

    def resize(image: np.ndarray) -> np.ndarray:
        new_height, new_width = _longest_side(size, *image.shape[:2])
        return _padded(np.asarray(Image.fromarray(image).resize((new_width, new_height), Image.BICUBIC)), size)

    return resize


def longest_side_pad_tensor(size: int) -> Callable[[np.ndarray], np.ndarray]:
    """HPSv2's validation transform (its open_clip fork's ``image_transform``): ``ToTensor``, then ResizeMaxSize on
    the float tensor (torchvision bicubic, antialiased, unclamped; an image already ``size`` on its longest side is
    not resampled), then zero padding; float32 in [0, 255] (what ``normalise`` reads)."""

    def resize(image: np.ndarray) -> np.ndarray:
        import torch
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms.functional import resize as tensor_resize

        tensor = torch.from_numpy(np.array(image, np.float32)).permute(2, 0, 1) / 255
        shape = _longest_side(size, *image.shape[:2])
        if shape != tuple(image.shape[:2]):
            tensor = tensor_resize(tensor, list(shape), InterpolationMode.BICUBIC, antialias=True)
        return _padded(tensor.permute(1, 2, 0).numpy() * 255, size)

    return resize


HPS_RESIZES = {"tensor": longest_side_pad_tensor, "image": longest_side_pad}
"""HPSv2's resize, by option: on the float tensor as its reference does (first, the default), or on the uint8 image
as lcm-bench did before 2026-12-07."""


def normalise(images, mean: tuple[float, ...], std: tuple[float, ...]):
    """(B, 3, S, S) images in [0, 255] to ToTensor's [0, 1], then Normalize(mean, std), on the images' device."""
    import torch

    shift = torch.tensor(mean, device=images.device).view(1, 3, 1, 1) * 255
    scale = torch.tensor(std, device=images.device).view(1, 3, 1, 1) * 255
    return (images - shift) / scale
