"""Built-in suites by name from any directory, the starter suite, and the suites list."""

from lcm_bench.cli.main import main
from lcm_bench.suite.builtin import builtin_suites
from lcm_bench.suite.load import load_suite


def test_a_builtin_suite_loads_by_name_from_any_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    suites = builtin_suites()
    assert {"quickstart", "ci-quality", "teacher-eval"} <= set(suites)
    by_name = load_suite("ci-quality")
    assert by_name.suite_hash == load_suite(suites["ci-quality"]).suite_hash
    assert [c.cell_id for c in by_name.cells] == [c.cell_id for c in load_suite(str(suites["ci-quality"])).cells]
    assert main(["validate", "quickstart"]) == 0
    assert "suite 'quickstart'" in capsys.readouterr().out


def test_an_unknown_name_is_one_line_with_a_suggestion(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "quickstrat"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "did you mean 'quickstart'?" in err
    assert main(["validate", "missing.yaml"]) == 2, "a path keeps meaning a path"


def test_init_writes_a_starter_that_validates_and_never_overwrites(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["init", "my-bench"]) == 0
    suite = load_suite("my-bench.yaml")
    assert suite.name == "my-bench" and {c.method for c in suite.cells} == {"teacher-ddim", "teacher-dpm++", "lcm"}
    assert suite.metrics and sorted({c.steps for c in suite.cells}) == [1, 2, 4, 8]
    before = (tmp_path / "my-bench.yaml").read_text()
    assert main(["init", "my-bench"]) == 2 and (tmp_path / "my-bench.yaml").read_text() == before
    assert main(["init", "bad name"]) == 2


def test_list_shows_the_builtin_suites(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    lines = out.split("samplers:")[0].splitlines()
    assert lines[0].startswith("suites") and any(line.split()[0] == "quickstart" for line in lines[1:])
    assert len(lines) - 1 == len(builtin_suites())


def test_a_shipped_baseline_is_named_by_its_suite_from_any_directory(tmp_path, monkeypatch, capsys):
    from lcm_bench.gate.baseline import read_baseline
    from lcm_bench.suite.builtin import baseline_path, shipped_baseline

    monkeypatch.chdir(tmp_path)
    shipped = shipped_baseline("ci-quality")
    assert baseline_path("ci-quality") == shipped and read_baseline(shipped)["suites"] == ["ci-quality"]
    assert shipped_baseline("quickstart") is None
    run = tmp_path / "run"
    run.mkdir()
    assert main(["check", str(run), "--baseline", "quickstart"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--baseline" in err and "ci-quality" in err
    assert main(["check", str(run), "--baseline", "ci-quality"]) == 2
    err = capsys.readouterr().err
    assert "manifest.json" in err and "--baseline" not in err, "the name resolved; only the run directory is wrong"


def test_init_from_a_builtin_suite_copies_it_under_the_new_name(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["init", "my-gate", "--from", "ci-quality"]) == 0
    copy, original = load_suite("my-gate.yaml"), load_suite("ci-quality")
    assert copy.name == "my-gate" and original.name == "ci-quality"
    assert [(c.method, c.steps, c.seed) for c in copy.cells] == [(c.method, c.steps, c.seed) for c in original.cells]
    assert main(["init", "other", "--from", "no-such-suite"]) == 2
    assert not (tmp_path / "other.yaml").exists()


def test_a_packaged_builtin_suite_that_fails_says_how_to_copy_it(tmp_path, monkeypatch, capsys):
    from lcm_bench.core import paths

    monkeypatch.setattr(paths, "package_dir", lambda: tmp_path)
    packaged = tmp_path / "_embedded" / "suites"
    packaged.mkdir(parents=True)
    (packaged / "needs-data.yaml").write_text(
        "version: 1\nname: needs-data\nmodels: [tiny-sd]\nsamplers: [ddim]\nsteps: [1]\n"
        "prompts: [{path: ../data/x.txt}]\n"
    )
    assert main(["validate", "needs-data"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "x.txt" in err and "lcm-bench init NAME --from needs-data" in err
