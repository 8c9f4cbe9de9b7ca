"""Suite parsing: grid expansion, include/exclude, extends, stable ids and one-line errors for bad input."""

import subprocess
import sys

import pytest
from conftest import ROOT, write_suite

from lcm_bench.cli.main import main
from lcm_bench.core.errors import UserError
from lcm_bench.suite.load import load_suite

BASE = """
version: 1
name: grid
models: [tiny-sd, tiny-lcm]
samplers: [ddim, dpmsolver++, lcm]
steps: [1, 2, 4, 8]
guidance_scales: [2.0, 9.0]
prompts: [shapes-mini]
"""


def test_grid_is_the_product_of_axes(tmp_path):
    suite = load_suite(write_suite(tmp_path, BASE))
    assert len(suite.cells) == 2 * 3 * 4 * 2
    assert len({c.cell_id for c in suite.cells}) == len(suite.cells)
    assert {c.steps for c in suite.cells} == {1, 2, 4, 8}


def test_defaults_fill_unnamed_axes(tmp_path):
    suite = load_suite(
        write_suite(tmp_path, "version: 1\nmodels: [tiny-sd]\nsamplers: [ddim]\nprompts: [shapes-mini]\n")
    )
    assert [c.steps for c in suite.cells] == [1, 2, 4, 8]
    assert {c.hardware.name for c in suite.cells} == {"cpu-fp32"}


def test_cell_ids_are_stable_and_spec_derived(tmp_path):
    first = load_suite(write_suite(tmp_path, BASE, "a.yaml"))
    reordered = BASE.replace("steps: [1, 2, 4, 8]", "steps: [8, 4, 2, 1]").replace("name: grid", "name: other")
    second = load_suite(write_suite(tmp_path, reordered, "b.yaml"))
    assert {c.cell_id for c in first.cells} == {c.cell_id for c in second.cells}
    changed = load_suite(write_suite(tmp_path, BASE.replace("seeds", "x") + "num_images: 9\n", "c.yaml"))
    assert not {c.cell_id for c in first.cells} & {c.cell_id for c in changed.cells}
    cell = first.cells[0]
    assert cell.cell_id.startswith(f"{cell.model.name}.{cell.sampler.name}.s{cell.steps}.")


def test_include_and_exclude(tmp_path):
    text = (
        BASE
        + """
exclude:
  - {model: tiny-sd, sampler: lcm}
  - {model: tiny-lcm, sampler: [ddim, dpmsolver++]}
include:
  - {model: tiny-sd, sampler: euler, steps: 4, guidance_scale: 9.0}
"""
    )
    suite = load_suite(write_suite(tmp_path, text))
    pairs = {(c.model.name, c.sampler.name) for c in suite.cells}
    assert pairs == {("tiny-sd", "ddim"), ("tiny-sd", "dpmsolver++"), ("tiny-lcm", "lcm"), ("tiny-sd", "euler")}
    assert [c.steps for c in suite.cells if c.sampler.name == "euler"] == [4]
    assert len(suite.cells) == 2 * 4 * 2 + 4 * 2 + 1


def test_extends_replaces_keys(tmp_path):
    write_suite(tmp_path, BASE, "base.yaml")
    child = load_suite(write_suite(tmp_path, "version: 1\nextends: base.yaml\nname: child\nsteps: [4]\n", "child.yaml"))
    assert child.name == "child"
    assert {c.steps for c in child.cells} == {4}
    assert len(child.cells) == 2 * 3 * 2


def test_sampler_options_reach_the_spec(tmp_path):
    text = BASE.replace(
        "samplers: [ddim, dpmsolver++, lcm]", "samplers: [{name: lcm, original_inference_steps: 25}, guided-distill]"
    )
    suite = load_suite(write_suite(tmp_path, text))
    lcm = next(c for c in suite.cells if c.sampler.name == "lcm")
    assert dict(lcm.sampler.options) == {"original_inference_steps": 25}
    assert next(c for c in suite.cells if c.sampler.name == "guided-distill").sampler.guidance == "embedding"


