"""A run as one zip, out and in.

Out: the run folder whole (its settings, facts, status, metrics, notes, pictures and checkpoints),
under a folder named by the run id, without what only the training machinery reads (its claim,
heartbeat, stop request, lock and temporary files). Only a run that has ended: a training run's
files change while they are read, and its latest checkpoint may be a moment behind its metrics.

In: a zip from anywhere is untrusted. It is read into a temporary folder inside the runs folder
(its name is no run id, so no listing sees it) and moved in, under the run's id (a new one when
that is taken), only once every file passed; anything wrong is an ImportRefused naming it, and the
temporary folder goes. Checked: names (no absolute path, no "..", no link, only the files a run
folder has), sizes (each file, the whole, the compression ratio: no zip bomb), and each file read
back as the server would read it (JSON and metrics rows through the run store's readers, the
status as a RunStatus, the config as a start body, PNG pictures decoded, checkpoints loaded as
weights only, their tensors' shapes those of the models the config names).
"""
from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
import time
import zipfile
from pathlib import Path, PurePosixPath

from mnist_monitor.config import ConfigError, parse_train_config
from mnist_monitor.runstore import FINAL_STATES, RUN_ID_PATTERN, RecordError, RunStatus, RunStore, new_run_id
from mnist_monitor.runstore import carry

MAX_ENTRIES = 64  # a run of four models has 5 records, 1 + 16 pictures, 8 checkpoints, 4 matrices
MAX_ZIP_BYTES = 256 * 2**20  # the upload
MAX_TOTAL_BYTES = 1024 * 2**20  # unpacked
MAX_RATIO = 200  # unpacked / packed, per file over 1 MiB (metrics rows compress about 10 to 1)
FILE_CAPS = {".json": 2 * 2**20, ".jsonl": 256 * 2**20, ".png": 16 * 2**20, ".pt": 256 * 2**20}
STALE_SECONDS = 3600  # a temporary import folder this old was left by a process that died importing
ACTIVE_ON_IMPORT = "interrupted"  # a run exported while it trained (by hand) comes in as cut off: resumable


class ImportRefused(Exception):
    """The zip is not a run this server can take; the message names the problem (400)."""


class AlreadyHere(Exception):
    """The same run is already in this runs folder (409); ``run_id`` names it."""

    def __init__(self, run_id: str):
        super().__init__(f"this run is already here, as run {run_id}: delete it first to import it again")
        self.run_id = run_id


class NotExportable(Exception):
    """The run has not ended (409)."""


# ---------------------------------------------------------------- out

def export_zip(store: RunStore, run_id: str, out) -> None:
    """Write run ``run_id``'s folder as a zip to ``out`` (a binary file)."""
    snapshot = store.snapshot(run_id)
    if snapshot is None or snapshot.state not in FINAL_STATES:
        state = snapshot.state if snapshot else "gone"
        raise NotExportable(f"run {run_id} is {state}: a run is exported once it has ended (stop it first, or wait)")
    with zipfile.ZipFile(out, "w") as archive:
        for path in carry.carried_files(store.run(run_id).path):
            packed = zipfile.ZIP_STORED if path.suffix in (".png", ".pt") else zipfile.ZIP_DEFLATED  # already packed
            archive.write(path, f"{run_id}/{path.name}", compress_type=packed)


# ---------------------------------------------------------------- in

