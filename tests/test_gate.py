"""The quality gate on synthetic runs: direction-aware tolerances, noise band, bounds, outcomes, exit codes; it
fails closed on missing and not comparable values unless told otherwise."""

import json
from pathlib import Path

import pytest

from lcm_bench.cli.main import main
from lcm_bench.core.paths import embedded_models_dir
from lcm_bench.records.store import RunDir

CELLS = {"m.lcm.s1": (120.0, 0.80), "m.lcm.s4": (60.0, 0.90)}


MACHINE = {"cpu": "test cpu", "cpu_count": 2, "cuda": None}


def _run(
    path,
    cells=CELLS,
    n=300,
    drop=(),
    digest="judge-1",
    unet="u1",
    seconds=0.01,
    machine=MACHINE,
    nfe=2.0,
    reference=None,
    more=None,
    **extra,
):
    run = RunDir(path)
    ids = [c for c in cells if c not in drop]
    run.write_manifest({"suite": {"name": "gate", "hash": "h"}, "cells": ids})
    for cell_id in ids:
        fd, accuracy = cells[cell_id]
        common = {"higher_is_better": False, "n": n, "mode": None, "options": {}, "extractor_digest": digest}
        run.write_record(
            {
                "cell_id": cell_id,
                "status": "ok",
                "sampler_label": "lcm",
                "fingerprint": {"value": unet, "components": {"weights:unet": unet, "scheduler": "s"}},
                "provenance": {"machine": machine, "versions": {"torch": "2.14.1"}},
                "throughput": {"nfe_per_image": nfe, "seconds_per_image": seconds, "peak_memory_mb": 100.0, **extra},
                "spec": {
                    "model": {"name": "m"},
                    "sampler": {"name": "lcm"},
                    "steps": int(cell_id[-1]),
                    "guidance_scale": 3.0,
                    "prompts": {"name": "shapes-test"},
                    "hardware": {"name": "cpu-fp32"},
                    "batch_size": 8,
                    "seed": 0,
                },
                "metrics": {
                    "fd_shapes-judge": {
                        **common,
                        "metric": "fd",
                        "value": fd,
                        "subsets": {"std": 2.0},
                        "reference": reference or {"hash": "ref"},
                    },
                    "attribute_accuracy_shapes-judge": {
                        **common,
                        "metric": "attribute_accuracy",
                        "value": accuracy,
                        "higher_is_better": True,
                        "ci95": [accuracy - 0.02, accuracy + 0.02],
                    },
                    **{k: {**common, **v} for k, v in (more or {}).items()},
                },
            }
        )
    return path


@pytest.fixture
def baseline(tmp_path):
    assert main(["baseline", str(_run(tmp_path / "base")), "--out", str(tmp_path / "baseline.json")]) == 0
    return tmp_path / "baseline.json"


def test_the_same_run_passes(baseline, tmp_path, capsys):
    assert main(["check", str(tmp_path / "base"), "--baseline", str(baseline)]) == 0
    assert "PASS" in capsys.readouterr().out


def test_a_worse_distance_and_a_lower_accuracy_regress(baseline, tmp_path, capsys):
    worse = _run(tmp_path / "worse", {"m.lcm.s1": (150.0, 0.80), "m.lcm.s4": (60.0, 0.80)})
    summary = tmp_path / "summary.md"
    assert main(["check", str(worse), "--baseline", str(baseline), "--summary", str(summary)]) == 1
    text = summary.read_text()
    assert "FAIL" in text and text.count("| regressed |") == 2
    assert "| regressed | m / lcm / 1 steps" in text and "`fd_shapes-judge` | 120 | 150 | 12 |" in text


def test_better_is_improved_and_small_changes_pass(baseline, tmp_path, capsys):
    better = _run(tmp_path / "better", {"m.lcm.s1": (90.0, 0.81), "m.lcm.s4": (63.0, 0.89)})
    assert main(["check", str(better), "--baseline", str(baseline)]) == 0
    out = capsys.readouterr().out
    assert "1 improved, 3 pass" in out


