"""Evaluation datasets as named recipes (COCO's protocols, MJHQ-30K), prepared once from the files a user downloaded
(nothing is fetched). ``SOURCES`` says how each dataset's files are read; ``PROTOCOLS`` names the recipes.

A protocol fixes the source, the split, N, the caption rule, the reference preprocessing and the evaluation
resolution. ``prepare`` writes a folder that a suite names with ``prompts: [{dataset: PROTOCOL}]``:

- ``prompts.tsv``: one row per chosen image (prompt, image_id, the source's columns, file_name), in image-id order
  (COCO: caption_id; MJHQ-30K: category, which a suite reads with ``categories: [category]``);
- ``references/<image_id>.png``: each image centre-cropped to its short side, then resized to the resolution with
  the protocol's filter (DMD2's ``coco_eval`` preprocessing), saved losslessly;
- ``manifest.json``: the protocol's parameters, the source files' sha256 and every written file's sha256.

The choice is a documented seeded rule, so two preparations give byte-identical folders: the images are all of the
split when N equals its size, else ``random.Random(f"{protocol}:{seed}").sample(sorted image ids, N)`` in id
order; each COCO image's caption is ``random.Random(f"{protocol}:{seed}:{image_id}").randrange(k)`` of its k
captions in annotation-id order (MJHQ-30K has one prompt per image). A published list (``--subset FILE``: COCO
image ids, optionally a caption id after a tab) replaces both draws.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lcm_bench.core.errors import MissingResourceError, UserError
from lcm_bench.core.io import write_atomic, write_json
from lcm_bench.core.registry import Registry
from lcm_bench.core.textfiles import read_text

MANIFEST = "manifest.json"
PROMPTS_FILE = "prompts.tsv"
REFERENCES = "references"
RECIPE_VERSION = 1
COCO_URL = "http://images.cocodataset.org"
PNG_LEVEL = 3
"""zlib level of the reference PNGs: lossless at any level; 3 encodes a 512 px photo in about 35 ms against 130 ms
at Pillow's default 6, for files about 10 % larger. Fixed, so a Pillow default never changes the bytes."""


@dataclass(frozen=True)
class Protocol:
    """One evaluation recipe: ``split`` (val2014, val2017; the dataset's name where it has one split),
    ``num_images``, the evaluation ``resolution``, the reference resize ``filter`` (a PIL filter name), the
    caption-rule ``seed``, who uses it and the ``source`` (an entry of ``SOURCES``) its files come from."""

    split: str
    num_images: int
    resolution: int
    filter: str = "lanczos"
    seed: int = 0
    used_by: str = ""
    source: str = "coco"

    @property
    def year(self) -> str:
        return self.split[-4:]

    def download_hint(self) -> str:
        return SOURCES.get(self.source).download(self)

    def describe(self) -> str:
        items = SOURCES.get(self.source).items
        return f"{self.num_images:,} {items} of {self.split} at {self.resolution}px, {self.filter}"


@dataclass(frozen=True)
class Chosen:
    """One row of a prepared set: the image, its caption, the source's further columns' values, its file."""

    image_id: int | str
    caption: str
    file_name: str
    values: tuple[Any, ...] = ()

    @property
    def reference_name(self) -> str:
        return f"{self.image_id:012d}" if isinstance(self.image_id, int) else str(self.image_id)


@dataclass(frozen=True)
class Source:
    """Where a dataset's captions and images come from: ``read(path, name, protocol)`` checks and reads the metadata
    file the user downloaded (``--annotations``); ``choose(data, name, protocol, subset)`` picks the rows;
    ``locate(images, row)`` finds a row's image under ``--images``; ``download(protocol)`` says what to download and
    ``unpack(protocol)`` where its images go, ``metadata(protocol)`` which file ``--annotations`` takes and
    ``command(name, protocol)`` the command that prepares it; ``columns`` are its rows' columns between image_id and
    file_name."""

    read: Callable[[Path, str, Protocol], Any]
    choose: Callable[[Any, str, Protocol, list | None], list[Chosen]]
    locate: Callable[[Path, Chosen], Path]
    download: Callable[[Protocol], str]
    unpack: Callable[[Protocol], str]
    metadata: Callable[[Protocol], str]
    command: Callable[[str, Protocol], str]
    columns: tuple[str, ...]
    items: str = "captions"
    categories: tuple[str, ...] = ()
    """Columns a suite groups per-image metrics by unless it names others (MJHQ-30K's category)."""


