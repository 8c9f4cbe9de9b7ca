"""MkDocs hook: the CLI reference page is rendered from lcm-bench's argument parser at build time."""

from __future__ import annotations

MARKER = "<!-- cli-reference -->"


def cli_reference() -> str:
    import os

    from lcm_bench.cli.main import build_parser

    os.environ["COLUMNS"] = "110"

    parser = build_parser()
    sections = [f"### `lcm-bench`\n\n```\n{parser.format_help()}```\n"]
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, sub in subparsers.choices.items():
        sections.append(f"### `lcm-bench {name}`\n\n```\n{sub.format_help()}```\n")
    return "\n".join(sections)


def on_page_markdown(markdown: str, page, config, files) -> str:
    return markdown.replace(MARKER, cli_reference()) if MARKER in markdown else markdown
