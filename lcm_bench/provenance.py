"""What every result records about where it came from: git commit, library versions, machine."""

from __future__ import annotations

import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from . import __version__
from .hardware import machine_info

LIBRARIES = (
    "torch",
    "diffusers",
    "transformers",
    "peft",
    "safetensors",
    "numpy",
    "torchmetrics",
    "clean-fid",
    "open_clip_torch",
)


PACKAGE_DIR = Path(__file__).resolve().parent


def git_info(path: Path = PACKAGE_DIR) -> dict:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=path, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    return {"commit": commit, "dirty": bool(git("status", "--porcelain", "--untracked-files=no")) if commit else None}


def library_versions() -> dict[str, str | None]:
    versions = {"lcm_bench": __version__}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def provenance() -> dict:
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git": git_info(),
        "versions": library_versions(),
        "machine": machine_info(),
    }
