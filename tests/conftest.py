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


@pytest.fixture(scope="session", autouse=True)
def _cleanup_session_dir():
    yield
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_sd_path():
    from lcm_bench.models import tiny_path

    return tiny_path("tiny-sd")


@pytest.fixture(scope="session")
def tiny_lcm_path():
    from lcm_bench.models import tiny_path

    return tiny_path("tiny-lcm")


def write_suite(directory: Path, text: str, name: str = "suite.yaml") -> Path:
    path = directory / name
    path.write_text(text)
    return path
