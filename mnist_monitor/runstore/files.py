"""Writing and reading small files so that a crash or a concurrent reader never sees half of one.

No file names here: the run folder's layout lives in ``runstore.run``.
"""
from __future__ import annotations

import errno
import json
import math
import os
import tempfile
from pathlib import Path

TEMP_SUFFIX = ".tmp"  # atomic writes go through '.<name>.<random>.tmp' in the same folder


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


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(x) for k, x in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(x) for x in value]
    return value


def _refuse(value):
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def to_json(obj) -> str:
    """Strict JSON: NaN and infinity become null (browsers refuse them)."""
    return json.dumps(_finite(obj), default=_refuse, allow_nan=False, separators=(",", ":"))


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the platform can open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, durable: bool = True) -> None:
    """Write to a temp file in the same folder, then rename it over ``path``: a reader sees the old
    file or the new one, never half of either. ``durable``: fsync the file and the folder, so the
    new content survives a power cut (a heartbeat, rewritten every second, skips that)."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".", suffix=TEMP_SUFFIX)
    except OSError as exc:
        raise write_error(exc, path) from exc
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
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
    if durable:
        fsync_folder(path.parent)


def atomic_write_json(path, obj, durable: bool = True) -> None:
    atomic_write_bytes(path, to_json(obj).encode(), durable)


def append_jsonl(path, rows: list[dict], sync: bool = False) -> None:
    """Append whole lines in one write, so a crash leaves at most one torn last line; ``sync``: on
    disk on return (before a checkpoint that covers them). A write that fails (a full disk) is cut
    back off: the file keeps exactly the lines it had."""
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
                if sync:
                    os.fsync(fd)
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


class Unreadable(ValueError):
    """A file exists but is not what it should be (not JSON, or not of the expected shape)."""


def read_json(path):
    """The parsed file, or None if it does not exist; Unreadable if it is not JSON."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        why = "it is empty" if not data.strip() else f"{exc.msg.lower()} at character {exc.pos + 1} of {len(data)}"
        raise Unreadable(f"{Path(path).name} is damaged, not valid JSON: {why}") from None
    except UnicodeDecodeError:
        raise Unreadable(f"{Path(path).name} is damaged, not text") from None


def read_json_object(path) -> dict | None:
    """A JSON object file, or None if it does not exist; Unreadable if it is anything else."""
    value = read_json(path)
    if value is not None and not isinstance(value, dict):
        raise Unreadable(f"{Path(path).name} holds a JSON {type(value).__name__}, not an object")
    return value


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
