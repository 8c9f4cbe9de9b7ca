"""Methods as suite entries: named (model, sampler, guidance, options) crossed with steps, prompts, seeds, hardware."""

import dataclasses

import pytest
from conftest import ROOT, write_suite

from lcm_bench.cli.main import main
from lcm_bench.suite.load import load_suite

METHODS = """
version: 1
name: methods
methods:
  - {name: teacher-ddim, model: tiny-sd, sampler: ddim, guidance_scale: 3.0}
  - {name: teacher-ddim-50, model: tiny-sd, sampler: ddim, guidance_scale: 3.0, steps: [50]}
  - {name: lcm, model: tiny-lcm, sampler: lcm, guidance_scale: [3.0, 5.0], original_inference_steps: 25}
  - {name: student-cfg-off, model: tiny-sd, sampler: {name: dpmsolver++, solver_order: 1}, guidance_scale: 1.0}
steps: [1, 2, 4]
prompts: [shapes-mini]
seeds: [0, 1]
"""

GRID = """
version: 1
name: grid
models: [tiny-sd, tiny-lcm]
samplers: [ddim, lcm]
steps: [1, 2, 4]
guidance_scales: [3.0]
prompts: [shapes-mini]
seeds: [0, 1]
exclude:
  - {model: tiny-sd, sampler: lcm}
  - {model: tiny-lcm, sampler: ddim}
"""


def test_methods_cross_the_other_axes_and_override_steps(tmp_path):
    suite = load_suite(write_suite(tmp_path, METHODS))
    by_method = {}
    for cell in suite.cells:
        by_method.setdefault(cell.method, set()).add((cell.steps, cell.guidance_scale, cell.seed))
    assert by_method["teacher-ddim"] == {(s, 3.0, seed) for s in (1, 2, 4) for seed in (0, 1)}
    assert by_method["teacher-ddim-50"] == {(50, 3.0, 0), (50, 3.0, 1)}
    assert {(s, g) for s, g, _ in by_method["lcm"]} == {(s, g) for s in (1, 2, 4) for g in (3.0, 5.0)}
    lcm = next(c for c in suite.cells if c.method == "lcm")
    assert dict(lcm.sampler.options) == {"original_inference_steps": 25} and lcm.sampler.guidance == "auto"
    student = next(c for c in suite.cells if c.method == "student-cfg-off")
    assert dict(student.sampler.options) == {"solver_order": 1} and student.guidance_scale == 1.0
    assert len(suite.cells) == 2 * (3 + 1 + 6 + 3)
    assert all(c.cell_id.endswith(c.config_key[:10]) for c in suite.cells)


def test_method_names_are_part_of_the_configuration_key(tmp_path):
    first = load_suite(write_suite(tmp_path, METHODS, "a.yaml"))
    renamed = load_suite(write_suite(tmp_path, METHODS.replace("name: lcm,", "name: my-lcm,"), "b.yaml"))
    changed = {c.cell_id for c in first.cells} ^ {c.cell_id for c in renamed.cells}
    assert len(changed) == 2 * 12 and all(".lcm." in c for c in changed)


def test_both_forms_give_the_same_cells(tmp_path):
    grid = load_suite(write_suite(tmp_path, GRID, "grid.yaml"))
    text = """
version: 1
name: same
methods:
  - {name: a, model: tiny-sd, sampler: ddim, guidance_scale: 3.0}
  - {name: b, model: tiny-lcm, sampler: lcm, guidance_scale: 3.0}
steps: [1, 2, 4]
prompts: [shapes-mini]
seeds: [0, 1]
"""
    methods = load_suite(write_suite(tmp_path, text, "methods.yaml"))
    assert len(grid.cells) == len(methods.cells) == 12
    anonymous = [dataclasses.replace(c, method=None) for c in methods.cells]
    assert sorted(c.cell_id for c in anonymous) == sorted(c.cell_id for c in grid.cells)
    assert set(anonymous) == set(grid.cells)


def test_the_shipped_quickstart_is_methods_without_exclude():
    text = (ROOT / "suites" / "quickstart.yaml").read_text()
    assert "exclude" not in text and "methods:" in text
    suite = load_suite(ROOT / "suites" / "quickstart.yaml")
    assert len(suite.cells) == 50 and len({c.method for c in suite.cells}) == 7
    reference = [c for c in suite.cells if c.method == "teacher-ddim-50"]
    assert len(reference) == 2 and {c.steps for c in reference} == {50}, "one cell per prompt set and seed"


