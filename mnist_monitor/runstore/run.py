"""One run folder: the only code that knows its file names and reads or writes them.

runs/<run_id>/config.json          the config as a request body (post it back to repeat the run)
runs/<run_id>/run.json             facts recorded beside it: device, precision, versions, seed scheme; the
                                   sweep it is a trial of and (in a class) the student who owns it
runs/<run_id>/status.json          current state (RunStatus), replaced atomically
runs/<run_id>/metrics.jsonl        append-only, one metrics row (METRIC_COLUMNS) a line
runs/<run_id>/meta.json            what the user says of the run: {"starred": bool, "note": str, "handed_in_at"}
runs/<run_id>/claim.json           which attempt trains it (Claim), written at each start and resume
runs/<run_id>/heartbeat.json       the trainer's heartbeat (Beat), replaced every second while it trains
runs/<run_id>/stop.request         asks the trainer to stop; removed when the run ends or is resumed
runs/<run_id>/curves.png           charts, replaced atomically
runs/<run_id>/<kind>_m<i>.png      epoch-end images of model i (EPOCH_IMAGES)
runs/<run_id>/model<i>_<kind>.pt   checkpoints of model i (CHECKPOINT_KINDS)
runs/<run_id>/confusion_m<i>.json  model i's test confusion matrix at the last epoch end

The trainer writes through an ``Attempt`` (its claim checked before each write, so a trainer that
wakes up after another has resumed the run writes nothing); the server reads through
``runstore.snapshot``, which decides the state shown (interrupted, stopping, broken) in one place.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import os
import secrets
import shutil
import time
from pathlib import Path

from mnist_monitor.runstore.files import (Unreadable, append_jsonl, atomic_write_bytes, atomic_write_json, read_json,
                                          read_json_object, read_jsonl, rewrite_jsonl)
from mnist_monitor.runstore.liveness import Beat, Claim, Heartbeat, beat_from
from mnist_monitor.runstore.records import FINAL_STATES, RecordError, RunStatus

CONFIG_FILE, STATUS_FILE, METRICS_FILE = "config.json", "status.json", "metrics.jsonl"
FACTS_FILE = "run.json"
META_FILE = "meta.json"
CLAIM_FILE, HEARTBEAT_FILE = "claim.json", "heartbeat.json"
STOP_FILE = "stop.request"
LOCK_FILE = ".lock"  # empty: the folder's lock is an flock on it
# Disk space kept for the run's final status while a trainer holds it: a run that fails because the
# disk is full could not write the status that says so (it read 'interrupted', the reason lost).
RESERVE_FILE, RESERVE_BYTES = ".space-reserve", 64 * 1024  # a status.json is a few KB; its temp file too
CURVES_IMAGE = "curves"  # run-level image: curves.png
EPOCH_IMAGES = ("samples", "errors", "confusion", "filters")  # per model, redrawn at every epoch end
CHECKPOINT_KINDS = ("latest", "best")  # latest epoch end (with what a resume needs); best validation accuracy
MAX_MODELS_SERVED = 4  # models per run whose files are served (the config allows no more)
NOTE_MAX = 200  # characters of a run's note
CREATING_SECONDS = 60  # a folder without status.json younger than this is being created, not broken
UNRECORDED_SEED_SCHEME = 1  # the seed scheme of a config.json written before the scheme was recorded in it


def checkpoint_name(model_index: int, kind: str) -> str:
    return f"model{model_index}_{kind}.pt"


def checkpoint_parts(name: str) -> tuple[int, str]:
    """'model1_best.pt' -> (1, 'best')."""
    stem, kind = name[:-len(".pt")].split("_")
    return int(stem[len("model"):]), kind


def image_name(kind: str, model_index: int | None = None) -> str:
    """'curves.png' for the run, 'samples_m0.png' for an epoch image of model 0."""
    return f"{kind}.png" if model_index is None else f"{kind}_m{model_index}.png"


def confusion_name(model_index: int) -> str:
    return f"confusion_m{model_index}.json"


# Every file the server may serve from a run folder: exactly the names the worker writes.
SERVED_FILES = frozenset(
    [image_name(CURVES_IMAGE)]
    + [image_name(kind, i) for i in range(MAX_MODELS_SERVED) for kind in EPOCH_IMAGES]
    + [checkpoint_name(i, kind) for i in range(MAX_MODELS_SERVED) for kind in CHECKPOINT_KINDS]
    + [confusion_name(i) for i in range(MAX_MODELS_SERVED)])


def owner_in(facts: dict) -> str | None:
    """The id of the student who owns a run, from its facts (run.json); None: the teacher's, or no class."""
    owner = facts.get("owner")
    return owner if isinstance(owner, str) and owner else None


