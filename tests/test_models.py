"""Model references: local folders, the Hugging Face cache offline, registry entries, LoRA adapters."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from lcm_bench.core.errors import MissingResourceError, UserError
from lcm_bench.core.spec import Hardware, LoraSpec, ModelSpec, SamplerSpec
from lcm_bench.models.loading import load_pipeline
from lcm_bench.models.resolve import resolve_model
from lcm_bench.sampling.loop import GenerationSettings, Samples, generate_batch, sample_seed
from lcm_bench.sampling.timers import PhaseTimer

CPU = Hardware("cpu-fp32", "cpu", "fp32")


def images(resolved, sampler="ddim", mode="cfg", scale=7.5):
    pipe = load_pipeline(resolved, CPU)
    settings = GenerationSettings(2, scale, mode, 32, 32, "", "cpu", torch.float32, sampler=SamplerSpec(sampler))
    seeds = [sample_seed(0, i) for i in range(2)]
    return generate_batch(pipe, resolved.family, settings, Samples(["a red star"] * 2, seeds), PhaseTimer("cpu"))[0]


def as_hf_cache(folder: Path, repo: str) -> Path:
    """Lay ``folder`` out as the Hugging Face hub cache does: models--org--name/{refs/main,snapshots/<rev>/}."""
    root = Path(os.environ["HF_HUB_CACHE"]) / f"models--{repo.replace('/', '--')}"
    revision = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(folder, root / "snapshots" / revision, dirs_exist_ok=True)
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(revision)
    return root / "snapshots" / revision


def test_local_folder_and_hf_cache_load_the_same_pipeline(tiny_sd_path):
    local = resolve_model(ModelSpec("local", str(tiny_sd_path)))
    snapshot = as_hf_cache(tiny_sd_path, "lcm-bench-tests/tiny-sd")
    cached = resolve_model(ModelSpec("cached", "lcm-bench-tests/tiny-sd"))
    assert cached.pipeline_path == snapshot
    assert not cached.guidance_embedding and cached.family == "sd"
    np.testing.assert_array_equal(images(local), images(cached))


def test_guidance_embedding_is_read_from_the_unet_config(tiny_lcm_path):
    resolved = resolve_model(ModelSpec("lcm", str(tiny_lcm_path)))
    assert resolved.guidance_embedding
    with pytest.raises(UserError, match="declares guidance_embedding: False"):
        resolve_model(ModelSpec("lcm", str(tiny_lcm_path), guidance_embedding=False))


def test_registered_checkpoint_absent_offline_names_files_and_fix():
    with pytest.raises(MissingResourceError) as exc:
        resolve_model(ModelSpec("lcm-dreamshaper-v7", "lcm-dreamshaper-v7"))
    message = str(exc.value)
    assert "SimianLuo/LCM_Dreamshaper_v7" in message and "HF_HUB_OFFLINE is set" in message
    assert "hf download SimianLuo/LCM_Dreamshaper_v7" in message
    assert "\n" not in message


def test_incomplete_cache_lists_the_missing_components(tiny_sd_path):
    snapshot = as_hf_cache(tiny_sd_path, "lcm-bench-tests/broken")
    shutil.rmtree(snapshot / "unet")
    with pytest.raises(MissingResourceError, match=r"missing: unet/config.json, unet/\*.safetensors"):
        resolve_model(ModelSpec("broken", "lcm-bench-tests/broken"))


def test_lora_on_base_needs_the_base_and_says_what_else_is_missing():
    with pytest.raises(MissingResourceError) as missing:
        resolve_model(ModelSpec("lcm-lora-sdv1-5", "lcm-lora-sdv1-5"))
    lines = missing.value.lines()
    assert any("stable-diffusion-v1-5/stable-diffusion-v1-5" in line for line in lines), lines
    assert any("latent-consistency/lcm-lora-sdv1-5" in line for line in lines), "the LoRA too, at once"


def test_incomplete_local_folder(tmp_path, tiny_sd_path):
    shutil.copytree(tiny_sd_path, tmp_path / "m")
    (tmp_path / "m" / "vae" / "config.json").unlink()
    with pytest.raises(UserError, match="not a complete diffusers pipeline folder; missing: vae/config.json"):
        resolve_model(ModelSpec("m", str(tmp_path / "m")))


def test_lora_loads_and_changes_images(tiny_sd_path, tiny_lora):
    base = resolve_model(ModelSpec("base", str(tiny_sd_path)))
    with_lora = resolve_model(ModelSpec("lora", str(tiny_sd_path), loras=(LoraSpec(str(tiny_lora)),)))
    half = resolve_model(ModelSpec("half", str(tiny_sd_path), loras=(LoraSpec(str(tiny_lora), weight=0.0),)))
    assert np.abs(images(base).astype(int) - images(with_lora)).mean() > 1
    np.testing.assert_allclose(images(base), images(half), atol=1)


def test_missing_lora_file(tiny_sd_path, tmp_path):
    with pytest.raises(UserError, match=r"loras\[0\]: LoRA './nope.safetensors' is neither"):
        resolve_model(ModelSpec("x", str(tiny_sd_path), loras=(LoraSpec("./nope.safetensors"),)))
