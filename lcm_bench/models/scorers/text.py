"""Text embeddings computed once per caption while a scorer lives (captions repeat across seeds and cells)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


class TextCache:
    """``embed(captions)`` -> one row per caption, each distinct caption embedded once."""

    def __init__(self, embed: Callable[[list[str]], torch.Tensor]):
        self.embed = embed
        self.rows: dict[str, torch.Tensor] = {}

    def __call__(self, captions: list[str]) -> torch.Tensor:
        import torch

        new = [c for c in dict.fromkeys(captions) if c not in self.rows]
        if new:
            self.rows.update(zip(new, self.embed(new), strict=True))
        return torch.stack([self.rows[c] for c in captions])
