"""Checkpoints from the Hugging Face cache: located offline first, downloaded only when online and allowed, and
checked for every file a pipeline (or a UNet, or a LoRA) needs; what is missing is one line saying how to get it."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from lcm_bench.core.errors import MissingResourceError
from lcm_bench.core.paths import offline
from lcm_bench.models.components import component_folder


def is_hub_id(source: str) -> bool:
    return source.count("/") == 1 and not source.startswith((".", "/", "~")) and all(source.split("/"))


def missing_components(folder: Path, unet_only: bool = False) -> list[str]:
    from lcm_bench.models.openvino import is_openvino_folder, missing_openvino_files

    if not unet_only and is_openvino_folder(folder):
        return missing_openvino_files(folder)
    if unet_only:
        names = ["."]
    else:
        index = folder / "model_index.json"
        if not index.is_file():
            return ["model_index.json (and every component folder)"]
        spec = json.loads(index.read_text())
        names = [k for k, v in spec.items() if not k.startswith("_") and isinstance(v, list) and v[0] is not None]
    missing = []
    for name in names:
        comp = component_folder(folder, name)
        if name.startswith("tokenizer"):
            if not comp.is_dir() or not any(comp.iterdir()):
                missing.append(f"{name}/")
            continue
        if name == "scheduler":
            if not (comp / "scheduler_config.json").is_file():
                missing.append("scheduler/scheduler_config.json")
            continue
        if not (comp / "config.json").is_file():
            missing.append(f"{name}/config.json")
        if not any(comp.glob("*.safetensors")) and not any(comp.glob("*.bin")):
            missing.append(f"{name}/*.safetensors")
    return missing


def _how_to_provide(repo: str, gated: bool = False, filename: str = "") -> str:
    first = (
        f"it is gated: accept its licence at https://huggingface.co/{repo} and log in with `hf auth login`, then "
        if gated
        else ""
    )
    command = f"hf download {repo} {filename}".rstrip()
    return (
        f"{first}on a machine with internet run `{command}` (then copy the HF cache, "
        f"HF_HOME={os.environ.get('HF_HOME', '~/.cache/huggingface')}), or point `path:` at a local copy"
    )


def _download(fetch: Callable[[], str]) -> tuple[Path | None, str]:
    """What ``fetch`` downloads where downloading is allowed (online, HF_HUB_OFFLINE unset), else why not."""
    if offline():
        return None, "HF_HUB_OFFLINE is set"
    try:
        return Path(fetch()), ""
    except Exception as exc:  # noqa: BLE001 - any download failure means the same thing to the user
        return None, f"download failed ({type(exc).__name__})"


def locate_repo(repo: str, unet_only: bool = False, lora: bool = False, gated: bool = False) -> Path:
    """Folder of a Hugging Face repo in the local cache; downloads only when online and not HF_HUB_OFFLINE (a
    ``gated`` repository's message says how to be let in)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(repo, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        folder = None
    missing = ["(nothing cached)"] if folder is None else []
    if folder is not None and not lora:
        missing = missing_components(folder, unet_only)
    if not missing:
        return folder
    folder, reason = _download(lambda: snapshot_download(repo, allow_patterns=None))
    if folder is not None:
        return folder
    raise MissingResourceError(
        f"model '{repo}' is not available locally and {reason}; missing: {', '.join(missing)}; "
        + _how_to_provide(repo, gated)
    )


def locate_file(repo: str, filename: str, gated: bool = False) -> Path:
    """One file of a Hugging Face repo in the local cache (a single-file UNet or LoRA among many in its repo)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(repo, filename, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        pass
    path, reason = _download(lambda: hf_hub_download(repo, filename))
    if path is not None:
        return path
    raise MissingResourceError(
        f"'{filename}' of '{repo}' is not available locally and {reason}; " + _how_to_provide(repo, gated, filename)
    )