MALFORMED = {
    "unknown top-level key": ("stepz: [1]", "unknown key 'stepz'; did you mean 'steps'?"),
    "unknown sampler": ("samplers: [ddmi]", "samplers[0]: unknown sampler 'ddmi'; did you mean 'ddim'?"),
    "unknown model": ("models: [tiny-sdd]", "is not a registered model; did you mean 'tiny-sd'?"),
    "zero steps": ("steps: [0, 4]", "steps[0]: must be in 1..10000, got 0"),
    "negative guidance": ("guidance_scales: [-1]", "guidance_scales[0]: must be a finite number in [0, 100], got -1"),
    "bad hardware": ("hardware: [tpu-fp8]", "hardware[0]: 'tpu-fp8' is not a hardware entry"),
    "missing prompt file": ("prompts: [{path: nope.txt}]", "prompts[0]: prompt file"),
    "unknown prompt set": ("prompts: [shapes-mni]", "unknown prompt set 'shapes-mni'; did you mean 'shapes-mini'?"),
    "batch size zero": ("batch_size: 0", "batch_size: must be in 1..65536, got 0"),
    "resolution not /8": ("resolution: 30", "resolution: height and width must be multiples of 8"),
    "bad spacing": ("samplers: [{name: ddim, timestep_spacing: sideways}]", "timestep_spacing: 'sideways' is not one"),
    "unknown sampler option": ("samplers: [{name: ddim, etaa: 0.5}]", "unknown key 'etaa'; did you mean 'eta'?"),
    "cfg for a w-student": ("samplers: [{name: guided-distill, guidance: cfg}]", "needs a guidance embedding"),
    "steps not a number": ("steps: [four]", "steps[0]: expected an integer in 1..10000, got 'four'"),
    "bad exclude key": ("exclude: [{smapler: ddim}]", "exclude[0]: unknown key 'smapler'; did you mean 'sampler'?"),
    "wrong version": ("version: 7", "version: 7 is not supported"),
    "duplicate model names": ("models: [tiny-sd, tiny-sd]", "models: names must be unique"),
    "save_images value": ("save_images: some", "save_images: 'some' is not one of"),
}


def _replace_key(text: str, line: str) -> str:
    key = line.split(":", 1)[0]
    kept = [row for row in text.strip().splitlines() if not row.startswith(f"{key}:")]
    return "\n".join(kept + [line]) + "\n"


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_suite_one_line_error_exit_2(case, tmp_path, capsys):
    line, expected = MALFORMED[case]
    path = write_suite(tmp_path, _replace_key(BASE, line))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"lcm-bench: error: {path}: ")
    assert expected in err


@pytest.mark.parametrize(
    "text, expected",
    [
        ("models: [tiny-sd\n", "not valid YAML"),
        ("- just\n- a list\n", "a suite must be a mapping"),
        ("version: 1\nextends: suite.yaml\n", "extends forms a cycle"),
    ],
)
def test_unreadable_suites(text, expected, tmp_path):
    with pytest.raises(UserError, match=expected):
        load_suite(write_suite(tmp_path, text))


def test_cli_error_has_no_traceback(tmp_path):
    path = write_suite(tmp_path, _replace_key(BASE, "samplers: [ddmi]"))
    proc = subprocess.run([sys.executable, "-m", "lcm_bench", "run", str(path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "did you mean 'ddim'" in proc.stderr


def test_missing_suite_file_and_bad_flag(tmp_path, capsys):
    assert main(["run", str(tmp_path / "absent.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["run", "--bogus"])
    assert exc.value.code == 2


def test_cell_ids_do_not_depend_on_where_the_prompt_file_lies(tmp_path):
    import shutil

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        shutil.copy(ROOT / "data" / "prompts" / "shapes-mini.txt", tmp_path / name / "p.txt")
        write_suite(tmp_path / name, "version: 1\nmodels: [tiny-sd]\nsamplers: [ddim]\nprompts: [{path: p.txt}]\n")
    a, b = (load_suite(tmp_path / n / "suite.yaml") for n in ("a", "b"))
    assert [c.cell_id for c in a.cells] == [c.cell_id for c in b.cells] and a.suite_hash == b.suite_hash