def import_zip(zip_path: str | os.PathLike, store: RunStore, owner: str | None = None,
               sweep_known=lambda sweep_id: False) -> str:
    """The id of the run the zip at ``zip_path`` became in ``store``. ``owner``: the student who
    imports it (a class); ``sweep_known``: whether a sweep id is one of this runs folder's (a link
    to any other is dropped). ImportRefused (400) or AlreadyHere (409), nothing left behind."""
    store.root.mkdir(parents=True, exist_ok=True)
    for stale in store.root.glob(".import-*"):  # left by a process killed in the middle of an import
        with contextlib.suppress(OSError):
            if time.time() - stale.stat().st_mtime > STALE_SECONDS:
                shutil.rmtree(stale, ignore_errors=True)
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise ImportRefused("not a zip file: import a run's export.zip (the \"whole run\" link under a run's "
                            "status, or GET /runs/<id>/export.zip)") from None
    temp = store.root / f".import-{secrets.token_hex(6)}"
    try:
        with archive:
            original, members = check_names(archive)
            temp.mkdir()
            unpack(archive, members, temp)
        records, status = read_back(temp)
        run_id = place(store, temp, original, records, status, owner, sweep_known)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return run_id


def check_names(archive: zipfile.ZipFile) -> tuple[str | None, dict]:
    """(the run id the zip names, or None; {file name: ZipInfo}) after the names and sizes pass."""
    infos = archive.infolist()
    if len(infos) > MAX_ENTRIES:
        raise ImportRefused(f"{len(infos)} entries: a run folder has at most {MAX_ENTRIES} files")
    tops = set()
    members, total = {}, 0
    for info in infos:
        name = info.filename
        if "\\" in name or name.startswith("/") or PurePosixPath(name).is_absolute() or ":" in name.split("/")[0]:
            raise ImportRefused(f"{name!r}: an absolute path (a run's files are relative to its folder)")
        parts = PurePosixPath(name).parts
        if any(p in ("..", ".") for p in parts):
            raise ImportRefused(f"{name!r}: a path out of the run's folder")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ImportRefused(f"{name!r}: a link (a run folder holds plain files only)")
        if info.is_dir():
            if len(parts) != 1:
                raise ImportRefused(f"{name!r}: a folder inside the run's folder (a run folder has none)")
            tops.add(parts[0])
            continue
        if len(parts) > 2:
            raise ImportRefused(f"{name!r}: a folder inside the run's folder (a run folder has none)")
        if len(parts) == 2:
            tops.add(parts[0])
        base = parts[-1]
        kept = carry.travels(base)
        if kept is False:
            continue  # the machinery's files: not carried
        if kept is None:
            raise ImportRefused(f"{name!r}: a file a run folder does not have (is this a run's export.zip?)")
        total += check_size(info, base)
        members[base] = info
    if len(tops) > 1 or (tops and any(len(PurePosixPath(i.filename).parts) == 1 and not i.is_dir() for i in infos)):
        raise ImportRefused("the zip holds more than one folder: export one run a zip")
    if total > MAX_TOTAL_BYTES:
        raise ImportRefused(f"{total:,} bytes unpacked: a run is imported up to {MAX_TOTAL_BYTES:,}")
    top = tops.pop() if tops else None
    return (top if top and RUN_ID_PATTERN.fullmatch(top) else None), members


def check_size(info: zipfile.ZipInfo, base: str) -> int:
    cap = FILE_CAPS[Path(base).suffix]
    if info.file_size > cap:
        raise ImportRefused(f"{base}: {info.file_size:,} bytes, more than a run's {base} can be ({cap:,})")
    if info.file_size > 2**20 and info.file_size > MAX_RATIO * max(1, info.compress_size):
        raise ImportRefused(f"{base}: packed {MAX_RATIO} times or more (a zip bomb?)")
    return info.file_size


def unpack(archive: zipfile.ZipFile, members: dict, folder: Path) -> None:
    """Each file copied out counting its bytes (a header's size is not believed)."""
    for base, info in members.items():
        cap = min(FILE_CAPS[Path(base).suffix], info.file_size)
        written = 0
        try:
            with archive.open(info) as source, open(folder / base, "xb") as target:
                while chunk := source.read(1 << 20):
                    written += len(chunk)
                    if written > cap:
                        raise ImportRefused(f"{base}: longer than its entry says (a damaged or crafted zip)")
                    target.write(chunk)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError, RuntimeError) as exc:
            raise ImportRefused(f"{base}: cannot be unpacked ({exc})"[:200]) from None


