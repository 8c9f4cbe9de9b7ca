"""Where lcm-bench keeps caches and looks for metric weights (never inside the installed package)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """$LCM_BENCH_CACHE, else $XDG_CACHE_HOME/lcm-bench."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lcm-bench"
    return Path(os.environ.get("LCM_BENCH_CACHE", default)).expanduser()


def weights_dirs() -> list[Path]:
    """Folders searched for metric weights, in order: $LCM_BENCH_WEIGHTS (or --weights-dir), the lcm-bench cache,
    clean-fid's download folder, and torch hub's checkpoint folder."""
    import torch

    dirs = [Path(p).expanduser() for p in os.environ.get("LCM_BENCH_WEIGHTS", "").split(os.pathsep) if p]
    dirs += [cache_dir() / "weights", Path("/tmp"), Path(torch.hub.get_dir()) / "checkpoints"]
    return dirs


def find_weights(filename: str) -> Path | None:
    for folder in weights_dirs():
        if (folder / filename).is_file():
            return folder / filename
    return None


def offline() -> bool:
    flags = (os.environ.get(k, "").strip().lower() for k in ("HF_HUB_OFFLINE", "LCM_BENCH_OFFLINE"))
    return any(flag in ("1", "true", "yes", "on") for flag in flags)
