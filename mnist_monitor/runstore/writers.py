"""Buffered writers for the trainer: metrics rows in batches, the status from a thread of its own."""
from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger(__name__)


class MetricsWriter:
    """Buffers metrics rows and appends them at most every ``interval`` seconds, or at once when
    asked: at 100k+ images/s (GPU) a curve window ends every few milliseconds. ``append(rows,
    sync)`` writes; ``on_flush(rows)`` sees every row that reached the file."""

    def __init__(self, append, interval: float, on_flush=None):
        self.append = append
        self.interval = interval
        self.on_flush = on_flush
        self._rows: list[dict] = []
        self._last_flush = time.monotonic()

    def add(self, rows: list[dict], flush: bool = False) -> None:
        self._rows.extend(rows)
        if flush or time.monotonic() - self._last_flush >= self.interval:
            self.flush(sync=flush)

    def flush(self, sync: bool = False) -> None:
        """Write what is buffered; ``sync``: on disk on return (before a checkpoint that covers it)."""
        self._last_flush = time.monotonic()
        if not self._rows:
            return
        rows, self._rows = self._rows, []
        self.append(rows, sync)
        if self.on_flush:
            self.on_flush(rows)


class StatusWriter:
    """Writes the status from its own thread, so the training loop never waits for the disk (an
    fsync can take tens of milliseconds). Only the newest submitted status is written;
    ``wait(ticket)`` returns once that status (or a newer one) is on disk."""

    def __init__(self, write):
        self.write = write
        self._cond = threading.Condition()
        self._pending: dict | None = None
        self._submitted = self._written = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="status-writer", daemon=True)
        self._thread.start()

    def submit(self, status: dict) -> int:
        """Queue ``status`` (replacing one not yet written); a ticket for ``wait``."""
        with self._cond:
            self._pending = status
            self._submitted += 1
            self._cond.notify_all()
            return self._submitted

    def wait(self, ticket: int) -> None:
        """Return once the status of ``ticket`` (or a newer one) is on disk."""
        with self._cond:
            while self._written < ticket and self._thread.is_alive():
                self._cond.wait(1.0)  # seconds; re-checks that the writer thread still lives

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                if self._pending is None:
                    return
                status, ticket, self._pending = self._pending, self._submitted, None
            try:
                self.write(status)
            except Exception:  # a full disk, or a run resumed elsewhere: the trainer finds out itself
                log.exception("could not write the status of %s", status.get("run_id"))
            with self._cond:
                self._written = ticket
                self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()
