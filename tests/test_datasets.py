"""COCO protocols and MJHQ-30K prepared from synthetic layouts: the documented seeded subset and caption rule, the
reference preprocessing pixel for pixel against PIL, byte-identical reruns, manifests, categories, and bad input."""

from __future__ import annotations

import hashlib
import io
import json
import random
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from coco_layout import MJHQ_CATEGORIES, file_name, make_coco, make_instances, make_mjhq
from PIL import Image

from lcm_bench.cli.main import main
from lcm_bench.domain.datasets import PROTOCOLS, Protocol, prepare, verify


@contextmanager
def protocol(name: str, entry: Protocol):
    """``name`` registered as ``entry`` for the test (replacing a built-in one), restored after."""
    previous = PROTOCOLS.unregister(name) if name in PROTOCOLS else None
    PROTOCOLS.register(name, entry)
    try:
        yield
    finally:
        PROTOCOLS.unregister(name)
        if previous is not None:
            PROTOCOLS.register(name, previous)


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_subset_and_captions_follow_the_documented_rule(tmp_path):
    annotations, images = make_coco(tmp_path, images=12)
    data = json.loads(annotations.read_text())
    with protocol("coco-test", Protocol("val2014", 7, 24, seed=3)):
        manifest = prepare("coco-test", annotations, images, tmp_path / "out")
    ids = sorted(i["id"] for i in data["images"])
    expected = sorted(random.Random("coco-test:3").sample(ids, 7))
    rows = [line.split("\t") for line in (tmp_path / "out" / "prompts.tsv").read_text().splitlines()[1:]]
    assert [int(r[1]) for r in rows] == expected
    for prompt, image_id, caption_id, name in rows:
        captions = sorted((a["id"], a["caption"]) for a in data["annotations"] if a["image_id"] == int(image_id))
        chosen = captions[random.Random(f"coco-test:3:{image_id}").randrange(len(captions))]
        assert (int(caption_id), " ".join(chosen[1].split())) == (chosen[0], prompt)
        assert name == file_name("val2014", int(image_id))
    assert manifest["num_images"] == 7 and manifest["parameters"]["resolution"] == 24
    assert manifest["sources"]["annotations"]["sha256"] == hashlib.sha256(annotations.read_bytes()).hexdigest()


