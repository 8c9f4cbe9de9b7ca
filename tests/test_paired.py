"""Paired metrics against a reference method: pairing by prompt and seed, the metrics' values on identical and
different images, and the one-line errors of a reference that does not fit."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from conftest import write_suite

from lcm_bench.cli.main import main
from lcm_bench.core.errors import UserError
from lcm_bench.suite.load import load_suite
from lcm_bench.suite.pairs import reference_pairs

TINY_CLIP = "extractor: clip, model: lcm-bench-tiny-clip, pretrained: random"
PAIRED = f"""
version: 1
name: paired
methods:
  - {{name: ddim-2, model: tiny-sd, sampler: ddim, steps: [2], guidance_scale: 3.0}}
  - {{name: dpm-2, model: tiny-sd, sampler: dpmsolver++, steps: [2], guidance_scale: 3.0}}
  - {{name: ddim-2-again, model: tiny-sd, sampler: ddim, steps: [2], guidance_scale: 3.0}}
  - {{name: teacher-8, model: tiny-sd, sampler: ddim, steps: [8], guidance_scale: 3.0}}
prompts: [shapes-mini]
seeds: [0, 1]
num_images: 12
batch_size: 6
timing: {{min_repeats: 1, max_repeats: 1}}   # these tests are not about time
metrics:
  - {{name: psnr, reference: teacher-8}}
  - {{name: ssim, reference: teacher-8}}
  - {{name: cosine_t, {TINY_CLIP}, reference: teacher-8}}
  - {{name: fd_t, {TINY_CLIP}, reference: teacher-8, groups: 4}}
  - {{name: psnr, reference: ddim-2}}
  - {{name: lpips, weights: BACKBONE, reference: teacher-8}}
"""


def stand_in_alexnet(path):
    """A randomly initialised torchvision AlexNet's weights, standing in for the ImageNet ones (not shipped)."""
    import torch
    import torchvision
    from safetensors.torch import save_file

    torch.manual_seed(0)
    save_file(torchvision.models.alexnet(weights=None).state_dict(), str(path))
    return path


@pytest.fixture(scope="module")
def paired_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("paired")
    out, backbone = root / "run", stand_in_alexnet(root / "alexnet.safetensors")
    assert (
        main(["run", str(write_suite(root, PAIRED.replace("BACKBONE", str(backbone)))), "--out", str(out), "--quiet"])
        == 0
    )
    return out


def _metric(out, method: str, seed: int, metric_id: str) -> dict:
    for path in (out / "cells").glob("*.json"):
        record = json.loads(path.read_text())
        if record["spec"].get("method") == method and record["spec"]["seed"] == seed:
            return record["metrics"].get(metric_id)
    raise AssertionError(f"no cell of {method} seed {seed}")


def test_identical_images_pair_exactly_and_different_ones_do_not(paired_run):
    """ddim-2-again draws what ddim-2 draws (same prompts, same seeds): against it PSNR is infinite for every pair;
    DPM-Solver++ at 2 steps draws other images from the same noise."""
    again = _metric(paired_run, "ddim-2-again", 0, "psnr_vs-ddim-2")
    assert again["value"] is None and again["infinite_pairs"] == 12
    other = _metric(paired_run, "dpm-2", 0, "psnr_vs-ddim-2")
    assert other["n"] == 12 and np.isfinite(other["value"]) and "infinite_pairs" not in other
    assert other["reference"]["method"] == "ddim-2"
    assert _metric(paired_run, "ddim-2", 0, "psnr_vs-ddim-2") is None, "a reference is not paired with itself"


