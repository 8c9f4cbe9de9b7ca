"""Typed name -> entry registries with "did you mean" errors.

Modelled on lm-evaluation-harness ``api/registry.py`` and torch-fidelity ``registry.py``: an entry carries its
behaviour (a metric its compute function, a sampler its scheduler and guidance, a model kind its resolver), so no
code outside the entry tests its name; names are checked to be safe for file names because they end up in cell ids
and cache keys.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from typing import Generic, TypeVar

from lcm_bench.core.errors import UserError

T = TypeVar("T")
SAFE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.+-]*$")


def _spelled(name: str) -> str:
    """A name as people type it: ``+`` spelled ``p`` (dpmsolverpp for dpmsolver++), case and separators folded."""
    return name.lower().replace("+", "p").replace("_", "-")


def did_you_mean(name: str, known: list[str]) -> str:
    spelled = {_spelled(k): k for k in known}
    close = difflib.get_close_matches(_spelled(name), list(spelled), n=1, cutoff=0.5)
    hint = f"; did you mean '{spelled[close[0]]}'?" if close else ""
    return f"{hint} (known: {', '.join(sorted(known))})"


class Registry(Generic[T]):
    """A mapping from safe names to entries, in order of registration."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        if not SAFE_NAME.match(name):
            raise ValueError(f"{self.kind} name {name!r} is not file-name safe")
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> T:
        """Remove an entry (a test's throwaway entry, say) and return it."""
        return self._entries.pop(name)

    def get(self, name: str, field: str | None = None) -> T:
        if name not in self._entries:
            where = f"{field}: " if field else ""
            raise UserError(f"{where}unknown {self.kind} '{name}'{did_you_mean(name, list(self._entries))}")
        return self._entries[name]

    def in_order(self) -> list[str]:
        """The names in order of registration."""
        return list(self._entries)

    def items(self) -> list[tuple[str, T]]:
        """(name, entry) in order of registration."""
        return list(self._entries.items())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def names(self) -> list[str]:
        return sorted(self._entries)
