"""Where lcm-bench finds what it ships (the embedded models, prompt sets and suites) and keeps its caches (never
inside the installed package). Every path is resolved when asked, never at import, so the environment of the call
($LCM_BENCH_CACHE, the current directory, a wheel or a checkout) decides."""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path


def package_dir() -> Path:
    """The ``lcm_bench`` package folder."""
    return Path(__file__).resolve().parent.parent


def packaged() -> bool:
    """Whether this lcm-bench runs from an installed wheel (its data copied into ``lcm_bench/_embedded``)."""
    return (package_dir() / "_embedded").is_dir()


def embedded_root() -> Path:
    """The folder holding ``data/`` (models, prompt sets) and ``suites/``: inside an installed wheel
    (``lcm_bench/_embedded``, copied there at build time), else the source checkout the package runs from."""
    return package_dir() / "_embedded" if packaged() else package_dir().parent


def model_output_dir() -> Path:
    """Where ``lcm-bench train`` / ``distill`` write an embedded model by default: ``data/models`` of a checkout,
    the current directory for an installed package (never inside it)."""
    return Path.cwd() if packaged() else embedded_models_dir()


def data_dir() -> Path:
    return embedded_root() / "data"


def embedded_models_dir() -> Path:
    """``data/models``: the models lcm-bench trained and ships."""
    return data_dir() / "models"


def suites_dir() -> Path:
    return embedded_root() / "suites"


def cache_dir() -> Path:
    """$LCM_BENCH_CACHE, else $XDG_CACHE_HOME/lcm-bench."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lcm-bench"
    return Path(os.environ.get("LCM_BENCH_CACHE", default)).expanduser()


def weights_dirs(extra: Sequence[str | Path] = ()) -> list[Path]:
    """Folders searched for metric weights, in order: ``extra`` (``--weights-dir``), $LCM_BENCH_WEIGHTS, the
    lcm-bench cache and torch hub's checkpoint folder."""
    dirs = [Path(p).expanduser() for p in extra]
    dirs += [Path(p).expanduser() for p in os.environ.get("LCM_BENCH_WEIGHTS", "").split(os.pathsep) if p]
    dirs += [cache_dir() / "weights", torch_hub_dir() / "checkpoints"]
    return dirs


def torch_hub_dir() -> Path:
    """``torch.hub.get_dir()`` without importing torch: $TORCH_HOME/hub, $TORCH_HOME defaulting to
    $XDG_CACHE_HOME/torch or ~/.cache/torch (torch's own rule; a process that called ``torch.hub.set_dir`` is the
    one case this does not see)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return Path(os.environ.get("TORCH_HOME", cache / "torch")).expanduser() / "hub"


def find_weights(filename: str, extra: Sequence[str | Path] = ()) -> Path | None:
    for folder in weights_dirs(extra):
        if (folder / filename).is_file():
            return folder / filename
    return None


@contextmanager
def forced_offline():
    """Within the block, ``offline()`` is true (LCM_BENCH_OFFLINE=1): lookups report what is absent instead of
    downloading it."""
    previous = os.environ.get("LCM_BENCH_OFFLINE")
    os.environ["LCM_BENCH_OFFLINE"] = "1"
    try:
        yield
    finally:
        if previous is None:
            del os.environ["LCM_BENCH_OFFLINE"]
        else:
            os.environ["LCM_BENCH_OFFLINE"] = previous


def offline() -> bool:
    flags = (os.environ.get(k, "").strip().lower() for k in ("HF_HUB_OFFLINE", "LCM_BENCH_OFFLINE"))
    return any(flag in ("1", "true", "yes", "on") for flag in flags)


def dataset_dirs() -> list[Path]:
    """Folders holding prepared datasets (``lcm-bench data``), in order: $LCM_BENCH_DATA, the lcm-bench cache's
    ``datasets``. ``lcm-bench data`` writes into the first."""
    dirs = [Path(p).expanduser() for p in os.environ.get("LCM_BENCH_DATA", "").split(os.pathsep) if p]
    return dirs + [cache_dir() / "datasets"]


def find_dataset(name: str) -> Path | None:
    """The prepared folder of dataset ``name`` (one holding a manifest), first in ``dataset_dirs()``."""
    return next((d / name for d in dataset_dirs() if (d / name / "manifest.json").is_file()), None)
