"""Every input checked before any compute: one line naming the field, exit 2; a property-based test proves that
generated suites and argument lists never get past validation with anything but a valid suite or such a line."""

import inspect
import string

import numpy as np
import pytest
import yaml
from conftest import ROOT, write_suite
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import save_file

from lcm_bench.cli.main import main

BASE = """
version: 1
methods:
  - {name: a, model: tiny-sd, sampler: ddim, guidance_scale: 3.0}
  - {name: b, model: tiny-lcm, sampler: lcm, guidance_scale: 3.0}
steps: [1, 2]
prompts: [shapes-mini]
"""


def _one_line_error(capsys, argv, expected: str) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert expected in captured.err, captured.err
    assert len(captured.err.strip().splitlines()) == 1 and "Traceback" not in captured.err, captured.err


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t.replace("steps: [1, 2]", "steps: [2000]"), "2000 steps exceed the 1000 training timesteps"),
        (lambda t: t.replace("steps: [1, 2]", "steps: [60]"), "60 steps exceed original_inference_steps = 50"),
        (
            lambda t: t.replace("sampler: lcm,", "sampler: lcm, original_inference_steps: 1,"),
            "2 steps exceed original_inference_steps = 1",
        ),
        (lambda t: t.replace("guidance_scale: 3.0}", "guidance_scale: .nan}", 1), "methods[0].guidance_scale: must be"),
        (lambda t: t.replace("guidance_scale: 3.0}", "guidance_scale: .inf}", 1), "a finite number"),
        (lambda t: t.replace("guidance_scale: 3.0}", "guidance_scale: -1}", 1), "in [0, 100], got -1"),
        (lambda t: t + "seeds: [-1]\n", "seeds[0]: must be in 0.."),
        (lambda t: t + "seeds: [1.5]\n", "seeds[0]: expected an integer"),
        (lambda t: t + "num_images: .inf\n", "num_images: expected an integer"),
        (lambda t: t + "resolution: 20\n", "multiples of 8"),
        (lambda t: t + "resolution: 100000\n", "resolution: must be in 8..16384"),
        (
            lambda t: t.replace("sampler: ddim,", "sampler: ddim, solver_order: 2,"),
            "ddim' (DDIMScheduler) does not take",
        ),
        (lambda t: t.replace("sampler: ddim,", "sampler: {name: dpmsolver++, solver_order: 7},"), "expected 1, 2 or 3"),
        (lambda t: t.replace("sampler: ddim,", "sampler: ddim, eta: .nan,"), "eta: expected a number in [0, 1]"),
        (lambda t: t + "metrics: [{name: fd, extractor: shapes-judge, subsets: x}]\n", "metrics[0].subsets: expected"),
        (lambda t: t + "metrics: [{name: kid, num_subsets: 0}]\n", "metrics[0].num_subsets: must be in 1.."),
        (
            lambda t: t + "metrics: [{name: cmmd, estimator: mle}]\n",
            "metrics[0].estimator: 'mle' is not one of ['biased', 'unbiased']",
        ),
        (
            lambda t: t + "metrics: [{name: fd_inf, draws: 3}]\n",
            "metrics[0].draws: 3 is not one of ['fresh', 'nested']",
        ),
    ],
)
def test_bad_values_are_refused_before_any_compute(tmp_path, capsys, edit, expected):
    suite = write_suite(tmp_path, edit(BASE))
    _one_line_error(capsys, ["validate", str(suite)], expected)
    _one_line_error(capsys, ["run", str(suite), "--out", str(tmp_path / "run"), "--quiet"], expected)
    assert not (tmp_path / "run" / "cells").exists()


def test_too_small_for_the_unet_is_refused(tmp_path, capsys, monkeypatch):
    from lcm_bench.models import config_checks as checks

    monkeypatch.setattr(checks, "latent_factors", lambda *a: (8, 8, False))
    suite = write_suite(tmp_path, BASE + "resolution: 32\n")
    _one_line_error(capsys, ["validate", str(suite)], "resolution: height 32 is too small for tiny-sd")


