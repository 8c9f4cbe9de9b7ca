"""The image writer: PNG encoding and file writes leave the thread that drives the device, unless that device is
every core of this CPU (``writes_in_background``), where they run between batches.

``submit`` hands a batch over through a bounded queue (memory stays flat however many images a cell has: at most
``max_pending`` batches wait), a worker thread (or ``submit`` itself) encodes each image and writes it atomically
(temporary file, then rename), and ``flush`` waits until everything submitted is on disk. A write error stops the
run at the next ``submit`` or ``flush`` with a one-line message naming the file; files written before it stay whole.
The sha256 of every file written is kept until ``take_digests`` collects it (chunk records record them).
"""

from __future__ import annotations

import hashlib
import io
import os
import queue
import threading
from pathlib import Path

import numpy as np

from lcm_bench.core.errors import UserError
from lcm_bench.core.faults import injected_write_error, reached
from lcm_bench.records.store import image_name

_STOP = object()


def writes_in_background(devices: set[str], threads: int) -> bool:
    """Whether PNG encoding gets a thread of its own: yes unless every batch runs on this CPU with torch on as many
    threads as the process may use. There a writer thread would take a core from torch's workers inside the timed
    batches (an OpenMP region waits for its slowest worker), so images are written between batches instead, in
    the time the run takes but outside the batches' timing."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return devices != {"cpu"} or threads < cores


PNG_COMPRESS_LEVEL = 1
"""zlib level 1: lossless like any level, about 5x faster than PIL's default 6 at 512 x 512 for ~15 % larger files
(tests/test_execute_benchmarks.py); encoding shares the CPU with generation when the device is a CPU."""


def encode_png(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def write_file(path: Path, data: bytes) -> None:
    """Write beside ``path`` and rename into place: a reader never meets a half-written image."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            injected_write_error(path)
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class ImageWriter:
    """Writes ``folder/NNNNN.png`` for every image of every submitted batch, on one background thread, or, with
    ``background=False``, in ``submit`` itself (where generation keeps every core busy: ``writes_in_background``)."""

    def __init__(self, max_pending: int = 4, background: bool = True):
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._error: str | None = None
        self._digests: dict[Path, list] = {}
        self._thread = threading.Thread(target=self._work, name="lcm-bench-image-writer", daemon=True)
        self.background = background
        if background:
            self._thread.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                self._write_batch(*item)
            finally:
                self._queue.task_done()

    def _write_batch(self, folder: Path, start: int, images: np.ndarray) -> None:
        if self._error is not None:
            return
        for offset, image in enumerate(images):
            path = folder / image_name(start + offset)
            try:
                data = encode_png(image)
                write_file(path, data)
                stat = path.stat()
                self._digests[path] = [hashlib.sha256(data).hexdigest(), stat.st_size, stat.st_mtime_ns]
                reached("image")
            except OSError as exc:
                self._error = f"image writer: cannot write '{path}': {exc.strerror or exc}"
                return

    def _raise(self) -> None:
        if self._error is not None:
            raise UserError(self._error)

    def submit(self, folder: Path, start: int, images: np.ndarray) -> None:
        """Queue images ``start``, ``start + 1``, ... of ``folder`` (blocks while ``max_pending`` batches wait), or
        write them now when not in the background."""
        self._raise()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"image writer: cannot create '{folder}': {exc.strerror or exc}") from None
        if self.background:
            self._queue.put((folder, start, np.ascontiguousarray(images)))
        else:
            self._write_batch(folder, start, images)

    def flush(self) -> None:
        """Wait until every submitted image is written; raise the first write error."""
        self._queue.join()
        self._raise()

    def take_digests(self, folder: Path, indices: range) -> dict[str, list]:
        """``{file name: [sha256, bytes, mtime_ns]}`` of the written images ``indices`` of ``folder`` (call after
        ``flush``)."""
        paths = [folder / image_name(i) for i in indices]
        return {p.name: self._digests.pop(p) for p in paths if p in self._digests}

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    def __enter__(self) -> ImageWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
