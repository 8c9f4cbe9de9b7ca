"""Faults, proven: SIGKILL at eleven points of a run, a full disk at every write layer, damaged files in the run
directory and the cache, non-finite images, and two runs at once; each ends in the images and metric values of an
uninterrupted run, or in one error line and nothing corrupt."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import needs_judge, write_suite
from test_chunks import chunk_records, files, metric_values

from lcm_bench.cli.main import main
from lcm_bench.core.paths import cache_dir

pytestmark = [pytest.mark.resilience, needs_judge]

SUITE = """
version: 1
name: faults
models: [tiny-sd]
samplers: [ddim]
steps: [1, 2]
guidance_scales: [2.0]
prompts: [shapes-mini]
num_images: 6
batch_size: 2
chunk_size: 2
timing: {min_repeats: 1, max_repeats: 1}   # these tests are about faults, not time
metrics:
  - {name: fd, extractor: shapes-judge}
  - {name: attribute_accuracy}
"""


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faults")
    suite = write_suite(folder, SUITE)
    out = folder / "clean"
    assert main(["run", str(suite), "--out", str(out), "--quiet"]) == 0
    return suite, out


def intact(out: Path) -> None:
    """No temporary file left, every JSON and feature file whole."""
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")], "temporary files left behind"
    for path in [*out.glob("cells/*.json"), *out.glob("chunks/*/*.json"), out / "manifest.json"]:
        json.loads(path.read_text())
    from safetensors.numpy import load_file

    for path in out.glob("features/*/*.safetensors"):
        load_file(path)


def same_as(reference: Path, out: Path) -> None:
    assert files(out) == files(reference) and files(reference)
    assert metric_values(out) == metric_values(reference) and len(metric_values(out)) == 4
    assert len(chunk_records(out)) == 6
    intact(out)


POINTS = ["image:1", "chunk:4", "record:2", "features:1", "metric:3", "report:1"]
"""One kill in each stage, alternating between the stage's first reach (nothing of it on disk yet) and a later one
(part of it finished): the first image, the second cell's second chunk, the second record, the first feature
file, the third metric value, the report."""


@pytest.mark.parametrize("point", POINTS)
def test_sigkill_anywhere_then_rerun_equals_an_uninterrupted_run(reference, tmp_path, point, capsys):
    suite, clean = reference
    out = tmp_path / "killed"
    env = {**os.environ, "LCM_BENCH_KILL_AT": point}
    if point.startswith("features"):
        shutil.rmtree(cache_dir() / "refstats", ignore_errors=True)
    killed = subprocess.run(
        [sys.executable, "-m", "lcm_bench", "run", str(suite), "--out", str(out), "-q"], env=env, capture_output=True
    )
    assert killed.returncode == -9, f"{point} was never reached: {killed.stderr.decode()[-2000:]}"
    intact(out)
    assert main(["run", str(suite), "--out", str(out), "--quiet"]) == 0
    same_as(clean, out)
    assert (out / "report.md").is_file()


@pytest.mark.parametrize("where", ["images/", "chunks/", "features/", "cells/", "report", "refstats/"])
def test_disk_full_is_one_line_exit_2_and_the_rerun_completes(reference, tmp_path, where, monkeypatch, capsys):
    suite, clean = reference
    out = tmp_path / "full"
    if where == "refstats/":
        shutil.rmtree(cache_dir() / "refstats", ignore_errors=True)
    monkeypatch.setenv("LCM_BENCH_ENOSPC", where)
    assert main(["run", str(suite), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "No space left on device" in err and where.rstrip("/") in err, err
    intact(out)
    monkeypatch.delenv("LCM_BENCH_ENOSPC")
    assert main(["run", str(suite), "--out", str(out), "--quiet"]) == 0
    same_as(clean, out)


def test_a_real_full_filesystem(reference, tmp_path, capsys):
    suite, clean = reference
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root and CAP_SYS_ADMIN)")
    try:
        out = mount / "run"
        assert main(["run", str(suite), "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "No space left on device" in err, err
        intact(out)
        moved = tmp_path / "moved"
        shutil.copytree(out, moved)
    finally:
        subprocess.run(["umount", str(mount)], check=False)
    assert main(["run", str(suite), "--out", str(moved), "--quiet"]) == 0
    same_as(clean, moved)


def first(out: Path, pattern: str) -> Path:
    return sorted(out.glob(pattern))[0]


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("damage", ["png", "chunk_record", "record", "features", "refstats"])
def test_damaged_files_are_reported_in_one_line_and_recomputed(reference, tmp_path, damage, capsys):
    suite, clean = reference
    out = tmp_path / "damaged"
    shutil.copytree(clean, out)
    if damage == "png":
        truncate(first(out, "images/*/00003.png"))
    elif damage == "chunk_record":
        truncate(first(out, "chunks/*/*.json"))
    elif damage == "record":
        truncate(first(out, "cells/*.json"))
    else:
        path = first(out, "features/*/*.safetensors") if damage == "features" else first(cache_dir(), "refstats/*")
        truncate(path)
        for record in out.glob("cells/*.json"):
            data = json.loads(record.read_text())
            data.pop("metrics")
            record.write_text(json.dumps(data))
    capsys.readouterr()
    assert main(["run", str(suite), "--out", str(out), "--quiet"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and ("damaged" in warnings[0] or "corrupt" in warnings[0]), warnings
    same_as(clean, out)


def test_an_image_damaged_in_place_is_caught_when_scored(reference, tmp_path, capsys):
    suite, clean = reference
    out = tmp_path / "flipped"
    shutil.copytree(clean, out)
    image = first(out, "images/*/00002.png")
    stat = image.stat()
    data = bytearray(image.read_bytes())
    data[-20] ^= 0xFF
    image.write_bytes(bytes(data))
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    shutil.rmtree(out / "features")
    for record in out.glob("cells/*.json"):
        record.write_text(json.dumps({k: v for k, v in json.loads(record.read_text()).items() if k != "metrics"}))
    capsys.readouterr()
    assert main(["run", str(suite), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "differs from the checksum its chunk recorded" in err, err
    assert main(["run", str(suite), "--out", str(out), "--quiet"]) == 0
    same_as(clean, out)


def test_non_finite_images_make_metrics_invalid_and_the_gate_fail(reference, tmp_path, monkeypatch, capsys):
    from lcm_bench.run import executor

    suite, clean = reference
    real = executor.load_pipeline

    def overflowing(*args, **kwargs):
        pipe = real(*args, **kwargs)
        decode = pipe.vae.decode

        def nan_first(latents, **kw):
            images = decode(latents, **kw)[0].clone()
            images[0] = torch.nan
            return (images,)

        pipe.vae.decode = nan_first
        return pipe

    monkeypatch.setattr(executor, "load_pipeline", overflowing)
    out = tmp_path / "nan"
    assert main(["run", str(suite), "--out", str(out), "--quiet"]) == 0
    for path in out.glob("cells/*.json"):
        record = json.loads(path.read_text())
        assert record["nonfinite_images"] == [0, 2, 4]
        for metric in record["metrics"].values():
            assert metric["value"] is None and "3 of 6 images hold NaN or inf" in metric["invalid"]
    report = (out / "report.md").read_text()
    assert "## Invalid results" in report and "3 of 6 images hold NaN or inf" in report
    baseline = tmp_path / "baseline.json"
    assert main(["baseline", str(clean), "--out", str(baseline)]) == 0
    capsys.readouterr()
    assert main(["check", str(out), "--baseline", str(baseline)]) == 1
    assert "invalid: 3 of 6 images hold NaN or inf" in capsys.readouterr().out


def test_two_identical_runs_at_once_equal_one(reference, tmp_path):
    suite, clean = reference
    out = tmp_path / "twice"
    command = [sys.executable, "-m", "lcm_bench", "run", str(suite), "--out", str(out), "-q"]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    generated = [int(o.split("chunks generated")[0].split()[-1]) for o, _ in outputs]
    assert sum(generated) == 6, f"chunks generated per run: {generated}"
    scored = [int(o.split("metric values computed")[0].split()[-1]) for o, _ in outputs]
    assert sum(scored) == 4, f"metric values computed per run: {scored}"
    same_as(clean, out)
