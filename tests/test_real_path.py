"""The shipped real-path suite (Dreamshaper v7 with DDIM / DPM-Solver++ against LCM-Dreamshaper-v7 and LCM-LoRA on
COCO-2014 30k): with tiny stand-ins laid out where the real files would be (the Hugging Face cache, the metric
weights folder, a prepared COCO protocol) it validates, and a child suite at a tiny N runs it end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from coco_layout import make_coco
from conftest import write_suite
from test_datasets import protocol

from lcm_bench.cli.main import main
from lcm_bench.core.paths import suites_dir
from lcm_bench.domain.datasets import Protocol, prepare

REVISION = "0123456789abcdef0123456789abcdef01234567"


def as_hub_cache(cache: Path, folder: Path, repo: str) -> None:
    """Lay ``folder`` out as the Hugging Face hub cache does: models--org--name/{refs/main,snapshots/<rev>/}."""
    root = cache / f"models--{repo.replace('/', '--')}"
    shutil.copytree(folder, root / "snapshots" / REVISION, dirs_exist_ok=True)
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(REVISION)


def inception_stand_in(path: Path) -> None:
    """A TorchScript module with the interface clean-fid's InceptionV3W calls (``layers`` to 2048 features)."""
    import torch

    class Layers(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.pool = torch.nn.AdaptiveAvgPool2d(4)
            self.proj = torch.nn.Linear(48, 2048)

        def forward(self, x):
            return self.proj(self.pool(x).flatten(1)).view(x.shape[0], 2048, 1, 1)

    class StandIn(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = Layers()

        def forward(self, x, return_features: bool = False):
            return self.layers(x).flatten(1)

    torch.manual_seed(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(torch.jit.script(StandIn()), str(path))


@pytest.fixture
def stand_ins(tmp_path, monkeypatch, tiny_sd_path, tiny_lcm_path, tiny_lora):
    """The real path's models, LoRA, Inception weights and COCO-2014 30k, each a tiny stand-in in its place."""
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("LCM_BENCH_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("LCM_BENCH_DATA", str(tmp_path / "datasets"))
    as_hub_cache(cache, tiny_sd_path, "Lykon/dreamshaper-7")
    as_hub_cache(cache, tiny_lcm_path, "SimianLuo/LCM_Dreamshaper_v7")
    as_hub_cache(cache, tiny_lora, "latent-consistency/lcm-lora-sdv1-5")
    inception_stand_in(tmp_path / "weights" / "inception-2015-12-05.pt")
    annotations, images = make_coco(tmp_path / "coco", images=10)
    with protocol("coco2014-30k", Protocol("val2014", 8, 32)):
        prepare("coco2014-30k", annotations, images, tmp_path / "datasets" / "coco2014-30k")
    return tmp_path


def test_the_real_path_suite_validates_and_runs_at_a_tiny_n(stand_ins, capsys):
    shipped = suites_dir() / "real-sd15-coco.yaml"
    assert main(["validate", str(shipped)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "hf download laion/CLIP-ViT-g-14-laion2B-s34B-b88K" in err[0], err
    child = write_suite(
        stand_ins,
        f"""
version: 1
name: real-path-tiny
extends: {shipped}
steps: [1, 2]
hardware: [cpu-fp32]
num_images: 4
batch_size: 4
resolution: 32
metrics:
  - {{name: kid, mode: clean, num_subsets: 10, max_subset_size: 4}}
  - {{name: clip_score, model: lcm-bench-shapes-clip, pretrained: embedded}}
""",
    )
    assert main(["validate", str(child)]) == 0, capsys.readouterr().err
    assert "8 cells, 8 runnable here" in capsys.readouterr().out
    out = stand_ins / "run"
    assert main(["run", str(child), "--out", str(out), "--quiet"]) == 0, capsys.readouterr().err
    records = [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))]
    assert len(records) == 8 and all(r["status"] == "ok" for r in records)
    for record in records:
        fid = record["metrics"]["kid_inception_clean"]
        assert fid["reference"]["n"] == 8 and fid["n"] == 4
        assert fid["reference"]["preprocessing"] == "centre crop to the short side, lanczos resize to 32px, PNG"
    report = (out / "report.md").read_text()
    assert "N=4 vs coco2014-30k[8] (n=8)" in report
    assert "reference preprocessing: centre crop to the short side, lanczos resize to 32px, PNG" in report
    assert main(["ref-stats", str(child)]) == 0
    assert "coco2014-30k[8]" in capsys.readouterr().out
