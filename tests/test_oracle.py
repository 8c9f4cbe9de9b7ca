"""lcm-bench's metrics against their reference implementations (``pytest -m oracle``): each reference runs in the
oracle environment (oracle/build.py: the packages pinned in oracle/requirements.txt, in a virtual environment of its
own) on the same features, images and random-weight checkpoints, saved in the reference's own layout; the two sides
meet only through files. An environment that cannot be built fails the set with one line naming the requirement.
Each comparison adds a row to the agreement table printed at the end of the session (metric, reference and its
version, inputs, max absolute and relative difference, tolerance)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lcm_bench.metrics.builtins import METRICS, CellInputs

pytestmark = pytest.mark.oracle
ROOT = Path(__file__).resolve().parent.parent
AGREEMENT: list[dict] = []
"""The rows of the agreement table, in the order the tests ran (conftest prints them)."""


@pytest.fixture(scope="session")
def oracle_python() -> Path:
    built = subprocess.run([sys.executable, str(ROOT / "oracle" / "build.py")], capture_output=True, text=True)
    if built.returncode != 0:
        pytest.fail(built.stderr.strip().splitlines()[-1] if built.stderr.strip() else "oracle/build.py failed")
    return Path(built.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def oracle_server(oracle_python, tmp_path_factory):
    """The oracle environment's reference server (``references.py --serve``), started once per session; its
    children's output goes to a log whose tail a failed job shows."""
    log_path = tmp_path_factory.mktemp("oracle") / "server.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [str(oracle_python), str(ROOT / "oracle" / "references.py"), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    if server.stdout.readline().strip() != "ready":
        pytest.fail(f"the oracle server did not start: {log_path.read_text()[-3000:]}")
    yield server, log_path
    server.stdin.close()
    server.wait(timeout=60)


@pytest.fixture
def run_reference(oracle_server, tmp_path):
    """Run one reference computation in the oracle environment and return what it wrote."""
    return lambda job: _ask(oracle_server, job, tmp_path)


def agree(metric: str, ours, theirs, reference: dict, inputs: str, rel: float = 0.0, abs_: float = 0.0) -> None:
    """Assert ``ours`` equals ``theirs`` within the tolerance (both arrays or both numbers) and add the table row."""
    a, b = np.atleast_1d(np.asarray(ours, np.float64)), np.atleast_1d(np.asarray(theirs, np.float64))
    assert a.shape == b.shape, (a.shape, b.shape)
    difference = np.abs(a - b)
    relative = difference / np.maximum(np.abs(b), 1e-300)
    AGREEMENT.append(
        {
            "metric": metric,
            "reference": f"{reference['package']} {reference['version']}",
            "inputs": inputs,
            "max_abs": float(difference.max()),
            "max_rel": float(relative.max()),
            "tolerance": f"rel {rel:g}, abs {abs_:g}",
        }
    )
    np.testing.assert_allclose(a, b, rtol=rel, atol=abs_, err_msg=f"{metric} against {reference['package']}")


class Features:
    """The extractor a feature metric is handed: only its width and names matter here."""

    key, label = "oracle", "FD-Oracle"

    def __init__(self, dim: int):
        self.dim = dim


def ours(metric: str, x: np.ndarray, y: np.ndarray | None = None, **options) -> dict:
    definition = METRICS.get(metric)
    inputs = CellInputs(
        x, [], Features(x.shape[1]), {**definition.defaults, **options}, lambda: iter(()), reference_features=y
    )
    return definition.compute(inputs)


def features(n: int, dim: int, seed: int, scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(dim, dim)) / np.sqrt(dim)
    return (rng.normal(size=(n, dim)) @ mixing * scale + seed * 0.05).astype(np.float32)


def saved(tmp_path: Path, name: str, array: np.ndarray) -> str:
    path = tmp_path / f"{name}.npy"
    np.save(path, array)
    return str(path)


