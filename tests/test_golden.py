"""Golden images pin GENERATION_VERSION: a change to the sampling loop that alters images must bump it.

The shipped teacher (DDIM, CFG) and LCM (guidance embedding) draw four images each; they must match the golden
images committed for the current GENERATION_VERSION (up to last-bit differences between CPUs and torch builds).
After a deliberate change: bump GENERATION_VERSION in lcm_bench/sampling/generation.py, run
``python tests/test_golden.py``, and add the printed digest to GOLDEN_SHA256.
"""

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest

from lcm_bench.core.paths import embedded_models_dir
from lcm_bench.sampling.generation import GENERATION_VERSION

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
GOLDEN_SHA256 = {1: "1de857ee8da52a6da5a5e5bed1661d66e831d9b802acf777a85d26d76d97a40b"}
PROMPTS = [
    "a small red star at the top left on a dark green background",
    "a green circle left of a white star on a grey background",
    "a large blue square in the center on a black background",
    "a yellow triangle above a purple circle on a dark blue background",
]
CASES = (("shapes-teacher", "ddim", 4, 3.0), ("shapes-lcm", "lcm", 2, 3.0))


def golden_images() -> np.ndarray:
    """Eight 32x32 images: each case's four prompts, seeded as a cell's samples 0..3 are."""
    from lcm_bench.core.hardware import parse_hardware
    from lcm_bench.core.spec import ModelSpec, SamplerSpec
    from lcm_bench.models.loading import load_pipeline
    from lcm_bench.models.resolve import resolve_model
    from lcm_bench.sampling.loop import GenerationSettings, Samples, generate_batch, sample_seed
    from lcm_bench.sampling.timers import PhaseTimer

    hardware = parse_hardware("cpu-fp32")
    rows = []
    for model, sampler, steps, scale in CASES:
        resolved = resolve_model(ModelSpec(model, model))
        pipe = load_pipeline(resolved, hardware)
        mode = "embedding" if resolved.guidance_embedding else "cfg"
        spec = SamplerSpec(sampler)
        settings = GenerationSettings(steps, scale, mode, 32, 32, "", "cpu", pipe.unet.dtype, sampler=spec)
        seeds = [sample_seed(0, i) for i in range(len(PROMPTS))]
        images, *_ = generate_batch(pipe, resolved.family, settings, Samples(PROMPTS, seeds), PhaseTimer("cpu"))
        rows.append(np.concatenate(list(images), axis=1))
    return np.concatenate(rows, axis=0)


def golden_path(version: int = GENERATION_VERSION) -> Path:
    return GOLDEN_DIR / f"generation-v{version}.png"


@pytest.mark.skipif(
    not (embedded_models_dir() / "shapes-lcm" / "model_index.json").is_file(), reason="needs shipped models"
)
def test_images_match_the_golden_images_of_this_generation_version():
    from PIL import Image

    path = golden_path()
    assert path.is_file() and GENERATION_VERSION in GOLDEN_SHA256, (
        f"no golden images for GENERATION_VERSION {GENERATION_VERSION}: run `python tests/test_golden.py`"
    )
    assert hashlib.sha256(path.read_bytes()).hexdigest() == GOLDEN_SHA256[GENERATION_VERSION], (
        f"{path.name} was rewritten in place: bump GENERATION_VERSION instead, so old cells are recomputed"
    )
    golden = np.asarray(Image.open(path).convert("RGB")).astype(np.int16)
    images = golden_images().astype(np.int16)
    difference = np.abs(images - golden)
    assert difference.mean() < 0.5 and (difference > 8).mean() < 0.005, (
        f"sampling changed the images (mean |diff| {difference.mean():.2f}): bump GENERATION_VERSION in "
        "lcm_bench/sampling/generation.py and run `python tests/test_golden.py`"
    )


if __name__ == "__main__":
    from PIL import Image

    target = golden_path()
    if target.exists() and "--force" not in sys.argv:
        sys.exit(f"{target} exists: bump GENERATION_VERSION first (or pass --force for a new file)")
    GOLDEN_DIR.mkdir(exist_ok=True)
    Image.fromarray(golden_images()).save(target)
    print(f"{target}: GOLDEN_SHA256[{GENERATION_VERSION}] = {hashlib.sha256(target.read_bytes()).hexdigest()!r}")