def test_noise_band_widens_the_margin(tmp_path):
    assert main(["baseline", str(_run(tmp_path / "base")), "--out", str(tmp_path / "b.json"), "--rel", "0"]) == 0
    within = _run(tmp_path / "within", {"m.lcm.s1": (123.9, 0.80), "m.lcm.s4": (60.0, 0.90)})
    outside = _run(tmp_path / "outside", {"m.lcm.s1": (124.1, 0.80), "m.lcm.s4": (60.0, 0.90)})
    assert main(["check", str(within), "--baseline", str(tmp_path / "b.json")]) == 0
    assert main(["check", str(outside), "--baseline", str(tmp_path / "b.json")]) == 1


def test_the_gate_fails_closed_on_missing_and_not_comparable_values(baseline, tmp_path, capsys):
    dropped = _run(tmp_path / "d", drop=("m.lcm.s4",))
    assert main(["check", str(dropped), "--baseline", str(baseline)]) == 1
    out = capsys.readouterr().out
    assert "FAIL: 2 missing" in out and "2 missing, 2 pass" in out and "cell not in the run" in out
    assert main(["check", str(dropped), "--baseline", str(baseline), "--allow-missing"]) == 0
    assert "PASS (2 missing allowed by --allow-missing)" in capsys.readouterr().out

    other_n = _run(tmp_path / "n", n=100)
    assert main(["check", str(other_n), "--baseline", str(baseline)]) == 1
    assert "FAIL: 4 not comparable" in capsys.readouterr().out
    assert main(["check", str(other_n), "--baseline", str(baseline), "--allow-incomparable"]) == 0
    assert main(["check", str(other_n), "--baseline", str(baseline), "--allow-missing"]) == 1

    retrained = _run(tmp_path / "judge", digest="judge-2")
    assert main(["check", str(retrained), "--baseline", str(baseline)]) == 1
    assert capsys.readouterr().out.count("extractor weights changed") == 4


def test_new_weights_are_judged_and_named(baseline, tmp_path, capsys):
    new_unet = _run(tmp_path / "u", {"m.lcm.s1": (150.0, 0.80), "m.lcm.s4": (60.0, 0.90)}, unet="u2")
    assert main(["check", str(new_unet), "--baseline", str(baseline)]) == 1
    out = capsys.readouterr().out
    assert "m / lcm / 1 steps / s=3 / shapes-test / seed 0: weights of m changed (unet)" in out
    assert "FAIL: 1 regressed" in out


def test_extra_cells_and_version_changes_are_stated(baseline, tmp_path, capsys):
    extra = _run(tmp_path / "x", {**CELLS, "m.lcm.s8": (50.0, 0.95)})
    record = json.loads((extra / "cells" / "m.lcm.s8.json").read_text())
    record["provenance"]["versions"]["torch"] = "2.15.0"
    (extra / "cells" / "m.lcm.s8.json").write_text(json.dumps(record))
    assert main(["check", str(extra), "--baseline", str(baseline)]) == 0
    out = capsys.readouterr().out
    assert "1 cells of the run are not in the baseline (not gated): m.lcm.s8" in out
    assert "library versions differ from the baseline's: torch 2.14.1 (2 cells) / 2.15.0 (1 cell)" in out


def test_throughput_is_gated_only_on_request_and_on_the_same_machine(baseline, tmp_path, capsys):
    slow = _run(tmp_path / "slow", seconds=0.05)
    assert main(["check", str(slow), "--baseline", str(baseline)]) == 0
    assert main(["check", str(slow), "--baseline", str(baseline), "--gate-throughput"]) == 1
    assert "FAIL: 2 regressed" in capsys.readouterr().out
    elsewhere = _run(tmp_path / "gpu", seconds=0.05, machine={**MACHINE, "cpu": "other cpu"})
    assert main(["check", str(elsewhere), "--baseline", str(baseline), "--gate-throughput"]) == 1
    out = capsys.readouterr().out
    assert "FAIL: 4 not comparable" in out and "machine test cpu x2 -> other cpu x2" in out
    lenient = ["--baseline", str(baseline), "--gate-throughput", "--allow-incomparable"]
    assert main(["check", str(elsewhere), *lenient]) == 0
    more_nfe = _run(tmp_path / "nfe", nfe=4.0, machine={**MACHINE, "cpu": "other cpu"})
    assert main(["check", str(more_nfe), *lenient]) == 1
    capsys.readouterr()
    shared = _run(tmp_path / "shared", seconds=0.05, processes=2)
    assert main(["check", str(shared), "--baseline", str(baseline), "--gate-throughput"]) == 1
    assert "processes 1 -> 2" in capsys.readouterr().out, "timings of two processes sharing a machine were compared"


