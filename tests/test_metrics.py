"""Metrics: parity with clean-fid and torchmetrics, invariances, offline errors, and scoring inside runs."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import write_suite

from lcm_bench.cli.main import main
from lcm_bench.core.errors import MissingResourceError, UserError
from lcm_bench.core.paths import embedded_models_dir
from lcm_bench.metrics.distances import (
    StreamingStats,
    bootstrap_ci,
    cmmd,
    feature_stats,
    frechet_distance,
    kernel_inception_distance,
)
from lcm_bench.metrics.extractors import build_extractor, clean_resizer
from lcm_bench.metrics.references import folder_reference, parquet_reference, shapes_reference
from lcm_bench.models.clip import load_clip

RNG = np.random.default_rng(0)
X = RNG.normal(size=(400, 48)).astype(np.float32)
Y = (RNG.normal(size=(300, 48)) * 1.3 + 0.4).astype(np.float32)


def test_frechet_distance_matches_clean_fid():
    from cleanfid.fid import frechet_distance as cleanfid_fd

    ours = frechet_distance(feature_stats(X), feature_stats(Y))
    theirs = cleanfid_fd(np.mean(X, 0), np.cov(X, rowvar=False), np.mean(Y, 0), np.cov(Y, rowvar=False))
    assert ours == pytest.approx(theirs, rel=1e-6)
    assert ours > 10


def test_streaming_statistics_do_not_depend_on_chunking():
    whole = feature_stats(X, chunk=4096)
    pieces = StreamingStats(X.shape[1])
    for size in (1, 7, 100, 292):
        start = pieces.n
        pieces.update(X[start : start + size])
    np.testing.assert_allclose(pieces.result().mu, whole.mu, rtol=1e-12)
    np.testing.assert_allclose(pieces.result().sigma, whole.sigma, rtol=1e-9, atol=1e-12)
    assert whole.mu.dtype == np.float64


def test_distance_of_a_set_to_itself_is_zero():
    assert abs(frechet_distance(feature_stats(X), feature_stats(X))) < 1e-6
    assert cmmd(X, X) == pytest.approx(0.0, abs=1e-9)


def test_kid_matches_clean_fid_with_the_same_seed():
    from cleanfid.fid import kernel_distance

    np.random.seed(3)
    theirs = kernel_distance(X, Y, num_subsets=20, max_subset_size=100)
    before = np.random.get_state()[1].copy()
    assert kernel_inception_distance(X, Y, seed=3, num_subsets=20, max_subset_size=100) == theirs
    assert (np.random.get_state()[1] == before).all(), "KID must not draw from numpy's global random state"
    other = kernel_inception_distance(X, Y, num_subsets=20, max_subset_size=100, rng=np.random.default_rng(3))
    assert other != theirs and other == pytest.approx(theirs, rel=0.5), "another generator: other subsets, same KID"


def test_cmmd_matches_the_reference_formula():
    x, y = X[:50] / 10, Y[:60] / 10
    gamma = 1 / (2 * 10.0**2)

    def k(a, b):
        d = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2 * a.astype(np.float64) @ b.T.astype(np.float64)
        return np.exp(-gamma * d)

    biased = 1000 * (k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean())
    assert cmmd(x, y) == pytest.approx(biased, rel=1e-6), "the default is google-research/cmmd's estimator"
    kxx, kyy = k(x, x), k(y, y)
    unbiased = 1000 * (
        (kxx.sum() - np.trace(kxx)) / (50 * 49) + (kyy.sum() - np.trace(kyy)) / (60 * 59) - 2 * k(x, y).mean()
    )
    assert cmmd(x, y, estimator="unbiased") == pytest.approx(unbiased, rel=1e-6)
    assert cmmd(x, y) > cmmd(x, x[::-1])


def test_bootstrap_interval_covers_the_mean():
    values = RNG.normal(loc=30, scale=2, size=500)
    low, high = bootstrap_ci(values)
    assert low < values.mean() < high
    assert high - low < 1


@pytest.fixture(scope="module")
def tiny_clip_extractor():
    return build_extractor("clip", {"model": "lcm-bench-tiny-clip", "pretrained": "random"})


def test_features_do_not_depend_on_batch_size(tiny_clip_extractor):
    images = RNG.integers(0, 256, size=(20, 32, 32, 3), dtype=np.uint8)
    one = tiny_clip_extractor.features(images, batch_size=1)
    many = tiny_clip_extractor.features(images, batch_size=16)
    np.testing.assert_allclose(one, many, rtol=1e-4, atol=1e-5)


def test_effnet_lite0_ships_offline():
    extractor = build_extractor("effnet-lite0", {})
    images = np.stack(
        [
            shapes_reference(("a large red circle in the center on a white background",), 2, 32)
            .render(["a large red circle in the center on a white background"], i)
            .__next__()
            for i in range(2)
        ]
    )
    features = extractor.features(images)
    assert features.shape == (2, 1280) and np.isfinite(features).all()
    assert extractor.label == "FD-EffNetLite0"


def test_dinov2_loads_given_weights(tmp_path):
    import timm
    from safetensors.torch import save_file

    arch = "vit_small_patch14_dinov2.lvd142m"
    net = timm.create_model(arch, pretrained=False, img_size=224, num_classes=0)
    save_file(net.state_dict(), tmp_path / "dinov2.safetensors")
    extractor = build_extractor("dinov2", {"weights": str(tmp_path / "dinov2.safetensors"), "arch": arch})
    features = extractor.features(RNG.integers(0, 256, size=(2, 32, 32, 3), dtype=np.uint8))
    assert features.shape == (2, 384) and extractor.label == "FD-DINOv2"
    save_file({"wrong.weight": torch.zeros(2)}, tmp_path / "wrong.safetensors")
    with pytest.raises(UserError, match="does not fit timm's"):
        build_extractor("dinov2", {"weights": str(tmp_path / "wrong.safetensors"), "arch": arch})


def test_clip_score_matches_torchmetrics_given_the_same_model(tiny_sd_path):
    """Same (random) transformers CLIP in both: our preprocessing and formula against torchmetrics' CLIPScore."""
    from torchmetrics.multimodal import CLIPScore
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    from lcm_bench.metrics.clip_score import clip_score_value, cosine_scores
    from lcm_bench.metrics.extractors import Extractor

    tokenizer = CLIPTokenizer.from_pretrained(tiny_sd_path / "tokenizer")
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={
            "vocab_size": tokenizer.vocab_size,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_attention_heads": 4,
            "num_hidden_layers": 2,
            "eos_token_id": tokenizer.eos_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={
            "image_size": 32,
            "patch_size": 8,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_attention_heads": 4,
            "num_hidden_layers": 2,
        },
        projection_dim=16,
    )
    model = CLIPModel(config).eval()
    mean, std = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}, image_mean=list(mean), image_std=list(std)
    )
    processor = CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)
    images = RNG.integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8)
    prompts = [f"a photo of thing {i}" for i in range(6)]

    def pooled(out):
        return out if isinstance(out, torch.Tensor) else out.pooler_output

    def image_fn(x):
        m = torch.tensor(mean).view(1, 3, 1, 1) * 255
        s = torch.tensor(std).view(1, 3, 1, 1) * 255
        return torch.nn.functional.normalize(pooled(model.get_image_features(pixel_values=(x - m) / s)), dim=-1)

    extractor = Extractor("hf-clip", "CLIP", "clean-32", 16, clean_resizer(32), image_fn)
    with torch.inference_mode():
        tokens = tokenizer(prompts, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
        text = torch.nn.functional.normalize(pooled(model.get_text_features(**tokens)), dim=-1).numpy()
    ours = clip_score_value(cosine_scores(extractor.features(images), text))

    class TensorFeatures(torch.nn.Module):
        """transformers 5 returns output objects where torchmetrics 1.9 expects tensors."""

        def __init__(self):
            super().__init__()
            self.inner, self.config = model, model.config

        def get_image_features(self, *args, **kwargs):
            return pooled(self.inner.get_image_features(*args, **kwargs))

        def get_text_features(self, *args, **kwargs):
            return pooled(self.inner.get_text_features(*args, **kwargs))

    metric = CLIPScore(model_name_or_path=lambda: (TensorFeatures(), processor))
    metric.update(torch.from_numpy(images).permute(0, 3, 1, 2), prompts)
    assert ours == pytest.approx(float(metric.compute()), rel=1e-4, abs=1e-4)


def test_caption_truncation_is_counted():
    clip = load_clip("lcm-bench-tiny-clip", "random")
    _, truncated = clip.text_features(["short caption", "word " * 90, "another one"])
    assert truncated == 1


def test_missing_weights_are_one_line_errors(monkeypatch, tmp_path):
    monkeypatch.setenv("LCM_BENCH_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(MissingResourceError, match=r"'inception-2015-12-05\.pt' not found .*LCM_BENCH_WEIGHTS"):
        build_extractor("inception", {"mode": "clean"})
    with pytest.raises(MissingResourceError, match=r"pt_inception-2015-12-05-6726825d\.pth"):
        build_extractor("inception", {"mode": "legacy_pytorch"})
    with pytest.raises(MissingResourceError, match="laion2b_s34b_b79k are not in the Hugging Face cache; run `hf"):
        load_clip("ViT-B-32", "laion2b_s34b_b79k")
    with pytest.raises(UserError, match="'laion9' is not a tag of ViT-B-32"):
        load_clip("ViT-B-32", "laion9")
    with pytest.raises(MissingResourceError, match="DINOv2 extractor needs weights"):
        build_extractor("dinov2", {})


def test_folder_and_parquet_references_agree(tmp_path, tiny_clip_extractor):
    from PIL import Image

    images = RNG.integers(0, 256, size=(5, 32, 32, 3), dtype=np.uint8)
    blobs = []
    for i, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / f"{i}.png")
        blobs.append((tmp_path / f"{i}.png").read_bytes())
    pd.DataFrame({"image": [{"bytes": b} for b in blobs]}).to_parquet(tmp_path / "refs.parquet")
    folder = folder_reference(tmp_path, "refs")
    table = parquet_reference(tmp_path / "refs.parquet", "image", "refs")
    assert folder.size == table.size == 5
    np.testing.assert_array_equal(np.stack(list(folder.images())), images)
    np.testing.assert_array_equal(np.stack(list(table.images())), images)


SCORED = """
version: 1
name: scored
models: [tiny-sd, tiny-lcm]
samplers: [ddim, lcm]
steps: [1, 4]
guidance_scales: [7.5]
prompts:
  - {{path: {prompts}, references: {{generator: shapes, per_prompt: 2}}}}
num_images: 24
batch_size: 8
timing: {{min_repeats: 1, max_repeats: 1}}   # these tests are not about time
exclude:
  - {{model: tiny-sd, sampler: lcm}}
  - {{model: tiny-lcm, sampler: ddim}}
metrics:
  - {{name: fd, extractor: clip, model: lcm-bench-tiny-clip, pretrained: random, subsets: 3}}
  - {{name: kid, extractor: clip, model: lcm-bench-tiny-clip, pretrained: random, num_subsets: 10}}
  - {{name: cmmd, model: lcm-bench-tiny-clip, pretrained: random}}
  - {{name: clip_score, model: lcm-bench-tiny-clip, pretrained: random}}
"""


def test_run_fills_metric_columns_and_rescoring_costs_nothing(tmp_path, capsys):
    from lcm_bench.core.paths import data_dir

    suite = write_suite(tmp_path, SCORED.format(prompts=data_dir() / "prompts" / "shapes-mini.txt"))
    out = tmp_path / "run"
    assert main(["run", str(suite), "--out", str(out), "--quiet"]) == 0
    assert "4 cells computed, 0 reused, 0 skipped, 16 metric values computed" in capsys.readouterr().out
    frame = pd.read_csv(out / "results.csv")
    fd = "fd_clip_lcm-bench-tiny-clip_random"
    for column in (
        fd,
        f"{fd}_subset_std",
        f"{fd}_noise_floor",
        "kid_clip_lcm-bench-tiny-clip_random",
        "cmmd_lcm-bench-tiny-clip_random",
        "clip_score_lcm-bench-tiny-clip_random",
        "clip_score_lcm-bench-tiny-clip_random_ci_low",
    ):
        assert frame[column].notna().all(), column
    assert (frame[fd] > frame[f"{fd}_noise_floor"]).all()
    record = json.loads(next((out / "cells").glob("tiny-lcm.*.s4.*.json")).read_text())
    clip = record["metrics"]["clip_score_lcm-bench-tiny-clip_random"]
    assert clip["higher_is_better"] and len(clip["per_image"]) == 24 and clip["n"] == 24
    assert not record["metrics"][fd]["higher_is_better"] and record["metrics"][fd]["reference"]["n"] == 64
    assert list((out / "features").glob("*/*.safetensors"))
    assert main(["run", str(suite), "--out", str(out), "--quiet"]) == 0
    assert "0 cells computed, 4 reused, 0 skipped, 0 metric values computed" in capsys.readouterr().out
    text = (out / "report.md").read_text()
    assert "| CLIP score 4 |" in text and "### CLIP-KID[lcm-bench-tiny-clip/random]" in text
    assert "Noise floor" in text
    cmmd = "cmmd_lcm-bench-tiny-clip_random"
    before = json.loads(next((out / "cells").glob("tiny-lcm.*.s4.*.json")).read_text())["metrics"][cmmd]
    assert before["estimator"] == before["options"]["estimator"] == "biased"
    cmmd_entry = "{name: cmmd, model: lcm-bench-tiny-clip, pretrained: random"
    suite.write_text(suite.read_text().replace(cmmd_entry, cmmd_entry + ", estimator: unbiased"))
    assert main(["run", str(suite), "--out", str(out), "--quiet"]) == 0
    assert "0 cells computed, 4 reused, 0 skipped, 4 metric values computed" in capsys.readouterr().out, (
        "a metric option that changes the number (CMMD's estimator) recomputes the stored values, and only those"
    )
    after = json.loads(next((out / "cells").glob("tiny-lcm.*.s4.*.json")).read_text())["metrics"][cmmd]
    assert after["estimator"] == "unbiased" and after["value"] != before["value"]


def test_missing_inception_weights_stop_a_run_before_any_image_and_keep_finished_cells(tmp_path, capsys, monkeypatch):
    from lcm_bench.core.paths import data_dir

    monkeypatch.setenv("LCM_BENCH_WEIGHTS", str(tmp_path))
    plain = SCORED.format(prompts=data_dir() / "prompts" / "shapes-mini.txt").split("metrics:")[0]
    plain = plain.replace("steps: [1, 4]", "steps: [1]")
    out, fresh = tmp_path / "run", tmp_path / "fresh"
    assert main(["run", str(write_suite(tmp_path, plain, "plain.yaml")), "--out", str(out), "--quiet"]) == 0
    records = {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")}
    assert len(records) == 2
    suite = write_suite(tmp_path, plain + "metrics: [fid]\n")
    capsys.readouterr()
    assert main(["run", str(suite), "--out", str(fresh), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "inception-2015-12-05.pt" in err and err.count("\n") == 1
    assert not (fresh / "images").exists(), "nothing is generated before what scoring needs is found"
    assert main(["run", str(suite), "--out", str(out), "--quiet"]) == 2
    assert {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")} == records, "finished cells kept"


@pytest.mark.parametrize(
    "metrics, expected",
    [
        ("[fidd]", "unknown metric 'fidd'; did you mean 'fid'?"),
        ("[{name: fd, extractor: incepton}]", "unknown extractor 'incepton'; did you mean 'inception'?"),
        ("[{name: fid, mode: tf}]", "metrics[0].mode: 'tf' is not one of"),
        ("[{name: clip_score, extractor: clip}]", "unknown key 'extractor'"),
        ("[{name: fd, extractor: clip}]", "extractor clip needs model:"),
        ("[fid, fid]", "the same metric is listed twice"),
    ],
)
def test_bad_metric_specs(tmp_path, capsys, metrics, expected):
    suite = write_suite(
        tmp_path, f"version: 1\nmodels: [tiny-sd]\nsamplers: [ddim]\nprompts: [shapes-mini]\nmetrics: {metrics}\n"
    )
    assert main(["validate", str(suite)]) == 2
    assert expected in capsys.readouterr().err


def test_metrics_need_references_and_saved_images(tmp_path, capsys):
    base = "version: 1\nmodels: [tiny-sd]\nsamplers: [ddim]\n"
    suite = write_suite(tmp_path, base + "prompts: [photo-mini]\nmetrics: [fid]\n")
    assert main(["validate", str(suite)]) == 2
    assert "fid needs reference images, but prompt set 'photo-mini' has none" in capsys.readouterr().err
    suite = write_suite(tmp_path, base + "prompts: [shapes-mini]\nmetrics: [fid]\nsave_images: grid\n")
    assert main(["validate", str(suite)]) == 2
    assert "save_images: metrics score the saved images" in capsys.readouterr().err


@pytest.mark.skipif(
    not (embedded_models_dir() / "shapes-judge" / "judge.safetensors").is_file(), reason="judge not shipped"
)
def test_attribute_accuracy_and_judge_fd_on_real_and_shuffled_images(tmp_path):
    """Real renders of each caption score near 1 and sit near the noise floor; shuffled captions score low."""
    from PIL import Image

    from lcm_bench.core.spec import MetricSpec, ReferenceSpec
    from lcm_bench.domain.prompts import PROMPT_SETS, read_prompts
    from lcm_bench.domain.shapes import render
    from lcm_bench.metrics.cell_scoring import Scorer
    from lcm_bench.records.cell_record import scored_cell
    from lcm_bench.records.store import RunDir
    from lcm_bench.run.scoring import RunImages

    entry = PROMPT_SETS.get("shapes-test")
    prompts = read_prompts(entry.path, "txt", None)
    n = 300
    run = RunDir(tmp_path)
    folder = run.images_dir("real")
    folder.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(render(prompts[i], 50 + i)).save(folder / f"{i:05d}.png")
    spec = {"name": "shapes-test", "source": str(entry.path), "format": "txt", "column": None}
    samples = [{"index": i, "prompt_index": i, "seed": i} for i in range(n)]
    record = {"cell_id": "real", "spec": {"num_images": n, "prompts": spec}, "samples": samples}
    references = {"shapes-test": ReferenceSpec("generator", "shapes", (("per_prompt", 1), ("size", 32)))}
    scorer = Scorer(RunImages(run), references)
    judged = MetricSpec("attribute_accuracy", (("extractor", "shapes-judge"),))
    accuracy = scorer.score(scored_cell(record), judged, "m")
    assert accuracy["value"] > 0.95 and accuracy["per_attribute"]["shape"] > 0.95
    fd = scorer.score(scored_cell(record), MetricSpec("fd", (("extractor", "shapes-judge"), ("subsets", 3))), "m")
    assert fd["label"] == "FD-ShapesJudge"
    assert fd["value"] < 2 * fd["noise_floor"]
    shuffled = {
        **record,
        "cell_id": "shuffled",
        "samples": [{**s, "prompt_index": (s["index"] + 1) % n} for s in samples],
    }
    run.images_dir("shuffled").symlink_to(folder)
    low = scorer.score(scored_cell(shuffled), judged, "m")
    assert low["value"] < 0.2
