"""What a feature extractor is: a built ``Extractor`` (features of uint8 images, with the key, label, mode and
weights digest that name them), the registry entry that builds one (``ExtractorDef``) and the registry; the
entries themselves are in ``extractors`` (and ``lpips``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from lcm_bench.core.errors import MissingResourceError, UserError
from lcm_bench.core.paths import weights_dirs
from lcm_bench.core.registry import Registry

if TYPE_CHECKING:
    import torch


@dataclass
class Extractor:
    """A built extractor: features of uint8 images, with the key, label, mode and weights digest that name them."""

    key: str
    label: str
    mode: str
    dim: int
    resize: Callable[[np.ndarray], np.ndarray]
    model_fn: Callable[[torch.Tensor], torch.Tensor]
    device: str = "cpu"
    digest: str = ""
    conditioned: ClassVar[bool] = False
    """Whether its features depend on each image's caption too (``features(images, prompts=...)``)."""

    @property
    def input_size(self) -> int | None:
        """The side its preprocessing resizes to; None where it keeps the image's size."""
        side = self.resize(np.zeros((7, 7, 3), np.uint8)).shape[0]
        return None if side == 7 else int(side)

    def batch_tensor(self, images) -> torch.Tensor:
        import torch

        resized = [np.asarray(self.resize(np.asarray(image)), dtype=np.float32) for image in images]
        return torch.from_numpy(np.stack(resized)).permute(0, 3, 1, 2).contiguous()

    def features(self, images, batch_size: int = 64, prompts=None) -> np.ndarray:
        """(N, dim) float32 features of uint8 HxWx3 images, ``batch_size`` at a time (with their captions, for a
        conditioned extractor)."""
        import torch

        out = []
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                batch = self.batch_tensor(images[start : start + batch_size]).to(self.device)
                captions = None if prompts is None else list(prompts[start : start + batch_size])
                out.append(self.batch_features(batch, captions).float().cpu().numpy().reshape(len(batch), -1))
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def batch_features(self, batch: torch.Tensor, captions: list[str] | None) -> torch.Tensor:
        return self.model_fn(batch)


@dataclass
class ScoreExtractor(Extractor):
    """A scorer as an extractor: one score per image for its caption (``scorer.score(batch, captions)``), cached per
    cell like any extractor's features."""

    scorer: Any = None
    conditioned: ClassVar[bool] = True

    def batch_features(self, batch: torch.Tensor, captions: list[str] | None) -> torch.Tensor:
        return self.scorer.score(batch, captions)


@dataclass(frozen=True)
class ExtractorDef:
    """A registered extractor: ``build(options, device, field, weights)`` returns the Extractor; ``sources(options,
    weights)`` names its weights (files to digest, or immutable published names; None when not on disk yet);
    ``takes`` the metric options it reads; ``modes`` its named preprocessing modes; ``requires`` the options it
    cannot do without, with a hint; ``dim`` its feature width where fixed."""

    build: Callable[..., Extractor]
    sources: Callable[[dict[str, Any], Sequence[Path]], list[Path | str] | None]
    description: str
    takes: frozenset[str] = frozenset()
    modes: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    requires_hint: str = ""
    dim: int | None = None
    """The feature width where the options cannot change it (for checks before anything is built)."""
    input_size: int | None = None
    """The side its preprocessing resizes to, where the options cannot change it."""
    weights: str = ""
    """Where its weights come from, in a few words (``lcm-bench list``)."""

    def check(self, name: str, options: dict[str, Any], field: str) -> None:
        """One-line errors for a missing required option or an unknown preprocessing mode."""
        if any(key not in options for key in self.requires):
            raise UserError(f"{field}: extractor {name} needs {self.requires_hint}")
        if self.modes and options.get("mode", self.modes[0]) not in self.modes:
            raise UserError(f"{field}.mode: '{options['mode']}' is not one of {list(self.modes)}")


EXTRACTORS: Registry[ExtractorDef] = Registry("feature extractor")


def missing_weights(filename: str, url: str, field: str, weights: Sequence[Path]) -> MissingResourceError:
    searched = ", ".join(str(d) for d in weights_dirs(weights))
    return MissingResourceError(
        f"{field}: weights file '{filename}' not found (searched {searched}); download {url} on a machine with "
        f"internet and put it in one of those folders, e.g. $LCM_BENCH_WEIGHTS or --weights-dir"
    )


def state_dict_file(path: Path) -> dict:
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=True)
