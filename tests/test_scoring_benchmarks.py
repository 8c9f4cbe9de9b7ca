"""Scoring benchmarks (slow): our feature -> statistics -> FD path against clean-fid's ``compute_fid`` with the
same extractor and resize, each metric's cost per 1,000 images and the embedded extractors' per 200, and peak memory of
scoring 10,000 images (peak RSS as the kernel's ``VmHWM`` of a fresh process: ``ru_maxrss`` keeps the parent's
peak across ``exec``).

Targets are ratios measured in one process (ours / clean-fid, 10,000 / 1,000 images); the costs per 200 or 1,000
images are compared with the committed baseline (``benchmarks/``, pytest-benchmark's ``--benchmark-compare-fail``, as
``.ci/run`` runs them). Run: ``pytest -m slow tests/test_scoring_benchmarks.py``.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from lcm_bench.metrics.builtins import METRICS, CellInputs

pytestmark = pytest.mark.slow
N = 2000


def write_images(folder, n, seed):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(8, 32, 32, 3))
    for i in range(n):
        noise = rng.integers(-40, 40, size=(32, 32, 3))
        Image.fromarray(np.clip(base[i % 8] + noise, 0, 255).astype(np.uint8)).save(folder / f"{i:05d}.png")
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("scoring")
    return write_images(root / "generated", N, 0), write_images(root / "reference", N, 1)


@pytest.fixture(scope="module")
def extractor():
    from lcm_bench.metrics.extractors import build_extractor

    return build_extractor("clip", {"model": "lcm-bench-tiny-clip", "pretrained": "random"})


def ours(generated, reference, extractor):
    from lcm_bench.metrics.distances import feature_stats, frechet_distance
    from lcm_bench.metrics.references import folder_reference, stream_features

    a = stream_features(folder_reference(generated, "generated").images(), extractor)
    b = stream_features(folder_reference(reference, "reference").images(), extractor)
    return frechet_distance(feature_stats(a), feature_stats(b))


def cleanfid(generated, reference, extractor):
    import torch
    from cleanfid.fid import compute_fid

    return compute_fid(
        str(generated),
        str(reference),
        mode="clean",
        custom_feat_extractor=extractor.model_fn,
        custom_fn_resize=extractor.resize,
        num_workers=0,
        batch_size=64,
        device=torch.device("cpu"),
        use_dataparallel=False,
        verbose=False,
    )


FD_TARGET = 1.05


def test_bench_fd_against_cleanfid_compute_fid(benchmark, folders, extractor):
    """Our feature -> statistics -> FD path and clean-fid's ``compute_fid``, in turns: equal values, and ours at
    most 1.05x clean-fid's median time."""
    import time

    seconds, values = {"ours": [], "clean-fid": []}, {}

    def one_round():
        for name, compute in (("ours", ours), ("clean-fid", cleanfid)):
            start = time.perf_counter()
            values[name] = compute(*folders, extractor)
            seconds[name].append(time.perf_counter() - start)

    benchmark.group = f"fd-{N}-images"
    benchmark.pedantic(one_round, rounds=3, warmup_rounds=1)
    ratio = float(np.median(seconds["ours"][1:]) / np.median(seconds["clean-fid"][1:]))
    benchmark.extra_info.update({"fd": values["ours"], "ours_over_cleanfid": ratio, "target": FD_TARGET})
    assert values["ours"] == pytest.approx(values["clean-fid"], rel=1e-4)
    assert ratio <= FD_TARGET, f"ours / clean-fid = {ratio:.3f} over {FD_TARGET}"


PEAK = """
import json, sys
peak_mb = lambda: int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) / 1024
from pathlib import Path
from lcm_bench.metrics.extractors import build_extractor
from lcm_bench.metrics.references import folder_reference, stream_features
from lcm_bench.metrics.distances import feature_stats
extractor = build_extractor("clip", {"model": "lcm-bench-tiny-clip", "pretrained": "random"})
features = stream_features(folder_reference(Path(sys.argv[1]), "x").images(), extractor)
feature_stats(features)
print(json.dumps({"n": len(features), "peak_rss_mb": peak_mb()}))
"""


