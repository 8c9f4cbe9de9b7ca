"""The deployment axis: runtimes as named settings crossed with methods (eager cells keep their ids), what each
setting does to the images, compile time apart, latency percentiles and peak throughput (MLPerf SingleStream and
Offline), the report's speed-up beside quality cost, the gate's bound on p90 latency, and bad input."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from conftest import needs_judge, write_suite

from lcm_bench.cli.main import main
from lcm_bench.core.errors import UserError
from lcm_bench.core.spec import EAGER, RuntimeSpec
from lcm_bench.records.store import RunDir
from lcm_bench.sampling.timers import peak_throughput, percentile
from lcm_bench.suite.load import load_suite

BASE = """
version: 1
methods:
  - {{name: ddim, model: tiny-sd, sampler: ddim, guidance_scale: 3.0}}
steps: [2]
prompts: [shapes-mini]
num_images: 4
batch_size: 2
timing: {{min_repeats: 2, max_repeats: 2}}
{extra}
"""


def suite(tmp_path, extra: str = "", name: str = "suite.yaml"):
    return write_suite(tmp_path, BASE.format(extra=extra), name)


def tiny_decoder(folder, latent_channels: int = 4):
    """A randomly initialised AutoencoderTiny that upsamples 2x, as tiny-sd's VAE."""
    import torch
    from diffusers import AutoencoderTiny

    torch.manual_seed(0)
    AutoencoderTiny(
        encoder_block_out_channels=(8, 8),
        decoder_block_out_channels=(8, 8),
        num_encoder_blocks=(1, 1),
        num_decoder_blocks=(1, 1),
        latent_channels=latent_channels,
    ).save_pretrained(folder)
    return folder


def eager_and_deployed(out) -> tuple[dict, dict]:
    """The records of a run with one eager cell and one other: (eager, the other)."""
    records = list(RunDir(out).records().values())
    return next(r for r in records if not r["spec"].get("runtime")), next(
        r for r in records if r["spec"].get("runtime")
    )


def images(run, cell_id: str) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.open(p)) for p in sorted(run.images_dir(cell_id).glob("*.png"))])


def test_eager_cells_keep_their_ids_and_runtimes_are_named_settings_with_their_changed_options(tmp_path):
    plain = load_suite(suite(tmp_path))
    axis = load_suite(
        suite(
            tmp_path,
            "runtimes: [eager, channels-last, {name: graph, compile: {mode: default, backend: eager}},"
            " {name: tuned, channels-last: {}, fused-qkv: null}]",
            "axis.yaml",
        )
    )
    by_runtime = {c.runtime.name: c for c in axis.cells}
    assert by_runtime["eager"].cell_id == plain.cells[0].cell_id and by_runtime["eager"].runtime == EAGER
    assert "runtime" not in by_runtime["eager"].canonical()
    assert by_runtime["graph"].runtime.settings == (("compile", (("backend", "eager"),)),), "defaults left out"
    assert [s for s, _ in by_runtime["tuned"].runtime.settings] == ["channels-last", "fused-qkv"]
    assert len({c.config_key for c in axis.cells}) == 4
    assert by_runtime["tuned"].cell_id.split(".")[-2] == "tuned"


@pytest.mark.parametrize(
    "entry, message",
    [
        ("[warp-speed]", "runtimes[0]: unknown runtime setting 'warp-speed'"),
        ("[attention]", "runtimes[0].attention: missing backend"),
        ("[{name: a, attention: {backend: turbo}}]", "runtimes[0].attention.backend: 'turbo' is not one of"),
        ("[{name: c, compile: {modes: max-autotune}}]", "runtimes[0].compile: unknown key 'modes'"),
        ("[{name: x, channels-last: {}, vae-slicing: {}}, {name: x, fused-qkv: {}}]", "'x' is listed twice"),
        ("[{channels-last: {}, vae-slicing: {}}]", "runtimes[0].name: missing"),
        ("[{name: eager, channels-last: {}}]", "'eager' is the runtime without settings"),
    ],
)
def test_a_bad_runtime_is_one_line_naming_its_field(tmp_path, entry, message):
    with pytest.raises(UserError) as error:
        load_suite(suite(tmp_path, f"runtimes: {entry}"))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_fewer_than_a_hundred_latency_queries_cannot_give_a_p99(tmp_path):
    with pytest.raises(UserError, match="timing.latency_queries"):
        load_suite(write_suite(tmp_path, BASE.format(extra="").replace("max_repeats: 2}", "latency_queries: 20}")))


