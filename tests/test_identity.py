"""Two identities per cell: the configuration key (what was asked) and the content fingerprint (what produced it).

Changed weights, scheduler configs, generation code or extractor weights recompute exactly what they affect and say
why; execution settings and file locations change nothing; the gate reports retrained extractors as not comparable.
"""

import json
import shutil

import numpy as np
import pytest
from conftest import needs_judge, write_suite
from safetensors.numpy import load_file, save_file

from lcm_bench.cli.main import main
from lcm_bench.core import digests
from lcm_bench.core.paths import embedded_models_dir
from lcm_bench.suite.load import load_suite

TWO_MODELS = """
version: 1
name: identity
models:
  - {{name: m, path: {m}}}
  - {{name: n, path: {n}}}
samplers: [ddim]
steps: [1, 2]
guidance_scales: [2.0]
prompts: [shapes-mini]
num_images: 2
batch_size: {batch}
save_images: grid
"""


def _perturb(file, key_filter=lambda k: True, value=None):
    """Change one tensor of a safetensors file in place (all zeros, or one element nudged)."""
    tensors = load_file(file)
    key = next(k for k in sorted(tensors) if key_filter(k) and tensors[k].size > 1)
    if value is None:
        tensors[key] = np.zeros_like(tensors[key])
    else:
        tensors[key] = tensors[key].copy()
        tensors[key].flat[0] += value
    save_file(tensors, str(file))


@pytest.fixture
def two_models(tiny_sd_path, tmp_path):
    for name in ("m", "n"):
        shutil.copytree(tiny_sd_path, tmp_path / "models" / name)
    return tmp_path / "models"


def _suite(tmp_path, models, batch=2, where="suite"):
    folder = tmp_path / where
    folder.mkdir(exist_ok=True)
    return write_suite(folder, TWO_MODELS.format(m=models / "m", n=models / "n", batch=batch))


def test_configuration_key_ignores_execution_settings_and_where_files_lie(two_models, tmp_path):
    base = load_suite(_suite(tmp_path, two_models))
    moved = tmp_path / "elsewhere"
    shutil.copytree(two_models, moved)
    text = TWO_MODELS.format(m=moved / "m", n=moved / "n", batch=1) + "warmup: 0\n"
    other = load_suite(write_suite(tmp_path, text.replace("save_images: grid", "save_images: none"), "b.yaml"))
    assert [c.cell_id for c in base.cells] == [c.cell_id for c in other.cells]
    assert base.suite_hash == other.suite_hash
    changed = load_suite(write_suite(tmp_path, TWO_MODELS.format(m=moved / "m", n=moved / "n", batch=1) + "seeds: [1]"))
    assert not {c.cell_id for c in base.cells} & {c.cell_id for c in changed.cells}


def test_changed_weights_recompute_exactly_the_affected_cells_and_say_why(two_models, tmp_path, capsys):
    suite, out = _suite(tmp_path, two_models), tmp_path / "run"
    assert main(["run", str(suite), "--out", str(out), "--quiet", "--no-report"]) == 0
    assert "4 cells computed, 0 reused" in capsys.readouterr().out
    records = {p.name: json.loads(p.read_text()) for p in (out / "cells").glob("*.json")}
    assert all(
        set(r["fingerprint"]["components"]) >= {"weights:unet", "weights:vae", "scheduler"} for r in records.values()
    )
    untouched = {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("n.*.json")}

    _perturb(two_models / "m" / "unet" / "diffusion_pytorch_model.safetensors")
    assert main(["run", str(suite), "--out", str(out), "--quiet", "--no-report"]) == 0
    text = capsys.readouterr().out
    assert "2 cells computed, 2 reused" in text
    assert "recomputed 2 cells: weights of m changed (unet)" in text
    assert untouched == {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("n.*.json")}
    after = {p.name: json.loads(p.read_text()) for p in (out / "cells").glob("m.*.json")}
    assert sorted(after) == sorted(k for k in records if k.startswith("m."))
    for name, record in after.items():
        old, new = records[name]["fingerprint"]["components"], record["fingerprint"]["components"]
        assert [k for k in new if new[k] != old[k]] == ["weights:unet"]

    assert main(["run", str(suite), "--out", str(out), "--quiet", "--no-report"]) == 0
    assert "0 cells computed, 4 reused" in capsys.readouterr().out


def test_scheduler_config_and_generation_code_are_part_of_the_fingerprint(two_models, tmp_path, capsys, monkeypatch):
    suite, out = _suite(tmp_path, two_models), tmp_path / "run"
    assert main(["run", str(suite), "--out", str(out), "--quiet", "--no-report"]) == 0
    config_file = two_models / "n" / "scheduler" / "scheduler_config.json"
    config = json.loads(config_file.read_text())
    config["_diffusers_version"] = "0.0.1"
    config_file.write_text(json.dumps(config))
    assert main(["run", str(suite), "--out", str(out), "--quiet", "--no-report"]) == 0
    assert "0 cells computed, 4 reused" in capsys.readouterr().out, "a diffusers version stamp alone changes nothing"
    config["beta_end"] = 0.02
    config_file.write_text(json.dumps(config))
    assert main(["run", str(suite), "--out", str(out), "--quiet", "--no-report"]) == 0
    assert "recomputed 2 cells: scheduler of ddim changed" in capsys.readouterr().out

    import lcm_bench.sampling.generation

    generation = lcm_bench.sampling.generation
    monkeypatch.setattr(generation, "GENERATION_VERSION", generation.GENERATION_VERSION + 1)
    assert main(["run", str(suite), "--out", str(out), "--quiet", "--no-report"]) == 0
    assert "recomputed 4 cells: generation code changed" in capsys.readouterr().out