_SPLIT_IN_NAME = re.compile(r"COCO_(train|val|test)(\d{4})_")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def read_captions(path: Path) -> dict:
    """A COCO captions file (``captions_<split>.json``), checked to be one."""
    try:
        data = json.loads(read_text(path, "--annotations", "COCO annotations file"))
    except ValueError as exc:
        raise UserError(f"--annotations: '{path}' is not JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list) or "images" not in data:
        raise UserError(f"--annotations: '{path}' is not a COCO annotations file (no 'images' and 'annotations')")
    first = data["annotations"][0] if data["annotations"] else {}
    if "caption" not in first:
        kind = "instances or keypoints" if "bbox" in first or "category_id" in first else "another kind of"
        raise UserError(
            f"--annotations: '{path}' is a COCO {kind} file, not captions; give captions_<split>.json "
            "from annotations_trainval<year>.zip"
        )
    return data


def annotated_split(data: dict) -> str | None:
    """The split the annotations describe: from COCO-2014 file names, else the info block's year."""
    names = [str(image.get("file_name", "")) for image in data["images"][:20]]
    found = {m.group(1) + m.group(2) for m in (_SPLIT_IN_NAME.search(n) for n in names) if m}
    if len(found) == 1:
        return found.pop()
    info = data.get("info") or {}
    year = re.search(r"20\d\d", f"{info.get('year', '')} {info.get('description', '')}")
    return year.group(0) if year else None


def _check_split(data: dict, protocol: Protocol, name: str) -> None:
    split = annotated_split(data)
    if split is not None and split not in (protocol.split, protocol.year):
        raise UserError(
            f"--annotations: the file describes {split}, but protocol {name} needs {protocol.split} "
            f"(captions_{protocol.split}.json)"
        )


def read_coco(path: Path, name: str, protocol: Protocol) -> dict:
    data = read_captions(path)
    _check_split(data, protocol, name)
    return data


def _captions_by_image(data: dict) -> dict[int, list[tuple[int, str]]]:
    captions: dict[int, list[tuple[int, str]]] = {}
    for annotation in data["annotations"]:
        caption = " ".join(str(annotation["caption"]).split())
        captions.setdefault(int(annotation["image_id"]), []).append((int(annotation["id"]), caption))
    return {image: sorted(rows) for image, rows in captions.items()}


def read_subset(path: Path) -> list[tuple[int, int | None]]:
    """A published subset: one image id per line, optionally a tab and the caption (annotation) id."""
    rows = []
    for number, line in enumerate(read_text(path, "--subset", "subset file").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split("\t")
        try:
            rows.append((int(parts[0]), int(parts[1]) if len(parts) > 1 and parts[1].strip() else None))
        except ValueError:
            raise UserError(f"--subset: line {number} of '{path}' is not 'IMAGE_ID[<tab>CAPTION_ID]'") from None
    return rows


def _drawn(ids: list, name: str, protocol: Protocol, what: str) -> list:
    """All of ``ids`` (sorted) when the protocol takes as many, else its seeded sample of them in order."""
    if protocol.num_images > len(ids):
        raise UserError(
            f"--annotations: the file has {len(ids):,} {what}; protocol {name} needs {protocol.num_images:,} "
            f"(is it {SOURCES.get(protocol.source).metadata(protocol)}?)"
        )
    if protocol.num_images < len(ids):
        return sorted(random.Random(f"{name}:{protocol.seed}").sample(ids, protocol.num_images))
    return ids


def choose(data: dict, name: str, protocol: Protocol, subset: list[tuple[int, int | None]] | None) -> list[Chosen]:
    """COCO: the protocol's images and one caption each, by the module's documented seeded rule (or ``subset``)."""
    captions = _captions_by_image(data)
    files = {int(image["id"]): str(image["file_name"]) for image in data["images"]}
    ids = sorted(i for i in files if i in captions)
    if subset is None:
        subset = [(i, None) for i in _drawn(ids, name, protocol, "captioned images")]
    chosen = []
    for image_id, caption_id in subset:
        rows = captions.get(image_id)
        if rows is None or image_id not in files:
            raise UserError(f"--subset: image {image_id} has no caption in the annotations file")
        if caption_id is None:
            caption_id, caption = rows[random.Random(f"{name}:{protocol.seed}:{image_id}").randrange(len(rows))]
        else:
            caption = dict(rows).get(caption_id)
            if caption is None:
                raise UserError(f"--subset: caption {caption_id} is not a caption of image {image_id}")
        chosen.append(Chosen(image_id, caption, files[image_id], (caption_id,)))
    return sorted(chosen, key=lambda c: c.image_id)


def _coco_download(protocol: Protocol) -> str:
    annotations = f"{COCO_URL}/annotations/annotations_trainval{protocol.year}.zip"
    return f"{COCO_URL}/zips/{protocol.split}.zip and {annotations} (captions_{protocol.split}.json inside)"


MJHQ_URL = "https://huggingface.co/datasets/playgroundai/MJHQ-30K"


def read_mjhq(path: Path, name: str, protocol: Protocol) -> dict[str, dict]:
    """MJHQ-30K's ``meta_data.json``: image id -> {"category": ..., "prompt": ...}, checked to be one."""
    try:
        data = json.loads(read_text(path, "--annotations", "MJHQ-30K meta_data.json"))
    except ValueError as exc:
        raise UserError(f"--annotations: '{path}' is not JSON ({exc})") from None
    entries = data.values() if isinstance(data, dict) else ()
    if not entries or not all(isinstance(e, dict) and {"category", "prompt"} <= set(e) for e in entries):
        raise UserError(
            f"--annotations: '{path}' is not MJHQ-30K's meta_data.json (an object of image id -> "
            "{category, prompt}); download it from " + MJHQ_URL
        )
    return data


def choose_mjhq(data: dict[str, dict], name: str, protocol: Protocol, subset: list | None) -> list[Chosen]:
    """MJHQ-30K: every image (or the protocol's seeded sample) with its one prompt, its category as a column."""
    if subset is not None:
        raise UserError(f"--subset: protocol {name} takes MJHQ-30K's own images, not a published list")
    ids = _drawn(sorted(data), name, protocol, "images")
    rows = [(i, data[i]) for i in ids]
    return [
        Chosen(i, " ".join(str(e["prompt"]).split()), f"{e['category']}/{i}.jpg", (e["category"],)) for i, e in rows
    ]


def locate_mjhq(images: Path, row: Chosen) -> Path:
    """``<category>/<id>.jpg`` as mjhq30k_imgs.zip unpacks, or ``<id>.jpg`` in one flat folder."""
    nested = images / row.file_name
    return nested if nested.is_file() else images / Path(row.file_name).name


SOURCES: Registry[Source] = Registry("dataset source")
SOURCES.register(
    "coco",
    Source(
        read_coco,
        choose,
        lambda images, row: images / row.file_name,
        _coco_download,
        lambda protocol: f"unpack {protocol.split}.zip there",
        lambda protocol: f"the {protocol.split} captions file, captions_{protocol.split}.json",
        lambda name, protocol: (
            f"lcm-bench data coco --annotations captions_{protocol.split}.json --images {protocol.split}/ "
            f"--protocol {name}"
        ),
        ("caption_id",),
    ),
)
SOURCES.register(
    "mjhq",
    Source(
        read_mjhq,
        choose_mjhq,
        locate_mjhq,
        lambda protocol: f"{MJHQ_URL} (meta_data.json and mjhq30k_imgs.zip)",
        lambda protocol: "unpack mjhq30k_imgs.zip there (its category folders, or all images in one folder)",
        lambda protocol: "MJHQ-30K's meta_data.json",
        lambda name, protocol: (
            f"lcm-bench data mjhq --annotations meta_data.json --images mjhq30k_imgs/ --protocol {name}"
        ),
        ("category",),
        items="prompts",
        categories=("category",),
    ),
)

PROTOCOLS: Registry[Protocol] = Registry("dataset protocol")
PROTOCOLS.register(
    "coco2014-30k",
    Protocol("val2014", 30_000, 512, used_by="zero-shot FID-30k: Imagen, Parti, GigaGAN, DMD (at 256 or 512)"),
)
PROTOCOLS.register(
    "coco2014-10k", Protocol("val2014", 10_000, 512, used_by="DMD2's COCO-10k (SDXL, FID-10k at 512; SiD-DiT)")
)
PROTOCOLS.register("coco2017-5k", Protocol("val2017", 5_000, 512, used_by="several LCM follow-ups (all of val2017)"))
PROTOCOLS.register(
    "coco2014-5k-mlperf",
    Protocol("val2014", 5_000, 1024, used_by="MLPerf Inference SDXL (its own list: pass it with --subset)"),
)
PROTOCOLS.register(
    "mjhq-30k",
    Protocol(
        "MJHQ-30K",
        30_000,
        1024,
        used_by="Playground v2.5, the SANA family (FID overall and per category)",
        source="mjhq",
    ),
)
PROTOCOLS.register(
    "mjhq-30k-512",
    Protocol("MJHQ-30K", 30_000, 512, used_by="the same set for 512 px models (SANA 512)", source="mjhq"),
)


def _check_images(chosen: list[Chosen], images: Path, protocol: Protocol) -> None:
    if not images.is_dir():
        raise UserError(f"--images: '{images}' is not a directory")
    source = SOURCES.get(protocol.source)
    missing = [c.file_name for c in chosen if not source.locate(images, c).is_file()]
    if not missing:
        return
    other = ""
    if len(missing) == len(chosen):
        held = sorted(p.name for p in images.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        other = f"; it holds {len(held):,} images such as {held[0]}: another split?" if held else ""
    raise UserError(
        f"--images: {len(missing):,} of the {len(chosen):,} images the protocol needs are missing from '{images}' "
        f"(first: {missing[0]}){other}; {source.unpack(protocol)}"
    )


def reference_image(path: Path, resolution: int, resample: str) -> bytes:
    """Centre crop to the short side, resize to ``resolution`` squared with ``resample``, as PNG bytes."""
    from PIL import Image

    filters = {"lanczos": Image.Resampling.LANCZOS, "bicubic": Image.Resampling.BICUBIC}
    filters["bilinear"] = Image.Resampling.BILINEAR
    with Image.open(path) as image:
        image = image.convert("RGB")
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    image = image.crop((left, top, left + side, top + side)).resize((resolution, resolution), filters[resample])
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=PNG_LEVEL)
    return out.getvalue()


def _prompts_tsv(chosen: list[Chosen], columns: tuple[str, ...]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter="\t", lineterminator="\n")
    writer.writerow(["prompt", "image_id", *columns, "file_name"])
    for c in chosen:
        writer.writerow([c.caption, c.image_id, *c.values, c.file_name])
    return out.getvalue().encode()


def prepare(
    name: str,
    annotations: Path,
    images: Path,
    out: Path,
    subset: Path | None = None,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> dict:
    """Write the protocol's prompt set, reference images and manifest into ``out``; returns the manifest."""
    protocol = PROTOCOLS.get(name, "--protocol")
    source = SOURCES.get(protocol.source)
    data = source.read(annotations, name, protocol)
    chosen = source.choose(data, name, protocol, read_subset(subset) if subset else None)
    _check_images(chosen, images, protocol)
    files: dict[str, str] = {}
    for done, c in enumerate(chosen):
        data_bytes = reference_image(source.locate(images, c), protocol.resolution, protocol.filter)
        relative = f"{REFERENCES}/{c.reference_name}.png"
        write_atomic(out / relative, data_bytes)
        files[relative] = hashlib.sha256(data_bytes).hexdigest()
        progress(done + 1, len(chosen))
    prompts = _prompts_tsv(chosen, source.columns)
    write_atomic(out / PROMPTS_FILE, prompts)
    files[PROMPTS_FILE] = hashlib.sha256(prompts).hexdigest()
    manifest = {
        "protocol": name,
        "recipe_version": RECIPE_VERSION,
        "parameters": asdict(protocol),
        "num_images": len(chosen),
        "subset": {"file": subset.name, "sha256": sha256_file(subset)} if subset else None,
        "sources": {"annotations": {"file": annotations.name, "sha256": sha256_file(annotations)}},
        "preprocessing": preprocessing(protocol),
        "files": files,
    }
    write_json(out / MANIFEST, manifest)
    return manifest


def preprocessing(protocol: Protocol) -> str:
    return f"centre crop to the short side, {protocol.filter} resize to {protocol.resolution}px, PNG"


def read_manifest(folder: Path, field: str) -> dict:
    path = folder / MANIFEST
    try:
        manifest = json.loads(read_text(path, field, "dataset manifest"))
    except ValueError as exc:
        raise UserError(f"{field}: '{path}' is not JSON ({exc}); prepare the dataset again") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise UserError(f"{field}: '{path}' is not an lcm-bench dataset manifest; prepare the dataset again")
    return manifest


def verify(folder: Path, field: str = "dataset") -> list[str]:
    """Files of a prepared folder whose sha256 differs from its manifest (missing ones included)."""
    manifest = read_manifest(folder, field)
    files = manifest["files"].items()
    return [f for f, digest in files if not (folder / f).is_file() or sha256_file(folder / f) != digest]


def manifest_digest(manifest: dict) -> str:
    """A prepared set's content identity: the sha256 of its files' digests, in name order."""
    listing = "\n".join(f"{name} {digest}" for name, digest in sorted(manifest["files"].items()))
    return hashlib.sha256(listing.encode()).hexdigest()


def not_prepared(name: str, where: list[Path]) -> MissingResourceError:
    """The one line saying a protocol is not prepared, and the commands that prepare it."""
    protocol = PROTOCOLS.get(name)
    looked = ", ".join(str(p) for p in where)
    return MissingResourceError(
        f"dataset {name}: not prepared (looked in {looked}); download {protocol.download_hint()}, then run "
        f"`{prepare_command(name)}`"
    )


def prepare_command(name: str) -> str:
    """The command that prepares protocol ``name`` from its downloaded files."""
    protocol = PROTOCOLS.get(name)
    return SOURCES.get(protocol.source).command(name, protocol)
