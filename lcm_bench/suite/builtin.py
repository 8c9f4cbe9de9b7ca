"""The suites that ship with lcm-bench, their baselines and the starter suite, by name from any directory."""

from __future__ import annotations

from pathlib import Path

import yaml

from lcm_bench.core.errors import UserError
from lcm_bench.core.paths import suites_dir
from lcm_bench.core.registry import did_you_mean


def starter_text(name: str) -> str:
    """The commented starter suite ``lcm-bench init NAME`` writes (it validates as written)."""
    return (Path(__file__).resolve().parent / "starter.yaml").read_text().replace("NAME", name)


def builtin_suites() -> dict[str, Path]:
    """The suites that ship with lcm-bench, by name (the file's stem)."""
    return {p.stem: p for p in sorted(suites_dir().glob("*.yaml"))}


def shipped_baseline(name: str) -> Path | None:
    """The baseline that ships with a built-in suite (``suites/baselines/<name>.json``), if any."""
    path = suites_dir() / "baselines" / f"{name}.json"
    return path if path.is_file() else None


def baseline_path(text: str) -> Path:
    """A baseline file, or the name of a built-in suite whose baseline ships (``ci-quality``), from any directory."""
    path = Path(text)
    if path.exists() or path.suffix or len(path.parts) > 1:
        return path
    shipped = shipped_baseline(text)
    if shipped is not None:
        return shipped
    names = [name for name in builtin_suites() if shipped_baseline(name)]
    raise UserError(
        f"--baseline: '{text}' is neither a file nor a built-in suite with a shipped baseline ({', '.join(names)})"
    )


def suite_summary(path: Path) -> str:
    """A built-in suite's ``description``, else the first line of its leading comment."""
    text = path.read_text()
    description = (yaml.safe_load(text) or {}).get("description")
    if description:
        return description
    first = next((line for line in text.splitlines() if line.startswith("#")), "")
    return first.lstrip("# ").strip()


def suite_path(text: str) -> Path:
    """A suite file, or the name of a built-in suite (``quickstart``, ``ci-quality``, ...) from any directory."""
    path = Path(text)
    if path.exists() or path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        return path
    suites = builtin_suites()
    if text in suites:
        return suites[text]
    local = [f"{text}{suffix}" for suffix in (".yaml", ".yml") if Path(f"{text}{suffix}").is_file()]
    if local:
        raise UserError(f"suite: '{text}' is neither a file nor a built-in suite; did you mean '{local[0]}'?")
    hint = did_you_mean(text, list(suites)) or f" (built-in suites: {', '.join(suites)})"
    raise UserError(f"suite: '{text}' is neither a file nor a built-in suite{hint}")
