"""The runs folder: every run in it, new runs, the queue, clean-up, and cached reads."""
from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from mnist_monitor.cache import LRU
from mnist_monitor.runstore.files import parse_jsonl, write_error
from mnist_monitor.runstore.records import (ACTIVE_STATES, FINAL_STATES, QUEUED_STATE, RUN_ID_PATTERN, RunStatus,
                                            new_run_id)
from mnist_monitor.runstore.run import Run
from mnist_monitor.runstore.snapshot import RunSnapshot, read_parts, snapshot

log = logging.getLogger(__name__)

STALE_TEMP_SECONDS = 60  # a temp file this old belongs to a write that was cut off
METRICS_CACHE_RUNS = 32  # runs whose metrics rows stay in memory (~150 bytes a row)
SIZE_TTL = 10.0  # seconds a count of the runs folder's bytes is reused (it walks every file)


class RunStore:
    """The runs folder ``runs_dir``; ``keep``: how many runs clean-up keeps (0: all)."""

    def __init__(self, runs_dir: str | os.PathLike, keep: int = 0, create: bool = True, check_config=None):
        """``check_config(body)``: raises ValueError for a config.json the trainer would refuse."""
        self.root = Path(runs_dir).resolve()
        self.check_config = check_config
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        self.keep = keep
        # Every run's parsed folder, run id -> (folder and status mtimes, parts): an index kept
        # current by those times (about 2 KB a run), so a listing re-reads only the folders that
        # changed whatever the number of runs; entries of deleted runs go at the next listing.
        self._parsed: dict[str, tuple] = {}
        self._parsed_lock = threading.Lock()
        self.metrics = MetricsCache(METRICS_CACHE_RUNS)
        self._size = (-SIZE_TTL, 0)  # (when counted, on the monotonic clock; bytes)

    def create(self) -> Run:
        """A new run folder whose id sorts after every existing one (newest first = by id)."""
        while True:
            run = Run(self.root / new_run_id(after=next(iter(self.run_ids()), "")))
            try:
                run.path.mkdir()
                return run
            except FileExistsError:  # another process took this id in the same millisecond
                continue
            except OSError as exc:  # a full disk, a runs folder without permission
                raise write_error(exc, run.path) from None

    def run(self, run_id) -> Run | None:
        """The run ``run_id``, or None if the id is malformed or no such folder exists."""
        if not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id):
            return None
        path = self.root / run_id
        if path.is_symlink() or not path.is_dir():
            return None
        return Run(path)

    def run_ids(self) -> list[str]:
        """Run ids, newest first (ids start with their start time)."""
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return sorted((n for n in names if self.run(n)), reverse=True)

    def snapshot(self, run_id: str) -> RunSnapshot | None:
        """The run as readers see it (None if there is no such run, or it was deleted meanwhile).
        What was read from its folder is reused until the folder or its status.json changes (every
        file is replaced by a rename, which changes the folder's modification time); the liveness
        is decided at every call."""
        run = self.run(run_id)
        if run is None:
            return None
        try:
            key = run.change_key()
            cached = self._parsed.get(run_id)
            parts = cached[1] if cached and cached[0] == key else None
            if parts is None:
                parts = read_parts(run, self.check_config)
                self._parsed[run_id] = (key, parts)
            return snapshot(run, parts)
        except (FileNotFoundError, NotADirectoryError):  # deleted while read: no run, never an error
            self._parsed.pop(run_id, None)
            return None

    def snapshots(self) -> list[RunSnapshot]:
        run_ids = self.run_ids()
        with self._parsed_lock:  # forget the runs deleted since the last listing
            for gone in self._parsed.keys() - set(run_ids):
                self._parsed.pop(gone, None)
        return [s for run_id in run_ids if (s := self.snapshot(run_id)) is not None]

    def queued(self) -> list[Run]:
        """The queued runs, oldest first: the order they start in."""
        return [self.run(s.run_id) for s in reversed(self.snapshots()) if s.state == QUEUED_STATE]

    def activity(self) -> tuple[list[str], int]:
        """(ids of the runs a trainer trains now, newest first; how many runs are queued), in one
        listing that looks only at runs that may be active or queued: a run whose cached status
        is final and whose folder has not changed is skipped (two stats, nothing parsed)."""
        live, queued = [], 0
        for run_id in self.run_ids():
            cached = self._parsed.get(run_id)
            try:
                if cached and isinstance(cached[1][0], RunStatus) and cached[1][0].state in FINAL_STATES \
                        and cached[0] == Run(self.root / run_id).change_key():
                    continue
            except (FileNotFoundError, NotADirectoryError):
                continue
            s = self.snapshot(run_id)
            if s is None:
                continue
            if s.state in ACTIVE_STATES and s.status is not None:
                live.append(s.run_id)
            queued += s.state == QUEUED_STATE
        return live, queued

    def live(self) -> list[str]:
        """Ids of the runs a trainer is training now (in any process), newest first."""
        return self.activity()[0]

    def size_bytes(self) -> int:
        """Bytes of all files in the runs folder, recounted at most every SIZE_TTL seconds."""
        if time.monotonic() - self._size[0] > SIZE_TTL:
            self._size = (time.monotonic(), self._count_bytes())
        return self._size[1]

    def recount_size(self) -> None:
        """Count the folder's bytes afresh at the next ``size_bytes`` (after a run was deleted)."""
        self._size = (-SIZE_TTL, 0)

    def _count_bytes(self) -> int:
        return folder_bytes(self.root)

    def runs_bytes(self, run_ids) -> int:
        """Bytes of the files of these runs (counted now: a student's runs, against their disk quota)."""
        return sum(folder_bytes(self.root / run_id) for run_id in run_ids if self.run(run_id))

    def remove_stale_temp_files(self) -> int:
        """Delete the temp files of atomic writes that a crash cut off; how many were removed."""
        removed = 0
        now = time.time()
        for run_id in self.run_ids():
            for path in Run(self.root / run_id).temp_files():
                try:
                    if now - path.stat().st_mtime > STALE_TEMP_SECONDS:
                        path.unlink()
                        removed += 1
                except FileNotFoundError:
                    pass
        return removed

    def cleanup(self, protect: set[str] = frozenset()) -> list[str]:
        """Delete all but the newest ``keep`` runs (0: keep all), never a protected, a starred, a
        handed-in, a queued or a training one."""
        removed = []
        if self.keep <= 0:
            return removed
        for run_id in self.run_ids()[self.keep:]:
            snapshot = self.snapshot(run_id)
            if (snapshot is None or run_id in protect or snapshot.meta["starred"] or snapshot.meta["handed_in_at"]
                    or snapshot.state in ACTIVE_STATES + (QUEUED_STATE,)):
                continue
            Run(self.root / run_id).delete()
            removed.append(run_id)
        if removed:
            log.info("removed %d old run(s): %s", len(removed), ", ".join(removed))
        return removed


