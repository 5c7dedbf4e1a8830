"""A run folder carried out of its runs folder and into another: which of its files travel, and a
folder from elsewhere read back strictly (a damaged file is an error naming it, where the server's
own readers forgive what a crash leaves behind), then made ready to be moved in."""
from __future__ import annotations

import os
from pathlib import Path

from mnist_monitor.runstore.files import Unreadable, atomic_write_json, parse_jsonl, read_json_object
from mnist_monitor.runstore.records import RecordError, RunStatus
from mnist_monitor.runstore.run import (CLAIM_FILE, CONFIG_FILE, CURVES_IMAGE, EPOCH_IMAGES, FACTS_FILE,
                                        HEARTBEAT_FILE, LOCK_FILE, META_FILE, METRICS_FILE, RESERVE_FILE, SERVED_FILES,
                                        STATUS_FILE, STOP_FILE, Run, checkpoint_parts, image_name)

RECORDS = (CONFIG_FILE, FACTS_FILE, STATUS_FILE, METRICS_FILE, META_FILE)
CARRIED_FILES = frozenset(RECORDS) | SERVED_FILES  # what travels: settings, facts, status, metrics, notes, files
MACHINERY = frozenset((CLAIM_FILE, HEARTBEAT_FILE, STOP_FILE, LOCK_FILE, RESERVE_FILE))  # only a trainer reads these
REQUIRED = (CONFIG_FILE, STATUS_FILE)


def travels(name: str) -> bool | None:
    """True: a file that travels with the run; False: one left behind (the machinery's, a temporary
    file); None: no file a run folder has."""
    if name in CARRIED_FILES:
        return True
    if name in MACHINERY or (name.startswith(".") and name.endswith(".tmp")):
        return False
    return None


def carried_files(folder: Path) -> list[Path]:
    """The plain files of a run folder that travel, by name."""
    return [folder / name for name in sorted(os.listdir(folder))
            if travels(name) and (folder / name).is_file() and not (folder / name).is_symlink()]


def read_strictly(folder: Path) -> dict:
    """{file name: its JSON object} of every JSON record, the status checked as a RunStatus and the
    metrics as whole rows; RecordError naming the first file that is missing or damaged."""
    for name in REQUIRED:
        if not (folder / name).is_file():
            raise RecordError(f"no {name}: not a run folder")
    records = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".json"):
            try:
                records[name] = read_json_object(folder / name)
            except Unreadable as exc:
                raise RecordError(f"{name}: {exc}") from None
            if records[name] is None:
                raise RecordError(f"{name}: empty")
    try:
        RunStatus.from_dict(records[STATUS_FILE])
    except (RecordError, TypeError, ValueError) as exc:
        raise RecordError(f"{STATUS_FILE}: {exc}") from None
    if (folder / METRICS_FILE).is_file():
        data = (folder / METRICS_FILE).read_bytes()
        rows, end = parse_jsonl(data)  # (it skips a line that is not an object: here each must be one)
        if end != len(data) or len(rows) != sum(1 for line in data.splitlines() if line.strip()):
            raise RecordError(f"{METRICS_FILE}: a line that is not a metrics row")
    return records


def checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(model index, path) of each checkpoint in the folder."""
    return [(checkpoint_parts(p.name)[0], p) for p in sorted(folder.glob("model*_*.pt"))]


def pictures(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.png"))


def model_pictures(run: Run, index: int) -> list[tuple[str, Path]]:
    """(kind, path) of the pictures a run has of model ``index``, the run's curves with model 0's."""
    names = [(CURVES_IMAGE, image_name(CURVES_IMAGE))] if index == 0 else []
    names += [(kind, image_name(kind, index)) for kind in EPOCH_IMAGES]
    return [(kind, path) for kind, name in names if (path := run.served_file(name)) is not None]


def config_of(records: dict) -> dict:
    return records[CONFIG_FILE]


def status_of(records: dict) -> RunStatus:
    return RunStatus.from_dict(records[STATUS_FILE])


def facts_of(records: dict) -> dict:
    return records.get(FACTS_FILE) or {}


def rewrite(folder: Path, records: dict, facts: dict, status: dict) -> None:
    """The records of a folder to be moved in: its facts and status as given, its notes without a
    hand-in (a run is handed in where it is, not carried handed in)."""
    atomic_write_json(folder / FACTS_FILE, facts)
    atomic_write_json(folder / STATUS_FILE, status)
    if META_FILE in records:
        atomic_write_json(folder / META_FILE, {k: v for k, v in records[META_FILE].items() if k in ("starred", "note")})
