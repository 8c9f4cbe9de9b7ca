"""oracle/build.py without building anything: the one line a failed pip install becomes, and the cache key."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def build():
    spec = importlib.util.spec_from_file_location("oracle_build", ROOT / "oracle" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("pip_output", "expected"),
    [
        (
            "ERROR: Could not find a version that satisfies the requirement hpsv2==1.2.0 (from versions: none)\n"
            "ERROR: No matching distribution found for hpsv2==1.2.0\n",
            "hpsv2==1.2.0",
        ),
        (
            "ERROR: Cannot install setuptools==69.5.1 and torch==2.14.1 because these package versions have "
            "conflicting dependencies.\nERROR: ResolutionImpossible: for help visit https://pip.pypa.io\n",
            "setuptools==69.5.1 and torch==2.14.1 (their dependencies conflict)",
        ),
        ("  error: subprocess-exited-with-error\nERROR: Failed building wheel for lpips\n", "lpips==0.1.4"),
    ],
)
def test_a_failed_install_is_one_line_naming_the_requirement(build, pip_output, expected):
    assert build.failed_requirement(pip_output) == expected


def test_the_environment_is_keyed_by_its_pins(build, tmp_path, monkeypatch):
    monkeypatch.setenv("LCM_BENCH_ORACLE_HOME", str(tmp_path))
    first = build.environment_dir()
    pins = tmp_path / "requirements.txt"
    pins.write_text(build.REQUIREMENTS.read_text() + "extra==1.0\n")
    monkeypatch.setattr(build, "REQUIREMENTS", pins)
    assert build.environment_dir() != first and build.environment_dir().parent == tmp_path
    assert "extra==1.0" in build.pins() and all(not pin.startswith("#") for pin in build.pins())
    assert build.main(["--check"]) == 1, "--check never builds"