def test_a_runtime_the_machine_lacks_is_skipped_with_its_reason_and_the_rest_runs(tmp_path, capsys):
    out = tmp_path / "run"
    path = suite(tmp_path, "runtimes: [eager, cpu-offload, {name: graph, compile: {backend: eager}}]")
    assert main(["run", str(path), "--out", str(out), "-q"]) == 0
    import pandas as pd

    records = {r["cell_id"]: r for r in RunDir(out).records().values()}
    frame = pd.read_csv(out / "results.csv").set_index("runtime")
    assert frame.loc["cpu-offload", "status"] == "skipped"
    assert "CPU offload" in frame.loc["cpu-offload", "reason"]
    assert (frame.loc[["eager", "graph"], "status"] == "ok").all()
    graph = next(r for r in records.values() if (r["spec"].get("runtime") or {}).get("name") == "graph")
    eager = next(r for r in records.values() if "runtime" not in r["spec"] and r["status"] == "ok")
    assert graph["throughput"]["compile_seconds"] >= 0 and "compile_seconds" not in eager["throughput"]
    assert graph["fingerprint"]["components"]["runtime"]
    assert np.array_equal(images(RunDir(out), graph["cell_id"]), images(RunDir(out), eager["cell_id"])), (
        "dynamo's eager backend runs the same kernels: the runtime changes nothing of the sampling"
    )


def test_an_attention_kernel_the_models_attention_cannot_use_skips_its_cells_and_the_rest_run(
    tmp_path, monkeypatch, capsys
):
    """The probe cannot know every model's head size: a kernel that fails on the model itself skips its cells."""
    from lcm_bench.models import runtimes

    probed = dataclasses.replace(runtimes.RUNTIME_SETTINGS.get("attention"), unavailable=lambda hardware, options: None)
    monkeypatch.setitem(runtimes.RUNTIME_SETTINGS._entries, "attention", probed)
    out = tmp_path / "run"
    path = suite(tmp_path, "runtimes: [eager, {name: efficient, attention: {backend: efficient}}]")
    assert main(["run", str(path), "--out", str(out), "-q"]) == 0
    assert len(RunDir(out).records()) == 1
    results = (out / "results.csv").read_text()
    assert "skipped" in results and "efficient attention kernel cannot take this model's attention" in results


