"""What every result records about where it came from: git commit, library versions, machine."""

from __future__ import annotations

import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from lcm_bench import __version__
from lcm_bench.core.hardware import machine_info
from lcm_bench.core.paths import package_dir, packaged

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


def git_info(path: Path | None = None) -> dict:
    """The commit of the checkout ``path`` (default: the one lcm-bench runs from) and whether it has changes."""
    path = path or package_dir()

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=path, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    return {"commit": commit, "dirty": bool(git("status", "--porcelain", "--untracked-files=no")) if commit else None}


def source_of(git: dict | None = None) -> str:
    """Where this lcm-bench came from: an installed package, or a checkout at a commit (``dirty`` when changed)."""
    if packaged():
        return "installed package"
    git = git_info() if git is None else git
    if not git.get("commit"):
        return "source tree without git"
    return f"checkout {git['commit'][:12]}{', with changes' if git.get('dirty') else ''}"


def library_versions() -> dict[str, str | None]:
    versions = {"lcm_bench": __version__}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def provenance() -> dict:
    git = git_info()
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": source_of(git),
        "git": git,
        "versions": library_versions(),
        "machine": machine_info(),
    }
