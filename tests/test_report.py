"""Reports from records alone: paper-style tables in four formats, the published overlay, iso-quality speedup,
figures, sample grids and a self-contained HTML page that renders in headless Chromium.

The runs here are written record by record with known values, so every number in a table can be checked."""

import json
import math
import shutil
import subprocess

import numpy as np
import pytest
from conftest import write_suite
from PIL import Image

from lcm_bench.cli.main import main
from lcm_bench.records.store import RunDir
from lcm_bench.report.plots import pareto_front
from lcm_bench.report.speedup import cost_to_reach

FD, CLIP = "fd_judge", "clip_score_tiny"
MACHINE = {"cpu": "Test CPU", "cpu_count": 2, "cuda": None}


def quality(sampler: str, steps: int, scale: float, seed: int) -> tuple[float, float]:
    """Known curves: the teacher needs steps, the LCM does not; guidance trades distance for CLIP score."""
    fd = 40.0 + 2.0 * abs(scale - 3.0) - 2.0 * math.log2(steps) if sampler == "lcm" else 200.0 / steps + 20.0
    clip = 30.0 - 10.0 / steps + scale
    return fd + seed, clip + 0.1 * seed


def write_run(path, methods=(("teacher", "ddim", 3.0), ("lcm", "lcm", 3.0)), published=None, images=True):
    run = RunDir(path)
    cells = []
    for model, sampler, scale in methods:
        nfe_per_step = 1 if sampler == "lcm" else 2
        for steps in (1, 2, 4, 8):
            for seed in (0, 1):
                cell_id = f"{model}.{sampler}.s{steps}.g{scale:g}.cpu-fp32.{seed:010d}"
                fd, clip = quality(sampler, steps, scale, seed)
                record = {
                    "cell_id": cell_id,
                    "status": "ok",
                    "sampler_label": sampler,
                    "spec": {
                        "model": {"name": model},
                        "sampler": {"name": sampler},
                        "steps": steps,
                        "guidance_scale": scale,
                        "prompts": {"name": "mini", "source": "/nowhere.txt", "format": "txt", "column": None},
                        "hardware": {"name": "cpu-fp32", "device": "cpu", "dtype": "fp32"},
                        "seed": seed,
                        "num_images": 4,
                        "batch_size": 4,
                    },
                    "samples": [{"index": i, "prompt_index": i, "seed": i} for i in range(4)],
                    "throughput": {
                        "nfe_per_image": float(nfe_per_step * steps),
                        "seconds_per_image": 0.001 * (2 + nfe_per_step * steps),
                        "images_per_s": 1 / (0.001 * (2 + nfe_per_step * steps)),
                        "text_encoding_s_per_image": 0.0005,
                        "denoising_s_per_image": 0.001 * nfe_per_step * steps,
                        "vae_decoding_s_per_image": 0.0015,
                        "peak_memory_mb": 100.0,
                        "memory_kind": "process_rss",
                    },
                    "metrics": {
                        FD: {"value": fd, "label": "FD-Judge", "higher_is_better": False, "noise_floor": 10.0},
                        CLIP: {
                            "value": clip,
                            "label": "CLIP score",
                            "higher_is_better": True,
                            "ci95": [clip - 1, clip + 1],
                        },
                    },
                    "provenance": {"machine": MACHINE},
                }
                run.write_record(record)
                cells.append(cell_id)
                if images:
                    folder = run.images_dir(cell_id)
                    folder.mkdir(parents=True, exist_ok=True)
                    for i in range(4):
                        pixels = np.full((16, 16, 3), 40 * i + 10 * steps, dtype=np.uint8)
                        Image.fromarray(pixels).save(folder / f"{i:05d}.png")
    run.write_manifest(
        {
            "suite": {"name": "fake", "hash": "0" * 16, "published": published},
            "cells": cells,
            "metrics": [{"id": FD, "name": "fd", "options": {}}, {"id": CLIP, "name": "clip_score", "options": {}}],
            "skipped": [],
            "provenance": {"git": {"commit": "abc"}, "versions": {"torch": "2"}, "machine": MACHINE},
        }
    )
    return path


