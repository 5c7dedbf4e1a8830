"""Runs carried out of the server and into it: a run as one zip (out and in), several runs'
metrics as one CSV, and (a class's teacher) every hand-in as one zip. Thin: the zips are
``export.run_zip``'s, the CSV ``export.runs_csv``'s."""
from __future__ import annotations

import shutil
import tempfile
import zipfile

from flask import Blueprint, Response, current_app, jsonify, request, send_file

from mnist_monitor.export.run_zip import AlreadyHere, ImportRefused, NotExportable, export_zip, import_zip
from mnist_monitor.export.runs_csv import runs_csv
from mnist_monitor.runstore.files import write_error
from mnist_monitor.scheduling.manager import Refused
from mnist_monitor.web.access import may_read, new_owner, readable_run, require_teacher
from mnist_monitor.web.classroom import the_class
from mnist_monitor.web.common import store
from mnist_monitor.web.errors import BadRequest, Conflict, UnsupportedMediaType
from mnist_monitor.web.quota import my_limits, my_runs

bp = Blueprint("carry", __name__)
ZIP = "application/zip"


def zip_answer(write, name: str) -> Response:
    """A zip made into a temporary file by ``write(file)``, sent as ``name``."""
    spool = tempfile.TemporaryFile()
    try:
        write(spool)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return send_file(spool, mimetype=ZIP, as_attachment=True, download_name=name, max_age=0)


@bp.get("/runs/<run_id>/export.zip")
def export_run(run_id):
    """The run folder whole as a zip (checkpoints included); 409 while the run has not ended."""
    readable_run(run_id)
    try:
        return zip_answer(lambda out: export_zip(store(), run_id, out), f"{run_id}.zip")
    except NotExportable as exc:
        raise Conflict(str(exc)) from None


@bp.post("/runs/import")
def import_run():
    """A run exported as a zip (the body, Content-Type application/zip, up to 256 MiB) made a run here."""
    if request.mimetype != ZIP:
        raise UnsupportedMediaType(f"Content-Type must be {ZIP}: the body is a run's export.zip")
    length = request.content_length
    if length is None:
        raise BadRequest("body: send the zip with its Content-Length", field="body")
    check_room(length)
    with tempfile.NamedTemporaryFile(suffix=".zip") as upload:
        try:
            shutil.copyfileobj(request.stream, upload, 1 << 20)
            upload.flush()
        except OSError as exc:
            raise write_error(exc, upload.name) from None
        try:
            run_id = import_zip(upload.name, store(), new_owner().get("owner"),
                                sweep_known=lambda sweep_id: current_app.extensions["sweeps"].get(sweep_id) is not None)
        except ImportRefused as exc:
            raise BadRequest(f"body: {exc}", field="body") from None
        except AlreadyHere as exc:
            raise Conflict(str(exc)) from None
        except OSError as exc:
            raise write_error(exc, store().root) from None
    return jsonify({"run_id": run_id}), 201


def check_room(length: int) -> None:
    """A student's disk limit holds the import too (409 before the upload is read)."""
    limits = my_limits()
    if limits is None or limits["disk_mb"] is None:
        return
    used = store().runs_bytes(my_runs()[0]) / 1e6
    if used + length / 1e6 > limits["disk_mb"]:
        raise Refused(f"your runs take {used:,.0f} MB and this zip {length / 1e6:,.1f} MB; your limit is "
                      f"{limits['disk_mb']:,} MB: delete some runs, or ask your teacher for more")


@bp.get("/runs.csv")
def all_runs_csv():
    """Every readable run's metrics (or those of ?runs=a,b) as one CSV, each row with its run's settings."""
    asked = request.args.get("runs")
    if asked is None:
        run_ids = [s.run_id for s in store().snapshots() if may_read(s.owner)]
    else:
        run_ids = [r for r in asked.split(",") if r]
        if not run_ids or len(run_ids) > 500:
            raise BadRequest("runs: name 1 to 500 runs, comma-separated (or leave it out for all)", field="runs")
        for run_id in run_ids:
            readable_run(run_id)  # 404 or 403 naming it
    runs = [store().run(r) for r in run_ids]
    name = "metrics-of-all-runs.csv" if asked is None else (f"metrics-of-{run_ids[0]}.csv" if len(run_ids) == 1
                                                            else f"metrics-of-{len(run_ids)}-runs.csv")
    return Response(runs_csv([r for r in runs if r is not None]), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@bp.get("/class/hand_ins.zip")
def hand_ins():
    """The teacher's: every handed-in run's export.zip, one zip a run, named by its student."""
    roster = the_class()  # 404 without a class
    require_teacher()  # 403 to a student
    handed = [s for s in store().snapshots() if s.meta.get("handed_in_at")]

    def write(out):
        with zipfile.ZipFile(out, "w") as archive:
            for snap in handed:
                student = roster.name_of(snap.owner) if snap.owner else "teacher"
                with tempfile.TemporaryFile() as one:
                    try:
                        export_zip(store(), snap.run_id, one)
                    except NotExportable:
                        continue
                    one.seek(0)
                    with archive.open(f"{safe(student)}-{snap.run_id}.zip", "w") as target:
                        shutil.copyfileobj(one, target, 1 << 20)

    return zip_answer(write, "hand-ins.zip")


def safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:60] or "student"
