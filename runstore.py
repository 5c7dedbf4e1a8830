"""The run folder: the contract between the training worker (writer) and the server (reader).

Everything both sides need to agree on is defined here once: file names, states, the fields of
status.json and of the metrics rows, and the writers and readers of those files.

runs/<run_id>/config.json             the config as a request body (post it back to repeat the run)
runs/<run_id>/run.json                facts recorded beside it: device, precision used, versions
runs/<run_id>/status.json             current state (RunStatus), replaced atomically
runs/<run_id>/metrics.jsonl           append-only, one metrics row (METRIC_COLUMNS) a line
runs/<run_id>/curves.png              charts, replaced atomically
runs/<run_id>/<kind>_m<i>.png         epoch-end images of model i (EPOCH_IMAGES)
runs/<run_id>/model<i>_<kind>.pt      checkpoints of model i (CHECKPOINT_KINDS)
runs/<run_id>/confusion_m<i>.json     model i's test confusion matrix at the last epoch end
"""
from __future__ import annotations

import errno
import json
import logging
import math
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

from config import DEFAULT_KEEP_RUNS, MAX_MODELS

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- the contract

CONFIG_FILE, STATUS_FILE, METRICS_FILE = "config.json", "status.json", "metrics.jsonl"
RUN_INFO_FILE = "run.json"  # recorded facts: device and precision used, torch version, start time
META_FILE = "meta.json"  # what the user says of a run: {"starred": bool, "note": str}
NOTE_MAX = 200  # characters of a run's note
CURVES_IMAGE = "curves"  # run-level image: curves.png
EPOCH_IMAGES = ("samples", "errors", "confusion", "filters")  # per model, redrawn at every epoch end
CHECKPOINT_KINDS = ("latest", "best")  # latest epoch end; best validation accuracy so far

ACTIVE_STATES = ("starting", "running", "stopping")
FINAL_STATES = ("finished", "stopped", "failed", "interrupted")
QUEUED_STATE = "queued"  # waiting for the runs before it: config.json and status.json, nothing trained yet
RESUMABLE_STATES = ("stopped", "failed", "interrupted")  # cut off: can go on from the last epoch-end checkpoint
IDLE_STATE = "idle"  # no run at all (never written to disk)
RUN_ID_PATTERN = re.compile(r"^\d{8}-\d{6}-\d{3}[0-9a-f]{3}$")
STOP_FILE = "stop.request"  # written by the server to stop a run that another process trains
TEMP_SUFFIX = ".tmp"  # atomic writes go through '.<name>.<random>.tmp' in the same folder
STALE_TEMP_SECONDS = 60  # a temp file this old belongs to a write that was cut off


def checkpoint_name(model_index: int, kind: str) -> str:
    return f"model{model_index}_{kind}.pt"


def checkpoint_parts(name: str) -> tuple[int, str]:
    """'model1_best.pt' -> (1, 'best')."""
    stem, kind = name[:-len(".pt")].split("_")
    return int(stem[len("model"):]), kind


def confusion_name(model_index: int) -> str:
    """The confusion matrix of model i at the last epoch end, as JSON (the numbers of its picture)."""
    return f"confusion_m{model_index}.json"


def image_name(kind: str, model_index: int | None = None) -> str:
    """'curves.png' for the run, 'samples_m0.png' for an epoch image of model 0."""
    return f"{kind}.png" if model_index is None else f"{kind}_m{model_index}.png"


# Every file the server may serve from a run folder: exactly the names the worker writes.
SERVED_FILES = frozenset(
    [image_name(CURVES_IMAGE)]
    + [image_name(kind, i) for i in range(MAX_MODELS) for kind in EPOCH_IMAGES]
    + [checkpoint_name(i, kind) for i in range(MAX_MODELS) for kind in CHECKPOINT_KINDS]
    + [confusion_name(i) for i in range(MAX_MODELS)])


@dataclass
class ModelStatus:
    """One model's part of status.json."""
    name: str
    kernels: list
    optimizer: str
    learning_rate: float
    batch_size: int
    parameters: int
    epoch: int
    epochs: int
    batch: int
    batches: int
    loss: float | None = None
    accuracy: float | None = None  # percent, over the last curve window
    val_accuracy: float | None = None  # percent, at the last epoch end
    test_accuracy: float | None = None
    best_test_accuracy: float | None = None
    progress: float = 0.0  # percent of this model's steps done
    samples: int = 0  # training images seen
    samples_per_sec: float | None = None
    eta_seconds: float | None = None


