"""Image grids: torchvision's ``make_grid`` on uint8 HxWx3 arrays."""

from __future__ import annotations

import numpy as np


def image_grid(images: list[np.ndarray], columns: int, padding: int = 0, fill: int = 0) -> np.ndarray:
    """The images (uint8 HxWx3, one size) in rows of ``columns``, ``padding`` pixels of ``fill`` around and between
    them; the last row's empty places are ``fill`` too."""
    import torch
    from torchvision.utils import make_grid

    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
    return make_grid(batch, nrow=columns, padding=padding, pad_value=fill).permute(1, 2, 0).numpy()
