"""The third-party libraries' switches lcm-bench sets: verbosity and progress bars once, log filters only for the
block that needs them. Nothing here changes a number."""

from __future__ import annotations

import logging
import re
from contextlib import contextmanager


def quiet_libraries() -> None:
    """diffusers and transformers at error verbosity, without progress bars or FutureWarnings (idempotent: every
    loader calls it, the effect is set once)."""
    import warnings

    import diffusers
    import transformers

    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(diffusers|transformers)\.")
    warnings.filterwarnings("ignore", message=".*deprecated.*", category=FutureWarning)
    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


class _DropMatching(logging.Filter):
    def __init__(self, pattern: str):
        super().__init__()
        self.pattern = re.compile(pattern)

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.search(record.getMessage())


@contextmanager
def without_log_messages(pattern: str, logger: str = ""):
    """Drop the log records of ``logger`` (the root logger by default) whose message matches ``pattern`` for the
    body of a ``with`` block; every other record passes."""
    target, drop = logging.getLogger(logger), _DropMatching(pattern)
    target.addFilter(drop)
    try:
        yield
    finally:
        target.removeFilter(drop)
