"""The documentation: the CLI reference is generated from the parser, and the README's links land on pages."""

import importlib.util
import re

from conftest import ROOT

from lcm_bench.cli.main import build_parser


def load_hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_covers_every_command_and_flag():
    text = load_hooks().cli_reference()
    commands = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction").choices
    for name, parser in commands.items():
        assert f"### `lcm-bench {name}`" in text
        for action in parser._actions:
            for flag in action.option_strings:
                assert flag in text, f"{name} {flag} missing from the reference"
    assert "<!-- cli-reference -->" in (ROOT / "docs" / "cli.md").read_text()


def test_readme_links_land_on_existing_files():
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    assert any(link.startswith("docs/") for link in links)
    for link in links:
        if not link.startswith("http"):
            assert (ROOT / link).exists(), f"README links to missing {link}"


def _registries() -> dict[str, str]:
    """Every registry of lcm_bench (imported, so nothing defined another way is missed): name -> the file defining
    it."""
    import importlib
    import pkgutil

    import lcm_bench
    from lcm_bench.core.registry import Registry

    objects = {}
    for info in pkgutil.walk_packages(lcm_bench.__path__, "lcm_bench."):
        if "_embedded" not in info.name and not info.name.endswith("__main__"):
            module = importlib.import_module(info.name)
            objects |= {name: value for name, value in vars(module).items() if isinstance(value, Registry)}
    defined = re.compile(r"^([A-Z_]+)(?:: Registry\[.*\])? = Registry\(", re.M)
    files = {
        m.group(1): str(p.relative_to(ROOT))
        for p in (ROOT / "lcm_bench").rglob("*.py")
        for m in defined.finditer(p.read_text())
    }
    assert set(objects) == set(files), "a registry defined another way"
    return files


def test_the_development_guide_lists_every_registry_where_it_is_defined():
    table = re.findall(r"^\| `([A-Z_]+)` \| `([^`]+)` \|", (ROOT / "docs" / "development.md").read_text(), re.M)
    assert dict(table) == _registries()


def test_the_development_guide_lists_every_builtin_suite():
    from lcm_bench.suite.builtin import builtin_suites

    text = (ROOT / "docs" / "development.md").read_text()
    listed = text[text.index("suites/      the built-in suites:") :].split("(tests/test_docs.py")[0]
    names = set(re.findall(r"\b[a-z][a-z0-9-]*[a-z0-9]\b", listed.split(":", 1)[1])) - {"baselines"}
    assert names == set(builtin_suites())


def test_every_dotted_lcm_bench_name_resolves():
    """Docstrings, comments and docs name modules and objects that exist (``lcm_bench.x.y``: a module, then
    attributes)."""
    import importlib

    sources = [*(ROOT / "lcm_bench").rglob("*.py"), *(ROOT / "docs").glob("*.md"), ROOT / "README.md"]
    names = {n for p in sources for n in re.findall(r"\blcm_bench(?:\.[A-Za-z_]\w*)+", p.read_text())}

    def is_module(dotted: str) -> bool:
        try:
            return importlib.util.find_spec(dotted) is not None
        except ModuleNotFoundError:
            return False

    unresolved = []
    for name in sorted(names):
        parts = name.split(".")
        found = next((i for i in range(len(parts), 0, -1) if is_module(".".join(parts[:i]))), 0)
        target = importlib.import_module(".".join(parts[:found])) if found else None
        for attribute in parts[found:]:
            target = getattr(target, attribute, None)
        if target is None:
            unresolved.append(name)
    assert unresolved == []


def test_the_readmes_figures_are_the_showcases():
    """The README's tables and sentences quoted from the showcase are made from it (``python docs/hooks.py``)."""
    readme = (ROOT / "README.md").read_text()
    hooks = load_hooks()
    assert len(hooks.BLOCK.findall(readme)) == len(hooks.readme_blocks())
    assert readme == hooks.readme_with_blocks(readme), "run python docs/hooks.py: the README differs from the showcase"


def test_the_readme_counts_the_shipped_models():
    words = {6: "six", 7: "seven", 8: "eight", 9: "nine", 10: "ten"}
    shipped = [p for p in (ROOT / "data" / "models").iterdir() if (p / "card.json").is_file() or p.is_dir()]
    assert f"({words[len(shipped)]} models:" in (ROOT / "README.md").read_text()