@pytest.mark.parametrize(("n", "dim"), [(600, 64), (2048, 256), (100, 256)])
@pytest.mark.parametrize("package", ["pytorch_fid", "torch_fidelity", "clean_fid"])
def test_frechet_distance_equals_the_references(run_reference, tmp_path, package, n, dim):
    """Also where both covariances are singular (100 and 200 features of 256): the references take scipy's sqrtm
    (with 1e-6 I added only where it returns non-finite values), lcm-bench the eigenvalues of the symmetric
    product; the two agree there too."""
    x, y = features(n, dim, 1), features(n + 100, dim, 2, scale=1.2)
    theirs = run_reference(
        {"reference": f"{package}.frechet", "x": saved(tmp_path, "x", x), "y": saved(tmp_path, "y", y)}
    )
    value = ours("fd", x, y, subsets=1)["value"]
    agree("FD", value, theirs["value"], theirs, f"{n} vs {n + 100} features of {dim}", rel=1e-5)


def test_kid_equals_clean_fid_subset_for_subset_and_torch_fidelity_on_the_whole_set(run_reference, tmp_path):
    """clean-fid draws its subsets from numpy's global state after ``np.random.seed``; ours from a RandomState of
    the same seed, so every subset is the same (the kernels are float32 products, so the two numpy builds round
    them differently, within float32's precision). torch-fidelity draws its own, so it is compared on one subset of
    every image (the unbiased estimate does not depend on the order)."""
    x, y = features(300, 64, 3), features(300, 64, 4, scale=1.1)
    files = {"x": saved(tmp_path, "x", x), "y": saved(tmp_path, "y", y)}
    sampled = {"seed": 0, "num_subsets": 20, "subset_size": 100}
    theirs = run_reference({"reference": "clean_fid.kid", **files, **sampled})
    value = ours("kid", x, y, num_subsets=20, max_subset_size=100)["value"]
    inputs = "300 vs 300 float32 features of 64, 20 subsets of 100"
    agree("KID", value, theirs["value"], theirs, inputs, rel=1e-5)
    whole = {"seed": 0, "num_subsets": 1, "subset_size": 300}
    theirs = run_reference({"reference": "torch_fidelity.kid", **files, **whole})
    value = ours("kid", x, y, num_subsets=1, max_subset_size=300)["value"]
    agree("KID", value, theirs["value"], theirs, "300 vs 300 float32 features of 64, one subset of 300", rel=1e-5)


@pytest.mark.parametrize("k", [3, 5])
def test_precision_recall_density_coverage_equal_prdc(run_reference, tmp_path, k):
    real, fake = features(500, 32, 5), features(400, 32, 6, scale=0.8)
    theirs = run_reference(
        {"reference": "prdc", "real": saved(tmp_path, "real", real), "fake": saved(tmp_path, "fake", fake), "k": k}
    )
    for measure in ("precision", "recall", "density", "coverage"):
        value = ours(measure, fake, real, k=k)["value"]
        agree(measure, value, theirs[measure], theirs, f"400 generated vs 500 real features of 32, k = {k}", rel=1e-12)


def test_vendi_equals_vendi_score(run_reference, tmp_path):
    x = features(300, 48, 7)
    theirs = run_reference({"reference": "vendi", "x": saved(tmp_path, "x", x)})
    agree("Vendi", ours("vendi", x)["value"], theirs["value"], theirs, "300 features of 48, cosine kernel", rel=1e-6)


def _image_pairs(tmp_path: Path, shape: tuple[int, int], count: int = 4) -> tuple[list[str], list[str], list, list]:
    """Pairs of related images: a smooth picture and a noisy, shifted copy of it."""
    rng = np.random.default_rng(shape[0] * 7 + shape[1])
    a_paths, b_paths, a_images, b_images = [], [], [], []
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    for i in range(count):
        base = np.stack([np.sin(xx / (5 + i) + c) * np.cos(yy / (7 + c)) for c in range(3)], axis=-1)
        a = ((base + 1) * 127.5).astype(np.uint8)
        noisy = np.roll(base, i, axis=1) + rng.normal(0, 0.15 * (i + 1), base.shape)
        b = ((np.clip(noisy, -1, 1) + 1) * 127.5).astype(np.uint8)
        for image, paths, images, side in ((a, a_paths, a_images, "a"), (b, b_paths, b_images, "b")):
            path = tmp_path / f"{side}{i}-{shape[0]}x{shape[1]}.png"
            Image.fromarray(image).save(path)
            paths.append(str(path))
            images.append(np.asarray(Image.open(path).convert("RGB")))
    return a_paths, b_paths, a_images, b_images