def test_cost_to_reach_interpolates_in_log_cost():
    assert cost_to_reach([(2, 100.0), (4, 50.0)], 70.0, higher_is_better=False) == pytest.approx(2**1.6)
    assert cost_to_reach([(1, 0.5), (2, 0.8), (4, 0.9)], 0.8, higher_is_better=True) == 2
    assert cost_to_reach([(1, 0.5)], 0.4, higher_is_better=True) == 1
    assert math.isnan(cost_to_reach([(1, 90.0), (2, 80.0)], 50.0, higher_is_better=False))


def test_pareto_front_keeps_only_undominated_points():
    points = [(1, 50.0), (2, 60.0), (2, 40.0), (4, 45.0), (8, 20.0)]
    assert pareto_front(points, higher_is_better=False) == [(1, 50.0), (2, 40.0), (8, 20.0)]
    assert pareto_front([(1, 0.2), (2, 0.1), (4, 0.9)], higher_is_better=True) == [(1, 0.2), (4, 0.9)]


def test_quality_table_in_four_formats_marks_the_best(tmp_path):
    run = write_run(tmp_path / "run")
    assert main(["report", str(run)]) == 0
    markdown = (run / "tables" / "quality.md").read_text()
    lcm_row = next(line for line in markdown.splitlines() if line.startswith("| lcm / lcm"))
    teacher_row = next(line for line in markdown.splitlines() if line.startswith("| teacher / ddim"))
    # 1 step: LCM fd 40 (seeds 40, 41 -> 40.5 ± 0.71) beats the teacher's 220.5; CLIP at 8 steps: teacher ties LCM
    assert "**40.50 ± 0.71**" in lcm_row and "220.50 ± 0.71" in teacher_row and "**" not in teacher_row.split("|")[2]
    assert "| FD-Judge 1 |" in markdown and "| CLIP score 8 |" in markdown
    assert markdown.index("| teacher / ddim") < markdown.index("| lcm / lcm"), "rows follow the suite's order"
    assert r"\textbf{40.50 $\pm$ 0.71}" in (run / "tables" / "quality.tex").read_text()
    assert "<td><b>40.50 ± 0.71</b></td>" in (run / "tables" / "quality.html").read_text()
    assert (run / "tables" / "quality.csv").read_text().startswith("method,FD-Judge 1,")
    import pandas as pd

    tidy = pd.read_csv(run / "tables" / "quality_long.csv")
    one = tidy[(tidy["model"] == "lcm") & (tidy["steps"] == 1) & (tidy["metric"] == FD)].iloc[0]
    assert one["mean"] == pytest.approx(40.5) and one["nfe_per_image"] == 1 and one["noise_floor"] == 10


def test_iso_quality_speedup_against_the_best_baseline(tmp_path):
    run = write_run(tmp_path / "run")
    assert main(["report", str(run), "--target", "70"]) == 0
    table = (run / "tables" / "speedup_mini.md").read_text()
    # teacher fd (seed mean): 220.5, 120.5, 70.5, 45.5 at NFE 2, 4, 8, 16 -> 70 crossed just after NFE 8
    teacher_nfe = math.exp(math.log(8) + (70 - 70.5) / (45.5 - 70.5) * (math.log(16) - math.log(8)))
    lcm_row = next(line for line in table.splitlines() if line.startswith("| lcm / lcm"))
    assert f"| {teacher_nfe:.3g} |" in table and "| 1 |" in lcm_row
    assert f"{teacher_nfe:.2g}x /" in lcm_row
    default = tmp_path / "default"
    shutil.copytree(run, default)
    assert main(["report", str(default)]) == 0
    # default target: the best value the weakest method reaches (the teacher's 45.5 at 8 steps): every method
    # reaches it, so the table answers for each
    text = (default / "report.md").read_text()
    assert "at most 45.5 (the best teacher / ddim / s=3 (w=2) reaches, at 8 steps" in text
    table = (default / "tables" / "speedup_mini.md").read_text()
    assert "not reached" not in table and "| lcm / lcm / s=3 (w=2) | 1 |" in table


def _series(panels: list[dict], title_part: str, label: str) -> tuple[list, list]:
    panel = next(p for p in panels if title_part in p["title"])
    return panel["series"][label]


