"""The command line's small courtesies: --version, suggestions for what was meant, messages that name what the
user typed, and a warm rerun that redraws nothing and never imports torch."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import write_suite

from lcm_bench.cli.main import main

SUITE = """
version: 1
methods:
  - {name: ddim, model: tiny-sd, sampler: ddim, guidance_scale: 3.0}
steps: [1]
prompts: [shapes-mini]
num_images: 4
batch_size: 4
timing: {min_repeats: 2, max_seconds: 1}
"""


def test_version_says_where_lcm_bench_comes_from(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and out.startswith("lcm-bench 0.") and ("checkout" in out or "installed" in out)


def test_a_suite_name_without_its_suffix_is_suggested(tmp_path, capsys, monkeypatch):
    write_suite(tmp_path, SUITE, "mine.yaml")
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "mine"]) == 2
    assert "did you mean 'mine.yaml'?" in capsys.readouterr().err


def test_plus_signs_are_spelled_as_people_type_them(tmp_path, capsys):
    suite = write_suite(tmp_path, SUITE.replace("sampler: ddim", "sampler: dpmsolverpp"))
    assert main(["validate", str(suite)]) == 2
    assert "did you mean 'dpmsolver++'?" in capsys.readouterr().err


def test_a_model_path_that_does_not_exist_says_so(tmp_path, capsys):
    suite = write_suite(tmp_path, SUITE.replace("model: tiny-sd", "model: {name: m, path: nowhere/model}"))
    assert main(["validate", str(suite)]) == 2
    err = capsys.readouterr().err
    assert "methods[0].model.path:" in err and "nowhere/model' does not exist" in err


def test_messages_name_arguments_as_the_user_sees_them(tmp_path, capsys):
    assert main(["report", str(tmp_path / "absent")]) == 2
    err = capsys.readouterr().err
    assert "run directories:" in err and "run_dirs" not in err


def test_a_warm_rerun_redraws_nothing_and_never_imports_torch(tmp_path):
    suite = write_suite(tmp_path, SUITE)
    out = tmp_path / "run"
    assert main(["run", str(suite), "--out", str(out), "--quiet"]) == 0
    drawn = {p: p.stat().st_mtime_ns for p in (out / "plots").iterdir()}
    report = (out / "report.md").stat().st_mtime_ns
    script = (
        "import sys; from lcm_bench.cli.main import main; "
        f"code = main(['run', {str(suite)!r}, '--out', {str(out)!r}, '--quiet']); "
        "print('torch imported' if 'torch' in sys.modules else 'no torch'); sys.exit(code)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "0 cells computed, 1 reused" in done.stdout and "no torch" in done.stdout, done.stdout
    assert (out / "report.md").stat().st_mtime_ns == report, "an unchanged report was written again"
    assert {p: p.stat().st_mtime_ns for p in (out / "plots").iterdir()} == drawn
