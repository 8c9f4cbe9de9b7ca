"""Pipeline folders whose components may live elsewhere: ``shared_components.json`` maps a component to a folder
relative to the pipeline (the embedded students share the teacher's text encoder, tokenizer and VAE instead of
repeating them). A component the folder holds itself always wins.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from lcm_bench.core.errors import UserError

SHARED_COMPONENTS = "shared_components.json"


def shared_components(pipeline_path: Path) -> dict[str, Path]:
    """{component: folder} for the components this pipeline borrows and does not hold itself."""
    index = Path(pipeline_path) / SHARED_COMPONENTS
    if not index.is_file():
        return {}
    try:
        entries = json.loads(index.read_text())
    except ValueError as exc:
        raise UserError(f"{index}: not JSON ({exc})") from None
    if not isinstance(entries, dict) or not all(isinstance(v, str) for v in entries.values()):
        raise UserError(f'{index}: expected {{component: folder relative to the pipeline}}, e.g. {{"vae": "../t/vae"}}')
    return {
        name: (pipeline_path / rel).resolve() for name, rel in entries.items() if not (pipeline_path / name).exists()
    }


def component_folder(pipeline_path: Path, name: str) -> Path:
    """Where the pipeline's component ``name`` lives: its own sub-folder, else the shared folder it names, else
    (an export that keeps a VAE's decoder apart) ``NAME_decoder``."""
    own = Path(pipeline_path) / name
    decoder = Path(pipeline_path) / f"{name}_decoder"
    return shared_components(pipeline_path).get(name, decoder if not own.exists() and decoder.is_dir() else own)


def load_shared_components(pipeline_path: Path, dtype) -> dict[str, Any]:
    """The borrowed components, loaded with the classes ``model_index.json`` names, as ``from_pretrained`` kwargs."""
    import torch

    shared = shared_components(pipeline_path)
    if not shared:
        return {}
    index = json.loads((Path(pipeline_path) / "model_index.json").read_text())
    loaded = {}
    for name, folder in shared.items():
        library, class_name = index[name]
        loader = getattr(importlib.import_module(library), class_name)
        kwargs = {"torch_dtype": dtype} if issubclass(loader, torch.nn.Module) else {}
        loaded[name] = loader.from_pretrained(folder, **kwargs)
    return loaded