def test_paired_metrics_against_the_teacher_have_intervals_and_order(paired_run):
    frame = pd.read_csv(paired_run / "results.csv")
    rows = frame[frame["method"] != "teacher-8"]
    for column in ("psnr_vs-teacher-8", "ssim_vs-teacher-8", "cosine_t_clip_lcm-bench-tiny-clip_random_vs-teacher-8"):
        assert rows[column].notna().all(), column
        assert (rows[f"{column}_ci_low"] <= rows[column]).all() and (rows[column] <= rows[f"{column}_ci_high"]).all()
    fd_t = rows["fd_t_clip_lcm-bench-tiny-clip_random_vs-teacher-8"]
    assert (fd_t > 0).all()
    ssim = _metric(paired_run, "ddim-2", 1, "ssim_vs-teacher-8")
    assert -1 <= ssim["value"] < 1 and len(ssim["per_image"]) == 12
    assert frame.loc[frame["method"] == "teacher-8", "psnr_vs-teacher-8"].isna().all()


def test_a_second_run_scores_nothing_again(paired_run, capsys):
    suite = paired_run.parent / "suite.yaml"
    assert main(["run", str(suite), "--out", str(paired_run), "--quiet"]) == 0
    assert "0 metric values computed" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("{name: psnr, reference: teacher-8}", "{name: psnr, reference: teacher-9}"), "'teacher-9' is not a method"),
        (("steps: [8]", "steps: [4, 8]"), "several cells per prompt set and seed"),
        (("{name: psnr, reference: ddim-2}", "{name: psnr}"), "metrics[4].reference"),
    ],
)
def test_a_reference_that_does_not_fit_is_one_line(tmp_path, capsys, change, expected):
    text = PAIRED.replace("BACKBONE", str(stand_in_alexnet(tmp_path / "alexnet.safetensors"))).replace(*change)
    assert change[1] in text
    assert main(["run", str(write_suite(tmp_path, text)), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1 and not (tmp_path / "run").exists()


def test_pairs_need_the_same_prompts_and_number_of_images(tmp_path):
    suite = load_suite(write_suite(tmp_path, PAIRED))
    cells = list(suite.cells)
    teacher = [i for i, c in enumerate(cells) if c.method == "teacher-8"]
    fewer = [dataclasses.replace(c, num_images=6) if i == teacher[0] else c for i, c in enumerate(cells)]
    with pytest.raises(UserError, match="has 12 images and its reference .* 6; paired metrics need the same number"):
        reference_pairs(suite.metrics, fewer)
    missing = [c for i, c in enumerate(cells) if i != teacher[0]]
    with pytest.raises(UserError, match="has no cell of prompt set 'shapes-mini', seed"):
        reference_pairs(suite.metrics, missing)
    assert len(reference_pairs(suite.metrics, cells)) == 6 + 6, "two references, 3 other methods x 2 seeds each"


def test_lpips_equals_torchmetrics_with_the_same_backbone(tmp_path, monkeypatch):
    import torch
    import torchvision
    from safetensors.torch import load_file
    from torchmetrics.functional.image import lpips as tm_lpips
    from torchmetrics.image import LearnedPerceptualImagePatchSimilarity

    from lcm_bench.metrics.lpips import lpips_network

    path = stand_in_alexnet(tmp_path / "alexnet.safetensors")
    ours = lpips_network("alex", path, "m")

    def features(net, pretrained=False):
        model = torchvision.models.alexnet(weights=None)
        model.load_state_dict(load_file(str(path)))
        return model.features

    monkeypatch.setattr(tm_lpips, "_get_tv_model_features", features)
    theirs = LearnedPerceptualImagePatchSimilarity(net_type="alex", reduction="sum", normalize=True)
    a, b = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(1)), torch.rand(3, 3, 64, 64)
    with torch.inference_mode():
        per_pair = ours(a, b, normalize=True).reshape(-1)
        assert float(per_pair.sum()) == pytest.approx(float(theirs(a, b)), rel=1e-6)
        assert float(ours(a, a, normalize=True).abs().max()) == 0.0
    assert (per_pair > 0).all()


def test_lpips_against_the_teacher_in_a_run(paired_run):
    frame = pd.read_csv(paired_run / "results.csv")
    column = "lpips_lpips_alex_vs-teacher-8"
    rows = frame[frame["method"] != "teacher-8"]
    assert rows[column].notna().all() and (rows[column] > 0).all()
    assert (rows[f"{column}_ci_low"] <= rows[column]).all()
    again = _metric(paired_run, "ddim-2-again", 0, column)
    assert again["reference"]["method"] == "teacher-8" and len(again["per_image"]) == 12


def test_lpips_without_its_backbone_offline_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LCM_BENCH_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("LCM_BENCH_OFFLINE", "1")
    text = PAIRED.replace(
        "{name: lpips, weights: BACKBONE, reference: teacher-8}", "{name: lpips, reference: teacher-8}"
    )
    assert main(["run", str(write_suite(tmp_path, text)), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "alexnet-owt-7be5be79.pth" in err and err.count("\n") == 1
    assert not (tmp_path / "run" / "images").exists(), "nothing is generated before what scoring needs is found"


PATCH = """
version: 1
name: patch
methods:
  - {name: ddim-2, model: tiny-sd, sampler: ddim, steps: [2], guidance_scale: 3.0}
  - {name: teacher-8, model: tiny-sd, sampler: ddim, steps: [8], guidance_scale: 3.0}
prompts: [shapes-mini]
num_images: 12
batch_size: 6
resolution: RESOLUTION
timing: {min_repeats: 1, max_repeats: 1}   # these tests are not about time
metrics:
  - {name: patch_fd_t, extractor: shapes-judge, reference: teacher-8, groups: 4}
  - {name: fd_t, extractor: shapes-judge, reference: teacher-8, groups: 4}
"""


def test_patch_fd_t_crops_the_extractor_input_at_full_resolution(tmp_path):
    out = tmp_path / "run"
    assert (
        main(["run", str(write_suite(tmp_path, PATCH.replace("RESOLUTION", "64"))), "--out", str(out), "--quiet"]) == 0
    )
    patch = _metric(out, "ddim-2", 0, "patch_fd_t_shapes-judge_vs-teacher-8")
    whole = _metric(out, "ddim-2", 0, "fd_t_shapes-judge_vs-teacher-8")
    assert patch["label"] == "Patch FD-ShapesJudge-T" and whole["label"] == "FD-ShapesJudge-T"
    assert patch["value"] > 0 and patch["value"] != whole["value"]
    names = sorted(p.name.split("-w")[0] for p in (out / "features").glob("*/*.safetensors"))
    assert names == ["centre32-shapes-judge-clean-32"] * 2 + ["shapes-judge-clean-32"] * 2, "both kept, per cell"


def test_patch_fd_t_on_images_no_larger_than_the_crop_is_one_line(tmp_path, capsys):
    suite = write_suite(tmp_path, PATCH.replace("RESOLUTION", "32"))
    assert main(["run", str(suite), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "patch_fd_t crops shapes-judge's 32-px input from full-resolution images" in err and err.count("\n") == 1


def test_a_metric_paired_against_the_reference_has_no_column_at_its_steps(paired_run):
    """teacher-8 is the only method at 8 steps: PSNR against it has values at 2 steps only, so its table has no
    column of dashes at 8, while PSNR against ddim-2 (teacher-8 is paired with it) keeps one."""
    against_teacher = (paired_run / "tables" / "quality_psnr_vs-teacher-8.csv").read_text().splitlines()[0]
    against_ddim = (paired_run / "tables" / "quality_psnr_vs-ddim-2.csv").read_text().splitlines()[0]
    assert against_teacher == "method,PSNR 2" and against_ddim == "method,PSNR 2,PSNR 8"


def test_pixel_metrics_read_images_without_an_extractor(paired_run):
    psnr = _metric(paired_run, "dpm-2", 0, "psnr_vs-teacher-8")
    assert psnr["extractor"] == "pixels" and psnr["mode"] == "none"
    cached = {p.name.split("-w")[0] for p in (paired_run / "features").rglob("*") if p.is_file()}
    assert "pixels-none" in cached and not any(name.startswith("shapes-judge") for name in cached)
