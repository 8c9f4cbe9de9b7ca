"""End to end through the CLI: a grid of samplers x steps on a tiny saved pipeline, resume, kill -9, reports."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import torch
from conftest import kill_when, write_suite

from lcm_bench.cli.main import main

GRID = """
version: 1
name: tiny-grid
models:
  - {{name: tiny, path: {path}}}
samplers: [ddim, dpmsolver, dpmsolver++, euler]
steps: [1, 2, 4, 8]
guidance_scales: [7.5]
prompts: [shapes-mini]
hardware: [cpu-fp32, cuda-fp16]
num_images: 4
batch_size: 4
timing: {{min_repeats: 1, max_repeats: 1}}   # one batch per cell, timed once: these tests are not about time
"""


@pytest.fixture(scope="module")
def grid_run(tiny_sd_path, tmp_path_factory):
    directory = tmp_path_factory.mktemp("grid")
    suite = write_suite(directory, GRID.format(path=tiny_sd_path))
    out = directory / "run"
    assert main(["run", str(suite), "--out", str(out), "--quiet"]) == 0
    return suite, out


def test_grid_fills_results_csv(grid_run):
    _, out = grid_run
    frame = pd.read_csv(out / "results.csv")
    ok = frame[frame.status == "ok"]
    assert len(ok) == 16
    assert set(ok.sampler) == {"ddim", "dpmsolver", "dpmsolver++", "euler"}
    assert (ok.nfe_per_image == 2 * ok.steps).all()
    assert (ok.paper_w == ok.guidance_scale - 1).all()
    assert (ok.images_per_s > 0).all() and (ok.peak_memory_mb > 0).all()
    assert set(ok.timestep_spacing) == {"trailing"}
    for column in ("cell_id", "model", "seconds_per_image", "seconds_per_nfe", "vae_decoding_s_per_image"):
        assert ok[column].notna().all()
    assert len(list((out / "images").glob("*/*.png"))) == 16 * 4


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_absent_device_is_skipped_with_reason(grid_run):
    _, out = grid_run
    frame = pd.read_csv(out / "results.csv")
    skipped = frame[frame.status == "skipped"]
    assert len(skipped) == 16
    assert set(skipped.reason) == {"CUDA is not available on this machine"}
    assert not any((out / "cells").glob("*cuda*"))


def test_records_carry_provenance_and_schedule(grid_run):
    _, out = grid_run
    record = json.loads(next((out / "cells").glob("*.ddim.s4.*.json")).read_text())
    assert record["schema_version"] == 2
    assert record["cell_id"].endswith(record["config_key"][:10])
    assert record["fingerprint"]["components"]["generation"] and len(record["fingerprint"]["value"]) == 16
    assert record["guidance"] == {"diffusers_guidance_scale": 7.5, "paper_w": 6.5}
    assert record["schedule"]["timesteps"] == [999, 749, 499, 249]
    assert set(record["provenance"]) >= {"git", "versions", "machine"}
    assert record["provenance"]["versions"]["diffusers"]
    assert len(record["samples"]) == 4


def test_finished_run_recomputes_nothing(grid_run, capsys):
    suite, out = grid_run
    before = {p.name: p.stat().st_mtime_ns for p in (out / "cells").iterdir()}
    assert main(["run", str(suite), "--out", str(out), "--quiet"]) == 0
    assert "0 cells computed, 16 reused" in capsys.readouterr().out
    assert before == {p.name: p.stat().st_mtime_ns for p in (out / "cells").iterdir()}


def test_report_rebuilds_from_records_and_merges_runs(grid_run, tmp_path, figures):
    _, out = grid_run
    (out / "report.md").unlink()
    assert main(["report", str(out), str(out), "--out", str(tmp_path)]) == 0
    text = (tmp_path / "report.md").read_text()
    label = "| tiny / ddim / s=7.5 (w=6.5)"
    rows = [line for line in text.splitlines() if line.startswith((f"{label} |", f"{label} † |"))]
    assert any("| cpu-fp32 | 8 | 16 |" in row for row in rows)
    frame = pd.read_csv(out / "results.csv")
    ok = frame[frame.status == "ok"]
    (panel,) = figures["cost_vs_steps"]
    assert len(panel["series"]) == 4, "one line per sampler (the CUDA cells were skipped)"
    for sampler in ("ddim", "dpmsolver", "dpmsolver++", "euler"):
        cells = ok[ok.sampler == sampler].sort_values("steps")
        steps, ms = panel["series"][f"tiny / {sampler} / s=7.5 (w=6.5) / cpu-fp32"]
        assert steps == [1, 2, 4, 8] and ms == pytest.approx((cells.seconds_per_image * 1e3).tolist())
    assert (tmp_path / "report.html").read_text().count("data:image/png;base64,") >= 1


def test_report_leaves_out_records_of_cells_no_longer_in_the_suite(grid_run, tmp_path):
    import shutil

    _, out = grid_run
    run = tmp_path / "run"
    shutil.copytree(out, run)
    record = json.loads(next((run / "cells").glob("*.json")).read_text())
    record["cell_id"] = "stale.ddim.s1.g7.5.cpu-fp32.0000000000"
    record["spec"]["model"]["name"] = "stale-model"
    (run / "cells" / f"{record['cell_id']}.json").write_text(json.dumps(record))
    assert main(["report", str(run)]) == 0
    assert "stale-model" not in (run / "report.md").read_text()


def test_report_of_a_non_run(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no manifest.json" in capsys.readouterr().err


def test_guidance_embedding_asked_of_a_model_without_one(tiny_sd_path, tmp_path, capsys):
    suite = write_suite(
        tmp_path, GRID.format(path=tiny_sd_path).replace("[ddim, dpmsolver, dpmsolver++, euler]", "[guided-distill]")
    )
    assert main(["run", str(suite), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "needs a guidance embedding, but model 'tiny' has none" in err
    assert not (tmp_path / "run" / "cells").exists()


KILL_SUITE = """
version: 1
name: killed
models: [tiny-sd]
samplers: [ddim, euler, dpmsolver++]
steps: [1, 2, 4, 8]
prompts: [shapes-mini]
num_images: 8
batch_size: 2
save_images: grid
timing: {min_repeats: 1, max_repeats: 1}
"""


def test_sigkill_then_resume_loses_and_duplicates_nothing(tmp_path):
    suite = write_suite(tmp_path, KILL_SUITE)
    out = tmp_path / "run"
    command = [sys.executable, "-m", "lcm_bench", "run", str(suite), "--out", str(out), "--quiet", "--no-report"]
    kill_when(command, out / "cells", "*.json", 3)
    survivors = {p.name: p.read_bytes() for p in (out / "cells").glob("*.json")}
    assert 3 <= len(survivors) < 12
    for content in survivors.values():
        json.loads(content)
    resumed = subprocess.run(command, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{12 - len(survivors)} cells computed, {len(survivors)} reused" in resumed.stdout
    for name, content in survivors.items():
        assert (out / "cells" / name).read_bytes() == content
    frame = pd.read_csv(out / "results.csv")
    assert len(frame) == 12 and frame.cell_id.is_unique and (frame.status == "ok").all()
    assert not list(out.rglob("*.tmp"))


def test_temporaries_of_a_killed_writer_are_swept_and_no_one_elses(tmp_path):
    """A write killed between creating its temporary and renaming it leaves ``.<name>.<host>_<pid>_<hex>.tmp``; the
    next run removes those whose process of this host is gone, never a live writer's or another host's."""
    from lcm_bench.core.io import _host, orphaned_temporaries, remove_orphaned_temporaries

    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(finished.stdout)
    (tmp_path / "timings").mkdir()
    orphan = tmp_path / "timings" / f".cell.json.{_host()}_{dead}_0123abcd.tmp"
    live = tmp_path / "timings" / f".cell.json.{_host()}_{os.getpid()}_0123abcd.tmp"
    elsewhere = tmp_path / f".cell.json.another-host_{dead}_0123abcd.tmp"
    for path in (orphan, live, elsewhere):
        path.write_bytes(b"half")
    assert orphaned_temporaries(tmp_path) == [orphan]
    assert remove_orphaned_temporaries(tmp_path) == 1
    assert not orphan.exists() and live.exists() and elsewhere.exists()


TERMINAL = """
version: 1
name: on-a-terminal
models:
  - {{name: tiny, path: {path}}}
