"""Atomic file writes and warnings: a reader sees the old file or the new one, never half of one; a failed write is
one line naming the file."""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import sys
from pathlib import Path
from typing import Any

from lcm_bench.core.errors import UserError
from lcm_bench.core.faults import injected_write_error

TEMPORARY = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9-]+)_(?P<pid>\d+)_[0-9a-f]{8}\.tmp$")
"""A temporary of ``write_atomic``: ``.<name>.<host>_<pid>_<random>.tmp``, so the writer it belonged to is known."""


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"


def _create_temporary(path: Path) -> tuple[int, Path]:
    """A new file beside ``path``, named after this host and process, created with mode 0o666 so the process umask
    applies as for any new file."""
    while True:
        tmp = path.with_name(f".{path.name}.{_host()}_{os.getpid()}_{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, then rename: a reader sees the old file or the new one. A failed
    write (disk full, no permission) leaves no file behind and stops the run with one line naming ``path``."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create_temporary(path)
        with os.fdopen(fd, "wb") as f:
            injected_write_error(path)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write '{path}': {exc.strerror or exc}") from None
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    write_atomic(path, (json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n").encode())


def warn(message: str) -> None:
    print(f"lcm-bench: warning: {message}", file=sys.stderr)


def on_terminal(wanted: bool = True) -> bool:
    """Whether a progress bar may draw: asked for, and stderr is a terminal (a log file gets one line per event
    instead of hundreds of carriage-return updates)."""
    return wanted and sys.stderr.isatty()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def orphaned_temporaries(root: Path) -> list[Path]:
    """Temporaries under ``root`` that a process of this host left when it was killed mid-write (SIGKILL, power
    loss): their writer no longer runs, so no rename will ever consume them. Another host's are left alone."""
    host = _host()
    found = []
    for path in Path(root).rglob(".*.tmp"):
        match = TEMPORARY.match(path.name)
        if match and match["host"] == host and not _running(int(match["pid"])):
            found.append(path)
    return found


def remove_orphaned_temporaries(root: Path) -> int:
    """Delete ``orphaned_temporaries(root)``; how many there were."""
    orphans = orphaned_temporaries(root)
    for path in orphans:
        path.unlink(missing_ok=True)
    return len(orphans)
