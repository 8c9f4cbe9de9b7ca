"""Fault injection for tests, off unless its variable is set.

``LCM_BENCH_KILL_AT=POINT:N[:RANK]`` SIGKILLs this process the N-th time it reaches ``POINT`` (on rank RANK only, and
only in a launcher's first attempt, so an elastic restart runs clean). ``LCM_BENCH_ENOSPC=TEXT`` makes every write
of a file whose path contains TEXT fail with ENOSPC, as a full disk does.

Points: ``chunk`` (a chunk's record written), ``timing`` (a cell's timing written), ``image`` (an image file
written), ``record`` (a record written), ``features`` (a feature file cached), ``metric`` (a metric value stored),
``report`` (before the report is written).
"""

from __future__ import annotations

import errno
import os
import signal
from collections import Counter

_reached: Counter = Counter()


def reached(point: str) -> None:
    spec = os.environ.get("LCM_BENCH_KILL_AT")
    if not spec:
        return
    name, count, *rank = spec.split(":")
    if name != point or os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") != "0":
        return
    if rank and os.environ.get("RANK", "0") != rank[0]:
        return
    _reached[point] += 1
    if _reached[point] == int(count):
        os.kill(os.getpid(), signal.SIGKILL)


def injected_write_error(path) -> None:
    text = os.environ.get("LCM_BENCH_ENOSPC")
    if text and text in str(path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