def test_a_suite_whose_every_runtime_is_missing_here_exits_2_saying_why(tmp_path, capsys):
    path = suite(tmp_path, "runtimes: [cpu-offload]")
    assert main(["run", str(path), "--out", str(tmp_path / "run"), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no cell of" in err and "CPU offload" in err and "\n" not in err
    assert "skipped" in (tmp_path / "run" / "results.csv").read_text()


def test_without_the_openvino_package_its_cells_are_skipped_saying_how_to_install_it(monkeypatch):
    import importlib.util

    from lcm_bench.core.hardware import parse_hardware
    from lcm_bench.models import runtimes

    real = importlib.util.find_spec
    monkeypatch.setattr(runtimes.importlib.util, "find_spec", lambda n, *a: None if n == "openvino" else real(n, *a))
    reason = runtimes.runtime_unavailable(RuntimeSpec("ov", (("openvino", ()),)), parse_hardware("cpu-fp32"))
    assert "pip install 'lcm-bench[openvino]'" in reason and "\n" not in reason
    monkeypatch.undo()
    on_gpu = runtimes.runtime_unavailable(RuntimeSpec("ov", (("openvino", ()),)), parse_hardware("cuda-fp16"))
    assert "cpu-fp32" in on_gpu


def test_a_tiny_decoder_replaces_the_vae_and_one_of_other_latents_is_one_line(tmp_path, capsys):
    good, wrong = tiny_decoder(tmp_path / "taesd-mini"), tiny_decoder(tmp_path / "taesd-16", 16)
    path = suite(tmp_path, "runtimes: [eager, {name: tiny, tiny-decoder: {weights: taesd-mini}}]")
    out = tmp_path / "run"
    assert main(["run", str(path), "--out", str(out), "-q"]) == 0
    eager, tiny = eager_and_deployed(out)
    assert tiny["spec"]["runtime"]["settings"][0][1] == [["weights", str(good.resolve())]]
    assert any(k.startswith("runtime:tiny-decoder") for k in tiny["fingerprint"]["components"])
    assert not np.array_equal(images(RunDir(out), tiny["cell_id"]), images(RunDir(out), eager["cell_id"]))
    capsys.readouterr()
    bad = suite(tmp_path, f"runtimes: [{{name: tiny, tiny-decoder: {{weights: {wrong}}}}}]", "bad.yaml")
    assert main(["run", str(bad), "--out", str(tmp_path / "bad"), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "decodes 16-channel latents" in err and "4-channel" in err and "Traceback" not in err


def test_percentiles_are_nearest_rank():
    values = np.random.default_rng(3).exponential(size=137)
    ordered = np.sort(values)
    for q in (50, 90, 99):
        assert percentile(values, q) == ordered[math.ceil(q / 100 * len(values)) - 1]


def test_the_batch_sweep_stops_where_a_doubling_stops_paying_or_memory_runs_out():
    """A batch's seconds are written into its timer, not slept: the sweep's logic, free of the machine's clock."""

    def saturating(size, timer):
        timer.seconds["denoising"] += 0.02 * max(1, size / 4)

    result = peak_throughput(saturating, 64, "cpu", repeats=1)
    sizes = [s["batch_size"] for s in result["sweep"]]
    assert sizes[:3] == [1, 2, 4] and result["stopped_by"] == "no gain" and result["batch_size"] in (4, 8)

    def out_of_memory(size, timer):
        if size > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        timer.seconds["denoising"] += 0.001

    result = peak_throughput(out_of_memory, 64, "cpu", repeats=1)
    assert [s["batch_size"] for s in result["sweep"]] == [1, 2] and result["stopped_by"] == "memory"


@needs_judge
def test_latency_is_added_to_a_finished_run_by_timing_alone_and_reported_and_gated(tmp_path, capsys):
    out = tmp_path / "run"
    axis = "runtimes: [eager, channels-last]\nmetrics: [attribute_accuracy]"
    assert main(["run", str(suite(tmp_path, axis)), "--out", str(out), "-q"]) == 0
    generated = {p: p.stat().st_mtime_ns for p in (out / "images").glob("*/*.png")}
    timed = BASE.format(extra=axis).replace(
        "max_repeats: 2}", "max_repeats: 2, latency_queries: 100, peak_throughput: true, max_batch_size: 4}"
    )
    capsys.readouterr()
    assert main(["run", str(write_suite(tmp_path, timed)), "--out", str(out), "-q"]) == 0
    assert "0 chunks generated" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in (out / "images").glob("*/*.png")} == generated, "images are not redrawn"
    for cell_id in RunDir(out).records():
        timing = json.loads((out / "timings" / f"{cell_id}.json").read_text())["timing"]
        throughput = RunDir(out).record(cell_id)["throughput"]
        seconds = timing["latency"]["seconds"]
        assert len(seconds) == throughput["latency_queries"] == 100
        assert throughput["latency_p90_s"] == percentile(seconds, 90) <= throughput["latency_p99_s"]
        best = max(timing["peak"]["sweep"], key=lambda s: s["images_per_s"])
        assert throughput["peak_images_per_s"] == best["images_per_s"] and best["batch_size"] <= 4
    report = (out / "report.md").read_text()
    assert "| 100 |" in report and "speed-up vs eager" in report

    baseline = tmp_path / "baseline.json"
    assert main(["baseline", str(out), "--out", str(baseline)]) == 0
    stored = json.loads(baseline.read_text())
    assert all("latency_p90_s" in c["throughput"]["values"] for c in stored["cells"].values())
    for record in RunDir(out).records().values():
        record["throughput"]["latency_p90_s"] *= 3
        RunDir(out).write_record(record)
    capsys.readouterr()
    assert main(["check", str(out), "--baseline", str(baseline), "--gate-throughput"]) == 1
    assert "latency_p90_s" in capsys.readouterr().out


def test_the_runtime_table_divides_eager_time_by_each_runtimes_and_subtracts_its_quality():
    import pandas as pd

    from lcm_bench.report.deployment import runtime_comparison

    rows = []
    for runtime, ms, value in (("eager", 10.0, 5.0), ("fast", 4.0, 6.5), ("eager", 12.0, 5.4), ("fast", 6.0, 7.1)):
        rows.append(
            {"status": "ok", "method": "m", "model": "x", "sampler_label": "ddim", "guidance_scale": 3.0,
             "prompts": "p", "hardware": "cpu-fp32", "machine": "box", "steps": 4, "runtime": runtime,
             "seconds_per_image": ms / 1e3, "fd": value, "seed": len(rows) // 2}
        )  # fmt: skip
    table = runtime_comparison(pd.DataFrame(rows), [{"id": "fd", "label": "FD", "higher_is_better": False}])
    fast = table[table["runtime"] == "fast"].iloc[0]
    assert fast["speedup"] == pytest.approx(11.0 / 5.0) and fast["fd_delta"] == pytest.approx(6.8 - 5.2)
    assert table[table["runtime"] == "eager"].iloc[0]["speedup"] == pytest.approx(1.0)


OPENVINO = """
version: 1
methods:
  - {{name: lcm, model: {model}, sampler: lcm, guidance_scale: 3.0}}
steps: [2]
prompts: [shapes-mini]
num_images: 8
batch_size: 4
runtimes: {runtimes}
timing: {{min_repeats: 2, max_repeats: 2}}
"""


def level_difference(a: np.ndarray, b: np.ndarray) -> tuple[int, float]:
    difference = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return int(difference.max()), float(difference.mean())


@pytest.mark.slow
def test_openvino_runs_a_converted_pipeline_and_its_export_in_optimum_intels_layout(tmp_path, capsys):
    """The tiny LCM converted to IR and sampled by lcm-bench's loop matches torch within the documented tolerance;
    the cached conversion is an export in optimum-intel's layout that runs as a model of its own, with the same
    images; an export missing a file, or run without the openvino setting, is one line."""
    pytest.importorskip("openvino")
    import shutil

    from lcm_bench.core.paths import cache_dir

    converted = write_suite(tmp_path, OPENVINO.format(model="tiny-lcm", runtimes="[eager, openvino]"), "c.yaml")
    out = tmp_path / "converted"
    assert main(["run", str(converted), "--out", str(out), "-q"]) == 0
    eager, ov = eager_and_deployed(out)
    assert ov["status"] == eager["status"] == "ok" and ov["throughput"]["compile_seconds"] > 0
    worst, mean = level_difference(images(RunDir(out), ov["cell_id"]), images(RunDir(out), eager["cell_id"]))
    assert worst <= 2 and mean <= 0.01, (worst, mean)

    exports = [p for p in (cache_dir() / "openvino").iterdir() if p.is_dir()]
    export = exports[0]
    assert (export / "unet" / "openvino_model.xml").is_file() and (export / "vae_decoder" / "config.json").is_file()
    folder = write_suite(tmp_path, OPENVINO.format(model=export, runtimes="[openvino]"), "f.yaml")
    assert main(["run", str(folder), "--out", str(tmp_path / "folder"), "-q"]) == 0
    (record,) = RunDir(tmp_path / "folder").records().values()
    assert np.array_equal(images(RunDir(tmp_path / "folder"), record["cell_id"]), images(RunDir(out), ov["cell_id"]))

    broken = tmp_path / "broken-export"
    shutil.copytree(export, broken)
    (broken / "unet" / "openvino_model.bin").unlink()
    capsys.readouterr()
    bad = write_suite(tmp_path, OPENVINO.format(model=broken, runtimes="[openvino]"), "b.yaml")
    assert main(["run", str(bad), "--out", str(tmp_path / "bad"), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unet/openvino_model.bin" in err and "\n" not in err
    eager_only = write_suite(tmp_path, OPENVINO.format(model=export, runtimes="[eager]"), "e.yaml")
    assert main(["run", str(eager_only), "--out", str(tmp_path / "eager"), "-q"]) == 2
    assert "runs only with the runtime setting openvino" in capsys.readouterr().err


@pytest.mark.slow
def test_inductor_compiles_once_per_shape_and_reports_the_time_apart(tmp_path):
    suite_path = write_suite(tmp_path, OPENVINO.format(model="tiny-lcm", runtimes="[eager, compile]"), "compile.yaml")
    out = tmp_path / "run"
    assert main(["run", str(suite_path), "--out", str(out), "-q"]) == 0
    eager, compiled = eager_and_deployed(out)
    assert compiled["throughput"]["compile_seconds"] > compiled["throughput"]["seconds_per_image"] * 4
    worst, mean = level_difference(images(RunDir(out), compiled["cell_id"]), images(RunDir(out), eager["cell_id"]))
    assert worst <= 2 and mean <= 0.01, (worst, mean)


@pytest.mark.slow
@pytest.mark.parametrize("model, sampler", [("shapes-teacher", "ddim"), ("shapes-lcm", "lcm")])
def test_openvino_images_of_the_embedded_models_stay_within_the_documented_tolerance(tmp_path, model, sampler):
    pytest.importorskip("openvino")
    text = OPENVINO.format(model=model, runtimes="[eager, openvino]").replace("sampler: lcm", f"sampler: {sampler}")
    out = tmp_path / "run"
    assert (
        main(["run", str(write_suite(tmp_path, text.replace("shapes-mini", "shapes-test"))), "--out", str(out), "-q"])
        == 0
    )
    eager, ov = eager_and_deployed(out)
    worst, mean = level_difference(images(RunDir(out), ov["cell_id"]), images(RunDir(out), eager["cell_id"]))
    assert worst <= 2 and mean <= 0.01, (worst, mean)


TINY_ACCURACY = """
version: 1
methods:
  - {name: lcm, model: shapes-lcm, sampler: lcm, guidance_scale: 3.0}
steps: [4]
prompts: [shapes-test, shapes-heldout]
runtimes: [eager, {name: tiny, tiny-decoder: {weights: shapes-tiny-decoder}}]
num_images: 512
batch_size: 64
timing: {min_repeats: 1, max_repeats: 1}
metrics: [attribute_accuracy]
"""


@pytest.mark.slow
@needs_judge
def test_the_shipped_tiny_decoder_reads_within_two_points_of_the_vae_at_four_lcm_steps(tmp_path):
    out = tmp_path / "run"
    assert main(["run", str(write_suite(tmp_path, TINY_ACCURACY)), "--out", str(out), "-q"]) == 0
    accuracy = {}
    for record in RunDir(out).records().values():
        runtime = (record["spec"].get("runtime") or {}).get("name", "eager")
        accuracy[runtime, record["spec"]["prompts"]["name"]] = record["metrics"]["attribute_accuracy_shapes-judge"][
            "value"
        ]
    for prompts in ("shapes-test", "shapes-heldout"):
        assert abs(accuracy["tiny", prompts] - accuracy["eager", prompts]) <= 0.02, accuracy
