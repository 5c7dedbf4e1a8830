"""The JSON API: thin routes over the run folders (read through the run store) and the training
worker (whose domain errors the error handlers turn into HTTP answers)."""
from __future__ import annotations

import csv
import io

from flask import Blueprint, Response, current_app, jsonify, request, send_file

from apidoc import openapi_document
from config import ConfigError, form_settings, int_text, parse_kernels_text, parse_train_config, reject_unknown
from errors import BadRequest, NotFound
from model import describe
from plots import confusion_size, digit_grid_layout, digit_grid_size, filters_size
from predict import predict_request
from sweepspec import MAX_TRIALS
from recorder import ERROR_COUNT, SAMPLE_COUNT, planned_models
from runstore import (ACTIVE_STATES, BROKEN_STATE, FINAL_STATES, IDLE_STATE, METRIC_COLUMNS, METRIC_KINDS,
                      MODEL_STATUS_FIELDS, NOTE_MAX, QUEUED_STATE, RESUMABLE_STATES, RUN_STATUS_FIELDS, TABLE_KINDS,
                      Run, RunSnapshot, RunStore)
from runstore.records import run_id_time
from worker import TrainingManager

bp = Blueprint("api", __name__)
METRICS_PAGE_ROWS = 5000  # metrics rows in one answer (~0.7 MB); the page asks again from "next"
RUN_SETTINGS = ("epochs", "lr_schedule", "warmup", "label_smoothing", "precision", "train_samples", "seed",
                "device")  # of config.json
CSV_COLUMNS = tuple(c for c in METRIC_COLUMNS[:2] + ("name",) + METRIC_COLUMNS[2:]  # the model's name by its index
                    if c == "name" or any(c in METRIC_KINDS[kind] or c == "kind" for kind in TABLE_KINDS))
VIEW_FIELDS = tuple(key for key in RUN_STATUS_FIELDS if key != "pid")  # the status as answered


def file_url(run_id: str, name: str | None, versions: dict[str, int] | None = None) -> str | None:
    """The URL of a run's file; with ``versions`` (name -> mtime), one that changes with the file."""
    if name is None:
        return None
    return f"/runs/{run_id}/files/{name}" + (f"?v={versions[name]}" if versions else "")


def shown_models(s: RunSnapshot) -> list:
    """The models' status; for a run whose status cannot be read, its models as configured (so
    its curves, files and settings can still be looked at)."""
    if s.status is not None:
        return s.status.models
    try:
        return planned_models(parse_train_config(s.config)) if s.config else []
    except ConfigError:
        return []


def status_view(s: RunSnapshot) -> dict:
    """A run as the page sees it: its status, the URLs of its pictures and checkpoints, whether it
    can be resumed. A broken run says why in ``error``."""
    status = s.status
    view = {key: getattr(status, key) if status else None for key in VIEW_FIELDS}
    view.update(state=s.state, run_id=s.run_id, resumes=status.resumes if status else 0)
    if s.state == BROKEN_STATE:
        view.update(error=s.problem, started_at=run_id_time(s.run_id))
    view["models"] = []
    for i, model in enumerate(shown_models(s)):
        m = {key: getattr(model, key) for key in MODEL_STATUS_FIELDS}
        m["images"] = {kind: file_url(s.run_id, name, s.files) for kind, name in s.images(i).items()}
        m["checkpoint"] = file_url(s.run_id, s.checkpoint(i, "best"))
        m["confusion"] = file_url(s.run_id, s.confusion(i), s.files)
        view["models"].append(m)
    view["images"] = {"curves": file_url(s.run_id, s.curves(), s.files)} if s.curves() else {}
    view["resumable"] = s.resumable
    view["metrics_csv"] = f"/runs/{s.run_id}/metrics.csv"
    return view


def empty_view(state: str = IDLE_STATE, run_id: str | None = None) -> dict:
    """The status shape with nothing in it: no run yet, or a run whose status.json is not written yet."""
    view = {key: None for key in VIEW_FIELDS}
    view.update(state=state, run_id=run_id, models=[], images={}, resumable=False)
    return view


# ---------------------------------------------------------------- helpers

def manager() -> TrainingManager:
    return current_app.extensions["training"]


def store() -> RunStore:
    return current_app.extensions["runs"]


def json_body() -> dict:
    data = request.get_json(silent=True)
    if data is None:
        raise BadRequest("body: must be valid JSON", field="body")
    if not isinstance(data, dict):
        raise BadRequest("body: must be a JSON object", field="body")
    return data


def no_fields_body() -> None:
    """A route that takes no fields: a body is optional, but one that is sent must be a JSON object."""
    if request.content_length:
        json_body()


def conditional_json(payload) -> Response:
    response = jsonify(payload)
    response.headers["Cache-Control"] = "no-cache"
    response.add_etag()
    return response.make_conditional(request)