def test_a_transformer_resolution_must_hold_whole_patches(tmp_path, capsys, monkeypatch):
    from lcm_bench.models import config_checks as checks

    real = checks.latent_factors
    assert real(*[checks.Path(p) for p in _tiny_pixart_folders()]) == (2, 2, True), "tiny PixArt: VAE 2, patch 2"
    monkeypatch.setattr(checks, "latent_factors", lambda *a: (8, 2, True))
    suite = write_suite(
        tmp_path, BASE.replace("tiny-sd", "tiny-pixart").replace("tiny-lcm", "tiny-pixart") + "resolution: 40\n"
    )
    _one_line_error(
        capsys, ["validate", str(suite)], "its latent (5) must be a multiple of 2, the transformer's patch size"
    )


def _tiny_pixart_folders():
    from lcm_bench.models.catalogue import tiny_path

    folder = tiny_path("tiny-pixart")
    return folder, folder / "transformer"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"version: 1\nname: caf\xe9\n", "is not UTF-8 text"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "is binary, not text"),
        (b"", "is empty"),
        (b"  \n\n", "is empty"),
        (b"- just\n- a list\n", "a suite must be a mapping"),
    ],
)
def test_suite_files_that_are_not_suites(tmp_path, capsys, content, expected):
    path = tmp_path / "suite.yaml"
    path.write_bytes(content)
    _one_line_error(capsys, ["validate", str(path)], expected)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("p.txt", b"a red circle\n\xff\xfe\n", "is not UTF-8 text"),
        ("p.txt", b"\n\n   \n", "is empty"),
        ("p.txt", b"\x00\x01\x02", "is binary"),
        ("p.jsonl", b'{"caption": "x"}\n', "'prompt' is not a column"),
        ("p.jsonl", b"[1, 2]\n", "cannot read"),
        ("p.json", b"[1, 2]", "not a COCO captions file"),
        ("p.csv", b"prompt\n\n", "holds no prompts"),
    ],
)
def test_prompt_files_that_hold_no_prompts(tmp_path, capsys, name, content, expected):
    (tmp_path / name).write_bytes(content)
    text = BASE.replace("prompts: [shapes-mini]", f"prompts: [{{path: {name}}}]")
    _one_line_error(capsys, ["validate", str(write_suite(tmp_path, text))], expected)


