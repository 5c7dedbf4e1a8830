"""The run folder: the contract between the training worker (writer) and the server (reader).

runs/<run_id>/config.json      validated config, written once
runs/<run_id>/status.json      current state, replaced atomically
runs/<run_id>/metrics.jsonl    append-only, one JSON object a line
runs/<run_id>/*.png            charts, replaced atomically
runs/<run_id>/model<i>_*.pt    checkpoints (best and latest per model)
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import secrets
import shutil
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

ACTIVE_STATES = ("starting", "running", "stopping")
FINAL_STATES = ("finished", "stopped", "failed", "interrupted")
RUN_ID_PATTERN = re.compile(r"^\d{8}-\d{6}-\d{3}[0-9a-f]{3}$")
FILE_PATTERN = re.compile(r"^[A-Za-z0-9_\-]{1,64}\.(png|pt)$")


def new_run_id() -> str:
    """'20261126-183300-482a3f': start time to the millisecond, then 3 random hex digits.
    Ids sort by start time (RunStore.create makes sure of it within one runs folder)."""
    now = time.time()
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + f"-{int(now * 1000) % 1000:03d}" + secrets.token_hex(2)[:3]


def _json_default(value):
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def to_json(obj) -> str:
    """Strict JSON: NaN and infinity become null (browsers refuse them)."""
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v
    return json.dumps(clean(obj), default=_json_default, allow_nan=False, separators=(",", ":"))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename over ``path``.

    A reader sees the old file or the new one, never half of either.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_json(path, obj) -> None:
    atomic_write_bytes(path, to_json(obj).encode())


def append_jsonl(path, rows: list[dict]) -> None:
    """Append whole lines in one write, so a crash leaves at most one torn last line."""
    if rows:
        with open(path, "a", encoding="utf-8") as f:
            f.write("".join(to_json(r) + "\n" for r in rows))
            f.flush()


def read_json(path) -> dict | None:
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def read_jsonl(path) -> list[dict]:
    """All complete lines; a torn or corrupt line (a crash mid-append) is skipped."""
    rows = []
    try:
        with open(path, "rb") as f:
            for line in f:
                if not line.endswith(b"\n"):
                    break  # torn last line: being written or cut off by a crash
                try:
                    rows.append(json.loads(line))
                except (json.JSONDecodeError, UnicodeDecodeError):
                    continue
    except FileNotFoundError:
        pass
    return rows


def pid_alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunStore:
    """The runs folder: list, read, clean up and find files of runs."""

    def __init__(self, runs_dir: str | os.PathLike, keep: int = 5):
        self.root = Path(runs_dir).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.keep = keep

    def create(self) -> tuple[str, Path]:
        """A new run folder whose id sorts after every existing one (newest first = by id)."""
        newest = next(iter(self.run_ids()), "")
        while True:
            run_id = new_run_id()
            if run_id <= newest:
                time.sleep(0.001)
                continue
            run_dir = self.root / run_id
            try:
                run_dir.mkdir()
                return run_id, run_dir
            except FileExistsError:
                continue

    def run_dir(self, run_id: str) -> Path | None:
        """The folder of ``run_id``, or None if the id is malformed or no such run exists."""
        if not isinstance(run_id, str) or not RUN_ID_PATTERN.match(run_id):
            return None
        path = self.root / run_id
        if path.is_symlink() or not path.is_dir():
            return None
        return path

    def run_ids(self) -> list[str]:
        """Run ids, newest first (ids start with their start time)."""
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return sorted((n for n in names if self.run_dir(n)), reverse=True)

    def file(self, run_id: str, name: str) -> Path | None:
        """A file of a run, only if its name is one the worker writes and it is a plain file
        inside the run folder (no separators, no dot-dot, no symlinks)."""
        run_dir = self.run_dir(run_id)
        if run_dir is None or not isinstance(name, str) or not FILE_PATTERN.match(name):
            return None
        path = run_dir / name
        if path.is_symlink() or not path.is_file():
            return None
        if path.resolve().parent != run_dir.resolve():
            return None
        return path

    def status(self, run_id: str) -> dict | None:
        run_dir = self.run_dir(run_id)
        return read_json(run_dir / "status.json") if run_dir else None

    def config(self, run_id: str) -> dict | None:
        run_dir = self.run_dir(run_id)
        return read_json(run_dir / "config.json") if run_dir else None

    def metrics(self, run_id: str) -> list[dict]:
        run_dir = self.run_dir(run_id)
        return read_jsonl(run_dir / "metrics.jsonl") if run_dir else []

    def mark_interrupted(self, active_run_id: str | None = None) -> list[str]:
        """Runs left 'running' by a process that is gone become 'interrupted' (on disk)."""
        marked = []
        for run_id in self.run_ids():
            if run_id == active_run_id:
                continue
            status = self.status(run_id)
            if not status or status.get("state") not in ACTIVE_STATES:
                continue
            pid = status.get("pid")
            if pid != os.getpid() and pid_alive(pid):
                continue  # trained by another live process (python train.py)
            status["state"] = "interrupted"
            status["error"] = status.get("error") or "the server stopped while this run was training"
            status["finished_at"] = status.get("updated_at")
            atomic_write_json(self.root / run_id / "status.json", status)
            marked.append(run_id)
        return marked

    def cleanup(self, protect: set[str] = frozenset()) -> list[str]:
        """Delete all but the newest ``keep`` runs, never a protected (active) one."""
        removed = []
        if self.keep <= 0:
            return removed
        for run_id in self.run_ids()[self.keep:]:
            status = self.status(run_id) or {}
            if run_id in protect or (status.get("state") in ACTIVE_STATES and pid_alive(status.get("pid"))
                                     and status.get("pid") != os.getpid()):
                continue
            shutil.rmtree(self.root / run_id, ignore_errors=True)
            removed.append(run_id)
        if removed:
            log.info("removed %d old run(s): %s", len(removed), ", ".join(removed))
        return removed
