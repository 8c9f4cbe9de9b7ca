"""Benchmarks of execution (pytest-benchmark, marked slow; reported, never asserted as speeds).

- ``writer-512``: one chunk of a tiny pipeline at 512 x 512 with ``save_images: all`` against ``none``: the
  background writer's cost to the device thread (target: within 5 %; PNG encoding is negligible at 32 px).
- peak RSS of a whole ``lcm-bench run`` of 1,000 and 8,000 images in fresh processes (target: flat in N).
"""

import json
import subprocess
import sys

import pytest
from conftest import write_suite

from lcm_bench.core.hardware import parse_hardware
from lcm_bench.core.spec import ModelSpec
from lcm_bench.models.families import FAMILIES
from lcm_bench.models.loading import load_pipeline
from lcm_bench.models.resolve import resolve_model
from lcm_bench.models.runtimes import deploy
from lcm_bench.records.store import RunDir
from lcm_bench.run.executor import generate_chunk
from lcm_bench.run.units import cell_units
from lcm_bench.run.writer import ImageWriter
from lcm_bench.suite.load import load_suite

pytestmark = pytest.mark.slow
CPU = parse_hardware("cpu-fp32")


def wide_pipeline(out):
    """tiny-sd's text encoder with a UNet on 64 x 64 latents and an 8x VAE: 512 x 512 images, cheap to generate."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from lcm_bench.models.tiny import save_pipeline, sd_pipeline

    base = load_pipeline(resolve_model(ModelSpec("tiny-sd", "tiny-sd")), CPU)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=64,
        block_out_channels=(16, 32),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=512,
    )
    return save_pipeline(sd_pipeline(vae, base.text_encoder, base.tokenizer, unet), out)


WRITER = """
version: 1
name: writer
models: [{{name: wide, path: {path}}}]
samplers: [ddim]
steps: [1]
guidance_scales: [1.0]
prompts: [shapes-mini]
num_images: 16
batch_size: 4
save_images: {save}
"""


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    return wide_pipeline(tmp_path_factory.mktemp("wide") / "pipeline")


@pytest.mark.parametrize("threads", ["all-cores", "one-core-free"])
@pytest.mark.parametrize("save", ["none", "all"])
def test_bench_writer_at_512(benchmark, tmp_path, wide, save, threads):
    """With every core driving torch the writer's CPU time shows; with one core left free (as when the device is a
    GPU) it should not."""
    import torch

    cell = load_suite(write_suite(tmp_path, WRITER.format(save=save, path=wide))).cells[0]
    resolved = resolve_model(cell.model)
    pipe = deploy(load_pipeline(resolved, cell.hardware), FAMILIES.get(resolved.family), cell.runtime, cell.hardware)
    run, unit = RunDir(tmp_path / "run"), cell_units(cell)[0]
    benchmark.group = f"writer-512-{threads}"
    default = torch.get_num_threads()
    torch.set_num_threads(default if threads == "all-cores" else max(1, default - 1))
    try:
        with ImageWriter() as writer:
            fragment = benchmark.pedantic(
                generate_chunk, args=(run, cell, unit, resolved, pipe, "cfg", writer, 0), rounds=5, warmup_rounds=1
            )
    finally:
        torch.set_num_threads(default)
    saved = sorted(run.images_dir(cell.cell_id).glob("*.png")) if save == "all" else []
    assert len(saved) == (16 if save == "all" else 0) and len(fragment["images"]) == len(saved)
    benchmark.extra_info["png_bytes_per_image"] = sum(p.stat().st_size for p in saved) / max(1, len(saved))


PEAK = """
version: 1
name: peak
models: [tiny-sd]
samplers: [ddim]
steps: [1]
guidance_scales: [1.0]
prompts: [shapes-mini]
num_images: {n}
batch_size: 50
chunk_size: 1000
warmup: 0
"""

MEASURE = """
import json, sys
peak_mb = lambda: int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) / 1024
from lcm_bench.cli.main import main
code = main(["run", sys.argv[1], "--out", sys.argv[2], "--quiet", "--no-report"])
print(json.dumps({"code": code, "peak_rss_mb": peak_mb()}))
"""


def test_run_peak_memory_is_flat_in_n(benchmark, tmp_path):
    """Peak RSS of ``lcm-bench run`` over 1,000 and 8,000 images, each in a fresh process."""

    def peak(n: int) -> dict:
        suite = write_suite(tmp_path, PEAK.format(n=n), f"peak{n}.yaml")
        out = subprocess.run(
            [sys.executable, "-c", MEASURE, str(suite), str(tmp_path / f"run{n}")],
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(out.stdout.strip().splitlines()[-1])

    small, big = benchmark.pedantic(lambda: (peak(1000), peak(8000)), rounds=1)
    benchmark.extra_info.update({"peak_rss_mb_1k": small["peak_rss_mb"], "peak_rss_mb_8k": big["peak_rss_mb"]})
    print(f"\npeak RSS of a run: 1,000 images {small['peak_rss_mb']:.0f} MB, 8,000 {big['peak_rss_mb']:.0f} MB")
    assert small["code"] == big["code"] == 0
    assert len(list((tmp_path / "run8000" / "images").glob("*/*.png"))) == 8000