def test_baseline_files_that_are_not_text(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    for content, expected in ((b"\xff\xfe{}", "not UTF-8"), (b"", "is empty"), (b"{\x00}", "binary")):
        (tmp_path / "b.json").write_bytes(content)
        _one_line_error(capsys, ["check", str(tmp_path / "run"), "--baseline", str(tmp_path / "b.json")], expected)


def test_reference_folders_must_hold_readable_images(tmp_path, capsys):
    refs = tmp_path / "refs"
    refs.mkdir()
    text = BASE.replace("prompts: [shapes-mini]", "prompts: [{name: p, path: p.txt, references: {path: refs}}]")
    (tmp_path / "p.txt").write_text("a red circle\n")
    suite = write_suite(tmp_path, text + "metrics: [{name: fd, extractor: shapes-judge}]\n")
    _one_line_error(capsys, ["validate", str(suite)], "holds no images")
    (refs / "broken.png").write_bytes(b"not a png at all")
    _one_line_error(capsys, ["validate", str(suite)], "reference image")
    from PIL import Image

    (refs / "broken.png").unlink()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(refs / "ok.png")
    assert main(["validate", str(suite)]) == 0


def _lora(path, module_shapes):
    tensors = {}
    for module, (rank, inputs) in module_shapes.items():
        tensors[f"unet.{module}.lora_A.weight"] = np.zeros((rank, inputs), np.float32)
        tensors[f"unet.{module}.lora_B.weight"] = np.zeros((inputs, rank), np.float32)
    save_file(tensors, str(path))
    return path


def test_loras_must_fit_their_base_model(tmp_path, capsys, tiny_sd_path):
    from safetensors import safe_open

    with safe_open(str(tiny_sd_path / "unet" / "diffusion_pytorch_model.safetensors"), "np") as f:
        key = next(k for k in f.keys() if k.endswith("to_q.weight"))  # noqa: SIM118
        width = f.get_slice(key).get_shape()[1]
    module = key.removesuffix(".weight")
    text = BASE.replace("model: tiny-sd,", "model: {name: t, source: tiny-sd, loras: [lora.safetensors]},")
    suite = write_suite(tmp_path, text)
    _lora(tmp_path / "lora.safetensors", {module: (4, width)})
    assert main(["validate", str(suite)]) == 0
    capsys.readouterr()
    _lora(tmp_path / "lora.safetensors", {module.replace("to_q", "to_x"): (4, width)})
    _one_line_error(capsys, ["validate", str(suite)], "1 of 1 modules it patches are absent")
    _lora(tmp_path / "lora.safetensors", {module: (4, width * 2)})
    _one_line_error(capsys, ["validate", str(suite)], f"takes {width} inputs, the LoRA {width * 2}")


def test_the_shipped_lora_fits_the_shipped_teacher(capsys):
    assert main(["validate", str(ROOT / "suites" / "students-eval.yaml")]) == 0


def test_scheduler_option_table_matches_diffusers():
    import diffusers

    from lcm_bench.sampling.samplers import SAMPLERS, SCHEDULER_ACCEPTS, SCHEDULER_OPTIONS

    for name in {SAMPLERS.get(n).scheduler for n in SAMPLERS}:
        cls = getattr(diffusers, name)
        methods = (cls.__init__, cls.step, cls.set_timesteps)
        takes = {p for method in methods for p in inspect.signature(method).parameters}
        assert SCHEDULER_ACCEPTS[name] == takes & SCHEDULER_OPTIONS, name


NEED_REAL_FILES = {"paper-table1", "real-sd15-coco", "real-sd15-coco5k", "few-step-1024"}
"""Shipped suites on real checkpoints and datasets: offline here they list what is missing (tests/test_real_path.py
lays stand-ins out where the real files go)."""


def test_shipped_suites_validate():
    for suite in sorted((ROOT / "suites").glob("*.yaml")):
        assert main(["validate", str(suite)]) == (2 if suite.stem in NEED_REAL_FILES else 0), suite.name


# Property-based: generated suites and argument lists give a valid suite or one line and exit 2.

KEYS = [
    "version", "name", "methods", "models", "samplers", "steps", "guidance_scales", "prompts", "seeds", "hardware",
    "num_images", "batch_size", "resolution", "save_images", "warmup", "include", "exclude", "metrics", "extends",
    "negative_prompt", "description", "bogus",
]  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(string.printable, max_size=12),
    st.sampled_from(
        ["tiny-sd", "tiny-lcm", "ddim", "lcm", "dpmsolver++", "shapes-mini", "cpu-fp32", "cuda-fp16", "fd", "all"]
    ),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS + ["name", "model"]), inner, max_size=4)
    ),
    max_leaves=10,
)
METHOD = st.fixed_dictionaries(
    {"name": st.sampled_from(["a", "b", "a b", ""]), "model": st.sampled_from(["tiny-sd", "tiny-lcm", "nope"])},
    optional={
        "sampler": st.sampled_from(["ddim", "lcm", "euler", "x"]) | VALUES,
        "guidance_scale": SCALARS | st.lists(SCALARS, max_size=3),
        "steps": st.lists(st.integers(-2, 3000), max_size=3) | SCALARS,
        "solver_order": SCALARS,
        "original_inference_steps": SCALARS,
    },
)
SUITES = st.fixed_dictionaries(
    {"version": st.sampled_from([1, 1, 1, 2, "1"])},
    optional={
        "methods": st.lists(METHOD, max_size=3) | VALUES,
        "prompts": st.sampled_from([["shapes-mini"], "shapes-mini", ["nope"], []]) | VALUES,
        "steps": st.lists(st.integers(-1, 2000), max_size=3) | VALUES,
        **{key: VALUES for key in KEYS[3:] if key not in ("methods", "prompts", "steps", "extends")},
    },
)
PROFILE = settings(
    max_examples=150, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck), database=None
)


