"""The "how to add" examples of docs/development.md, each registered as a throwaway entry and run through a suite: a
metric, a result field, a sampler and a model family are one entry and one function each."""

import json
import shutil

import numpy as np
import pytest
from conftest import needs_judge, write_suite
from PIL import Image

from lcm_bench.cli.main import main

SUITE = """
version: 1
name: extended
methods:
  - {{name: m, model: {model}, sampler: {sampler}, guidance_scale: 3.0}}
steps: [2]
prompts: [shapes-mini]
num_images: 4
batch_size: 4
{metrics}
"""


def _run(tmp_path, model: str = "tiny-sd", sampler: str = "ddim", metrics: str = "") -> dict:
    tmp_path.mkdir(parents=True, exist_ok=True)
    suite = write_suite(tmp_path, SUITE.format(model=model, sampler=sampler, metrics=metrics))
    out = tmp_path / "run"
    assert main(["run", str(suite), "--out", str(out), "--quiet", "--no-report"]) == 0
    (record,) = [json.loads(p.read_text()) for p in (out / "cells").glob("*.json")]
    return record


@pytest.fixture
def registered():
    """Register throwaway entries for one test and remove them after it."""
    added = []

    def register(registry, name, entry):
        registry.register(name, entry)
        added.append((registry, name))
        return entry

    yield register
    for registry, name in added:
        registry.unregister(name)


@needs_judge
def test_a_metric_is_an_entry_and_a_compute_function(tmp_path, registered, capsys):
    from lcm_bench.metrics.builtins import METRICS, MetricDef
    from lcm_bench.metrics.distances import bootstrap_ci

    def brightness(inputs):
        values = np.array([image.mean() for image in inputs.images()])
        low, high = bootstrap_ci(values)
        return {"value": float(values.mean()), "ci95": [low, high]}

    definition = MetricDef("brightness", True, "per-image", brightness, {"extractor": "shapes-judge"}, "mean pixel")
    registered(METRICS, "brightness", definition)
    record = _run(tmp_path, metrics="metrics: [brightness]")
    result = record["metrics"]["brightness_shapes-judge"]
    images = [np.asarray(Image.open(p)) for p in sorted((tmp_path / "run" / "images" / record["cell_id"]).glob("*"))]
    assert result["value"] == pytest.approx(np.mean([image.mean() for image in images]))
    assert result["label"] == "brightness" and result["higher_is_better"] and result["n"] == 4
    assert main(["list"]) == 0 and "brightness" in capsys.readouterr().out


@needs_judge
def test_a_new_result_field_reaches_results_csv_the_gate_and_the_report_from_its_own_module(tmp_path, registered):
    """A metric whose result carries a field no other metric has (``mad``: the median absolute deviation of its
    per-image values) registers the field beside itself: results.csv gets its column, the gate its noise and the
    report its note, and no module of lcm_bench changes."""
    import csv

    from lcm_bench.metrics.builtins import METRICS, MetricDef
    from lcm_bench.metrics.result_fields import RESULT_FIELDS, ResultField

    def brightness(inputs):
        values = np.array([image.mean() for image in inputs.images()])
        return {"value": float(values.mean()), "mad": float(np.median(np.abs(values - np.median(values))))}

    def note(frame, mid, label):
        return f"{label}: median absolute deviation {frame[mid + '_mad'].median():.4g}."

    registered(
        METRICS, "brightness", MetricDef("brightness", True, "per-image", brightness, {"extractor": "shapes-judge"})
    )
    registered(RESULT_FIELDS, "mad", ResultField(lambda r: {"_mad": r["mad"]}, noise=lambda r: 3 * r["mad"], note=note))
    record = _run(tmp_path, metrics="metrics: [brightness]")
    mad = record["metrics"]["brightness_shapes-judge"]["mad"]
    assert main(["report", str(tmp_path / "run")]) == 0
    (row,) = csv.DictReader((tmp_path / "run" / "results.csv").open())
    assert float(row["brightness_shapes-judge_mad"]) == pytest.approx(mad)
    assert f"brightness: median absolute deviation {mad:.4g}." in (tmp_path / "run" / "report.md").read_text()
    assert main(["baseline", str(tmp_path / "run"), "--out", str(tmp_path / "b.json")]) == 0
    (cell,) = json.loads((tmp_path / "b.json").read_text())["cells"].values()
    assert cell["metrics"]["brightness_shapes-judge"]["noise"] == pytest.approx(3 * mad) and mad > 0


def test_a_sampler_is_an_entry(tmp_path, registered):
    from lcm_bench.sampling.samplers import SAMPLERS, SamplerDef

    registered(SAMPLERS, "deis", SamplerDef("DEISMultistepScheduler", {"solver_order": 2}, description="DEIS-2"))
    record = _run(tmp_path, sampler="deis")
    assert record["schedule"]["scheduler"] == "DEISMultistepScheduler"
    assert record["schedule"]["timestep_spacing"] == "trailing"
    assert record["throughput"]["nfe_per_image"] == 4, "2 steps of classifier-free guidance at s = 3, counted"


def test_a_model_family_is_an_entry(tmp_path, tiny_sd_path, registered):
    from lcm_bench.models.families import FAMILIES, Family, encode_sd
    from lcm_bench.models.tiny import tiny_sd

    seen: list[str] = []
    encoded: list[str] = []

    def encode_upper(pipe, prompts, how):
        seen.extend(prompts)
        encoded.extend(p.upper() for p in prompts)
        return encode_sd(pipe, [p.upper() for p in prompts], how)

    folder = tmp_path / "upper"
    shutil.copytree(tiny_sd_path, folder)
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "_text_case": "upper"}))
    family = Family("capitals", lambda index: index.get("_text_case") == "upper", encode_upper, tiny_sd)
    registered(FAMILIES, "sd-upper", family)
    upper = _run(tmp_path / "a", model=str(folder))
    repeats = upper["throughput"]["timing_repeats"]
    assert upper["throughput"]["timing_repeats_from_generation"] == 1, "the bulk batch is the first repeat"
    assert upper["model"]["family"] == "sd-upper" and len(seen) == 4 * (1 + repeats), "warm-up, bulk, extra repeats"
    assert any(p != p.upper() for p in seen) and encoded == [p.upper() for p in seen], (
        "the cell's captions, in capitals"
    )
    plain = _run(tmp_path / "b", model=str(tiny_sd_path))
    assert plain["model"]["family"] == "sd" and len(seen) == 4 * (1 + repeats), "an unmatched folder keeps its own"
