import os
import shutil
import tempfile
from pathlib import Path

import pytest

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="lcm-bench-tests-"))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["LCM_BENCH_CACHE"] = str(_SESSION_DIR / "cache")
os.environ["HF_HOME"] = str(_SESSION_DIR / "hf")
os.environ["HF_HUB_CACHE"] = str(_SESSION_DIR / "hf" / "hub")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent


def _judge_shipped() -> bool:
    from lcm_bench.core.paths import embedded_models_dir

    return (embedded_models_dir() / "shapes-judge" / "judge.safetensors").is_file()


needs_judge = pytest.mark.skipif(not _judge_shipped(), reason="needs the shipped judge (data/models/shapes-judge)")


def kill_when(command: list[str], folder: Path, pattern: str, count: int, timeout: float = 120) -> None:
    """Run ``command`` and SIGKILL it once ``folder`` holds ``count`` files matching ``pattern`` (recursively)."""
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline and len(list(folder.rglob(pattern))) < count and proc.poll() is None:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.fixture(scope="session", autouse=True)
def _cleanup_session_dir():
    yield
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_sd_path():
    from lcm_bench.models.catalogue import tiny_path

    return tiny_path("tiny-sd")


@pytest.fixture(scope="session")
def tiny_lcm_path():
    from lcm_bench.models.catalogue import tiny_path

    return tiny_path("tiny-lcm")


@pytest.fixture(scope="session")
def tiny_lora(tiny_sd_path, tmp_path_factory):
    """A LoRA on the tiny UNet saved the way diffusers' training scripts save one."""
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from peft import LoraConfig, get_peft_model_state_dict
    from peft.utils import set_peft_model_state_dict

    unet = UNet2DConditionModel.from_pretrained(tiny_sd_path / "unet")
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    state = get_peft_model_state_dict(unet)
    generator = torch.Generator().manual_seed(0)
    set_peft_model_state_dict(unet, {k: torch.randn(v.shape, generator=generator) * 0.5 for k, v in state.items()})
    out = tmp_path_factory.mktemp("lora")
    StableDiffusionPipeline.save_lora_weights(out, unet_lora_layers=get_peft_model_state_dict(unet))
    return out


def write_suite(directory: Path, text: str, name: str = "suite.yaml") -> Path:
    path = directory / name
    path.write_text(text)
    return path


FLOAT32_LATENTS = ("SanaPipeline", "SanaSprintPipeline")
"""Pipelines whose ``prepare_latents`` draws in float32 whatever the model's dtype (diffusers' SANA pipelines); the
others draw in the text embeddings' dtype."""


