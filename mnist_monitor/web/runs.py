"""The runs: listed, looked at (status, settings, metrics, files, CSV), resumed, cancelled,
stopped, starred or noted, and deleted. Thin routes over the run store and the training manager,
whose domain errors the error handlers turn into HTTP answers."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify, request, send_file

from mnist_monitor.config import reject_unknown
from mnist_monitor.export.metrics_csv import metrics_csv as metrics_csv_text
from mnist_monitor.runstore import BROKEN_STATE, METRIC_KINDS, NOTE_MAX, Run
from mnist_monitor.scheduling.manager import Refused
from mnist_monitor.web.access import is_student, may_read, own_run, readable_run, readable_snapshot
from mnist_monitor.web.common import (conditional_json, int_arg, json_body, manager, no_fields_body,
                                      reject_unknown_args, store)
from mnist_monitor.web.errors import BadRequest, NotFound
from mnist_monitor.web.quota import check_new_run
from mnist_monitor.web.views import compact, run_summary, status_view

bp = Blueprint("runs", __name__)
METRICS_PAGE_ROWS = 5000  # metrics rows in one answer (~0.7 MB); the page asks again from "next"



@bp.post("/runs/<run_id>/resume")
def resume_run(run_id):
    """Go on with a stopped, failed or interrupted run from its last epoch-end checkpoints."""
    own_run(run_id)
    no_fields_body()
    check_new_run(None, queue=False)  # a student's limits: it trains again
    return jsonify({"run_id": manager().resume(run_id), "state": "starting"}), 202


@bp.post("/runs/<run_id>/cancel")
def cancel_run(run_id):
    """Take a queued run out of the queue."""
    own_run(run_id)
    no_fields_body()
    manager().cancel(run_id)
    return jsonify({"run_id": run_id, "state": "cancelled"})


@bp.post("/runs/<run_id>/stop")
def stop_run(run_id):
    """Stop one run at its next batch (resumable from its last epoch end)."""
    own_run(run_id)
    no_fields_body()
    return jsonify({"run_id": manager().stop(run_id), "state": "stopping"}), 200


@bp.get("/runs")
def runs():
    listing = [run_summary(s) for s in store().snapshots() if may_read(s.owner)]
    return conditional_json({"runs": listing, "keep_runs": store().keep, "runs_bytes": store().size_bytes()})


@bp.post("/runs/<run_id>/meta")
def run_meta(run_id):
    """Star a run (starred runs survive --keep-runs) or give it a short note."""
    run = own_run(run_id)
    body = json_body()
    reject_unknown(body, {"starred", "note"})
    if "starred" in body and not isinstance(body["starred"], bool):
        raise BadRequest("starred: must be true or false", field="starred")
    if "note" in body and (not isinstance(body["note"], str) or len(body["note"]) > NOTE_MAX):
        raise BadRequest(f"note: must be text of at most {NOTE_MAX} characters", field="note")
    try:
        return jsonify({"run_id": run_id, **run.set_meta(**body)})
    except FileNotFoundError:  # deleted meanwhile
        raise NotFound(f"no run {run_id!r}") from None


@bp.delete("/runs/<run_id>")
def delete_run(run_id):
    """Delete a run and all its files; never one that trains, nor a student's handed-in run (but by the teacher)."""
    run = own_run(run_id)
    if is_student() and run.meta()["handed_in_at"]:
        raise Refused(f"run {run_id} is handed in: withdraw it first (hand-ins are kept for the teacher)")
    manager().delete(run_id)
    return jsonify({"run_id": run_id, "deleted": True})


@bp.get("/runs/<run_id>/config")
def run_config(run_id):
    """The run's config.json: a request body that repeats the run."""
    snapshot = readable_snapshot(run_id)
    if snapshot.config is None:
        raise NotFound(f"run {run_id!r} has no readable config" + (f" ({snapshot.problem})" if snapshot.problem else ""))
    return jsonify(snapshot.config)


@bp.get("/runs/<run_id>/metrics")
def run_metrics(run_id):
    """Metrics rows from row ``since`` on (at most ``limit`` rows looked at), only those of the
    ``kind``s asked for (comma-separated; default all), and the row to ask from next. ``version``
    changes when the file is replaced (a resume drops the rows of the epoch it trains again): a
    reader that sends the version its ``since`` counts in gets the rows from row 0 if it changed."""
    reject_unknown_args({"since", "limit", "kind", "version"})
    since = int_arg("since", 0)
    known_version = request.args.get("version")  # as the last answer gave it
    limit = int_arg("limit", METRICS_PAGE_ROWS, low=1, high=METRICS_PAGE_ROWS)
    kinds = set(request.args.get("kind", ",".join(METRIC_KINDS)).split(","))
    if not kinds <= set(METRIC_KINDS):
        raise BadRequest(f"kind: must be one or more of {', '.join(METRIC_KINDS)}, comma-separated", field="kind")
    rows, inode = store().metrics.read(readable_run(run_id))
    version = str(inode)  # text: an inode can be beyond the integers a browser's numbers hold exactly
    if known_version is not None and known_version != version:
        since = 0  # the rows the reader counted are gone: it gets the file from the start
    if since > len(rows):
        raise BadRequest(f"since: the run has {len(rows)} metrics rows, so since must be at most that",
                         field="since")
    page = rows[since:since + limit]
    return conditional_json({"run_id": run_id, "rows": [compact(r) for r in page if r.get("kind") in kinds],
                             "next": since + len(page), "more": since + len(page) < len(rows), "version": version})


@bp.get("/runs/<run_id>")
def run_status(run_id):
    snapshot = readable_snapshot(run_id)
    if snapshot.status is None and snapshot.state != BROKEN_STATE:
        raise NotFound(f"run {run_id!r} has no status yet")
    return conditional_json(status_view(snapshot))


@bp.get("/runs/<run_id>/files/<name>")
def run_file(run_id, name):
    run = readable_run(run_id)
    path = run.served_file(name)
    if path is None:
        raise NotFound(f"no file {name!r} in run {run_id!r}")
    try:  # send_file opens the file here: once open, a deletion cannot cut the answer short
        if name.endswith(".pt"):  # saved as e.g. <run>-model1-best.pt: models count from 1, as on the page
            return send_file(path, mimetype="application/octet-stream", as_attachment=True,
                             download_name=Run.checkpoint_download_name(run_id, name), max_age=0)
        if name.endswith(".json"):
            return send_file(path, mimetype="application/json", max_age=0, etag=True, conditional=True)
        response = send_file(path, mimetype="image/png", max_age=0, etag=True, conditional=True)
    except FileNotFoundError:
        raise NotFound(f"no file {name!r} in run {run_id!r} (it was removed)") from None
    if request.args.get("v"):  # versioned URL: the content at this URL never changes
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    return response


@bp.get("/runs/<run_id>/metrics.csv")
def metrics_csv(run_id):
    """The run's metrics as CSV (training windows and evaluations, a column a number)."""
    run = readable_run(run_id)
    return Response(metrics_csv_text(run, readable_snapshot(run_id).config), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{run_id}-metrics.csv"'})