def test_published_overlay_and_figures(tmp_path, figures):
    run = write_run(tmp_path / "run", methods=(("teacher", "ddim", 3.0), ("lcm", "lcm", 3.0), ("lcm", "lcm", 9.0)))
    assert main(["report", str(run), "--published", "lcm-table1"]) == 0
    text = (run / "report.md").read_text()
    assert "## Reported against measured" in text
    overlay = (run / "tables" / "published.md").read_text()
    assert "| DDIM | reported | 183.29 |" in overlay and "| LCM | measured: lcm, s=9, mini | 52.5 |" in overlay
    for figure in ("quality_vs_steps", "guidance", "quality_vs_cost", "cost_vs_steps", "samples_mini"):
        assert (run / "plots" / f"{figure}.pdf").is_file(), figure
        assert f"(plots/{figure}.png)" in text, figure
    teacher = [200.0 / s + 20.5 for s in (1, 2, 4, 8)]
    assert _series(figures["quality_vs_steps"], "FD-Judge", "teacher / ddim / s=3 (w=2)") == ([1, 2, 4, 8], teacher)
    lcm = [52.5 - 2 * math.log2(s) for s in (1, 2, 4, 8)]
    assert _series(figures["quality_vs_steps"], "FD-Judge", "lcm / lcm / s=9 (w=8)") == ([1, 2, 4, 8], lcm)
    clip, fd = _series(figures["guidance"], "Guidance", "lcm / lcm, 1 step")
    assert clip == pytest.approx([23.05, 29.05]) and fd == [40.5, 52.5]
    cost = _series(figures["quality_vs_cost"], "against NFE per image", "teacher / ddim / s=3 (w=2)")
    assert cost == ([2, 4, 8, 16], teacher)
    ms = _series(figures["cost_vs_steps"], "", "teacher / ddim / s=3 (w=2) / cpu-fp32")
    assert ms == ([1, 2, 4, 8], pytest.approx([4.0, 6.0, 10.0, 18.0]))
    (canvas,) = figures["samples_mini"][0]["images"]
    assert canvas.shape == (2 + 12 * 18, 2 + 4 * 18, 3), "12 rows (3 methods x 4 steps) of 4 samples"
    first_row = [int(canvas[2 + 8, 2 + 18 * j + 8, 0]) for j in range(4)]
    assert first_row == [40 * j + 10 for j in range(4)], "the teacher's 1-step samples, in order"


def test_suite_names_its_published_table(tmp_path, capsys):
    suite = write_suite(
        tmp_path, "version: 1\nmodels: [tiny-sd]\nsamplers: [ddim]\nprompts: [shapes-mini]\npublished: table9\n"
    )
    assert main(["validate", str(suite)]) == 2
    assert "published: unknown published table 'table9'" in capsys.readouterr().err
    run = write_run(tmp_path / "run", published="lcm-table1", images=False)
    assert main(["report", str(run)]) == 0
    assert "| LCM | reported | 35.36 |" in (run / "report.md").read_text()
    assert main(["report", str(run), "--published", "table9"]) == 2
    assert main(["report", str(run), "--target-metric", "nope"]) == 2


def test_throughput_merges_machines(tmp_path):
    first = write_run(tmp_path / "a", methods=(("teacher", "ddim", 3.0),), images=False)
    second = write_run(tmp_path / "b", methods=(("teacher", "ddim", 3.0),), images=False)
    for file in (second / "cells").glob("*.json"):
        record = json.loads(file.read_text())
        record["cell_id"] = record["cell_id"] + "-gpu"
        record["provenance"]["machine"] = {"cuda": {"devices": ["Test GPU"]}}
        record["throughput"]["seconds_per_image"] /= 10
        file.unlink()
        (second / "cells" / f"{record['cell_id']}.json").write_text(json.dumps(record))
    manifest = json.loads((second / "manifest.json").read_text())
    manifest["cells"] = [c + "-gpu" for c in manifest["cells"]]
    (second / "manifest.json").write_text(json.dumps(manifest))
    assert main(["report", str(first), str(second), "--out", str(tmp_path / "merged")]) == 0
    table = (tmp_path / "merged" / "tables" / "throughput.md").read_text()
    assert "| Test CPU x2 | cpu-fp32 | 8 | 16 |" in table and "| Test GPU | cpu-fp32 | 8 | 16 |" in table
    assert "| 18 [18, 18] | 55.6 |" in table and "| 1.8 [1.8, 1.8] | 556 |" in table, "images/s is 1000 / ms"


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


