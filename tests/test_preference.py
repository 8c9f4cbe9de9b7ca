"""Human-preference scorers (HPSv2 / v2.1, ImageReward, PickScore, aesthetic) on stand-ins written in each published
file's own format: the score each loader computes equals an independent re-statement of its reference
implementation, the full-size published layouts are what the loaders expect (on the meta device), a suite runs them
all offline with intervals per prompt set, and bad files are one line each."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import write_suite
from preference_standins import (
    PUBLISHED_MED,
    TINY_CLIP,
    clip_transformers_layout,
    imagereward_layout,
    mlp_layout,
    openclip_layout,
    write_aesthetic_head,
    write_hps,
    write_imagereward,
    write_pickscore,
)

from lcm_bench.cli.main import main
from lcm_bench.models.clip import config_dir

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = [
    line
    for name in ("shapes-mini", "photo-mini")
    for line in (ROOT / "data" / "prompts" / f"{name}.txt").read_text().splitlines()
    if line.strip()
]
CAPTIONS = [PROMPTS[0], PROMPTS[5], PROMPTS[40]]


@pytest.fixture(scope="module")
def standins(tmp_path_factory):
    root = tmp_path_factory.mktemp("standins")
    (root / "hps").mkdir()
    write_hps(root / "hps", seed=0)
    write_hps(root / "hps", seed=1, name="HPS_v2.1_compressed.pt")
    width = json.loads((config_dir() / f"{TINY_CLIP}.json").read_text())["embed_dim"]
    return {
        "root": root,
        "hps": root / "hps",
        "imagereward": write_imagereward(root / "imagereward", PROMPTS),
        "pickscore": write_pickscore(root / "pickscore"),
        "head": write_aesthetic_head(root, width),
    }


def _images(count: int = 3, size: int = 32, seed: int = 0):
    """(B, 3, S, S) float images in [0, 255], as extractors hand them to scorers."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, 3, size, size), generator=generator).float()