def test_batch_size_edit_reuses_every_cell(two_models, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", str(_suite(tmp_path, two_models, batch=2)), "--out", str(out), "--quiet", "--no-report"]) == 0
    capsys.readouterr()
    edited = _suite(tmp_path, two_models, batch=1, where="edited")
    assert main(["run", str(edited), "--out", str(out), "--quiet", "--no-report"]) == 0
    assert "0 cells computed, 4 reused" in capsys.readouterr().out


def test_weight_digests_are_cached_by_file_identity(tmp_path, monkeypatch):
    file = tmp_path / "w.bin"
    file.write_bytes(b"x" * 4096)
    cache = digests.DigestCache(tmp_path / "digests.json")
    first = cache.file(file)
    assert cache.memo("derived|v1", lambda: "value") == "value"
    cache.flush()
    assert digests.DigestCache(tmp_path / "digests.json").memo("derived|v1", lambda: "recomputed") == "value"

    def no_reading(*args, **kwargs):
        raise AssertionError("a cached digest read the file")

    monkeypatch.setattr(digests, "open", no_reading, raising=False)
    assert digests.DigestCache(tmp_path / "digests.json").file(file) == first
    monkeypatch.undo()
    file.write_bytes(b"y" * 4096)
    assert digests.DigestCache(tmp_path / "digests.json").file(file) != first


def test_hub_blobs_are_named_by_their_digest(tmp_path):
    blob = tmp_path / "blobs" / ("ab" * 32)
    blob.parent.mkdir()
    blob.write_bytes(b"weights")
    link = tmp_path / "snapshots" / "rev" / "unet" / "model.safetensors"
    link.parent.mkdir(parents=True)
    link.symlink_to(blob)
    assert digests.DigestCache(tmp_path / "d.json").file(link) == "ab" * 32


JUDGED = """
version: 1
name: judged
models: [tiny-sd]
samplers: [ddim]
steps: [1, 2]
guidance_scales: [2.0]
prompts: [shapes-mini]
num_images: 16
batch_size: {batch}
metrics:
  - {{name: fd, extractor: shapes-judge, weights: {judge}, subsets: 2}}
  - {{name: attribute_accuracy, weights: {judge}}}
"""


@needs_judge
def test_retrained_judge_recomputes_every_feature_and_the_gate_says_not_comparable(tmp_path, capsys):
    from lcm_bench.core.paths import cache_dir

    judge = tmp_path / "judge"
    shutil.copytree(embedded_models_dir() / "shapes-judge", judge)
    suite, out = write_suite(tmp_path, JUDGED.format(judge=judge, batch=8)), tmp_path / "run"
    assert main(["run", str(suite), "--out", str(out), "--quiet", "--no-report"]) == 0
    assert "4 metric values computed" in capsys.readouterr().out
    baseline = tmp_path / "baseline.json"
    assert main(["baseline", str(out), "--out", str(baseline)]) == 0
    refstats = set((cache_dir() / "refstats").glob("shapes-judge-*"))
    features = set((out / "features").rglob("*.safetensors"))
    before = {p.name: json.loads(p.read_text())["metrics"] for p in (out / "cells").glob("*.json")}

    edited = write_suite(tmp_path, JUDGED.format(judge=judge, batch=4), "edited.yaml")
    assert main(["run", str(edited), "--out", str(out), "--quiet", "--no-report"]) == 0
    assert "0 cells computed, 2 reused, 0 skipped, 0 metric values computed" in capsys.readouterr().out
    assert main(["check", str(out), "--baseline", str(baseline)]) == 0
    capsys.readouterr()

    _perturb(judge / "judge.safetensors", value=0.05)
    assert main(["run", str(suite), "--out", str(out), "--quiet", "--no-report"]) == 0
    assert "0 cells computed, 2 reused, 0 skipped, 4 metric values computed" in capsys.readouterr().out
    new_refstats = set((cache_dir() / "refstats").glob("shapes-judge-*"))
    assert new_refstats - refstats, "reference features were not recomputed"
    new_features = set((out / "features").rglob("*.safetensors"))
    assert new_features and not new_features & features, "per-cell features were not recomputed"
    for name, metrics in ((p.name, json.loads(p.read_text())["metrics"]) for p in (out / "cells").glob("*.json")):
        fd = "fd_shapes-judge"
        assert metrics[fd]["extractor_digest"] != before[name][fd]["extractor_digest"]
        assert metrics[fd]["noise_floor"] != before[name][fd]["noise_floor"], "the noise floor was not recomputed"

    assert main(["check", str(out), "--baseline", str(baseline), "--summary", str(tmp_path / "s.md")]) == 1
    summary = (tmp_path / "s.md").read_text()
    assert "FAIL: 4 not comparable" in summary and "extractor weights changed (shapes-judge)" in summary
    assert main(["check", str(out), "--baseline", str(baseline), "--allow-incomparable"]) == 0