def ours_paired(metric: str, a_images: list, b_images: list, extractor=None, **options) -> np.ndarray:
    definition = METRICS.get(metric)
    inputs = CellInputs(
        np.zeros((len(a_images), 0)),
        [],
        extractor,
        {**definition.defaults, **options},
        lambda: iter(a_images),
        paired_images=lambda: iter(b_images),
    )
    return np.array(definition.compute(inputs)["per_image"], np.float64)


@pytest.mark.parametrize("shape", [(64, 64), (48, 80)], ids=["square", "non-square"])
def test_psnr_and_ssim_equal_scikit_image(run_reference, tmp_path, shape):
    a_paths, b_paths, a_images, b_images = _image_pairs(tmp_path, shape)
    theirs = run_reference({"reference": "skimage.pixels", "a": a_paths, "b": b_paths})
    inputs = f"4 pairs of {shape[0]}x{shape[1]} PNGs"
    agree("PSNR", ours_paired("psnr", a_images, b_images), theirs["psnr"], theirs, inputs, abs_=1e-4)
    agree("SSIM", ours_paired("ssim", a_images, b_images), theirs["ssim"], theirs, inputs, abs_=1e-4)


@pytest.mark.parametrize("shape", [(64, 64), (48, 80)], ids=["square", "non-square"])
def test_lpips_equals_the_lpips_package_with_the_same_backbone(run_reference, tmp_path, shape):
    """The published linear heads (each package ships its copy) on a random AlexNet saved in torchvision's layout."""
    import torch
    import torchvision

    from lcm_bench.metrics.extractors import EXTRACTORS

    torch.manual_seed(0)
    weights = tmp_path / "alexnet-random.pth"
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), weights)
    a_paths, b_paths, a_images, b_images = _image_pairs(tmp_path, shape)
    job = {"reference": "lpips", "net": "alex", "backbone": "alexnet", "weights": str(weights)}
    theirs = run_reference({**job, "a": a_paths, "b": b_paths})
    extractor = EXTRACTORS.get("lpips").build({"net": "alex", "weights": str(weights)}, "cpu", "metrics[0]")
    values = ours_paired("lpips", a_images, b_images, extractor)
    agree("LPIPS", values, theirs["per_pair"], theirs, f"4 pairs of {shape[0]}x{shape[1]} PNGs, AlexNet", abs_=1e-4)


def test_cmmd_equals_google_researchs_distance(run_reference, tmp_path):
    """google-research/cmmd is on no package index: its ``distance.mmd`` is restated in oracle/references.py."""
    x, y = features(300, 32, 8) * 3, features(250, 32, 9, scale=1.3) * 3
    theirs = run_reference({"reference": "cmmd", "x": saved(tmp_path, "x", x), "y": saved(tmp_path, "y", y)})
    value = ours("cmmd", x, y)
    assert value["estimator"] == "biased"
    agree("CMMD", value["value"], theirs["value"], theirs, "300 vs 250 embeddings of 32", rel=1e-4)


def test_fd_infinity_equals_dgm_evals_with_the_same_draws(run_reference, tmp_path):
    """dgm-eval is on no package index: its ``compute_FD_infinity`` is restated in oracle/references.py with its
    generator seeded as lcm-bench seeds its own."""
    generated, reference = features(1200, 24, 10), features(3000, 24, 11)
    files = {"generated": saved(tmp_path, "g", generated), "real": saved(tmp_path, "r", reference)}
    theirs = run_reference({"reference": "fd_infinity", **files, "seed": 0})
    value = ours("fd_inf", generated, reference)
    assert value["fit"]["sizes"] == theirs["sizes"]
    agree("FD∞ (FD_N)", value["fit"]["values"], theirs["values"], theirs, "1200 vs 3000 features of 24", rel=1e-6)
    agree("FD∞", value["value"], theirs["value"], theirs, "1200 vs 3000 features of 24, 15 sizes", rel=1e-6)