@dataclass
class RunStatus:
    """status.json: small, replaced atomically, read at every poll."""
    state: str
    run_id: str | None = None
    pid: int | None = None  # the training process: a run whose process is gone was interrupted
    device: str | None = None
    precision: str | None = None
    lr_schedule: str | None = None
    train_images: int | None = None  # training images per epoch
    error: str | None = None
    started_at: float | None = None  # Unix seconds
    updated_at: float | None = None
    finished_at: float | None = None
    eta_seconds: float | None = None
    eval_seconds: float | None = None  # wall time spent evaluating so far
    resumes: int = 0  # times the run went on from an epoch-end checkpoint after being cut off
    elapsed_seconds: float | None = None  # seconds it has trained (the pauses before resumes not counted)
    models: list[ModelStatus] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


RUN_STATUS_FIELDS = tuple(f.name for f in fields(RunStatus))
MODEL_STATUS_FIELDS = tuple(f.name for f in fields(ModelStatus))

# Metrics rows: "train" rows are curve points (a window of steps), "eval" rows epoch ends.
# "layers" rows: how each layer learned in the last step of a curve window (lists, one value a layer).
METRIC_COLUMNS = ("kind", "model", "epoch", "step", "loss", "accuracy", "lr", "val_loss", "val_accuracy",
                  "test_loss", "test_accuracy", "samples_per_sec", "time", "layers", "weight_norm", "grad_norm",
                  "update_ratio", "dead_relu")
METRIC_KINDS = {
    "train": ("model", "epoch", "step", "loss", "accuracy", "lr", "samples_per_sec", "time"),
    "eval": ("model", "epoch", "step", "val_loss", "val_accuracy", "test_loss", "test_accuracy", "time"),
    "layers": ("model", "epoch", "step", "time", "layers", "weight_norm", "grad_norm", "update_ratio", "dead_relu"),
}
TABLE_KINDS = ("train", "eval")  # the rows with one number a column (the CSV download holds these)


def metrics_row(kind: str, **values) -> dict:
    """A metrics row of ``kind`` with exactly its fields, in METRIC_COLUMNS order."""
    expected = METRIC_KINDS[kind]
    if set(values) != set(expected):
        raise ValueError(f"a {kind!r} metrics row needs {expected}, got {sorted(values)}")
    values["kind"] = kind
    return {column: values[column] for column in METRIC_COLUMNS if column in values}


RUN_ID_TIME = "%Y%m%d-%H%M%S"  # UTC, so ids sort the same whatever the time zone of the writer


def new_run_id(after: str = "") -> str:
    """'20261126-183300-482a3f': start time (UTC) to the millisecond, then 3 random hex digits.

    The id sorts after ``after`` without waiting for the clock: if the clock is behind (set back,
    or a folder written by another machine), the time part is ``after``'s plus one millisecond."""
    millis = int(time.time() * 1000)
    if after and RUN_ID_PATTERN.match(after):
        stamp = datetime.strptime(after[:15], RUN_ID_TIME).replace(tzinfo=timezone.utc)
        millis = max(millis, int(stamp.timestamp()) * 1000 + int(after[16:19]) + 1)
    stamp = datetime.fromtimestamp(millis // 1000, timezone.utc).strftime(RUN_ID_TIME)
    return f"{stamp}-{millis % 1000:03d}{secrets.token_hex(2)[:3]}"


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
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".", suffix=TEMP_SUFFIX)
    except OSError as exc:
        raise write_error(exc, path) from exc
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise write_error(exc, path) from exc
        raise


class WriteError(OSError):
    """A file could not be written (a full disk, a folder without permission); str() names the
    file and the cause, for the user."""

    def __str__(self) -> str:
        hint = "; free some space, then resume the run" if self.errno in (errno.ENOSPC, errno.EDQUOT) else ""
        return f"could not write {self.filename}: {self.strerror}{hint}"


def write_error(exc: OSError, path) -> WriteError:
    """``exc`` as a WriteError naming the file the caller wanted to write (not a temp file or an fd)."""
    if isinstance(exc, WriteError):
        return exc
    return WriteError(exc.errno, exc.strerror or str(exc), str(path))


def atomic_write_json(path, obj) -> None:
    atomic_write_bytes(path, to_json(obj).encode())


def append_jsonl(path, rows: list[dict]) -> None:
    """Append whole lines in one write, so a crash leaves at most one torn last line. A write
    that fails (a full disk) is cut back off: the file keeps exactly the lines it had."""
    if not rows:
        return
    data = memoryview("".join(to_json(r) + "\n" for r in rows).encode())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.lseek(fd, 0, os.SEEK_END)
            try:
                while data:
                    data = data[os.write(fd, data):]
            except OSError:
                os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)
    except OSError as exc:
        raise write_error(exc, path) from exc