def _outcome(argv, capsys) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    assert code in (0, 2), (argv, code, captured.err)
    if code == 2:
        lines = captured.err.strip().splitlines()
        assert lines and lines[-1].startswith(("lcm-bench: error:", "usage:")), captured.err
        assert "Traceback" not in captured.err and len([x for x in lines if "error" in x]) == 1, captured.err


@PROFILE
@given(document=SUITES)
def test_generated_suites_validate_or_fail_in_one_line(tmp_path_factory, capsys, document):
    path = tmp_path_factory.mktemp("gen") / "suite.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True))
    _outcome(["validate", str(path)], capsys)


@PROFILE
@given(
    data=st.binary(max_size=64) | st.text(max_size=64).map(str.encode),
)
def test_generated_files_validate_or_fail_in_one_line(tmp_path_factory, capsys, data):
    path = tmp_path_factory.mktemp("raw") / "suite.yaml"
    path.write_bytes(data)
    _outcome(["validate", str(path)], capsys)


TOKENS = st.sampled_from(
    ["validate", "check", "compare", "baseline", "list", "--cells", "--baseline", "--out", "--rel", "--abs",
     "--noise-k", "--allow-missing", "--gate-throughput", "--summary", "-1", "nan", "inf", "0.5", "x", "",
     str(ROOT / "suites" / "ci-quality.yaml"), str(ROOT / "suites"), "/nonexistent", "--bogus"]
)  # fmt: skip


@PROFILE
@given(argv=st.lists(TOKENS, min_size=1, max_size=6).filter(lambda a: a[0] != "--out"))
def test_generated_argument_lists_never_raise(capsys, argv):
    argv = [a for a in argv if a != "run"]
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    assert code in (0, 1, 2), (argv, code, captured.err)
    assert "Traceback" not in captured.err
    if code == 2:
        assert captured.err.strip(), argv


def test_float_flags_refuse_non_finite_values(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    for flag in ("--rel", "--abs", "--noise-k"):
        for value in ("nan", "inf"):
            argv = ["compare", str(tmp_path / "run"), str(tmp_path / "run"), flag, value]
            _one_line_error(capsys, argv, f"{flag}: must be a finite number >= 0")


REAL_PATH = """
version: 1
name: real-path
methods:
  - {name: ddim, model: dreamshaper-7, sampler: ddim, guidance_scale: 8.0}
  - {name: lcm, model: lcm-dreamshaper-v7, sampler: lcm, guidance_scale: 8.0}
  - {name: lora, model: {name: sd15-lcm-lora, source: sd-1.5, loras: [lcm-lora-sdv1-5]}, sampler: lcm,
     guidance_scale: 1.0}
steps: [1, 4]
prompts: [shapes-mini]
metrics: [fid]
"""


def test_every_missing_model_lora_and_weights_file_is_listed_at_once(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LCM_BENCH_WEIGHTS", str(tmp_path))
    suite = write_suite(tmp_path, REAL_PATH)
    assert main(["validate", str(suite)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].endswith("5 things this suite needs are missing (offline):"), lines
    wanted = [
        "hf download Lykon/dreamshaper-7",
        "hf download SimianLuo/LCM_Dreamshaper_v7",
        "hf download stable-diffusion-v1-5/stable-diffusion-v1-5",
        "hf download latent-consistency/lcm-lora-sdv1-5",
        "inception-2015-12-05.pt",
    ]
    for text, line in zip(wanted, lines[1:], strict=True):
        assert text in line and line.startswith("lcm-bench: error:   - "), (text, line)
    out = tmp_path / "run"
    assert main(["run", str(suite), "--out", str(out), "--quiet"]) == 2
    assert len(capsys.readouterr().err.splitlines()) == 6
    assert not (out / "images").exists() and not (out / "cells").exists(), "nothing was generated first"