def require_run(run_id: str) -> Run:
    run = store().run(run_id)
    if run is None:
        raise NotFound(f"no run {run_id!r}")
    return run


def snapshot_of(run_id: str) -> RunSnapshot:
    snapshot = store().snapshot(run_id)
    if snapshot is None:
        raise NotFound(f"no run {run_id!r}")
    return snapshot


# ---------------------------------------------------------------- routes

@bp.get("/")
def index():
    return current_app.send_static_file("index.html")


@bp.get("/openapi.json")
def openapi():
    """This API described: every route, body, parameter, answer and error (OpenAPI 3.1)."""
    return conditional_json(openapi_document(METRICS_PAGE_ROWS))


@bp.get("/config")
def form_settings_route():
    """The form's defaults, limits and choices, the run states and picture sizes, so the page copies none."""
    settings = form_settings()
    settings["limits"]["sweep_runs"] = [1, MAX_TRIALS]  # runs one sweep trains (several comma-separated values)
    return jsonify({**settings,
                    "states": {"active": list(ACTIVE_STATES), "final": list(FINAL_STATES), "queued": QUEUED_STATE,
                               "resumable": list(RESUMABLE_STATES), "broken": BROKEN_STATE},
                    "image_sizes": {"samples": digit_grid_size(SAMPLE_COUNT), "errors": digit_grid_size(ERROR_COUNT),
                                    "confusion": confusion_size(), "filters": filters_size()},
                    "digit_grid": {**digit_grid_layout(), "samples": SAMPLE_COUNT}})


def shown_when_idle() -> RunSnapshot | None:
    """With nothing training here: of the run this server trained last (a resumed run is not the
    newest) and the newest run (perhaps one that python train.py trains), the one updated last."""
    newest = next(iter(store().run_ids()), None)
    candidates = [s for run_id in {manager().last_run_id, newest} - {None}
                  if (s := store().snapshot(run_id)) is not None and s.state != QUEUED_STATE]
    if candidates:
        return max(candidates, key=lambda s: ((s.status.updated_at if s.status else None) or 0, s.run_id))
    return store().snapshot(newest) if newest else None


@bp.get("/training_status")
def training_status():
    """The run the page follows (``?run=<id>``), else the run started last among those training
    here, else the one shown when idle; with every active run's id and the number queued."""
    reject_unknown_args({"run"})
    followed = request.args.get("run")
    if followed is not None:
        require_run(followed)
    active = manager().active_run_ids
    run_id = followed or (active[-1] if active else None)
    snapshot = store().snapshot(run_id) if run_id else shown_when_idle()
    if snapshot is None:
        view = empty_view("starting", run_id) if run_id else empty_view()
    elif snapshot.status is None and snapshot.state != BROKEN_STATE:  # its folder is made, its status not yet
        view = empty_view("starting", snapshot.run_id)
    else:
        view = status_view(snapshot)
    live, queued = store().activity()
    elsewhere = [s for s in live if s not in active]  # trained by another process into this folder
    view.update(active_runs=active[::-1] + elsewhere, queued=queued, workers=manager().capacity)
    return conditional_json(view)


@bp.post("/start_training")
def start_training():
    body = dict(json_body())
    queue = body.pop("queue", False)
    if not isinstance(queue, bool):
        raise BadRequest("queue: must be true or false", field="queue")
    run_id, state = manager().start(parse_train_config(body), queue=queue)
    return jsonify({"run_id": run_id, "state": state}), 202


@bp.post("/runs/<run_id>/resume")
def resume_run(run_id):
    """Go on with a stopped, failed or interrupted run from its last epoch-end checkpoints."""
    require_run(run_id)
    no_fields_body()
    return jsonify({"run_id": manager().resume(run_id), "state": "starting"}), 202


@bp.post("/runs/<run_id>/cancel")
def cancel_run(run_id):
    """Take a queued run out of the queue."""
    require_run(run_id)
    no_fields_body()
    manager().cancel(run_id)
    return jsonify({"run_id": run_id, "state": "cancelled"})


@bp.post("/stop_training")
def stop_training():
    """Stop every active run (one, without --workers)."""
    no_fields_body()
    stopped = manager().stop_all()
    return jsonify({"run_id": stopped[0], "run_ids": stopped, "state": "stopping"}), 200


@bp.post("/runs/<run_id>/stop")
def stop_run(run_id):
    """Stop one run at its next batch (resumable from its last epoch end)."""
    require_run(run_id)
    no_fields_body()
    return jsonify({"run_id": manager().stop(run_id), "state": "stopping"}), 200


def reject_unknown_args(allowed) -> None:
    reject_unknown(request.args, allowed, what="parameter")


