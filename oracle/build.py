"""Build (or find) the oracle environment: a virtual environment of its own holding the reference implementations
pinned in oracle/requirements.txt, cached under $LCM_BENCH_ORACLE_HOME (default ~/.cache/lcm-bench-oracle) by a
hash of the pins and of this script. Prints the environment's python on success; on failure prints one line naming
the requirement pip could not install and exits 1.

    python oracle/build.py            # build if needed, print the python path
    python oracle/build.py --check    # print the path if built, else exit 1 without building

Standard library only: it runs with any Python 3.10+ before anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements.txt"
PIP_FAILURES = (
    re.compile(r"No matching distribution found for (\S+)"),
    re.compile(r"Could not find a version that satisfies the requirement (\S+)"),
    re.compile(r"Cannot install (.+?) because these package versions have conflicting dependencies"),
    re.compile(r"Failed to build (\S+)"),
    re.compile(r"ERROR: Failed building wheel for (\S+)"),
)


def pins() -> list[str]:
    lines = (line.split("#")[0].strip() for line in REQUIREMENTS.read_text().splitlines())
    return [line for line in lines if line]


def environment_dir() -> Path:
    home = Path(os.environ.get("LCM_BENCH_ORACLE_HOME", Path.home() / ".cache" / "lcm-bench-oracle")).expanduser()
    digest = hashlib.sha256(REQUIREMENTS.read_bytes() + Path(__file__).read_bytes()).hexdigest()[:16]
    return home / f"oracle-{digest}"


def python_of(env: Path) -> Path:
    return env / "bin" / "python"


def failed_requirement(output: str) -> str:
    """The requirement pip names in its failure, with the version pinned for it here."""
    pinned = {re.split(r"[=<>!~ ]", pin, maxsplit=1)[0].lower(): pin for pin in pins()}
    for pattern in PIP_FAILURES:
        match = pattern.search(output)
        if match and "conflicting" in pattern.pattern:
            return f"{match.group(1)} (their dependencies conflict)"
        if match:
            name = re.split(r"[=<>!~ (]", match.group(1).strip(), maxsplit=1)[0].lower()
            return pinned.get(name, match.group(1).strip())
    tail = [line for line in output.strip().splitlines() if line.strip()]
    return tail[-1] if tail else "pip gave no reason"


def bpe_vocabulary_fix(python: Path) -> None:
    """hpsv2 1.2.0 ships without its BPE vocabulary; open_clip's file is the same vocabulary (REFERENCE.md)."""
    code = (
        "import pathlib, hpsv2, clip; "
        "target = pathlib.Path(hpsv2.__file__).parent / 'src/open_clip/bpe_simple_vocab_16e6.txt.gz'; "
        "source = pathlib.Path(clip.__file__).parent / 'bpe_simple_vocab_16e6.txt.gz'; "
        "target.exists() or target.write_bytes(source.read_bytes())"
    )
    subprocess.run([str(python), "-c", code], check=True, capture_output=True)


def build(env: Path) -> None:
    scratch = env.with_name(env.name + ".building")
    shutil.rmtree(scratch, ignore_errors=True)
    venv.EnvBuilder(with_pip=True).create(scratch)
    python = python_of(scratch)
    command = [str(python), "-m", "pip", "install", "-q", "--no-compile", "--disable-pip-version-check"]
    done = subprocess.run([*command, *pins()], capture_output=True, text=True)
    if done.returncode != 0:
        shutil.rmtree(scratch, ignore_errors=True)
        raise SystemExit(f"oracle environment: pip cannot install {failed_requirement(done.stdout + done.stderr)}")
    bpe_vocabulary_fix(python)
    for stale in env.parent.glob("oracle-*"):
        if stale != scratch:
            shutil.rmtree(stale, ignore_errors=True)
    scratch.rename(env)


def main(argv: list[str]) -> int:
    env = environment_dir()
    ready = env / "ready"
    if not ready.is_file():
        if "--check" in argv:
            return 1
        env.parent.mkdir(parents=True, exist_ok=True)
        build(env)
        ready.write_text("\n".join(pins()) + "\n")
    print(python_of(env))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            sys.exit(1)
        raise
