"""The background image writer: the same bytes as a direct save, a bounded queue, one-line errors that keep what
was finished."""

import hashlib
import threading
import time

import numpy as np
import pytest
from conftest import write_suite
from PIL import Image

from lcm_bench.cli.main import main
from lcm_bench.core.errors import UserError
from lcm_bench.run import writer as writer_module
from lcm_bench.run.writer import ImageWriter, writes_in_background

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("background", [True, False], ids=["background", "in-submit"])
def test_written_images_equal_a_direct_save(tmp_path, background):
    images = RNG.integers(0, 256, size=(5, 16, 16, 3), dtype=np.uint8)
    with ImageWriter(max_pending=1, background=background) as writer:
        writer.submit(tmp_path / "a", 0, images[:3])
        writer.submit(tmp_path / "a", 3, images[3:])
        writer.flush()
        digests = writer.take_digests(tmp_path / "a", range(5))
    for i, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / "direct.png", compress_level=1)
        written = (tmp_path / "a" / f"{i:05d}.png").read_bytes()
        assert written == (tmp_path / "direct.png").read_bytes()
        assert np.array_equal(np.asarray(Image.open(tmp_path / "a" / f"{i:05d}.png")), image)
        sha256, size, _ = digests[f"{i:05d}.png"]
        assert sha256 == hashlib.sha256(written).hexdigest() and size == len(written)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [f"{i:05d}.png" for i in range(5)]


def test_submit_blocks_while_the_queue_is_full(tmp_path, monkeypatch):
    release = threading.Event()
    real = writer_module.write_file

    def held(path, data):
        release.wait()
        real(path, data)

    monkeypatch.setattr(writer_module, "write_file", held)
    batch = np.zeros((1, 4, 4, 3), np.uint8)
    with ImageWriter(max_pending=2) as writer:
        done = []

        def producer():
            for i in range(6):
                writer.submit(tmp_path, i, batch)
                done.append(i)

        thread = threading.Thread(target=producer)
        thread.start()
        deadline = time.time() + 5
        while len(done) < 3 and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        assert len(done) == 3, "one batch in the worker and two waiting: the fourth submit must block"
        release.set()
        thread.join(5)
        writer.flush()
    assert len(done) == 6 and len(list(tmp_path.glob("*.png"))) == 6


@pytest.mark.parametrize("background", [True, False], ids=["background", "in-submit"])
def test_a_write_error_is_one_line_and_keeps_earlier_images(tmp_path, background):
    (tmp_path / "00002.png").mkdir()
    images = RNG.integers(0, 256, size=(4, 8, 8, 3), dtype=np.uint8)
    with ImageWriter(background=background) as writer:
        writer.submit(tmp_path, 0, images)
        with pytest.raises(UserError, match=r"image writer: cannot write '.*00002\.png'"):
            writer.flush()
        with pytest.raises(UserError):
            writer.submit(tmp_path, 4, images)
    assert (tmp_path / "00000.png").is_file() and (tmp_path / "00001.png").is_file()
    assert not list(tmp_path.glob(".*.tmp"))


def test_images_are_written_between_batches_only_where_torch_keeps_every_core_busy(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert not writes_in_background({"cpu"}, threads=2)
    assert writes_in_background({"cpu"}, threads=1), "a core left free: the writer takes it"
    assert writes_in_background({"cpu", "cuda:0"}, threads=2), "batches on a GPU leave the CPU to the writer"
    assert writes_in_background({"cuda:0"}, threads=2)


SUITE = """
version: 1
name: writer
methods:                  # two pipelines, one after the other (the cells of one pipeline take turns batch by batch)
  - {name: a, model: tiny-lcm, sampler: lcm, guidance_scale: 2.0}
  - {name: b, model: tiny-sd, sampler: ddim, guidance_scale: 2.0}
steps: [1]
prompts: [shapes-mini]
num_images: 4
batch_size: 2
"""


def test_a_run_that_cannot_write_an_image_stops_in_one_line_and_resumes(tmp_path, capsys):
    from lcm_bench.suite.load import load_suite

    suite_file, out = write_suite(tmp_path, SUITE), tmp_path / "run"
    second = load_suite(suite_file).cells[1]
    (out / "images").mkdir(parents=True)
    (out / "images" / second.cell_id).write_text("a file where the cell's image folder goes")
    assert main(["run", str(suite_file), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "image writer: cannot create" in err and len(err.strip().splitlines()) == 1
    assert [p.stem for p in (out / "cells").glob("*.json")] == [load_suite(suite_file).cells[0].cell_id]
    (out / "images" / second.cell_id).unlink()
    assert main(["run", str(suite_file), "--out", str(out), "--quiet"]) == 0
    assert "1 cells computed, 1 reused" in capsys.readouterr().out
    assert len(list((out / "images" / second.cell_id).glob("*.png"))) == 4