def test_non_finite_values_regress(baseline, tmp_path, capsys):
    nan = _run(tmp_path / "nan", {"m.lcm.s1": (float("nan"), 0.80), "m.lcm.s4": (60.0, 0.90)})
    assert main(["check", str(nan), "--baseline", str(baseline)]) == 1
    assert "not a finite number" in capsys.readouterr().out


def test_two_sided_bounds(baseline, tmp_path):
    data = json.loads(baseline.read_text())
    data["cells"]["m.lcm.s4"]["metrics"]["attribute_accuracy_shapes-judge"]["bounds"] = [0.95, 1.0]
    baseline.write_text(json.dumps(data))
    assert main(["check", str(tmp_path / "base"), "--baseline", str(baseline)]) == 1


def _mlperf_run(path, fid: float, clip: float):
    """A run with MLPerf's two metrics (FID, CLIP score) beside the usual ones."""
    more = {
        "fid": {"metric": "fid", "value": fid, "reference": {"hash": "coco"}, "mode": "clean"},
        "clip_score_ViT-g-14": {"metric": "clip_score", "value": clip, "higher_is_better": True, "ci95": [clip, clip]},
    }
    return _run(path, more=more)


def test_the_mlperf_profile_gates_fid_and_clip_in_windows_both_ways(tmp_path, capsys):
    """Around MLPerf's SDXL reference values (FID 23.4805, CLIP 31.7498) the profile's windows are MLPerf's own
    (23.01085758-23.95007626, 31.68631873-31.81331801); leaving one either way fails, inside passes; metrics
    without a window keep the usual one-sided margin."""
    reference = _mlperf_run(tmp_path / "reference", 23.48046692, 31.74981837)
    out = tmp_path / "mlperf.json"
    assert main(["baseline", str(reference), "--out", str(out), "--profile", "mlperf"]) == 0
    assert "(4 values in mlperf's windows)" in capsys.readouterr().out
    cell = json.loads(out.read_text())["cells"]["m.lcm.s1"]["metrics"]
    assert cell["fid"]["bounds"] == pytest.approx([23.01085758, 23.95007626], abs=1e-6)
    assert cell["clip_score_ViT-g-14"]["bounds"] == pytest.approx([31.68631873, 31.81331801], abs=1e-6)
    assert "bounds" not in cell["fd_shapes-judge"]
    for fid, clip, code in ((23.9, 31.7, 0), (23.96, 31.75, 1), (22.9, 31.75, 1), (23.5, 31.82, 1), (23.5, 31.6, 1)):
        run = _mlperf_run(tmp_path / f"run-{fid}-{clip}", fid, clip)
        assert main(["check", str(run), "--baseline", str(out)]) == code, (fid, clip)
        assert ("outside the bounds" in capsys.readouterr().out) == bool(code)
    assert main(["baseline", str(reference), "--out", str(out), "--profile", "mlperff"]) == 2
    assert "--profile: unknown gate profile 'mlperff'" in capsys.readouterr().err


def test_compare_two_runs_and_bad_input(tmp_path, capsys):
    base = _run(tmp_path / "base")
    worse = _run(tmp_path / "worse", {"m.lcm.s1": (150.0, 0.80), "m.lcm.s4": (60.0, 0.90)})
    assert main(["compare", str(base), str(worse)]) == 1
    assert main(["compare", str(base), str(worse), "--rel", "0.5"]) == 0
    (tmp_path / "junk.json").write_text("{}")
    assert main(["check", str(base), "--baseline", str(tmp_path / "junk.json")]) == 2
    assert "not an lcm-bench baseline" in capsys.readouterr().err
    assert main(["check", str(base), "--baseline", str(tmp_path / "none.json")]) == 2
    capsys.readouterr()
    (tmp_path / "old.json").write_text(json.dumps({"schema_version": 1, "cells": {}}))
    assert main(["check", str(base), "--baseline", str(tmp_path / "old.json")]) == 2
    err = capsys.readouterr().err
    assert "has schema_version 1" in err and "lcm-bench baseline RUN --out" in err and err.count("\n") == 1
    assert main(["compare", str(base), str(worse), "--rel", "-1"]) == 2
    assert "--rel: must be a finite number >= 0" in capsys.readouterr().err


