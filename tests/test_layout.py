"""The house's rules, checked: the import contract of pyproject.toml holds (and fails on a wrong import), no import
circle, only __init__ and __main__ at the top, no function over 60 lines, a record as written read only by
lcm_bench.records."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "lcm_bench"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(root), "PATH": str(Path(sys.executable).parent)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    """The package's sources and the contract, without data."""
    root = tmp_path_factory.mktemp("house")
    shutil.copytree(PACKAGE, root / "lcm_bench", ignore=shutil.ignore_patterns("__pycache__", "_embedded"))
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


@pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed (pip install -e '.[dev]')")
def test_the_import_contract_holds_and_a_wrong_import_breaks_it(copy):
    kept = _lint_imports(copy)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert "0 broken" in kept.stdout
    errors = copy / "lcm_bench" / "core" / "errors.py"
    original = errors.read_text()
    errors.write_text(original + "\nfrom lcm_bench.run.runner import run_suite  # noqa: E402, F401\n")
    try:
        broken = _lint_imports(copy)
    finally:
        errors.write_text(original)
    assert broken.returncode != 0
    assert "lcm_bench.core is not allowed to import lcm_bench.run" in broken.stdout


def _imports(path: Path, modules: set[str]) -> set[str]:
    """lcm_bench modules a file imports, at any depth (lazy imports inside functions included): ``from M import N``
    imports the submodule M.N where there is one, else M."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lcm_bench"):
            names |= {
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module for a in node.names
            }
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.startswith("lcm_bench")}
    return names


def test_no_import_circle():
    modules = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
        for p in PACKAGE.rglob("*.py")
        if p.name != "__main__.py"
    }
    graph = {m: {n for n in _imports(p, set(modules)) if n in modules and n != m} for m, p in modules.items()}
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for dep in graph[module]:
            assert state.get(dep) != 1, f"import circle: {' -> '.join(path[path.index(dep) :] + [dep])}"
            if dep not in state:
                visit(dep, [*path, dep])
        state[module] = 2

    for module in graph:
        if module not in state:
            visit(module, [module])


def test_only_init_and_main_at_the_top():
    assert sorted(p.name for p in PACKAGE.glob("*.py")) == ["__init__.py", "__main__.py"]


def test_no_function_over_60_lines():
    long = [
        f"{path.relative_to(ROOT)}:{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path in PACKAGE.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > 60
    ]
    assert not long, long


def _raw_record_reads(tree: ast.AST) -> list[int]:
    """Lines that read a CellRecord's record as written (``.raw``): only lcm_bench.records may."""
    return [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "raw"]


def test_only_records_reads_a_record_as_written():
    assert _raw_record_reads(ast.parse("cell.raw['spec']['steps']\nn = cell.steps")) == [1], "the check sees a read"
    reads = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in PACKAGE.rglob("*.py")
        if "records" not in path.relative_to(PACKAGE).parts
        for line in _raw_record_reads(ast.parse(path.read_text()))
    ]
    assert not reads, reads


def test_validating_a_suite_imports_no_torch():
    """Suites validate with the light modules only (torch comes in with generation, scoring or a GPU entry)."""
    code = (
        "import sys; from lcm_bench.cli.main import main; assert main(['validate', 'quickstart']) == 0; "
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('lcm_bench'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