class Superseded(RuntimeError):
    """Another attempt has claimed the run since this trainer started: it must not write."""


class Run:
    """One run folder (``path``; its name is the run id)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.run_id = self.path.name

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    def _file(self, name: str) -> Path:
        return self.path / name

    def _plain(self, name: str) -> Path:
        """A file to read, refused (Unreadable) if it is a symlink: it could point at any file."""
        path = self._file(name)
        if path.is_symlink():
            raise Unreadable(f"{name} is a symbolic link, not a file the trainer wrote")
        return path

    # ---------------------------------------------------------------- reading
    def config(self) -> dict:
        """config.json with its seed scheme (posted back, it repeats the run); RecordError if unreadable."""
        try:
            config = read_json_object(self._plain(CONFIG_FILE))
        except Unreadable as exc:
            raise RecordError(str(exc)) from None
        if config is None:
            raise RecordError("config.json is missing")
        return {**config, "seed_scheme": config.get("seed_scheme", UNRECORDED_SEED_SCHEME)}

    def has_config(self) -> bool:
        return self._file(CONFIG_FILE).is_file()

    def facts(self) -> dict:
        """run.json ({} if it is missing or unreadable: the facts are for the record, not for training)."""
        try:
            return read_json_object(self._plain(FACTS_FILE)) or {}
        except Unreadable:
            return {}

    def status(self) -> RunStatus | None:
        """status.json as written (None if there is none yet); RecordError if it breaks the contract."""
        try:
            data = read_json(self._plain(STATUS_FILE))
        except Unreadable as exc:
            raise RecordError(str(exc)) from None
        return None if data is None else RunStatus.from_dict(data)

    def meta(self) -> dict:
        """{"starred", "note", "handed_in_at"} (defaults if nothing was said yet or the file is unreadable)."""
        try:
            meta = read_json_object(self._plain(META_FILE)) or {}
        except Unreadable:
            meta = {}
        handed_in = meta.get("handed_in_at")  # in a class: when its owner handed it in (None: not handed in)
        return {"starred": meta.get("starred") is True, "note": str(meta.get("note") or ""),
                "handed_in_at": handed_in if isinstance(handed_in, (int, float)) else None}

    def metrics(self) -> list[dict]:
        return read_jsonl(self._file(METRICS_FILE))

    def open_metrics(self):
        """metrics.jsonl opened for reading in binary (FileNotFoundError if there is none yet)."""
        return open(self._file(METRICS_FILE), "rb")

    def served_file(self, name: str) -> Path | None:
        """A file the server may send (one the worker writes), only a plain file in the folder."""
        if name not in SERVED_FILES:
            return None
        path = self._file(name)
        if path.is_symlink() or not path.is_file() or path.resolve().parent != self.path.resolve():
            return None
        return path

    def checkpoint(self, index: int, kind: str) -> Path | None:
        return self.served_file(checkpoint_name(index, kind))

    @staticmethod
    def checkpoint_download_name(run_id: str, name: str) -> str:
        """The name a checkpoint is saved under: '<run>-model1-best.pt' (models count from 1, as on the page)."""
        index, kind = checkpoint_parts(name)
        return f"{run_id}-model{index + 1}-{kind}.pt"

    def files(self) -> dict[str, int]:
        """{name: mtime in ns} of the served files that exist."""
        files = {}
        for entry in os.scandir(self.path):
            if entry.name in SERVED_FILES and entry.is_file(follow_symlinks=False):
                try:
                    files[entry.name] = entry.stat().st_mtime_ns
                except FileNotFoundError:  # replaced or removed between listing and stat
                    pass
        return files

    def stop_requested(self) -> bool:
        return self._file(STOP_FILE).exists()

    def claim(self) -> Claim | None:
        try:
            data = read_json_object(self._plain(CLAIM_FILE))
            return Claim(**data) if data is not None else None
        except (Unreadable, TypeError):
            return None

    def beat(self) -> Beat | None:
        try:
            return beat_from(read_json(self._plain(HEARTBEAT_FILE)))
        except Unreadable:
            return None

    def change_key(self) -> tuple:
        """Changes whenever a file of the run is replaced (the folder's mtime) or status.json is
        rewritten (its mtime, inode and size: two replacements can fall in one tick of the clock)."""
        try:
            stat = os.stat(self._file(STATUS_FILE))
        except FileNotFoundError:
            return os.stat(self.path).st_mtime_ns, None
        return os.stat(self.path).st_mtime_ns, (stat.st_mtime_ns, stat.st_ino, stat.st_size)

    @contextlib.contextmanager
    def locked(self):
        """Hold the folder's lock (an flock on its lock file, opened for writing: over NFS an
        exclusive lock needs that, and one on a folder opened read-only is refused or not shared),
        so that a delete, a start, a resume's claim and a meta update happen one at a time,
        whichever process does them (the server, python train.py). FileNotFoundError if the folder
        is gone, also if it went while waiting."""
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)  # FileNotFoundError: no folder
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_nlink == 0:  # deleted (and perhaps made again) by the one who held the lock before
                raise FileNotFoundError(errno.ENOENT, "the run folder was deleted", str(self.path))
            yield self
        finally:
            os.close(fd)  # releases the lock

    def age_seconds(self) -> float:
        return time.time() - os.stat(self.path).st_mtime

    # ---------------------------------------------------------------- writing (not by a trainer)
    def write_config(self, body: dict, facts: dict | None = None) -> None:
        """config.json, and (a sweep's trial, before it starts) the first facts, which the trainer adds to."""
        if facts:
            atomic_write_json(self._file(FACTS_FILE), facts)
        atomic_write_json(self._file(CONFIG_FILE), body)

    def write_status(self, status: RunStatus | dict) -> None:
        atomic_write_json(self._file(STATUS_FILE), status.to_dict() if isinstance(status, RunStatus) else status)

    def set_meta(self, **changes) -> dict:
        """Change what the user says of the run (read, change, write under the folder's lock: two
        updates at once both count). FileNotFoundError if the run was deleted."""
        with self.locked():
            meta = {**self.meta(), **changes}
            atomic_write_json(self._file(META_FILE), meta)
        return meta

    def request_stop(self) -> None:
        """Ask the trainer of this run, in whatever process or host, to stop at its next check."""
        atomic_write_bytes(self._file(STOP_FILE), b"stop\n")

    def clear_stop(self) -> None:
        try:
            os.unlink(self._file(STOP_FILE))
        except FileNotFoundError:
            pass

    def write_picture(self, kind: str, model_index: int | None, png: bytes) -> None:
        """curves.png (``model_index`` None) or an epoch picture of a model (EPOCH_IMAGES)."""
        name = image_name(kind, model_index)
        if name not in SERVED_FILES:
            raise ValueError(f"no picture {kind!r} of model {model_index} in a run folder")
        atomic_write_bytes(self._file(name), png)

    def delete(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def temp_files(self) -> list[Path]:
        """Temp files of atomic writes (a crash can leave them behind)."""
        return list(self.path.glob(".*.tmp"))

    def hold(self, on_taken) -> Heartbeat:
        """Hold the run for a trainer on its way (a Ray task not begun yet) with a claim and beats of
        this process, until a trainer claims it (``on_taken`` is called) or ``stop()``."""
        claim = Claim(0, secrets.token_hex(8), time.time())
        atomic_write_json(self._file(CLAIM_FILE), dataclasses.asdict(claim))
        self.clear_stop()
        return Heartbeat(claim, self.claim, lambda beat: atomic_write_json(
            self._file(HEARTBEAT_FILE), beat.to_dict(), durable=False), on_taken, handover=True).start()

    def start_attempt(self, attempt: int, owner: str, on_superseded) -> "Attempt":
        """Claim the run for a trainer (attempt 1 at the start, +1 at each resume) and start its
        heartbeat; a stop request left from before is removed."""
        self.path.mkdir(parents=True, exist_ok=True)
        claim = Claim(attempt, owner, time.time())
        atomic_write_json(self._file(CLAIM_FILE), dataclasses.asdict(claim))
        self.clear_stop()
        heartbeat = Heartbeat(claim, self.claim, lambda beat: atomic_write_json(
            self._file(HEARTBEAT_FILE), beat.to_dict(), durable=False), on_superseded)
        return Attempt(self, claim, heartbeat.start())


def reserve_space(path: Path) -> None:
    """Take RESERVE_BYTES of disk at ``path`` (real bytes, not a sparse file); nothing if the disk
    has no room for them already."""
    try:
        with open(path, "wb") as f:
            f.write(bytes(RESERVE_BYTES))
            f.flush()
            os.fsync(f.fileno())
    except OSError:
        path.unlink(missing_ok=True)


class Attempt:
    """A trainer's hold on a run: every write checks first that the claim is still its own."""

    def __init__(self, run: Run, claim: Claim, heartbeat: Heartbeat):
        self.run, self.claim, self.heartbeat = run, claim, heartbeat
        reserve_space(run.path / RESERVE_FILE)

    def check(self) -> None:
        current = self.run.claim()
        if current is not None and current.owner != self.claim.owner:
            raise Superseded(f"run {self.run.run_id} was resumed elsewhere (attempt {current.attempt}); "
                             f"attempt {self.claim.attempt} stops without writing")

    def _path(self, name: str) -> Path:
        self.check()
        return self.run.path / name

    def write_config(self, body: dict) -> None:
        atomic_write_json(self._path(CONFIG_FILE), body)

    def write_facts(self, facts: dict) -> None:
        atomic_write_json(self._path(FACTS_FILE), facts)

    def write_status(self, status: dict) -> None:
        """The status; a final one that the full disk refuses is written into the space kept for it."""
        path = self._path(STATUS_FILE)
        try:
            atomic_write_json(path, status)
        except OSError as exc:
            reserve = self.run.path / RESERVE_FILE
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or status.get("state") not in FINAL_STATES \
                    or not reserve.exists():
                raise
            reserve.unlink()
            atomic_write_json(path, status)

    def append_metrics(self, rows: list[dict], sync: bool = False) -> None:
        append_jsonl(self._path(METRICS_FILE), rows, sync)

    def rewrite_metrics(self, rows: list[dict]) -> None:
        rewrite_jsonl(self._path(METRICS_FILE), rows)

    def write_checkpoint(self, index: int, kind: str, data: bytes) -> None:
        atomic_write_bytes(self._path(checkpoint_name(index, kind)), data)

    def write_confusion(self, index: int, table: dict) -> None:
        atomic_write_json(self._path(confusion_name(index)), table)

    def end(self) -> None:
        """The run has ended (its final status is written): no more beats, no stop request left."""
        self.heartbeat.stop()
        if self.run.claim() in (None, self.claim):
            self.run.clear_stop()
            (self.run.path / RESERVE_FILE).unlink(missing_ok=True)