def rewrite_jsonl(path, rows: list[dict]) -> None:
    """Replace a JSON-lines file with ``rows``, atomically (a reader sees the old file or the new)."""
    atomic_write_bytes(path, "".join(to_json(r) + "\n" for r in rows).encode())


def read_json(path) -> dict | None:
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def parse_jsonl(data: bytes) -> tuple[list[dict], int]:
    """The objects of the complete lines of ``data``, and the bytes those lines take. A torn last
    line (being written, or cut off by a crash) is left for later; a corrupt line is skipped."""
    end = data.rfind(b"\n") + 1
    rows = []
    for line in data[:end].splitlines():
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows, end


def read_jsonl(path) -> list[dict]:
    """All complete lines; a torn or corrupt line (a crash mid-append) is skipped."""
    try:
        with open(path, "rb") as f:
            return parse_jsonl(f.read())[0]
    except (FileNotFoundError, NotADirectoryError):
        return []


class MetricsCache:
    """The rows of runs' metrics.jsonl, read incrementally: a poll of a growing file reads only
    the bytes appended since the last one (a few hundred per 3 s poll instead of the whole run)."""

    def __init__(self, capacity: int = 32):  # runs whose rows stay in memory (~150 bytes a row)
        self.capacity = capacity
        self._entries: OrderedDict[Path, tuple[int, int, list[dict]]] = OrderedDict()  # inode, offset, rows
        self._lock = threading.Lock()

    def read(self, run_dir: Path) -> tuple[list[dict], int]:
        """The rows, and the version of the file they come from (its inode: a resumed run's
        metrics.jsonl is replaced by one without the rows of the epoch that is trained again)."""
        path = run_dir / METRICS_FILE
        with self._lock:
            try:
                with open(path, "rb") as f:
                    inode = os.fstat(f.fileno()).st_ino
                    entry = self._entries.get(path)
                    if entry is None or entry[0] != inode or entry[1] > os.fstat(f.fileno()).st_size:
                        entry = (inode, 0, [])  # new, or replaced: read from the start
                    f.seek(entry[1])
                    new_rows, used = parse_jsonl(f.read())
            except (FileNotFoundError, NotADirectoryError):
                self._entries.pop(path, None)
                return [], 0
            rows = entry[2] + new_rows if new_rows else entry[2]
            self._entries[path] = (inode, entry[1] + used, rows)
            self._entries.move_to_end(path)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
            return rows, inode


class MetricsWriter:
    """Buffers metrics rows and appends them to metrics.jsonl at most every ``interval`` seconds,
    or at once when asked: at 100k+ images/s (GPU) a curve window ends every few milliseconds.
    ``on_flush(rows)`` sees every row that reached the file."""

    def __init__(self, path: Path, interval: float, on_flush=None):
        self.path = path
        self.interval = interval
        self.on_flush = on_flush
        self._rows: list[dict] = []
        self._last_flush = time.monotonic()

    def add(self, rows: list[dict], flush: bool = False) -> None:
        self._rows.extend(rows)
        if flush or time.monotonic() - self._last_flush >= self.interval:
            self.flush()

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        if not self._rows:
            return
        rows, self._rows = self._rows, []
        append_jsonl(self.path, rows)
        if self.on_flush:
            self.on_flush(rows)