def _photos(folder: Path, count: int, shape: tuple[int, int], seed: int) -> list[np.ndarray]:
    """Smooth random pictures (low-frequency noise, upsampled), saved as PNG, read back as uint8."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images = []
    for i in range(count):
        coarse = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((shape[1], shape[0]), Image.BICUBIC)
        image.save(folder / f"{i:03d}.png")
        images.append(np.asarray(Image.open(folder / f"{i:03d}.png").convert("RGB")))
    return images


def _ask(oracle_server, job: dict, folder: Path) -> dict:
    """Run one reference computation on the session's server and return what it wrote in ``folder``."""
    server, log_path = oracle_server
    job_file, out_file = folder / f"{job['reference']}.job.json", folder / f"{job['reference']}.out.json"
    job_file.write_text(json.dumps(job))
    server.stdin.write(f"{job_file} {out_file}\n")
    server.stdin.flush()
    assert server.stdout.readline().strip() == "ok", log_path.read_text()[-3000:]
    return json.loads(out_file.read_text())


@pytest.fixture(scope="module")
def random_inception(oracle_server, tmp_path_factory):
    """pytorch-fid's FID Inception at random weights (batch-norm statistics calibrated), in its own file layout
    and under its own file name, in a weights folder lcm-bench searches."""
    folder = tmp_path_factory.mktemp("inception")
    path = folder / "pt_inception-2015-12-05-6726825d.pth"
    _ask(oracle_server, {"reference": "pytorch_fid.random_inception", "seed": 0, "out": str(path)}, folder)
    return path


@pytest.mark.parametrize("shape", [(299, 299), (64, 96)], ids=["299px", "non-square-64x96"])
def test_inception_features_equal_pytorch_fids_own_pipeline(run_reference, random_inception, tmp_path, shape):
    """FID's features end to end, from PNG files: lcm-bench's ``fid`` in mode ``legacy_pytorch`` (clean-fid's copy of
    pytorch-fid's network, the resize to 299 before it) against pytorch-fid's ``get_activations`` (the resize inside
    its network, after scaling to [-1, 1]), both on one random-weight file in pytorch-fid's layout. At 299 px nothing
    is resized and the networks alone are compared; at 64x96 the two resizes round differently in float32."""
    from lcm_bench.metrics.extractors import EXTRACTORS

    folder = tmp_path / "images"
    images = _photos(folder, 6, shape, seed=shape[1])
    files = sorted(str(p) for p in folder.glob("*.png"))
    out = tmp_path / "theirs.npy"
    job = {"weights": str(random_inception), "batch_size": 3, "out": str(out), "images": files}
    theirs = run_reference({"reference": "pytorch_fid.features", **job})
    extractor = EXTRACTORS.get("inception").build(
        {"mode": "legacy_pytorch"}, "cpu", "metrics[0]", [random_inception.parent]
    )
    mine, reference_features = extractor.features(images), np.load(out)
    scale = float(np.abs(reference_features).max())
    assert scale > 1e-2, "the random network's features vanished; calibrate it"
    inputs = f"6 PNGs {shape[0]}x{shape[1]}, 2048-d pool3 (largest {scale:.2f})"
    agree("FID features", mine, reference_features, theirs, inputs, abs_=1e-6 * scale)


CAPTIONS = ["a large blue square", "two small red circles on the left", "a green triangle above a yellow star"]


def _shaped(tmp_path: Path, shapes: list[tuple[int, int]], seed: int) -> tuple[list, list[str], list[str], str]:
    """Two PNGs of each shape (square at the model's side, wide, tall, larger), as read back, their paths, a
    caption each, and the shapes in words (one reference process scores them all)."""
    images, paths = [], []
    for index, shape in enumerate(shapes):
        folder = tmp_path / "images" / f"{index}-{shape[0]}x{shape[1]}"
        images += _photos(folder, 2, shape, seed=seed + shape[0] * shape[1])
        paths += sorted(str(p) for p in folder.glob("*.png"))
    captions = [CAPTIONS[i % len(CAPTIONS)] for i in range(len(images))]
    return images, paths, captions, "2 PNGs each at " + ", ".join(f"{h}x{w}" for h, w in shapes)


def test_pickscore_equals_its_readme_code(run_reference, tmp_path):
    """lcm-bench's PickScore loader against PickScore's README code in transformers 4.36, on one random-weight
    folder in transformers' CLIP layout and a processor folder (the stand-ins of tests/test_preference.py)."""
    from preference_standins import write_pickscore

    from lcm_bench.metrics.extractors import build_extractor

    files = write_pickscore(tmp_path / "pickscore")
    images, paths, captions, shapes = _shaped(tmp_path, [(24, 24), (20, 36), (40, 26)], seed=1)
    job = {k: str(v) for k, v in files.items()}
    theirs = run_reference({"reference": "pickscore", **job, "images": paths, "captions": captions})
    mine = build_extractor("pickscore", job).features(images, prompts=captions)[:, 0]
    agree("PickScore", mine, theirs["scores"], theirs, f"{shapes}, CLIP width 32 at 24 px", abs_=1e-4)


