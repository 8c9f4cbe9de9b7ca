"""A run directory: one JSON record per finished cell (written atomically), a manifest, and results.csv.

Layout: ``manifest.json``, ``cells/<cell_id>.json``, ``chunks/<cell_id>/<start>-<stop>.json`` (one fragment per finished
chunk, lcm_bench.execute.chunks), ``images/<cell_id>/NNNNN.png``, ``results.csv``, ``report.md``, and ``.leases/`` (lock
files). A cell is finished when its record exists and its content fingerprint matches what would produce it now;
resuming skips it. Writes go to a temporary file in the same folder and are renamed into place, so a killed run never
leaves a half-written file behind.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from lcm_bench.core.errors import UserError
from lcm_bench.core.faults import injected_write_error


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, then rename: a reader sees the old file or the new one. A failed
    write (disk full, no permission) leaves no file behind and stops the run with one line naming ``path``."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            injected_write_error(path)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise UserError(f"cannot write '{path}': {exc.strerror or exc}") from None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    write_atomic(path, (json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n").encode())


def warn(message: str) -> None:
    print(f"lcm-bench: warning: {message}", file=sys.stderr)