@bp.get("/model_info")
def model_info():
    reject_unknown_args({"kernels"})
    kernels = request.args.get("kernels")
    if kernels is None:
        raise BadRequest("kernels: is required, e.g. ?kernels=32,64,64,64", field="kernels")
    return jsonify(describe(parse_kernels_text(kernels)))


def run_summary(s: RunSnapshot) -> dict:
    """A row of the run table: the run's settings and its results."""
    status, config = s.status, s.config or {}
    models = shown_models(s)
    best = [m.best_test_accuracy for m in models if m.best_test_accuracy is not None]
    duration = status.elapsed_seconds if status else None
    end = status and (status.finished_at or status.updated_at)
    if duration is None and end and status.started_at:  # runs written before it was recorded: start to end
        duration = round(end - status.started_at, 1)
    return {
        "run_id": s.run_id, "state": s.state, "started_at": status.started_at if status else run_id_time(s.run_id),
        "duration_seconds": duration, "device": status.device if status else None,
        "precision": status.precision if status else None,
        "settings": {key: config.get(key) for key in RUN_SETTINGS},
        "models": [{"name": m.name, "kernels": m.kernels, "optimizer": m.optimizer,
                    "learning_rate": m.learning_rate, "batch_size": m.batch_size, "parameters": m.parameters,
                    "best_test_accuracy": m.best_test_accuracy, "final_test_accuracy": m.test_accuracy,
                    "color": m.color}
                   for m in models],
        "best_test_accuracy": max(best) if best else None,
        "resumes": status.resumes if status else 0,
        "resumable": s.resumable,
        "error": s.problem if s.state == BROKEN_STATE else status.error if status else None,
        "sweep": s.sweep,
        **s.meta,
    }


@bp.get("/runs")
def runs():
    listing = [run_summary(s) for s in store().snapshots()]
    return conditional_json({"runs": listing, "keep_runs": store().keep, "runs_bytes": store().size_bytes()})


@bp.post("/runs/<run_id>/meta")
def run_meta(run_id):
    """Star a run (starred runs survive --keep-runs) or give it a short note."""
    run = require_run(run_id)
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
    """Delete a run and all its files; never one that trains."""
    require_run(run_id)
    manager().delete(run_id)
    return jsonify({"run_id": run_id, "deleted": True})


@bp.get("/runs/<run_id>/config")
def run_config(run_id):
    """The run's config.json: a request body that repeats the run."""
    snapshot = snapshot_of(run_id)
    if snapshot.config is None:
        raise NotFound(f"run {run_id!r} has no readable config" + (f" ({snapshot.problem})" if snapshot.problem else ""))
    return jsonify(snapshot.config)


def compact(value):
    """A metrics row for the page: floats to 6 significant digits (the curves cannot show more)."""
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: compact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [compact(v) for v in value]
    return value


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
    rows, inode = store().metrics.read(require_run(run_id))
    version = str(inode)  # text: an inode can be beyond the integers a browser's numbers hold exactly
    if known_version is not None and known_version != version:
        since = 0  # the rows the reader counted are gone: it gets the file from the start
    if since > len(rows):
        raise BadRequest(f"since: the run has {len(rows)} metrics rows, so since must be at most that",
                         field="since")
    page = rows[since:since + limit]
    return conditional_json({"run_id": run_id, "rows": [compact(r) for r in page if r.get("kind") in kinds],
                             "next": since + len(page), "more": since + len(page) < len(rows), "version": version})


def int_arg(name: str, default: int, low: int = 0, high: int | None = None) -> int:
    text = request.args.get(name)
    if text is None:
        return default
    value = int_text(text)
    if value is None or (high is not None and value > high) or value < low:
        bounds = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise BadRequest(f"{name}: must be a whole number {bounds}, got {text[:20]!r}", field=name)
    return value


@bp.get("/runs/<run_id>")
def run_status(run_id):
    snapshot = snapshot_of(run_id)
    if snapshot.status is None and snapshot.state != BROKEN_STATE:
        raise NotFound(f"run {run_id!r} has no status yet")
    return conditional_json(status_view(snapshot))


@bp.get("/runs/<run_id>/files/<name>")
def run_file(run_id, name):
    run = store().run(run_id)
    path = run.served_file(name) if run else None
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
    run = require_run(run_id)
    snapshot = snapshot_of(run_id)
    names = [m.get("name") if isinstance(m, dict) else None for m in (snapshot.config or {}).get("models", [])]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in run.metrics():
        if row.get("kind") not in TABLE_KINDS:
            continue
        model = row.get("model")
        name = names[model] if isinstance(model, int) and 0 <= model < len(names) else None
        writer.writerow({**row, "name": name})
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{run_id}-metrics.csv"'})


@bp.post("/predict")
def predict_digit():
    answer = predict_request(json_body(), store(), current_app.extensions["checkpoints"], manager().active_run_id,
                             current_app.config["DATA_DIR"])
    return jsonify(answer)