samplers: [ddim]
steps: [1]
guidance_scales: [1.0]
prompts: [shapes-mini]
num_images: 4
batch_size: 2
metrics:
  - {{name: fd, extractor: clip, model: lcm-bench-tiny-clip, pretrained: random}}
"""


def test_a_run_on_a_terminal_draws_its_progress_bars(tiny_sd_path, tmp_path):
    """stderr a terminal (a pseudo-terminal of 24 x 120 here): the generation and scoring bars draw, and the run
    ends 0."""
    import fcntl
    import pty
    import struct
    import termios
    import threading

    suite = write_suite(tmp_path, TERMINAL.format(path=tiny_sd_path))
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    command = [sys.executable, "-m", "lcm_bench", "run", str(suite), "--out", str(tmp_path / "run"), "--no-report"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=follower, stdin=subprocess.DEVNULL)
    os.close(follower)
    drawn = bytearray()

    def drain():
        while True:
            try:
                data = os.read(leader, 4096)
            except OSError:
                return
            if not data:
                return
            drawn.extend(data)

    reader = threading.Thread(target=drain)
    reader.start()
    code = proc.wait(timeout=300)
    reader.join(timeout=10)
    os.close(leader)
    text = drawn.decode(errors="replace")
    assert code == 0, text[-2000:]
    assert "4/4 [" in text and "img/s" in text and "scoring" in text and "metric/s" in text, text[-2000:]