def test_reference_images_are_centre_cropped_and_resized_as_pil_does(tmp_path):
    annotations, images = make_coco(tmp_path, images=6)
    with protocol("coco-test", Protocol("val2014", 6, 20, filter="bicubic")):
        prepare("coco-test", annotations, images, tmp_path / "out")
    for reference in sorted((tmp_path / "out" / "references").iterdir()):
        source = Image.open(images / file_name("val2014", int(reference.stem))).convert("RGB")
        width, height = source.size
        side = min(width, height)
        box = ((width - side) // 2, (height - side) // 2, (width - side) // 2 + side, (height - side) // 2 + side)
        direct = np.asarray(source.crop(box).resize((20, 20), Image.Resampling.BICUBIC))
        assert np.array_equal(np.asarray(Image.open(reference)), direct), reference.name


def test_preparing_twice_is_byte_identical_and_the_manifest_catches_changes(tmp_path):
    annotations, images = make_coco(tmp_path, images=8)
    with protocol("coco-test", Protocol("val2014", 5, 16)):
        prepare("coco-test", annotations, images, tmp_path / "a")
        prepare("coco-test", annotations, images, tmp_path / "b")
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    assert verify(tmp_path / "a") == []
    damaged = next((tmp_path / "a" / "references").iterdir())
    damaged.write_bytes(damaged.read_bytes()[:-1] + b"\0")
    assert verify(tmp_path / "a") == [f"references/{damaged.name}"]


def test_a_published_subset_replaces_both_draws(tmp_path):
    annotations, images = make_coco(tmp_path, images=8)
    data = json.loads(annotations.read_text())
    first = sorted(data["annotations"], key=lambda a: a["id"])[0]
    subset = tmp_path / "ids.txt"
    other = next(i["id"] for i in data["images"] if i["id"] != first["image_id"])
    subset.write_text(f"# image id, caption id\n{first['image_id']}\t{first['id']}\n{other}\n")
    with protocol("coco-test", Protocol("val2014", 5, 16)):
        manifest = prepare("coco-test", annotations, images, tmp_path / "out", subset)
    rows = (tmp_path / "out" / "prompts.tsv").read_text().splitlines()[1:]
    assert len(rows) == 2 and manifest["subset"]["sha256"] == hashlib.sha256(subset.read_bytes()).hexdigest()
    assert f"\t{first['image_id']}\t{first['id']}\t" in "\n".join(rows)


def _data(args: list[str], capsys) -> tuple[int, str]:
    code = main(["data", "coco", "--quiet", *args])
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize("remove", [1, 12])
def test_a_partial_or_absent_image_folder_is_one_line(tmp_path, capsys, remove):
    annotations, images = make_coco(tmp_path, images=12)
    for path in sorted(images.iterdir())[:remove]:
        path.unlink()
    with protocol("coco-test", Protocol("val2014", 12, 16)):
        args = ["--annotations", str(annotations), "--images", str(images), "--protocol", "coco-test"]
        code, err = _data([*args, "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and len(err.splitlines()) == 1
    assert f"{remove} of the 12 images the protocol needs are missing" in err
    assert not (tmp_path / "out").exists(), "nothing is written before every image is there"


def test_wrong_kind_of_annotations_and_wrong_split_are_one_line(tmp_path, capsys):
    annotations, images = make_coco(tmp_path / "2014", images=6)
    instances = make_instances(tmp_path)
    code, err = _data(["--annotations", str(instances), "--images", str(images), "--protocol", "coco2014-30k"], capsys)
    assert code == 2 and "instances or keypoints file, not captions" in err and len(err.splitlines()) == 1
    code, err = _data(["--annotations", str(annotations), "--images", str(images), "--protocol", "coco2017-5k"], capsys)
    assert code == 2 and "describes val2014, but protocol coco2017-5k needs val2017" in err
    _, images_2017 = make_coco(tmp_path / "2017", split="val2017", images=6)
    with protocol("coco-test", Protocol("val2014", 6, 16)):
        code, err = _data(
            ["--annotations", str(annotations), "--images", str(images_2017), "--protocol", "coco-test"], capsys
        )
    assert code == 2 and "6 of the 6 images" in err and "another split?" in err, err


def test_cli_writes_into_the_dataset_folder_a_suite_finds(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LCM_BENCH_DATA", str(tmp_path / "datasets"))
    annotations, images = make_coco(tmp_path, images=6)
    with protocol("coco-test", Protocol("val2014", 4, 16)):
        assert main(["data", "coco", "--quiet", "--annotations", str(annotations), "--images", str(images),
                     "--protocol", "coco-test"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "prompts: [{dataset: coco-test}]" in out
    assert (tmp_path / "datasets" / "coco-test" / "manifest.json").is_file()
    png = (tmp_path / "datasets" / "coco-test" / "references").iterdir().__next__().read_bytes()
    assert Image.open(io.BytesIO(png)).size == (16, 16)


MJHQ_TEST = Protocol("MJHQ-30K", 12, 16, source="mjhq")


def test_mjhq_prepares_byte_identically_twice_from_nested_or_flat_folders(tmp_path):
    """Every image in id order with its one prompt and its category; nested category folders (as the zip unpacks)
    and one flat folder give the same bytes; the prepared set's prompts carry the category."""
    from lcm_bench.suite.prompt_entries import parse_prompts

    meta, images = make_mjhq(tmp_path / "nested")
    _, flat = make_mjhq(tmp_path / "flat", flat=True)
    with protocol("mjhq-test", MJHQ_TEST):
        manifest = prepare("mjhq-test", meta, images, tmp_path / "a")
        prepare("mjhq-test", meta, flat, tmp_path / "b")
        spec = parse_prompts({"dataset": "mjhq-test", "path": str(tmp_path / "a")}, "prompts[0]", tmp_path)
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    rows = [line.split("\t") for line in (tmp_path / "a" / "prompts.tsv").read_text().splitlines()]
    assert rows[0] == ["prompt", "image_id", "category", "file_name"]
    data = json.loads(meta.read_text())
    assert [r[1] for r in rows[1:]] == sorted(data) and manifest["num_images"] == 12
    assert all(r[2] == data[r[1]]["category"] and r[0] == " ".join(data[r[1]]["prompt"].split()) for r in rows[1:])
    assert sorted(p.stem for p in (tmp_path / "a" / "references").iterdir()) == sorted(data)
    assert spec.categories == ("category",) and spec.size == 12
    assert {r[2] for r in rows[1:]} == set(MJHQ_CATEGORIES)


def test_mjhq_bad_input_is_one_line(tmp_path, capsys):
    meta, images = make_mjhq(tmp_path)
    coco_annotations, _ = make_coco(tmp_path / "coco", images=4)
    missing = next(images.rglob("*.jpg"))
    missing.unlink()
    with protocol("mjhq-test", MJHQ_TEST):
        code = main(["data", "mjhq", "--quiet", "--meta", str(meta), "--images", str(images), "--protocol", "mjhq-test",
                     "--out", str(tmp_path / "out")])  # fmt: skip
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and f"first: {missing.parent.name}/{missing.name}" in err
        assert "1 of the 12 images" in err and not (tmp_path / "out").exists()
        code = main(["data", "mjhq", "--quiet", "--meta", str(coco_annotations), "--images", str(images),
                     "--protocol", "mjhq-test"])  # fmt: skip
        err = capsys.readouterr().err.strip()
        assert code == 2 and "is not MJHQ-30K's meta_data.json" in err and len(err.splitlines()) == 1
    code = main(
        ["data", "coco", "--quiet", "--annotations", str(meta), "--images", str(images), "--protocol", "mjhq-30k"]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "mjhq-30k is prepared from mjhq's files (lcm-bench data mjhq)" in err


def test_an_unprepared_mjhq_set_names_the_files_and_the_command(tmp_path, monkeypatch):
    from lcm_bench.core.paths import dataset_dirs
    from lcm_bench.domain.datasets import not_prepared

    monkeypatch.setenv("LCM_BENCH_DATA", str(tmp_path))
    message = str(not_prepared("mjhq-30k", dataset_dirs()))
    assert "playgroundai/MJHQ-30K (meta_data.json and mjhq30k_imgs.zip)" in message
    assert "lcm-bench data mjhq --annotations meta_data.json --images mjhq30k_imgs/ --protocol mjhq-30k" in message