def read_back(folder: Path) -> tuple[dict, RunStatus]:
    """Every file read as the server reads it, strictly; (the records, the status)."""
    try:
        records = carry.read_strictly(folder)
    except RecordError as exc:
        hint = " (export runs with the page's \"export\", or GET /runs/<id>/export.zip)" if "not a run" in str(exc) else ""
        raise ImportRefused(f"{exc}{hint}"[:300]) from None
    try:
        config = parse_train_config(carry.config_of(records))
    except ConfigError as exc:
        raise ImportRefused(f"config.json: the settings cannot be trained here ({exc})"[:300]) from None
    for path in carry.pictures(folder):
        check_png(path)
    for index, path in carry.checkpoints(folder):
        check_checkpoint(path, index, config)
    return records, carry.status_of(records)


def check_png(path: Path) -> None:
    from PIL import Image
    try:
        with Image.open(path) as image:
            if image.format != "PNG":
                raise ValueError(f"a {image.format} picture")
            image.verify()
    except Exception as exc:  # PIL raises many kinds for a damaged picture
        raise ImportRefused(f"{path.name}: not a PNG picture ({type(exc).__name__})") from None


def check_checkpoint(path: Path, index: int, config) -> None:
    """Weights only (torch refuses code), for a model the config has, with its layers' shapes."""
    import torch

    from model import MNISTNet
    if index >= len(config.models):
        raise ImportRefused(f"{path.name}: a checkpoint of model {index + 1}, and the run has {len(config.models)}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        weights = checkpoint["state_dict"]
    except Exception as exc:  # pickled code, a damaged file, another format: torch raises many kinds
        raise ImportRefused(f"{path.name}: not a checkpoint of weights ({type(exc).__name__})") from None
    with torch.device("meta"):
        expected = MNISTNet(list(config.models[index].kernels)).state_dict()
    if not isinstance(weights, dict) or set(weights) != set(expected) or any(
            not isinstance(weights[k], torch.Tensor) or weights[k].shape != expected[k].shape for k in expected):
        raise ImportRefused(f"{path.name}: its weights are not the shapes of model {index + 1}'s layers "
                            f"(kernels {list(config.models[index].kernels)})")


def place(store: RunStore, temp: Path, original: str | None, records: dict, status: RunStatus, owner: str | None,
          sweep_known) -> str:
    """Records made the importer's, then the folder moved in under a free id."""
    facts = carry.facts_of(records)
    came_from = (facts.get("imported") or {}).get("from_run_id") or original
    for run_id in store.run_ids():  # the same run (by its id and its start) already here
        if run_id in (original, came_from):
            other = store.snapshot(run_id)
            if other is not None and other.status is not None and other.status.started_at == status.started_at:
                raise AlreadyHere(run_id)
    facts = {k: v for k, v in facts.items() if k != "owner"}
    if owner:
        facts["owner"] = owner
    sweep = facts.get("sweep")
    if isinstance(sweep, dict) and not sweep_known(sweep.get("sweep_id")):
        facts.pop("sweep")  # a trial of a sweep that is not here: a run of its own
    facts["imported"] = {"at": time.time(), "from_run_id": came_from}
    data = status.to_dict()
    if status.state not in FINAL_STATES:
        data["state"] = ACTIVE_ON_IMPORT
        data["error"] = data.get("error") or f"exported while it was {status.state}: imported as cut off"
    run_id = original if original and store.run(original) is None else new_run_id(after=next(iter(store.run_ids()), ""))
    for _ in range(3):  # another import (or a new run) took the id in between: a new one
        data["run_id"] = run_id
        carry.rewrite(temp, records, facts, data)
        try:
            os.rename(temp, store.root / run_id)
            return run_id
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            run_id = new_run_id(after=next(iter(store.run_ids()), ""))
    raise OSError(errno.EEXIST, f"no free run id in {store.root}")