@pytest.mark.parametrize("version", ["hpsv2", "hpsv2.1"])
def test_hps_equals_the_hpsv2_package(run_reference, tmp_path, version):
    """lcm-bench's HPSv2 / HPSv2.1 against hpsv2's ``img_score.score`` (its preprocess_val: ToTensor, then the
    longest side resized on the float tensor and padded), on checkpoints in HPSv2's layout over open_clip's tiny
    test CLIP at 32 px (smaller, larger and non-square images)."""
    from preference_standins import TINY_CLIP, write_hps

    from lcm_bench.metrics.extractors import build_extractor
    from lcm_bench.models.clip import config_dir

    name = {"hpsv2": "HPS_v2_compressed.pt", "hpsv2.1": "HPS_v2.1_compressed.pt"}[version]
    checkpoint = write_hps(tmp_path, seed=len(version), name=name)
    images, paths, captions, shapes = _shaped(tmp_path, [(32, 32), (20, 36), (48, 26), (64, 64)], seed=2)
    job = {"checkpoint": str(checkpoint), "model": TINY_CLIP, "config_dir": str(config_dir())}
    theirs = run_reference({"reference": "hpsv2", **job, "images": paths, "captions": captions})
    extractor = build_extractor(version, {"model": TINY_CLIP, "checkpoint": str(checkpoint)})
    mine = extractor.features(images, prompts=captions)[:, 0]
    assert len(set(np.round(mine, 5))) == len(images), "the stand-in separates its inputs"
    inputs = f"{shapes}, open_clip tiny CLIP at 32 px"
    agree(METRICS.get(version).label, mine, theirs["scores"], theirs, inputs, abs_=1e-6)
    on_uint8 = build_extractor(version, {"model": TINY_CLIP, "checkpoint": str(checkpoint), "resize": "image"})
    before = on_uint8.features(images, prompts=captions)[:, 0]
    resampled = np.abs(before - theirs["scores"])[2:]
    assert resampled.min() > 1e-5, "the test tells the uint8 resize from the reference's on every resampled image"


def test_imagereward_equals_the_image_reward_package(run_reference, tmp_path):
    """lcm-bench's ImageReward against image-reward's ``load`` and ``ImageReward.score`` (BLIP's ViT and BERT, the
    MLP, the standardisation; its CLIP-style crop), on ImageReward.pt in BLIP's names with its med_config.json and a
    BERT vocabulary (the stand-ins of tests/test_preference.py: ViT width 128, depth 2, patch 8 at 32 px)."""
    from preference_standins import write_imagereward

    from lcm_bench.metrics.extractors import build_extractor

    files = {k: str(v) for k, v in write_imagereward(tmp_path / "imagereward", CAPTIONS).items()}
    med = json.loads(Path(files["config"]).read_text())
    images, paths, captions, shapes = _shaped(tmp_path, [(32, 32), (20, 36), (48, 27)], seed=3)
    vit = {"width": 128, "depth": 2, "patch": 8, "size": 32}
    job = {**files, "vit": vit, "hidden": med["hidden_size"], "images": paths, "captions": captions}
    theirs = run_reference({"reference": "imagereward", **job})
    assert theirs["missing_keys"] == [], theirs["missing_keys"]
    extractor = build_extractor("imagereward", files)
    mine = extractor.features(images, prompts=captions)[:, 0]
    one_caption = extractor.features(images, prompts=captions[:1] * len(images))
    assert np.ptp(one_caption) > 1e-4, "its images move its scores"
    inputs = f"{shapes}, BLIP ViT width 128 at 32 px"
    agree("ImageReward", mine, theirs["scores"], theirs, inputs, abs_=1e-6)