ROOT = Path(__file__).resolve().parent.parent
CI_SUITE, CI_BASELINE = ROOT / "suites" / "ci-quality.yaml", ROOT / "suites" / "baselines" / "ci-quality.json"


@pytest.mark.skipif(
    not CI_BASELINE.is_file() or not (embedded_models_dir() / "shapes-lcm" / "model_index.json").is_file(),
    reason="needs the shipped LCM and the committed ci-quality baseline",
)
def test_the_gate_passes_the_shipped_models_and_catches_wrong_lcm_timesteps(tmp_path, monkeypatch, capsys):
    """A rerun of the good setting passes the committed baseline; LCM sampling at half the timesteps it should
    use (a scheduler bug) regresses and exits 1. ``$LCM_BENCH_CI_QUALITY_RUN`` names a finished ci-quality run of
    this checkout to reuse as the good one (.ci/run's gate run), else it is generated here."""
    import os

    from diffusers import LCMScheduler

    good = Path(os.environ.get("LCM_BENCH_CI_QUALITY_RUN") or tmp_path / "good")
    if not (good / "results.csv").is_file():
        assert main(["run", str(CI_SUITE), "--out", str(good), "--quiet"]) == 0
    assert main(["check", str(good), "--baseline", str(CI_BASELINE)]) == 0
    set_timesteps = LCMScheduler.set_timesteps

    def halved(self, *args, **kwargs):
        set_timesteps(self, *args, **kwargs)
        self.timesteps = self.timesteps // 2

    monkeypatch.setattr(LCMScheduler, "set_timesteps", halved)
    assert main(["run", str(CI_SUITE), "--out", str(tmp_path / "broken"), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["check", str(tmp_path / "broken"), "--baseline", str(CI_BASELINE)]) == 1
    out = capsys.readouterr().out
    assert "| regressed | lcm / 4 steps" in out and "teacher-ddim" not in out


def test_distances_at_another_n_or_reference_preprocessing_are_not_compared(tmp_path, capsys):
    coco = {"name": "coco2017-5k[5000]", "n": 5000, "preprocessing": "centre crop, lanczos resize to 512px, PNG"}
    base = _run(tmp_path / "base", reference={"hash": "a", **coco})
    assert main(["baseline", str(base), "--out", str(tmp_path / "b.json")]) == 0
    bicubic = {**coco, "preprocessing": "centre crop, bicubic resize to 512px, PNG"}
    other = _run(tmp_path / "other", reference={"hash": "b", **bicubic})
    assert main(["check", str(other), "--baseline", str(tmp_path / "b.json")]) == 1
    out = capsys.readouterr().out
    assert "FAIL: 2 not comparable" in out
    assert "reference set changed: preprocessing centre crop, lanczos resize to 512px, PNG -> centre crop, bic" in out
    smaller = _run(tmp_path / "smaller", n=100, reference={"hash": "a", **coco})
    assert main(["check", str(smaller), "--baseline", str(tmp_path / "b.json")]) == 1
    assert "n 300 -> 100" in capsys.readouterr().out


def test_times_taken_under_load_are_not_judged(baseline, tmp_path, capsys):
    load = {"other_cores": 0.9, "loadavg_1m": 2.1, "contended": True}
    busy = _run(tmp_path / "busy", seconds=0.05, load=load, contended=True)
    assert main(["check", str(busy), "--baseline", str(baseline), "--gate-throughput"]) == 1
    out = capsys.readouterr().out
    assert "FAIL: 2 not comparable" in out and "timed under load (0.9 other cores busy)" in out
    assert "regressed" not in out.split("FAIL")[1].split("\n")[0], "a time taken under load was judged"
    idle = _run(tmp_path / "idle", seconds=0.05, load={**load, "contended": False, "other_cores": 0.01})
    assert main(["check", str(idle), "--baseline", str(baseline), "--gate-throughput"]) == 1
    assert "FAIL: 2 regressed" in capsys.readouterr().out