class StatusWriter:
    """Writes status.json from its own thread, so the training loop never waits for the disk
    (an fsync can take tens of milliseconds). Only the newest submitted status is written;
    ``wait(ticket)`` returns once that status (or a newer one) is on disk."""

    def __init__(self, path: Path):
        self.path = path
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
                atomic_write_json(self.path, status)
            except OSError:
                log.exception("could not write %s", self.path)
            with self._cond:
                self._written = ticket
                self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()


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

    def __init__(self, runs_dir: str | os.PathLike, keep: int = DEFAULT_KEEP_RUNS):
        self.root = Path(runs_dir).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.keep = keep

    def create(self) -> tuple[str, Path]:
        """A new run folder whose id sorts after every existing one (newest first = by id)."""
        while True:
            run_id = new_run_id(after=next(iter(self.run_ids()), ""))
            run_dir = self.root / run_id
            try:
                run_dir.mkdir()
                return run_id, run_dir
            except FileExistsError:  # another process took this id in the same millisecond
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
        """A file of a run, only if its name is one the worker writes (SERVED_FILES) and it is a
        plain file inside the run folder (no symlinks)."""
        run_dir = self.run_dir(run_id)
        if run_dir is None or name not in SERVED_FILES:
            return None
        path = run_dir / name
        if path.is_symlink() or not path.is_file():
            return None
        if path.resolve().parent != run_dir.resolve():
            return None
        return path

    def status(self, run_id: str) -> dict | None:
        run_dir = self.run_dir(run_id)
        return read_json(run_dir / STATUS_FILE) if run_dir else None

    def config(self, run_id: str) -> dict | None:
        run_dir = self.run_dir(run_id)
        return read_json(run_dir / CONFIG_FILE) if run_dir else None

    def metrics(self, run_id: str) -> list[dict]:
        run_dir = self.run_dir(run_id)
        return read_jsonl(run_dir / METRICS_FILE) if run_dir else []

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
            atomic_write_json(self.root / run_id / STATUS_FILE, status)
            marked.append(run_id)
        return marked

    def remove_stale_temp_files(self) -> int:
        """Delete the temp files of atomic writes that a crash cut off; how many were removed."""
        removed = 0
        now = time.time()
        for run_id in self.run_ids():
            for path in (self.root / run_id).glob("." + "*" + TEMP_SUFFIX):
                try:
                    if now - path.stat().st_mtime > STALE_TEMP_SECONDS:
                        path.unlink()
                        removed += 1
                except FileNotFoundError:
                    pass
        return removed

    def queued(self) -> list[str]:
        """Ids of the queued runs, oldest first: the order they start in."""
        return [run_id for run_id in reversed(self.run_ids())
                if (self.status(run_id) or {}).get("state") == QUEUED_STATE]

    def enqueue(self, run_id: str, config: dict, status: dict) -> None:
        """Make the (new, empty) folder of ``run_id`` a queued run: its settings and a 'queued' status."""
        atomic_write_json(self.root / run_id / CONFIG_FILE, config)
        atomic_write_json(self.root / run_id / STATUS_FILE, status)

    def end_queued(self, run_id: str, error: str) -> None:
        """A queued run that cannot start (its device is gone, say) ends 'failed' with ``error``."""
        status = self.status(run_id) or {"run_id": run_id, "models": []}
        now = time.time()
        status.update(state="failed", error=error, updated_at=now, finished_at=now)
        atomic_write_json(self.root / run_id / STATUS_FILE, status)

    def request_stop(self, run_id: str) -> None:
        """Ask the process that trains ``run_id`` (python train.py, say) to stop at its next check."""
        atomic_write_bytes(self.root / run_id / STOP_FILE, b"stop\n")

    def other_process_run(self) -> str | None:
        """The newest run that a live process other than this one is training, if any."""
        return next((run_id for run_id in self.run_ids() if self.trained_elsewhere(run_id)), None)

    def meta(self, run_id: str) -> dict:
        """{"starred", "note"} of a run (defaults if the user said nothing yet)."""
        run_dir = self.run_dir(run_id)
        meta = read_json(run_dir / META_FILE) if run_dir else None
        meta = meta if isinstance(meta, dict) else {}
        return {"starred": meta.get("starred") is True, "note": str(meta.get("note") or "")}

    def set_meta(self, run_id: str, **changes) -> dict:
        meta = {**self.meta(run_id), **changes}
        atomic_write_json(self.root / run_id / META_FILE, meta)
        return meta

    def trained_elsewhere(self, run_id: str) -> bool:
        """Whether another live process (python train.py) is training ``run_id``."""
        status = self.status(run_id) or {}
        pid = status.get("pid")
        return status.get("state") in ACTIVE_STATES and pid != os.getpid() and pid_alive(pid)

    def delete(self, run_id: str) -> None:
        shutil.rmtree(self.root / run_id, ignore_errors=True)

    def size_bytes(self) -> int:
        """Bytes of all files in the runs folder."""
        total = 0
        for folder, _, files in os.walk(self.root):
            for name in files:
                try:
                    total += os.stat(os.path.join(folder, name)).st_size
                except FileNotFoundError:
                    pass
        return total

    def cleanup(self, protect: set[str] = frozenset()) -> list[str]:
        """Delete all but the newest ``keep`` runs (0: keep all), never a protected (active), a
        starred or a queued one, or one another process trains."""
        removed = []
        if self.keep <= 0:
            return removed
        for run_id in self.run_ids()[self.keep:]:
            if (run_id in protect or self.trained_elsewhere(run_id) or self.meta(run_id)["starred"]
                    or (self.status(run_id) or {}).get("state") == QUEUED_STATE):
                continue
            shutil.rmtree(self.root / run_id, ignore_errors=True)
            removed.append(run_id)
        if removed:
            log.info("removed %d old run(s): %s", len(removed), ", ".join(removed))
        return removed