PROBE = """<script>
window.__errors = [];
window.addEventListener("error", e => window.__errors.push(String(e.message || (e.target && e.target.src))), true);
const original = console.error;
console.error = (...a) => { window.__errors.push(a.join(" ")); original(...a); };
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const broken = images.filter(i => !i.complete || i.naturalWidth === 0).length;
  document.title = `probe images=${images.length} broken=${broken} errors=${window.__errors.length}`;
});
</script>"""


@pytest.mark.skipif(
    chromium() is None, reason="headless Chromium is not installed (.ci/run installs Debian's chromium)"
)
def test_report_html_renders_in_headless_chromium(tmp_path):
    run = write_run(tmp_path / "run")
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert "src='plots/" not in page and page.count("data:image/png;base64,") >= 4
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("<head>", "<head>" + PROBE, 1))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=5000"]
    dom = subprocess.run(
        [chromium(), *flags, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    images = page.count("<img ")
    assert f"probe images={images} broken=0 errors=0" in dom
    shot = tmp_path / "shot.png"
    subprocess.run(
        [chromium(), *flags, f"--screenshot={shot}", "--window-size=1200,1600", (run / "report.html").as_uri()],
        capture_output=True,
        timeout=120,
    )
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 10 and (pixels < 128).mean() > 0.005


def test_figures_keep_their_legends_inside_and_tick_labels_apart(tmp_path, figures):
    run = write_run(tmp_path / "run", methods=(("teacher", "ddim", 3.0), ("lcm", "lcm", 3.0), ("lcm", "lcm", 9.0)))
    assert main(["report", str(run)]) == 0
    drawn = {name: panels[0]["layout"] for name, panels in figures.items() if panels and "layout" in panels[0]}
    assert {"quality_vs_steps", "quality_vs_cost", "cost_vs_steps", "guidance"} <= set(drawn)
    for name, layout in drawn.items():
        assert layout["legends_outside"] == 0 and layout["tick_overlaps"] == 0, (name, layout)


def test_the_cost_figure_shows_the_cost_table(tmp_path, figures):
    run = write_run(tmp_path / "run", images=False)
    assert main(["report", str(run)]) == 0
    rows = [line.split(" | ") for line in (run / "tables" / "throughput.md").read_text().splitlines()[2:]]
    table = {(r[0].strip("| "), int(r[3])): float(r[5].split(" [")[0]) for r in rows}
    for label, (steps, ms) in _cost_series(figures).items():
        for s, value in zip(steps, ms, strict=True):
            assert table[(label.rsplit(" / ", 1)[0], int(s))] == pytest.approx(value, rel=1e-2)


def _cost_series(figures) -> dict:
    return {k: v for k, v in figures["cost_vs_steps"][0]["series"].items() if k != "noise floor"}


def test_metrics_are_named_by_their_short_name_too(tmp_path):
    run = write_run(tmp_path / "run", images=False)
    assert main(["report", str(run), "--target-metric", "clip_score", "--target", "25"]) == 0
    assert "cost to reach CLIP score at least 25" in (run / "report.md").read_text()


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed (.ci/run installs it)")
def test_latex_tables_compile(tmp_path):
    run = write_run(tmp_path / "run", images=False)
    assert main(["report", str(run)]) == 0
    tables = "\n\\clearpage\n".join(p.read_text() for p in sorted((run / "tables").glob("*.tex")))
    assert "quality.tex" in {p.name for p in (run / "tables").glob("*.tex")}
    document = (
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{graphicx}\n"
        f"\\begin{{document}}\n{tables}\n\\end{{document}}\n"
    )
    (tmp_path / "doc.tex").write_text(document)
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:]
    assert "Overfull \\hbox" not in done.stdout, "a table runs off the page"


@pytest.mark.parametrize(
    ("value", "spread", "floor", "marked"),
    [(1100.0, 60.0, 1040.0, True), (1300.0, 60.0, 1040.0, False), (1100.0, 20.0, 1040.0, False)],
)
def test_a_distance_on_its_noise_floor_says_so_beside_the_number(value, spread, floor, marked):
    from lcm_bench.report.tables import _value_text

    row = {"fd": value, "fd_subset_std": spread, "fd_noise_floor": floor, "seeds": 2, "fd_seed_std": spread}
    assert _value_text(row, "fd").endswith("≈floor") == marked
    assert _value_text({k: v for k, v in row.items() if k != "fd_noise_floor"}, "fd").endswith("≈floor") is False