def folder_bytes(root) -> int:
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            try:
                total += os.stat(os.path.join(folder, name)).st_size
            except FileNotFoundError:
                pass
    return total


class MetricsCache:
    """The rows of runs' metrics.jsonl, read incrementally: a poll of a growing file reads only
    the bytes appended since the last one (a few hundred per 3 s poll instead of the whole run)."""

    def __init__(self, capacity: int):
        self._entries = LRU(capacity)  # run folder -> (inode, offset, rows)

    def read(self, run: Run) -> tuple[list[dict], int]:
        """The rows, and the version of the file they come from (its inode: a resumed run's
        metrics.jsonl is replaced by one without the rows of the epoch that is trained again)."""
        try:
            with run.open_metrics() as f:
                stat = os.fstat(f.fileno())
                entry = self._entries.get(run.path)
                if entry is None or entry[0] != stat.st_ino or entry[1] > stat.st_size:
                    entry = (stat.st_ino, 0, [])  # new, or replaced: read from the start
                f.seek(entry[1])
                new_rows, used = parse_jsonl(f.read())
        except (FileNotFoundError, NotADirectoryError):
            self._entries.pop(run.path)
            return [], 0
        rows = entry[2] + new_rows if new_rows else entry[2]
        self._entries.put(run.path, (entry[0], entry[1] + used, rows))
        return rows, entry[0]
