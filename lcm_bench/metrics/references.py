"""Reference image sets (a folder, a Parquet file of image bytes, or a registered generator) and their cached
features, keyed by content (torch-fidelity style, but by digest rather than by name): the extractor's weights
digest, its preprocessing mode, N, the reference set's content hash (for generated sets, the generator's version)
and the draw."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lcm_bench.core.digests import files_digest
from lcm_bench.core.errors import UserError
from lcm_bench.core.faults import reached
from lcm_bench.core.io import warn, write_atomic
from lcm_bench.core.paths import cache_dir
from lcm_bench.core.registry import Registry
from lcm_bench.core.spec import stable_hash

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


@dataclass(frozen=True)
class ReferenceSet:
    """``images(draw)`` yields uint8 HxWx3 arrays; draw 1 is an independent second draw (generators only)."""

    name: str
    size: int
    content_hash: str
    load: Callable[[int], Iterator[np.ndarray]]
    render: Callable[[list[str], int], Iterator[np.ndarray]] | None = None
    preprocessing: str = "as stored"

    def images(self, draw: int = 0) -> Iterator[np.ndarray]:
        return self.load(draw)


def _decode(data: bytes, where: str = "reference image") -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UserError(f"references: {where} cannot be decoded ({exc})") from None


def image_files(path: Path, field: str) -> list[Path]:
    """The images of a reference folder, each checked to open as an image (its header; no pixels decoded)."""
    from PIL import Image, UnidentifiedImageError

    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"{field}: reference folder '{path}' holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    for file in files:
        try:
            with Image.open(file) as image:
                image.size  # noqa: B018 - opening parses the header
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise UserError(f"{field}: reference image '{file}' is not a readable image ({exc})") from None
    return files


def folder_reference(path: Path, field: str) -> ReferenceSet:
    files = image_files(path, field)
    digest = files_digest(files, path)[:16]
    return ReferenceSet(str(path), len(files), digest, lambda draw: (_decode(f.read_bytes(), str(f)) for f in files))


def parquet_reference(path: Path, column: str, field: str) -> ReferenceSet:
    import pandas as pd

    frame = pd.read_parquet(path, columns=[column]) if column else pd.read_parquet(path)
    if column not in frame.columns:
        raise UserError(f"{field}.column: '{column}' is not a column of {path} (columns: {', '.join(frame.columns)})")
    cells = [v["bytes"] if isinstance(v, dict) else v for v in frame[column]]
    digest = stable_hash([files_digest([path]), column], 16)
    return ReferenceSet(str(path), len(cells), digest, lambda draw: (_decode(c) for c in cells))


def dataset_reference(folder: Path, field: str) -> ReferenceSet:
    """A prepared dataset's reference images (``lcm-bench data``), identified by its manifest's digests (a file
    that is missing is one line saying to prepare the dataset again)."""
    from lcm_bench.domain.datasets import REFERENCES, manifest_digest, read_manifest

    manifest = read_manifest(folder, field)
    files = [folder / name for name in sorted(manifest["files"]) if name.startswith(f"{REFERENCES}/")]
    absent = [f for f in files if not f.is_file()]
    if absent or not files:
        raise UserError(
            f"{field}: {len(absent)} of the {len(files)} reference images of '{folder}' are missing; prepare the "
            "dataset again (lcm-bench data)"
        )
    steps = str(manifest.get("preprocessing") or "not recorded in the manifest")
    name = f"{manifest.get('protocol')}[{len(files)}]"
    return ReferenceSet(name, len(files), manifest_digest(manifest)[:16], lambda draw: _read_all(files), None, steps)


def _read_all(files: list[Path]) -> Iterator[np.ndarray]:
    return (_decode(f.read_bytes(), str(f)) for f in files)


def shapes_reference(prompts: tuple[str, ...], per_prompt: int, size: int) -> ReferenceSet:
    """Every prompt rendered ``per_prompt`` times by the shapes domain; draw d uses its own seeds."""
    from lcm_bench.domain.shapes import DOMAIN_VERSION, parse, render

    bad = [p for p in prompts if parse(p) is None]
    if bad:
        raise UserError(f"references: the shapes generator cannot draw {bad[0]!r}")
    digest = hashlib.sha256(
        f"shapes-v{DOMAIN_VERSION}/{size}/{per_prompt}/".encode() + "\n".join(prompts).encode()
    ).hexdigest()[:16]

    def load(draw: int) -> Iterator[np.ndarray]:
        for j in range(per_prompt):
            for prompt in prompts:
                yield render(prompt, seed=draw * 1_000_003 + j, size=size)

    def render_prompts(chosen: list[str], draw: int) -> Iterator[np.ndarray]:
        for i, prompt in enumerate(chosen):
            yield render(prompt, seed=draw * 1_000_003 + per_prompt + i, size=size)

    name = f"shapes[{len(prompts)}x{per_prompt}]"
    return ReferenceSet(name, len(prompts) * per_prompt, digest, load, render_prompts, f"rendered at {size}px")


GENERATORS: Registry[Callable[..., ReferenceSet]] = Registry("reference generator")
GENERATORS.register("shapes", shapes_reference)


def stream_features(images: Iterator[np.ndarray], extractor, batch_size: int = 64, prompts=None) -> np.ndarray:
    """Features of a stream of images, holding one batch of images at a time (with each image's caption, for an
    extractor conditioned on it)."""
    chunks, batch, done = [], [], 0
    for image in images:
        batch.append(image)
        if len(batch) == batch_size:
            chunks.append(extractor.features(batch, batch_size, _captions(prompts, done, len(batch))))
            done, batch = done + len(batch), []
    if batch:
        chunks.append(extractor.features(batch, batch_size, _captions(prompts, done, len(batch))))
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros((0, extractor.dim), np.float32)


def _captions(prompts, start: int, count: int):
    return None if prompts is None else prompts[start : start + count]


def cached(path: Path, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """Load an array from a safetensors file, or compute it and write it atomically with the sha256 of its bytes
    in the header; a file that does not parse or whose bytes differ from that checksum is reported and recomputed."""
    from safetensors import safe_open
    from safetensors.numpy import save

    if path.is_file():
        try:
            with safe_open(str(path), framework="np") as f:
                expected = (f.metadata() or {}).get("sha256")
                features = f.get_tensor("features")
            if expected is None or _sha256(features) == expected:
                return features
        except Exception:  # noqa: BLE001 - safetensors raises its own error types for torn files
            pass
        warn(f"feature file '{path}' is corrupt; recomputing it")
        path.unlink(missing_ok=True)
    features = np.ascontiguousarray(compute())
    write_atomic(path, save({"features": features}, metadata={"sha256": _sha256(features)}))
    reached("features")
    return features


def _sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def reference_features(reference: ReferenceSet, extractor, draw: int = 0, batch_size: int = 64) -> np.ndarray:
    """Features of a reference set, computed once per (extractor weights, mode, N, content, draw) and cached."""
    weights = extractor.digest[:12]
    key = f"{extractor.key}-{extractor.mode}-w{weights}-n{reference.size}-{reference.content_hash}-d{draw}"
    path = cache_dir() / "refstats" / f"{key}.safetensors"
    return cached(path, lambda: stream_features(reference.images(draw), extractor, batch_size))