def diffusers_reference(
    pipeline_cls,
    pipe,
    sampler,
    steps,
    scale,
    prompts,
    seeds,
    objective="noise",
    pack=lambda x: x,
    size=(32, 32),
    own_scheduler=False,
    output_type="np",
    **call,
):
    """Images from diffusers' own pipeline class on ``pipe``'s components, seeded as lcm-bench seeds them (``call``:
    further arguments of the pipeline's ``__call__``; the sampler's eta goes in where the pipeline takes one, as
    its own default would override it; ``pack``: the family's latent layout, for pipelines that take packed
    latents; ``size``: (height, width)). With ``own_scheduler`` the pipeline keeps the scheduler its folder ships
    (what a user calling it gets); else it gets the one lcm-bench builds for ``sampler``. The initial latents go in
    the pipeline's dtype, as its ``prepare_latents`` would draw them. ``output_type="latent"`` returns its final
    latents instead of images."""
    import inspect

    import numpy as np
    import torch

    from lcm_bench.core.spec import SamplerSpec
    from lcm_bench.sampling.loop import initial_latents
    from lcm_bench.sampling.samplers import build_scheduler

    components = {k: v for k, v in pipe.components.items() if k != "image_encoder"}
    if not own_scheduler:
        scheduler, step_kwargs, _ = build_scheduler(SamplerSpec(sampler), pipe.scheduler.config, objective)
        components["scheduler"] = scheduler
        if "eta" in step_kwargs and "eta" in inspect.signature(pipeline_cls.__call__).parameters:
            call = {"eta": step_kwargs["eta"], **call}
    reference = pipeline_cls(**components)
    reference.set_progress_bar_config(disable=True)
    generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
    height, width = size
    factor = reference.vae_scale_factor
    denoiser = getattr(reference, "transformer", None) or reference.unet
    channels = denoiser.config.in_channels // (4 if pack is not None and pack.__name__ == "pack_2x2" else 1)
    drawn_in = torch.float32 if pipeline_cls.__name__ in FLOAT32_LATENTS else denoiser.dtype
    latents = pack(initial_latents(generators, (channels, height // factor, width // factor))).to(drawn_in)
    out = reference(
        list(prompts),
        num_inference_steps=steps,
        guidance_scale=scale,
        height=height,
        width=width,
        latents=latents,
        generator=generators,
        output_type=output_type,
        **call,
    ).images
    if output_type == "latent":
        return out
    return (out * 255).round().astype(np.uint8)


def figure_data(fig) -> list[dict]:
    """What each panel of a matplotlib figure shows: its title, each labelled series (x and y as drawn, for
    ``plot``, ``step``, ``errorbar`` and ``bar``), the x tick labels and each image's array."""
    import numpy as np
    from matplotlib.container import BarContainer

    panels = []
    for ax in fig.axes:
        series = {}
        for container in ax.containers:
            if isinstance(container, BarContainer):
                bars = container.patches
                series[container.get_label()] = (
                    [float(b.get_x() + b.get_width() / 2) for b in bars],
                    [float(b.get_height()) for b in bars],
                )
            elif getattr(container, "lines", None) and container.lines[0] is not None:
                line = container.lines[0]
                series[container.get_label()] = (list(map(float, line.get_xdata())), list(map(float, line.get_ydata())))
        for line in ax.lines:
            if not line.get_label().startswith("_"):
                series.setdefault(
                    line.get_label(), (list(map(float, line.get_xdata())), list(map(float, line.get_ydata())))
                )
        images = [np.asarray(image.get_array()) for image in ax.images]
        ticks = [t.get_text() for t in ax.get_xticklabels()]
        panels.append({"title": ax.get_title(), "series": series, "images": images, "xticks": ticks})
    if panels:
        panels[0]["layout"] = figure_layout(fig)
    return panels


def figure_layout(fig) -> dict:
    """Whether every legend lies inside the figure, and which tick labels of one axis overlap another."""
    renderer = fig.canvas.get_renderer()
    fig.canvas.draw()
    bounds = fig.bbox
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
    outside = [
        legend
        for legend in legends
        if not (bounds.x0 - 1 <= (box := legend.get_window_extent(renderer)).x0 and box.x1 <= bounds.x1 + 1)
        or not (bounds.y0 - 1 <= box.y0 and box.y1 <= bounds.y1 + 1)
    ]
    overlaps = []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            boxes = [t.get_window_extent(renderer) for t in axis.get_ticklabels() if t.get_visible() and t.get_text()]
            overlaps += [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :] if a.overlaps(b)]
    return {"legends": len(legends), "legends_outside": len(outside), "tick_overlaps": len(overlaps)}


@pytest.fixture
def figures(monkeypatch):
    """Every figure a report draws, by file stem, as ``figure_data`` reads it just before it is saved."""
    from lcm_bench.report import grids, plots

    drawn, save = {}, plots.save

    def keep(fig, path):
        drawn[Path(path).stem] = figure_data(fig)
        return save(fig, path)

    monkeypatch.setattr(plots, "save", keep)
    monkeypatch.setattr(grids, "save", keep)
    return drawn


def pytest_terminal_summary(terminalreporter):
    """The oracle set's agreement table (tests/test_oracle.py), one row per comparison."""
    import sys

    oracle = sys.modules.get("test_oracle")
    rows = getattr(oracle, "AGREEMENT", [])
    if not rows:
        return
    terminalreporter.section("agreement with the reference implementations")
    widths = {key: max(len(key), *(len(row[key]) for row in rows)) for key in ("metric", "reference", "inputs")}
    metric, reference, inputs = widths["metric"], widths["reference"], widths["inputs"]
    header = f"{'metric':<{metric}}  {'reference':<{reference}}  {'inputs':<{inputs}}  {'max abs':>9}  {'max rel':>9}"
    terminalreporter.write_line(header + "  tolerance")
    for row in rows:
        terminalreporter.write_line(
            f"{row['metric']:<{metric}}  {row['reference']:<{reference}}  {row['inputs']:<{inputs}}  "
            f"{row['max_abs']:>9.2e}  {row['max_rel']:>9.2e}  {row['tolerance']}"
        )
