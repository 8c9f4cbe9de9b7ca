"""Content digests of weight files, computed once and cached by (path, size, mtime_ns, inode).

A warm rerun stats files instead of reading them, so a multi-GB checkpoint costs microseconds. Files in a
Hugging Face cache resolve to ``blobs/<sha256>`` (LFS) or ``blobs/<git sha1>``: the blob's name is already a
content digest and is used as is. The cache is one JSON file under the lcm-bench cache, merged under a file
lock so concurrent processes never lose each other's entries (Bazel and Nix key their caches by content alike).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lcm_bench.core.paths import cache_dir

HUB_BLOB = re.compile(r"^([0-9a-f]{40}|[0-9a-f]{64})$")
_CHUNK = 1 << 20


class DigestCache:
    """sha256 digests keyed by a file's identity on disk; a changed size, mtime or inode means a changed file."""

    def __init__(self, path: Path | None = None):
        self.path = path or cache_dir() / "digests.json"
        self._entries: dict[str, Any] | None = None
        self._new: dict[str, Any] = {}

    @property
    def entries(self) -> dict[str, Any]:
        if self._entries is None:
            self._entries = self._read()
        return self._entries

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def file(self, path: Path) -> str:
        """sha256 (hex) of a file's content, or its Hugging Face blob name."""
        real = Path(os.path.realpath(path))
        if real.parent.name == "blobs" and HUB_BLOB.match(real.name):
            return real.name
        stat = real.stat()
        key = f"file|{real}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ino}"
        digest = self.entries.get(key)
        if digest is None:
            h = hashlib.sha256()
            with open(real, "rb") as f:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
            digest = h.hexdigest()
            self.entries[key] = self._new[key] = digest
        return digest

    def memo(self, key: str, compute) -> Any:
        """A derived value (e.g. a resolved scheduler config) cached under ``key``, which must name all its inputs."""
        key = f"memo|{key}"
        if key not in self.entries:
            self.entries[key] = self._new[key] = compute()
        return self.entries[key]

    def flush(self) -> None:
        """Merge new entries into the cache file (atomically, under a lock); entries of vanished files are dropped."""
        if not self._new:
            return
        from filelock import FileLock

        from lcm_bench.core.io import write_json

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.path) + ".lock"):
            merged = {**self._read(), **self._new}
            alive = {
                k: v for k, v in merged.items() if not k.startswith("file|") or Path(k[5:].rsplit("|", 3)[0]).exists()
            }
            write_json(self.path, alive)
        self._new = {}


_DEFAULT: dict[Path, DigestCache] = {}


def digest_cache() -> DigestCache:
    """The process's cache for the current $LCM_BENCH_CACHE."""
    path = cache_dir() / "digests.json"
    if path not in _DEFAULT:
        _DEFAULT[path] = DigestCache(path)
    return _DEFAULT[path]


def files_digest(files: Iterable[Path], root: Path | None = None) -> str:
    """One digest for a set of files: their names (relative to ``root``) and contents, in sorted order."""
    cache = digest_cache()
    h = hashlib.sha256()
    for file in sorted(files):
        name = file.relative_to(root).as_posix() if root else file.name
        h.update(f"{name}\0{cache.file(file)}\n".encode())
    return h.hexdigest()


def folder_digest(folder: Path, pattern: str = "*", ignore: frozenset[str] = frozenset()) -> str:
    """Digest of every file under ``folder`` matching ``pattern`` (recursively), hidden files and files named in
    ``ignore`` excluded."""
    files = [
        p
        for p in folder.rglob(pattern)
        if p.is_file()
        and p.name not in ignore
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]
    return files_digest(files, folder)