def test_aesthetic_equals_its_published_inference(run_reference, tmp_path):
    """lcm-bench's aesthetic predictor (open_clip) against simple_inference.py on OpenAI's ``clip`` package, on one
    CLIP state dict in OpenAI's layout (open_clip's tiny CLIP with 64-wide heads and QuickGELU, the only widths
    ``build_model`` infers; its weights rounded to float16 as ``build_model`` rounds them) and a head in the
    published file's layout."""
    import open_clip
    import torch
    from preference_standins import write_aesthetic_head

    from lcm_bench.metrics.extractors import build_extractor
    from lcm_bench.models.clip import config_dir

    name = "lcm-bench-tiny-clip-openai"
    open_clip.add_model_config(config_dir())
    with torch.random.fork_rng():
        torch.manual_seed(3)
        state = open_clip.create_model(name, pretrained=None).state_dict()
    weights = tmp_path / "tiny-openai-clip.pt"
    torch.save({k: v.half().float() if v.is_floating_point() else v for k, v in state.items()}, weights)
    head = write_aesthetic_head(tmp_path, 32)
    images, paths, captions, shapes = _shaped(tmp_path, [(32, 32), (20, 36), (45, 30)], seed=4)
    theirs = run_reference({"reference": "aesthetic", "clip": str(weights), "head": str(head), "images": paths})
    options = {"model": name, "pretrained": str(weights), "head": str(head)}
    mine = build_extractor("aesthetic", options).features(images, prompts=captions)[:, 0]
    assert np.ptp(mine) > 1e-5, "its images move its scores"
    inputs = f"{shapes}, CLIP width 128 at 32 px (OpenAI's layout)"
    agree("aesthetic", mine, theirs["scores"], theirs, inputs, rel=1e-5)


def test_clip_score_equals_torchmetrics(run_reference, tmp_path):
    """lcm-bench's CLIP score (open_clip, the crop it takes by default) against torchmetrics' CLIPScore (transformers'
    CLIP and CLIPProcessor) on one random CLIP, saved in both layouts (open_clip's tiny CLIP with QuickGELU and
    64-wide heads; transformers' names for the same tensors), its two towers given one shared direction so that
    the mean is above the clamp."""
    import open_clip
    import torch
    from preference_standins import write_transformers_clip

    from lcm_bench.metrics.extractors import build_extractor
    from lcm_bench.models.clip import config_dir

    name = "lcm-bench-tiny-clip-openai"
    open_clip.add_model_config(config_dir())
    with torch.random.fork_rng():
        torch.manual_seed(5)
        state = open_clip.create_model(name, pretrained=None).state_dict()
    for norm, projection in (("ln_final", "text_projection"), ("visual.ln_post", "visual.proj")):
        state[f"{norm}.bias"].fill_(2.0)
        state[projection][:, 0] = 0.03
    weights = tmp_path / "tiny-clip.pt"
    torch.save(state, weights)
    config = json.loads((config_dir() / f"{name}.json").read_text())
    folder = write_transformers_clip(tmp_path / "transformers-clip", state, config)
    images, paths, captions, shapes = _shaped(tmp_path, [(32, 32), (20, 37), (48, 27)], seed=5)
    theirs = run_reference(
        {"reference": "clip_score", "checkpoint": str(folder), "images": paths, "captions": captions}
    )
    definition = METRICS.get("clip_score")
    options = {**definition.defaults, "model": name, "pretrained": str(weights)}
    extractor = build_extractor(*definition.extractor(options))
    inputs = CellInputs(extractor.features(images), captions, extractor, options, lambda: iter(images))
    mine = definition.compute(inputs)
    assert np.ptp(mine["per_image"]) > 0.1, "the stand-in separates its inputs"
    assert mine["value"] > 1, "a shared direction in both towers keeps the mean above CLIP score's clamp at 0"
    described = f"{shapes}, CLIP width 128 at 32 px"
    agree("CLIP score (per image)", mine["per_image"], theirs["per_image"], theirs, described, rel=1e-5)
    agree("CLIP score", mine["value"], theirs["value"], theirs, described, rel=1e-6)
    squashed = build_extractor(*definition.extractor({**options, "resize": "squash"})).features(images)
    before = definition.compute(CellInputs(squashed, captions, extractor, options, lambda: iter(images)))
    cropped = np.abs(np.subtract(before["per_image"], theirs["per_image"]))[2:]
    assert cropped.min() > 1e-3, "the test tells squash from crop on every non-square image"
