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