def test_peak_memory_is_flat_in_n(tmp_path, benchmark):
    """Peak RSS of scoring 1,000 and 10,000 images in fresh processes (target: 10,000 within 10 % of 1,000)."""
    big = write_images(tmp_path / "big", 10_000, 2)
    small = tmp_path / "small"
    small.mkdir()
    for path in sorted(big.iterdir())[:1000]:
        (small / path.name).symlink_to(path)

    def peak(folder):
        out = subprocess.run([sys.executable, "-c", PEAK, str(folder)], capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    results = benchmark.pedantic(lambda: (peak(small), peak(big)), rounds=1)
    benchmark.extra_info.update(
        {"peak_rss_mb_1k": results[0]["peak_rss_mb"], "peak_rss_mb_10k": results[1]["peak_rss_mb"]}
    )
    ratio = results[1]["peak_rss_mb"] / results[0]["peak_rss_mb"]
    benchmark.extra_info["rss_10k_over_1k"] = ratio
    assert results[1]["n"] == 10_000
    sizes = f"1,000 images {results[0]['peak_rss_mb']:.0f} MB, 10,000 {results[1]['peak_rss_mb']:.0f} MB"
    assert ratio <= 1.10, f"peak RSS grows with N: {sizes}"


EMBEDDED = {"effnet-lite0": {}, "shapes-judge": {}}


def _images(n: int, seed: int) -> np.ndarray:
    from lcm_bench.domain.prompts import PROMPT_SETS, read_prompts
    from lcm_bench.domain.shapes import render

    entry = PROMPT_SETS.get("shapes-test")
    prompts = read_prompts(entry.path, "txt", None)
    return np.stack([render(prompts[i % len(prompts)], seed + i) for i in range(n)])


@pytest.mark.parametrize("extractor", sorted(EMBEDDED))
def test_bench_features_of_200_images(benchmark, extractor):
    """Features of 200 64-px images (five times this is the cost per 1,000 that docs/metrics.md gives)."""
    from lcm_bench.metrics.extractors import build_extractor

    built, images = build_extractor(extractor, EMBEDDED[extractor]), _images(200, 0)
    benchmark.group = "features-per-200-images"
    features = benchmark.pedantic(lambda: built.features(images), rounds=1, warmup_rounds=1)
    assert features.shape == (200, built.dim)


FEATURE_METRICS = ["fd", "kid", "precision", "recall", "density", "coverage", "vendi"]


@pytest.mark.parametrize("metric", FEATURE_METRICS)
def test_bench_metric_on_1000_against_1000(benchmark, metric):
    """The metric's own cost on 1,000 generated and 1,000 reference features of effnet-lite0's width (1,280), its
    defaults as a suite gets them."""
    rng = np.random.default_rng(0)
    definition = METRICS.get(metric)

    class Extractor:
        dim, key, label = 1280, "effnet-lite0", "FD-EffNetLite0"

    def compute() -> dict:
        inputs = CellInputs(
            rng.normal(size=(1000, 1280)).astype(np.float32),
            [],
            Extractor(),
            {**definition.defaults, "extractor": "effnet-lite0"},
            lambda: iter(()),
            reference_features=rng.normal(size=(1000, 1280)).astype(np.float32),
        )
        return definition.compute(inputs)

    benchmark.group = "metric-per-1000-images"
    result = benchmark.pedantic(compute, rounds=2, warmup_rounds=0)
    assert np.isfinite(result["value"])


TEN_THOUSAND = """
import json
import numpy as np
peak_mb = lambda: int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) / 1024
from lcm_bench.metrics.builtins import METRICS, CellInputs
rng = np.random.default_rng(0)
class Extractor:
    dim, key, label = 1280, "effnet-lite0", "FD-EffNetLite0"
inputs = CellInputs(
    rng.normal(size=(10000, 1280)).astype(np.float32), [], Extractor(), {}, lambda: iter(()),
    reference_features=(rng.normal(size=(10000, 1280)) * 1.1).astype(np.float32),
)
values = {}
for name in ("fd", "precision", "recall", "density", "coverage", "vendi"):
    inputs.options = {**METRICS.get(name).defaults, "extractor": "effnet-lite0"}
    values[name] = METRICS.get(name).compute(inputs)["value"]
print(json.dumps({"values": values, "peak_rss_mb": peak_mb()}))
"""


def test_scoring_10000_against_10000_stays_under_2_gb(benchmark):
    """k-NN radii in row chunks: no N x N matrix is ever held (one would take 800 MB per matrix in float64)."""

    def measure() -> dict:
        out = subprocess.run([sys.executable, "-c", TEN_THOUSAND], capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    result = benchmark.pedantic(measure, rounds=1, warmup_rounds=0)
    benchmark.extra_info.update(result)
    benchmark.extra_info["target_mb"] = 2048
    assert all(np.isfinite(v) for v in result["values"].values())
    assert result["peak_rss_mb"] < 2048
