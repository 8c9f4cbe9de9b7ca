"""The shipped form of an embedded model folder: floating-point weights stored in half precision (loaded back in
the pipeline's dtype) and components shared with another folder instead of repeated (``shared_components.json``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from lcm_bench.core.digests import files_digest
from lcm_bench.core.errors import UserError
from lcm_bench.core.io import write_json
from lcm_bench.models.components import SHARED_COMPONENTS


def halve(folder: Path) -> list[Path]:
    """Rewrite every safetensors file under ``folder`` with its float32 tensors as float16 (metadata kept, each file
    replaced atomically); returns the files that changed."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    changed = []
    for file in sorted(Path(folder).rglob("*.safetensors")):
        with safe_open(str(file), "pt") as f:
            metadata = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
        if not any(t.dtype == torch.float32 for t in tensors.values()):
            continue
        halved = {k: t.half() if t.dtype == torch.float32 else t for k, t in tensors.items()}
        tmp = file.with_name(f".{file.name}.tmp")
        save_file(halved, str(tmp), metadata=metadata)
        os.replace(tmp, file)
        changed.append(file)
    return changed


def _same_component(a: Path, b: Path) -> bool:
    """Same weights (the safetensors files' names and sha256, through the digest cache) or, for tokenizers, the
    same vocabulary, merges and maximum length."""
    weights_a, weights_b = sorted(a.glob("*.safetensors")), sorted(b.glob("*.safetensors"))
    if weights_a or weights_b:
        return files_digest(weights_a) == files_digest(weights_b)
    if (a / "tokenizer.json").is_file() and (b / "tokenizer.json").is_file():
        vocab = [json.loads((p / "tokenizer.json").read_text())["model"] for p in (a, b)]
        length = [json.loads((p / "tokenizer_config.json").read_text()).get("model_max_length") for p in (a, b)]
        return vocab[0] == vocab[1] and length[0] == length[1]
    return False


def share(folder: Path, components: dict[str, Path]) -> None:
    """Replace ``folder``'s copies of ``components`` by references to the given folders; refuses a component whose
    weights differ from the one it would point to."""
    folder = Path(folder)
    index_file = folder / SHARED_COMPONENTS
    index = json.loads(index_file.read_text()) if index_file.is_file() else {}
    for name, target in components.items():
        own = folder / name
        if own.exists():
            if not _same_component(own, Path(target)):
                raise UserError(f"{own}: differs from {target}; only an identical component can be shared")
            shutil.rmtree(own)
        index[name] = Path(os.path.relpath(Path(target).resolve(), folder.resolve())).as_posix()
    write_json(index_file, dict(sorted(index.items())))