def test_include_and_exclude_by_method(tmp_path):
    text = (
        METHODS + "include:\n  - {method: teacher-ddim, steps: 8}\nexclude:\n  - {method: lcm, guidance_scale: 5.0}\n"
    )
    suite = load_suite(write_suite(tmp_path, text))
    assert {c.steps for c in suite.cells if c.method == "teacher-ddim"} == {1, 2, 4, 8}
    assert {c.guidance_scale for c in suite.cells if c.method == "lcm"} == {3.0}
    assert not any(c.steps == 8 for c in suite.cells if c.method != "teacher-ddim")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("name: lcm,", "name: teacher-ddim,"), "methods: the name 'teacher-ddim' is used twice"),
        (lambda t: t.replace("name: lcm,", "name: 'my lcm',"), "methods[2].name: 'my lcm' is not file-safe"),
        (lambda t: t.replace("name: lcm,", "name: ../lcm,"), "methods[2].name: '../lcm' is not file-safe"),
        (lambda t: t.replace(", model: tiny-lcm", ""), "methods[2].model: missing"),
        (lambda t: t.replace("sampler: ddim, guidance_scale: 3.0}", "sampler: dim}", 1), "unknown sampler 'dim'"),
        (lambda t: t.replace("original_inference_steps", "original_steps"), "methods[2]: unknown key 'original_steps'"),
        (lambda t: t + "samplers: [ddim]\n", "methods: a suite lists either methods or models x samplers x"),
        (lambda t: t + "models: [tiny-sd]\n", "(it also has models)"),
        (lambda t: t + "exclude:\n  - {method: lcn}\n", "exclude[0].method: no method 'lcn'; did you mean 'lcm'?"),
        (lambda t: t + "include:\n  - {method: lcm, sampler: ddim}\n", "add a method instead of a model or sampler"),
        (lambda t: t.replace("model: tiny-lcm", "model: {name: tiny-sd, source: tiny-lcm}"), "already stands for"),
        (lambda t: t.replace("steps: [50]", "steps: [0]"), "methods[1].steps: must be in 1..10000, got 0"),
        (lambda t: t.replace("methods:\n", "methods: []\nx:\n"), "suite: unknown key 'x'"),
    ],
)
def test_bad_methods_are_one_line_errors(tmp_path, capsys, edit, message):
    suite = write_suite(tmp_path, edit(METHODS))
    assert main(["validate", str(suite)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_method_rules_need_a_methods_suite(tmp_path, capsys):
    suite = write_suite(tmp_path, GRID + "include:\n  - {method: a}\n")
    assert main(["validate", str(suite)]) == 2
    assert "include[0].method: only a suite with methods: has method names" in capsys.readouterr().err


def test_validate_prints_methods_by_steps_with_nfe(tmp_path, capsys):
    assert main(["validate", str(write_suite(tmp_path, METHODS))]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "NFE per image (each entry 2 cells: prompt sets x seeds x hardware)"
    table = {line.split()[0] + "@" + line.split()[1]: line.split()[2:] for line in lines[3:]}
    assert table["teacher-ddim@3"] == ["2", "4", "8"]
    assert table["teacher-ddim-50@3"] == ["100"]
    assert table["lcm@3"] == table["lcm@5"] == ["1", "2", "4"]
    assert table["student-cfg-off@1"] == ["1", "2", "4"]


def test_reports_label_rows_by_method(tmp_path):
    import pandas as pd

    text = METHODS.replace("steps: [1, 2, 4]", "steps: [1]").replace("seeds: [0, 1]", "num_images: 2\nbatch_size: 2")
    text = text.replace("steps: [50]", "steps: [3]")
    assert main(["run", str(write_suite(tmp_path, text)), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    frame = pd.read_csv(tmp_path / "run" / "results.csv")
    assert set(frame["method"]) == {"teacher-ddim", "teacher-ddim-50", "lcm", "student-cfg-off"}
    assert (frame.loc[frame["method"] == "teacher-ddim-50", "steps"] == 3).all()
    rows = [line.split(" | ")[0] for line in (tmp_path / "run" / "report.md").read_text().splitlines()]
    labels = {row.removeprefix("| ").removesuffix(" †") for row in rows}
    assert {"teacher-ddim-50 / s=3 (w=2)", "student-cfg-off / s=1 (w=0)"} <= labels, "† marks a cell timed under load"