def _normalised(images, mean=(0.48145466, 0.4578275, 0.40821073), std=(0.26862954, 0.26130258, 0.27577711)):
    import torch

    return (images / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def test_hps_equals_open_clips_own_forward(standins):
    """HPSv2's img_score.py: load_state_dict(checkpoint['state_dict']), model(image, text) with normalised
    features, the diagonal of image @ text.T."""
    import open_clip
    import torch

    from lcm_bench.models.scorers import hps

    path = standins["hps"] / "HPS_v2_compressed.pt"
    ours = hps.load("hpsv2", {"model": TINY_CLIP, "checkpoint": str(path)}, "cpu", "metrics[0]")
    reference = open_clip.create_model(TINY_CLIP, pretrained=None)
    reference.load_state_dict(torch.load(path, weights_only=True)["state_dict"])
    images = _images()
    with torch.inference_mode():
        image, text, _ = reference.eval()(_normalised(images), open_clip.get_tokenizer(TINY_CLIP)(CAPTIONS))
        expected = torch.diagonal(image @ text.T)
        got = ours.score(images, CAPTIONS)
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert len(set(np.round(got.numpy(), 6))) == 3, "different captions and images score differently"


def _imagereward_restated(state, med, images, captions, tokenizer_dir):
    """ImageReward.score restated in plain torch from the published names: BLIP's ViT (timm's blocks, 64-wide
    heads, eps 1e-6), BLIP's BERT (post-LN, self- then cross-attention), the [CLS] state, the linear MLP, the
    standardisation."""
    import torch
    import torch.nn.functional as F
    from transformers import BertTokenizer

    v = {k[len("blip.visual_encoder.") :]: t for k, t in state.items() if k.startswith("blip.visual_encoder.")}
    width, _, patch, _ = v["patch_embed.proj.weight"].shape
    heads, depth = width // 64, 1 + max(int(k.split(".")[1]) for k in v if k.startswith("blocks."))
    x = F.conv2d(_normalised(images), v["patch_embed.proj.weight"], v["patch_embed.proj.bias"], stride=patch)
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([v["cls_token"].expand(len(x), -1, -1), x], dim=1) + v["pos_embed"]
    batch, tokens = x.shape[:2]
    for i in range(depth):
        b = {k[len(f"blocks.{i}.") :]: t for k, t in v.items() if k.startswith(f"blocks.{i}.")}
        h = F.layer_norm(x, (width,), b["norm1.weight"], b["norm1.bias"], 1e-6)
        qkv = F.linear(h, b["attn.qkv.weight"], b["attn.qkv.bias"]).reshape(batch, tokens, 3, heads, width // heads)
        q, k, value = qkv.permute(2, 0, 3, 1, 4)
        attention = ((q @ k.transpose(-2, -1)) * (width // heads) ** -0.5).softmax(-1)
        mixed = (attention @ value).transpose(1, 2).reshape(batch, tokens, width)
        x = x + F.linear(mixed, b["attn.proj.weight"], b["attn.proj.bias"])
        h = F.layer_norm(x, (width,), b["norm2.weight"], b["norm2.bias"], 1e-6)
        x = x + F.linear(
            F.gelu(F.linear(h, b["mlp.fc1.weight"], b["mlp.fc1.bias"])), b["mlp.fc2.weight"], b["mlp.fc2.bias"]
        )
    image_tokens = F.layer_norm(x, (width,), v["norm.weight"], v["norm.bias"], 1e-6)

    tokenizer = BertTokenizer.from_pretrained(str(tokenizer_dir))
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    text = tokenizer(captions, padding="max_length", truncation=True, max_length=35, return_tensors="pt")
    t = {k[len("blip.text_encoder.") :]: w for k, w in state.items() if k.startswith("blip.text_encoder.")}
    hidden, nh = med["hidden_size"], med["num_attention_heads"]

    def norm(y, name):
        return F.layer_norm(y, (hidden,), t[f"{name}.weight"], t[f"{name}.bias"], med["layer_norm_eps"])

    def linear(y, name):
        return F.linear(y, t[f"{name}.weight"], t[f"{name}.bias"])

    def attend(y, source, prefix, mask):
        def split(z):
            return z.reshape(z.shape[0], z.shape[1], nh, hidden // nh).transpose(1, 2)

        q, k, value = (
            split(linear(s, f"{prefix}.self.{n}")) for s, n in ((y, "query"), (source, "key"), (source, "value"))
        )
        scores = (q @ k.transpose(-2, -1)) / (hidden // nh) ** 0.5 + mask
        context = (scores.softmax(-1) @ value).transpose(1, 2).reshape(y.shape)
        return norm(linear(context, f"{prefix}.output.dense") + y, f"{prefix}.output.LayerNorm")

    length = text.input_ids.shape[1]
    h = t["embeddings.word_embeddings.weight"][text.input_ids] + t["embeddings.position_embeddings.weight"][:length]
    h = norm(h, "embeddings.LayerNorm")
    padding = (1 - text.attention_mask[:, None, None, :].float()) * -1e9
    for i in range(med["num_hidden_layers"]):
        layer = f"encoder.layer.{i}"
        h = attend(h, h, f"{layer}.attention", padding)
        h = attend(h, image_tokens, f"{layer}.crossattention", 0.0)
        inner = F.gelu(linear(h, f"{layer}.intermediate.dense"))
        h = norm(linear(inner, f"{layer}.output.dense") + h, f"{layer}.output.LayerNorm")
    reward = h[:, 0]
    for index in (0, 2, 4, 6, 7):
        reward = F.linear(reward, state[f"mlp.layers.{index}.weight"], state[f"mlp.layers.{index}.bias"])
    return ((reward - 0.16717362830052426) / 1.0333394966054072).squeeze(-1)


def test_imagereward_equals_a_restatement_of_blip_and_its_head(standins):
    import torch

    from lcm_bench.models.scorers import imagereward

    files = {k: str(v) for k, v in standins["imagereward"].items()}
    ours = imagereward.load("imagereward", files, "cpu", "metrics[0]")
    state = torch.load(files["checkpoint"], weights_only=True)
    med = json.loads(Path(files["config"]).read_text())
    images = _images()
    with torch.inference_mode():
        got = ours.score(images, CAPTIONS)
        expected = _imagereward_restated(state, med, images, CAPTIONS, files["tokenizer"])
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-5), (got, expected)
    assert got.std() > 1e-4, "the stand-in separates its inputs"


def test_pickscore_equals_transformers_clip_with_the_logit_scale(standins):
    """PickScore's README: get_image_features / get_text_features, normalised, logit_scale.exp() x cosine."""
    import torch
    from transformers import AutoTokenizer, CLIPModel

    from lcm_bench.models.scorers import pickscore

    files = {k: str(v) for k, v in standins["pickscore"].items()}
    ours = pickscore.load("pickscore", files, "cpu", "metrics[0]")
    model = CLIPModel.from_pretrained(files["checkpoint"]).eval()
    tokens = AutoTokenizer.from_pretrained(files["processor"])(
        CAPTIONS, padding=True, truncation=True, max_length=77, return_tensors="pt"
    )
    images = _images(size=24)
    with torch.inference_mode():
        image = model.get_image_features(pixel_values=_normalised(images))
        text = model.get_text_features(**tokens)
        image, text = (getattr(x, "pooler_output", x) for x in (image, text))
        image, text = image / image.norm(dim=-1, keepdim=True), text / text.norm(dim=-1, keepdim=True)
        expected = model.logit_scale.exp() * torch.diagonal(text @ image.T)
        got = ours.score(images, CAPTIONS)
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert float(model.logit_scale.exp().detach()) > 10, "the logit scale is applied, not dropped"


def test_aesthetic_equals_the_reference_mlp_on_normalised_clip_embeddings(standins):
    """simple_inference.py: encode_image, L2-normalise in numpy, the MLP (its ``layers``) on the result."""
    import open_clip
    import torch
    from torch import nn

    from lcm_bench.models.scorers import aesthetic

    options = {"model": TINY_CLIP, "pretrained": "random", "head": str(standins["head"])}
    ours = aesthetic.load("aesthetic", options, "cpu", "metrics[0]")

    class MLP(nn.Module):
        def __init__(self, width):
            super().__init__()
            self.layers = nn.Sequential(
                nn.Linear(width, 1024),
                nn.Dropout(0.2),
                nn.Linear(1024, 128),
                nn.Dropout(0.2),
                nn.Linear(128, 64),
                nn.Dropout(0.1),
                nn.Linear(64, 16),
                nn.Linear(16, 1),
            )

    with torch.random.fork_rng():
        torch.manual_seed(0)
        clip = open_clip.create_model(TINY_CLIP, pretrained=None).eval()
    head = MLP(clip.visual.output_dim)
    head.load_state_dict(torch.load(standins["head"], weights_only=True))
    images = _images()
    with torch.inference_mode():
        embedding = clip.encode_image(_normalised(images)).numpy()
        embedding = embedding / np.linalg.norm(embedding, 2, axis=-1, keepdims=True)
        expected = head.eval().layers(torch.from_numpy(embedding)).squeeze(-1)
        got = ours.score(images, CAPTIONS)
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_preprocessing_equals_torchvision_on_pil_images():
    import torchvision.transforms as T
    import torchvision.transforms.functional as TF
    from PIL import Image

    from lcm_bench.models.scorers.preprocess import longest_side_pad, shortest_side_crop

    image = np.random.default_rng(0).integers(0, 256, (50, 75, 3), dtype=np.uint8)
    clip_like = T.Compose([T.Resize(32, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(32)])
    assert np.array_equal(shortest_side_crop(32)(image), np.asarray(clip_like(Image.fromarray(image))))
    scaled = TF.resize(Image.fromarray(image), [round(50 * 32 / 75), 32], T.InterpolationMode.BICUBIC)
    pad_h = 32 - scaled.size[1]
    padded = TF.pad(scaled, [0, pad_h // 2, 0, pad_h - pad_h // 2], fill=0)
    assert np.array_equal(longest_side_pad(32)(image), np.asarray(padded))


def _meta_shapes(module) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def test_full_size_hps_is_open_clip_vit_h_14_as_published():
    import open_clip
    import torch

    with torch.device("meta"):
        model = open_clip.create_model("ViT-H-14", pretrained=None, device="meta")
    assert _meta_shapes(model) == openclip_layout(1280, 32, 14, 224, 1024, 24, 1024)


def test_full_size_imagereward_keys_map_onto_the_loaders_network():
    """ImageReward.pt (BLIP ViT-L at 224 px, bert-base with cross-attention, the 768-wide MLP), stated from BLIP's
    module names, maps key for key and shape for shape onto the network the loader builds from those shapes."""
    import torch

    from lcm_bench.models.scorers import imagereward

    published = imagereward_layout(PUBLISHED_MED, 1024, 24, 16, 224)
    state = {k: torch.empty(shape, device="meta") for k, shape in published.items()}
    vision = imagereward.vision_config(state, "metrics[0]", Path("ImageReward.pt"))
    assert (vision.num_attention_heads, vision.image_size, vision.num_hidden_layers) == (16, 224, 24)
    with torch.device("meta"):
        net = imagereward.build(vision, imagereward.text_config(PUBLISHED_MED, vision.hidden_size))
    mapped = {imagereward.map_key(k): shape for k, shape in published.items() if imagereward.map_key(k)}
    expected = _meta_shapes(net)
    assert {k: mapped.get(k) for k in expected} == expected
    assert set(mapped) - set(expected) <= {"text.embeddings.position_ids"}
    unused = {k for k in published if not imagereward.map_key(k)}
    assert unused == {f"blip.{p}_proj.{w}" for p in ("vision", "text") for w in ("weight", "bias")}


def test_full_size_pickscore_is_transformers_clip_h_14_as_published():
    import torch
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig(
        text_config={
            "hidden_size": 1024,
            "intermediate_size": 4096,
            "num_hidden_layers": 24,
            "num_attention_heads": 16,
        },
        vision_config={
            "hidden_size": 1280,
            "intermediate_size": 5120,
            "num_hidden_layers": 32,
            "num_attention_heads": 16,
            "image_size": 224,
            "patch_size": 14,
        },
        projection_dim=1024,
    )
    with torch.device("meta"):
        model = CLIPModel(config)
    assert _meta_shapes(model) == clip_transformers_layout(1280, 32, 14, 224, 1024, 24)


def test_full_size_aesthetic_head_fits_openai_vit_l_14():
    import open_clip
    import torch
    from torch import nn

    from lcm_bench.models.scorers.aesthetic import CLIP
    from lcm_bench.models.scorers.heads import mlp_head

    published = nn.Module()
    with torch.device("meta"):
        published.layers = mlp_head(open_clip.get_model_config(CLIP[0])["embed_dim"])
    assert _meta_shapes(published) == mlp_layout(768, "layers.")
    assert open_clip.get_model_config(CLIP[0])["quick_gelu"], "OpenAI's weights need QuickGELU"


def _suite(standins, metrics: str, name: str = "preference") -> str:
    return f"""
version: 1
name: {name}
methods:
  - {{name: ddim-2, model: tiny-sd, sampler: ddim, steps: [2], guidance_scale: 3.0}}
prompts: [shapes-mini, photo-mini]
seeds: [0]
num_images: 6
batch_size: 6
metrics:
{metrics}
"""


def _all_metrics(standins) -> str:
    ir, pick = standins["imagereward"], standins["pickscore"]
    return "\n".join(
        [
            f"  - {{name: hpsv2, model: {TINY_CLIP}, checkpoint: {standins['hps'] / 'HPS_v2_compressed.pt'}}}",
            f"  - {{name: hpsv2.1, model: {TINY_CLIP}, checkpoint: {standins['hps']}}}",
            f"  - {{name: imagereward, checkpoint: {ir['checkpoint']}, config: {ir['config']}, "
            f"tokenizer: {ir['tokenizer']}}}",
            f"  - {{name: pickscore, checkpoint: {pick['checkpoint']}, processor: {pick['processor']}}}",
            f"  - {{name: aesthetic, model: {TINY_CLIP}, pretrained: random, head: {standins['head']}}}",
        ]
    )


COLUMNS = ["hpsv2_lcm-bench-tiny-clip", "hpsv2.1_lcm-bench-tiny-clip", "imagereward", "pickscore"]
COLUMNS += ["aesthetic_lcm-bench-tiny-clip_random"]


@pytest.fixture(scope="module")
def scored_run(standins):
    out = standins["root"] / "run"
    suite = write_suite(standins["root"], _suite(standins, _all_metrics(standins)))
    with pytest.MonkeyPatch.context() as offline:
        offline.setenv("HF_HUB_OFFLINE", "1")
        assert main(["run", str(suite), "--out", str(out), "--quiet"]) == 0
    return out


def test_a_suite_scores_every_preference_metric_per_prompt_set_with_intervals(scored_run):
    frame = pd.read_csv(scored_run / "results.csv")
    assert sorted(frame["prompts"]) == ["photo-mini", "shapes-mini"]
    for column in COLUMNS:
        assert frame[column].notna().all(), column
        assert (frame[f"{column}_ci_low"] < frame[column]).all() and (frame[column] < frame[f"{column}_ci_high"]).all()
    record = json.loads(next((scored_run / "cells").glob("*.json")).read_text())
    hps = record["metrics"]["hpsv2.1_lcm-bench-tiny-clip"]
    assert hps["version"] == "v2.1" and len(hps["per_image"]) == 6 and hps["mode"] == "v2.1"
    report = (scored_run / "report.md").read_text()
    assert all(label in report for label in ("HPSv2 ", "HPSv2.1", "ImageReward", "PickScore", "aesthetic"))
    assert "HPSv2.1 (`hpsv2.1_lcm-bench-tiny-clip`): version v2.1; shown as computed: the cosine" in report
    assert "PickScore (`pickscore`): version v1; shown as computed: logit_scale.exp() x cosine" in report


def test_text_embeddings_are_computed_once_per_caption():
    import torch

    from lcm_bench.models.scorers.text import TextCache

    embedded = []
    cache = TextCache(lambda captions: embedded.extend(captions) or torch.arange(len(captions)).float()[:, None])
    first = cache(["a", "b", "a"])
    second = cache(["b", "c"])
    assert embedded == ["a", "b", "c"]
    assert first[:, 0].tolist() == [0.0, 1.0, 0.0] and second[:, 0].tolist() == [1.0, 0.0]


def test_a_second_run_scores_nothing_again(scored_run, capsys):
    assert main(["run", str(scored_run.parent / "suite.yaml"), "--out", str(scored_run), "--quiet"]) == 0
    assert "0 metric values computed" in capsys.readouterr().out


def test_list_shows_each_scorer_with_its_version_and_files(capsys):
    assert main(["list"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")}
    assert "HPS_v2.1_compressed.pt" in lines["hpsv2.1"] and "version v2.1" in lines["hpsv2.1"]
    assert "ImageReward.pt" in lines["imagereward"] and "med_config.json" in lines["imagereward"]
    assert "PickScore_v1" in lines["pickscore"] and "sac+logos+ava1-l14-linearMSE.pth" in lines["aesthetic"]
    assert all("per-image, higher is better" in lines[n] for n in ("hpsv2", "imagereward", "pickscore", "aesthetic"))


def _run_with(standins, tmp_path, metric: str, capsys) -> tuple[int, str]:
    suite = write_suite(tmp_path, _suite(standins, metric))
    code = main(["run", str(suite), "--out", str(tmp_path / "run"), "--quiet"])
    return code, capsys.readouterr().err.strip()


def test_missing_files_offline_are_one_line_each_before_any_image(standins, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("LCM_BENCH_WEIGHTS", str(tmp_path / "weights"))
    code, err = _run_with(standins, tmp_path, "  - imagereward\n  - hpsv2", capsys)
    assert code == 2 and not (tmp_path / "run" / "cells").exists()
    for name in ("ImageReward.pt", "med_config.json", "bert-base-uncased", "HPS_v2_compressed.pt"):
        assert sum(name in line for line in err.splitlines()) == 1, (name, err)


@pytest.mark.parametrize("fault", ["truncated", "wrong backbone", "unsafe pickle", "other version"])
def test_a_bad_checkpoint_is_one_line_and_keeps_the_cells(standins, tmp_path, capsys, fault):
    import argparse

    import torch

    good = standins["hps"] / "HPS_v2_compressed.pt"
    path, model, expected = tmp_path / "HPS_v2_compressed.pt", TINY_CLIP, ""
    if fault == "truncated":
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
        expected = "is truncated or not a checkpoint"
    elif fault == "wrong backbone":
        path, model, expected = good, "lcm-bench-shapes-clip", "is not an HPS checkpoint for open_clip lcm-bench-shapes"
    elif fault == "unsafe pickle":
        torch.save(
            {"state_dict": torch.load(good, weights_only=True)["state_dict"], "args": argparse.Namespace()}, path
        )
        expected = "only an unrestricted unpickler can rebuild"
    else:
        path, expected = standins["hps"] / "HPS_v2.1_compressed.pt", "is HPS v2.1, not v2.0; use metric hpsv2.1"
    code, err = _run_with(standins, tmp_path, f"  - {{name: hpsv2, model: {model}, checkpoint: {path}}}", capsys)
    assert code == 2 and expected in err and len(err.splitlines()) == 1, err
    assert len(list((tmp_path / "run" / "cells").glob("*.json"))) == 2, "the generated cells are kept"


def test_check_weights_lists_each_file_found_and_each_missing(standins, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    ir = standins["imagereward"]
    metrics = (
        f"  - {{name: imagereward, checkpoint: {ir['checkpoint']}, config: {ir['config']}, "
        f"tokenizer: {ir['tokenizer']}}}\n  - pickscore"
    )
    suite = write_suite(tmp_path, _suite(standins, metrics))
    assert main(["check-weights", str(suite)]) == 2
    out = capsys.readouterr().out
    assert f"ok       imagereward  {ir['checkpoint']}" in out
    assert "missing  pickscore" in out and "PickScore_v1" in out and "CLIP-ViT-H-14-laion2B-s32B-b79K" in out


def _scorer_options(standins) -> dict[str, dict]:
    ir, pick = standins["imagereward"], standins["pickscore"]
    return {
        "hpsv2": {"model": TINY_CLIP, "checkpoint": str(standins["hps"])},
        "imagereward": {k: str(v) for k, v in ir.items()},
        "pickscore": {k: str(v) for k, v in pick.items()},
        "aesthetic": {"model": TINY_CLIP, "pretrained": "random", "head": str(standins["head"])},
    }


@pytest.mark.slow
@pytest.mark.parametrize("scorer", ["hpsv2", "imagereward", "pickscore", "aesthetic"])
def test_bench_scorer_per_1000_images(benchmark, standins, scorer):
    """Each scorer's cost per 1,000 32-px images with their captions on this CPU, with the stand-ins (the full-size
    backbones cost far more: ViT-H/14 is about a billion parameters)."""
    from lcm_bench.metrics.extractors import build_extractor

    built = build_extractor(scorer, _scorer_options(standins)[scorer])
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(1000)]
    captions = [PROMPTS[i % len(PROMPTS)] for i in range(1000)]
    benchmark.group = "preference-per-1000-images"
    scores = benchmark.pedantic(lambda: built.features(images, prompts=captions), rounds=3, warmup_rounds=1)
    assert scores.shape == (1000, 1) and np.isfinite(scores).all()


def test_the_hps_resize_choices_are_the_preprocessing_ones():
    """The metric's choices (named without importing models, for layering) are the resizes the loader has."""
    from lcm_bench.metrics.preference import SCORERS
    from lcm_bench.models.scorers.preprocess import HPS_RESIZES

    for name in ("hpsv2", "hpsv2.1"):
        assert SCORERS[name].choices["resize"] == tuple(HPS_RESIZES)
        assert SCORERS[name].defaults["resize"] == next(iter(HPS_RESIZES))
