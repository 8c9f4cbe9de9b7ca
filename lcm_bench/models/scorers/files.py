"""The files a preference scorer reads: where each comes from (``Published``), how it is found (a path option, the
weights folders, the Hugging Face cache, a download when online), how it is read (safetensors, or torch with
``weights_only``: never an arbitrary pickle) and how its layout is checked against what the loader expects
(every expected key present, every shape equal), each failure one line naming the file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lcm_bench.core.errors import MissingResourceError, UserError
from lcm_bench.core.paths import find_weights, offline, weights_dirs

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Published:
    """One published file (or folder, with the ``files`` it must hold): its name, the Hugging Face repository it
    is in, its size and licence, and the metric option that gives its path instead."""

    name: str
    repo: str
    size: str
    licence: str
    option: str
    files: tuple[str, ...] = ()
    """For a folder: the files it must hold (any one of a tuple's alternatives, given as 'a|b')."""

    @property
    def url(self) -> str:
        if self.repo.startswith("https://"):
            return self.repo
        return f"https://huggingface.co/{self.repo}" + ("" if self.files else f"/blob/main/{self.name}")

    def describe(self) -> str:
        return f"{self.name} ({self.size}, {self.licence}, from {self.url})"


def _folder_holds(folder: Path, files: Sequence[str]) -> bool:
    return folder.is_dir() and all(any((folder / f).is_file() for f in each.split("|")) for each in files)


def _in_hub_cache(item: Published) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    if item.repo.startswith("https://"):
        return None
    if not item.files:
        found = try_to_load_from_cache(item.repo, item.name)
        return Path(found) if isinstance(found, str) else None
    for each in item.files[0].split("|"):
        found = try_to_load_from_cache(item.repo, each)
        if isinstance(found, str) and _folder_holds(Path(found).parent, item.files):
            return Path(found).parent
    return None


def _download(item: Published) -> Path | None:
    from huggingface_hub import hf_hub_download, snapshot_download

    if item.repo.startswith("https://"):
        return None
    try:
        if not item.files:
            return Path(hf_hub_download(item.repo, item.name))
        patterns = [f for each in item.files for f in each.split("|")]
        return Path(snapshot_download(item.repo, allow_patterns=patterns))
    except Exception:  # noqa: BLE001 - any failed download means the same to the user
        return None


def find(item: Published, options: Mapping[str, Any], weights: Sequence[Path] = ()) -> Path | None:
    """The file or folder: the option's path, else the weights folders, else the Hugging Face cache; None if absent."""
    if options.get(item.option):
        path = Path(str(options[item.option])).expanduser()
        if item.files:
            return path if _folder_holds(path, item.files) else None
        return path / item.name if path.is_dir() and (path / item.name).is_file() else path if path.is_file() else None
    if item.files:
        local = next((d / item.name for d in weights_dirs(weights) if _folder_holds(d / item.name, item.files)), None)
        return local or _in_hub_cache(item)
    return find_weights(item.name, weights) or _in_hub_cache(item)


def locate(item: Published, options: Mapping[str, Any], field: str, weights: Sequence[Path] = ()) -> Path:
    """As ``find``, downloading when online; absent: one line naming the file, where it comes from and where to
    put it."""
    found = find(item, options, weights)
    if found is None and options.get(item.option):
        what = f"a folder holding {', '.join(item.files)}" if item.files else f"the file {item.name}"
        raise UserError(f"{field}.{item.option}: '{options[item.option]}' is not {what}")
    found = found or (None if offline() else _download(item))
    if found is None:
        searched = ", ".join(str(d) for d in weights_dirs(weights))
        raise MissingResourceError(
            f"{field}: {item.describe()} not found in the weights folders ({searched}) or the Hugging Face cache; "
            f"download it on a machine with internet and put it in one of those folders (--weights-dir, "
            f"$LCM_BENCH_WEIGHTS), or set {item.option}: PATH"
        )
    return found


def read_state(path: Path, field: str) -> dict[str, torch.Tensor]:
    """A state dict from safetensors, or from a torch checkpoint read with ``weights_only`` (unwrapping a
    'state_dict' entry); a torn file or one that needs arbitrary unpickling is one line."""
    import pickle

    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise UserError(
            f"{field}: '{path}' holds Python objects that only an unrestricted unpickler can rebuild (refused: "
            "lcm-bench reads checkpoints with weights_only); on a machine you trust, save its tensors as a state "
            "dict: torch.save(dict(model.state_dict()), 'out.pt') or safetensors.torch.save_file"
        ) from None
    except Exception as exc:  # noqa: BLE001 - torch and safetensors raise many types for a torn file
        raise UserError(
            f"{field}: '{path}' is truncated or not a checkpoint ({path.stat().st_size:,} bytes; "
            f"{type(exc).__name__}); download it again"
        ) from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{field}: '{path}' is not a state dict (names to tensors)")
    return state


def check_layout(expected: Mapping[str, tuple[int, ...]], state: Mapping[str, Any], field: str, path: Path, what: str):
    """Every key the loader expects is in ``state`` with the expected shape; else one line: which keys are missing
    or differ, and that the file is not ``what``."""
    missing = [k for k in expected if k not in state]
    differ = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k])]
    if not missing and not differ:
        return
    parts = [f"{len(missing)} of its {len(expected)} keys missing (e.g. {missing[0]})"] if missing else []
    parts += (
        [
            f"{len(differ)} shapes differ (e.g. {differ[0]}: {tuple(state[differ[0]].shape)}, expected "
            f"{tuple(expected[differ[0]])})"
        ]
        if differ
        else []
    )
    raise UserError(f"{field}: '{path}' is not {what}: {'; '.join(parts)}")


def load_checked(module: torch.nn.Module, state: Mapping[str, Any], field: str, path: Path, what: str):
    """Check ``state`` against ``module``'s own keys and shapes, then load it (keys the module lacks are ignored)."""
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    check_layout(expected, state, field, path, what)
    module.load_state_dict({k: state[k] for k in expected})
    return module
