"""The JSON API: thin routes over the run folders and the one training worker."""
from __future__ import annotations

import csv
import io
import os
import threading
import time
from collections import OrderedDict

from flask import Blueprint, Response, current_app, jsonify, request, send_file

from config import parse_kernels_text, public_config
from errors import BadRequest, Conflict, NotFound
from model import describe
from plots import confusion_size, digit_grid_layout, digit_grid_size, filters_size
from predict import predict_request
from train import ERROR_COUNT, SAMPLE_COUNT
from runstore import (ACTIVE_STATES, CURVES_IMAGE, EPOCH_IMAGES, FINAL_STATES, IDLE_STATE, METRIC_COLUMNS, METRIC_KINDS,
                      MODEL_STATUS_FIELDS, NOTE_MAX, QUEUED_STATE, RESUMABLE_STATES, RUN_STATUS_FIELDS, SERVED_FILES,
                      STATUS_FILE, TABLE_KINDS, MetricsCache, RunStore, checkpoint_name, checkpoint_parts,
                      confusion_name, image_name, pid_alive)

bp = Blueprint("api", __name__)
VIEW_CACHE_RUNS = 512  # run views kept in memory (~1-3 KB each), least recently used dropped first
SIZE_TTL = 10.0  # seconds a count of the runs folder's bytes is reused
METRICS_PAGE_ROWS = 5000  # metrics rows in one answer (~0.7 MB); the page asks again from "next"
RUN_SETTINGS = ("epochs", "lr_schedule", "warmup", "label_smoothing", "precision", "train_samples", "seed",
                "device")  # of config.json
CSV_COLUMNS = tuple(c for c in METRIC_COLUMNS[:2] + ("name",) + METRIC_COLUMNS[2:]  # the model's name by its index
                    if c == "name" or any(c in METRIC_KINDS[kind] or c == "kind" for kind in TABLE_KINDS))


class RunViews:
    """A run as the page sees it: its status.json, the URLs of its images and checkpoints.

    Cached until the run folder changes: status.json and every PNG are replaced by a rename,
    which changes the folder's modification time, so a poll of an unchanged run costs two stat
    calls instead of reading and listing the folder (less GIL traffic beside the trainer)."""

    def __init__(self, store: RunStore):
        self.store = store
        self.metrics = MetricsCache()
        self._cache: OrderedDict[str, tuple[tuple, dict]] = OrderedDict()
        self._configs: OrderedDict[str, dict] = OrderedDict()  # config.json is written once
        self._size = (-SIZE_TTL, 0)  # (when counted, bytes)
        self._lock = threading.Lock()

    def runs_bytes(self) -> int:
        """The runs folder's size, recounted at most every SIZE_TTL seconds (it walks every file)."""
        now = time.monotonic()
        if now - self._size[0] > SIZE_TTL:
            self._size = (now, self.store.size_bytes())
        return self._size[1]

    def config(self, run_id: str) -> dict:
        with self._lock:
            config = self._configs.get(run_id)
        if config is None:
            config = self.store.config(run_id) or {}
            with self._lock:
                if config:
                    self._configs[run_id] = config
                    while len(self._configs) > VIEW_CACHE_RUNS:
                        self._configs.popitem(last=False)
        return config

    @staticmethod
    def _image_urls(run_id: str, images: dict[str, str], files: dict[str, int]) -> dict[str, str]:
        """{key: versioned URL} of the images that exist (``images``: key -> file name)."""
        return {key: f"/runs/{run_id}/files/{name}?v={files[name]}" for key, name in images.items() if name in files}

    def _read(self, run_id: str) -> dict | None:
        run_dir = self.store.run_dir(run_id)
        if run_dir is None:
            return None
        try:  # a run deleted meanwhile (clean-up, or the user) is no run: None, never an error
            key = (os.stat(run_dir).st_mtime_ns, os.stat(run_dir / STATUS_FILE).st_mtime_ns)
            with self._lock:
                cached = self._cache.get(run_id)
                if cached and cached[0] == key:
                    self._cache.move_to_end(run_id)
                    return cached[1]
            status = self.store.status(run_id)
            files = self._files(run_dir)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if status is None:
            return None
        view = {key: status.get(key) for key in RUN_STATUS_FIELDS}
        view["models"] = [{k: m.get(k) for k in MODEL_STATUS_FIELDS} for m in status.get("models", [])]
        for i, m in enumerate(view["models"]):
            m["images"] = self._image_urls(run_id, {kind: image_name(kind, i) for kind in EPOCH_IMAGES}, files)
            best = checkpoint_name(i, "best")
            m["checkpoint"] = f"/runs/{run_id}/files/{best}" if best in files else None
            m["confusion"] = self._image_urls(run_id, {"c": confusion_name(i)}, files).get("c")
        view["images"] = self._image_urls(run_id, {CURVES_IMAGE: image_name(CURVES_IMAGE)}, files)
        view["has_checkpoint"] = any(checkpoint_name(i, "latest") in files for i in range(len(view["models"])))
        view["metrics_csv"] = f"/runs/{run_id}/metrics.csv"
        with self._lock:
            self._cache[run_id] = (key, view)
            self._cache.move_to_end(run_id)
            while len(self._cache) > VIEW_CACHE_RUNS:
                self._cache.popitem(last=False)
        return view

    def _files(self, run_dir) -> dict[str, int]:
        """{name: mtime in ns} of the files the server serves that exist in ``run_dir``."""
        files = {}
        for entry in os.scandir(run_dir):
            if entry.name in SERVED_FILES and entry.is_file(follow_symlinks=False):
                try:
                    files[entry.name] = entry.stat().st_mtime_ns
                except FileNotFoundError:  # replaced or removed between listing and stat
                    pass
        return files

    def view(self, run_id: str, active_run_id: str | None) -> dict | None:
        """The view, with a run left active by a process that is gone shown as 'interrupted'."""
        cached = self._read(run_id)
        if cached is None:
            return None
        view = dict(cached)
        pid = view.pop("pid")
        if view["state"] in ACTIVE_STATES and run_id != active_run_id:
            if pid == os.getpid() or not pid_alive(pid):
                view["state"] = "interrupted"
        has_checkpoint = view.pop("has_checkpoint")
        view["resumable"] = view["state"] in RESUMABLE_STATES and has_checkpoint  # "resume" can go on with it
        if view["state"] not in ACTIVE_STATES:  # no time left is shown for a run that is over
            view["eta_seconds"] = None
            view["models"] = [dict(m, eta_seconds=None) for m in view["models"]]
        return view


def empty_view(state: str = IDLE_STATE, run_id: str | None = None) -> dict:
    """The status shape with nothing in it: no run yet, or a run whose status.json is not written yet."""
    view = {key: None for key in RUN_STATUS_FIELDS if key != "pid"}
    view.update(state=state, run_id=run_id, models=[], images={}, resumable=False)
    return view


# ---------------------------------------------------------------- helpers

def manager():
    return current_app.extensions["training"]


def store() -> RunStore:
    return current_app.extensions["runs"]


def views() -> RunViews:
    return current_app.extensions["run_views"]


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


def require_run(run_id: str) -> None:
    if store().run_dir(run_id) is None:
        raise NotFound(f"no run {run_id!r}")


# ---------------------------------------------------------------- routes

@bp.get("/")
def index():
    return current_app.send_static_file("index.html")


@bp.get("/config")
def settings():
    """Defaults, limits and choices of the form, and the run states, so the page copies none."""
    return jsonify({**public_config(), "states": {"active": list(ACTIVE_STATES), "final": list(FINAL_STATES),
                                                  "queued": QUEUED_STATE, "resumable": list(RESUMABLE_STATES)},
                    "image_sizes": {"samples": digit_grid_size(SAMPLE_COUNT), "errors": digit_grid_size(ERROR_COUNT),
                                    "confusion": confusion_size(), "filters": filters_size()},
                    "digit_grid": {**digit_grid_layout(), "samples": SAMPLE_COUNT}})


def shown_when_idle() -> str | None:
    """With nothing training here: of the run this server trained last (a resumed run is not the
    newest) and the newest run (perhaps one that python train.py trains), the one updated last."""
    newest = next(iter(store().run_ids()), None)
    views_ = [(view["updated_at"] or 0, run_id) for run_id in {manager().last_run_id, newest} - {None}
              if (view := views().view(run_id, None)) is not None and view["state"] != QUEUED_STATE]
    return max(views_)[1] if views_ else newest


@bp.get("/training_status")
def training_status():
    active = manager().active_run_id
    run_id = active or shown_when_idle()
    view = views().view(run_id, active) if run_id else None
    if view is None and run_id is not None and run_id == active:
        view = empty_view("starting", run_id)  # the worker has created the folder, not yet status.json
    return conditional_json(view or empty_view())


@bp.post("/start_training")
def start_training():
    run_id, state = manager().start(json_body())
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
    no_fields_body()
    return jsonify({"run_id": manager().stop(), "state": "stopping"}), 200


@bp.get("/model_info")
def model_info():
    unknown = sorted(set(request.args) - {"kernels"})
    if unknown:
        raise BadRequest(f"{unknown[0]}: unknown parameter (allowed: kernels)", field=unknown[0])
    kernels = request.args.get("kernels")
    if kernels is None:
        raise BadRequest("kernels: is required, e.g. ?kernels=32,64,64,64", field="kernels")
    return jsonify(describe(parse_kernels_text(kernels)))


def run_summary(run_id: str, view: dict, config: dict) -> dict:
    """A row of the run table: the run's settings and its results."""
    best = [m["best_test_accuracy"] for m in view["models"] if m.get("best_test_accuracy") is not None]
    end = view["finished_at"] or view["updated_at"]
    duration = view.get("elapsed_seconds")  # runs written before it was recorded: start to end
    if duration is None and end and view["started_at"]:
        duration = round(end - view["started_at"], 1)
    return {
        "run_id": run_id, "state": view["state"], "started_at": view["started_at"], "duration_seconds": duration,
        "device": view["device"], "precision": view["precision"],
        "settings": {key: config.get(key) for key in RUN_SETTINGS},
        "models": [{"name": m["name"], "kernels": m["kernels"], "optimizer": m["optimizer"],
                    "learning_rate": m["learning_rate"], "batch_size": m["batch_size"], "parameters": m["parameters"],
                    "best_test_accuracy": m["best_test_accuracy"], "final_test_accuracy": m["test_accuracy"]}
                   for m in view["models"]],
        "best_test_accuracy": max(best) if best else None,
        "resumes": view.get("resumes") or 0,
    }


@bp.get("/runs")
def runs():
    active = manager().active_run_id
    listing = []
    for run_id in store().run_ids():
        view = views().view(run_id, active)
        if view is not None:
            listing.append({**run_summary(run_id, view, views().config(run_id)), "resumable": view["resumable"],
                            **store().meta(run_id)})
    return conditional_json({"runs": listing, "keep_runs": store().keep, "runs_bytes": views().runs_bytes()})


@bp.post("/runs/<run_id>/meta")
def run_meta(run_id):
    """Star a run (starred runs survive --keep-runs) or give it a short note."""
    require_run(run_id)
    body = json_body()
    unknown = sorted(set(body) - {"starred", "note"})
    if unknown:
        raise BadRequest(f"{unknown[0]}: unknown key (allowed: starred, note)", field=unknown[0])
    if "starred" in body and not isinstance(body["starred"], bool):
        raise BadRequest("starred: must be true or false", field="starred")
    if "note" in body and (not isinstance(body["note"], str) or len(body["note"]) > NOTE_MAX):
        raise BadRequest(f"note: must be text of at most {NOTE_MAX} characters", field="note")
    return jsonify({"run_id": run_id, **store().set_meta(run_id, **body)})


@bp.delete("/runs/<run_id>")
def delete_run(run_id):
    """Delete a run and all its files; never the active one."""
    require_run(run_id)
    manager().settle()
    if run_id == manager().active_run_id or store().trained_elsewhere(run_id):
        raise Conflict(f"run {run_id} is training: stop it before deleting it")
    if (store().status(run_id) or {}).get("state") == QUEUED_STATE:
        manager().cancel(run_id)  # under the queue's lock: never a run that is starting
    else:
        store().delete(run_id)
    return jsonify({"run_id": run_id, "deleted": True})


@bp.get("/runs/<run_id>/config")
def run_config(run_id):
    """The run's config.json: a request body that repeats the run."""
    require_run(run_id)
    config = store().config(run_id)
    if config is None:
        raise NotFound(f"run {run_id!r} has no config")
    return jsonify(config)


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
    unknown = sorted(set(request.args) - {"since", "limit", "kind", "version"})
    if unknown:
        raise BadRequest(f"{unknown[0]}: unknown parameter (allowed: since, limit, kind, version)", field=unknown[0])
    since = int_arg("since", 0)
    known_version = request.args.get("version")  # as the last answer gave it
    limit = int_arg("limit", METRICS_PAGE_ROWS, low=1, high=METRICS_PAGE_ROWS)
    kinds = set(request.args.get("kind", ",".join(METRIC_KINDS)).split(","))
    if not kinds <= set(METRIC_KINDS):
        raise BadRequest(f"kind: must be one or more of {', '.join(METRIC_KINDS)}, comma-separated", field="kind")
    require_run(run_id)
    rows, inode = views().metrics.read(store().run_dir(run_id))
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
    if not text.isdigit() or (high is not None and int(text) > high) or int(text) < low:
        bounds = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise BadRequest(f"{name}: must be a whole number {bounds}, got {text!r}", field=name)
    return int(text)


@bp.get("/runs/<run_id>")
def run_status(run_id):
    require_run(run_id)
    view = views().view(run_id, manager().active_run_id)
    if view is None:
        raise NotFound(f"run {run_id!r} has no status yet")
    return conditional_json(view)


@bp.get("/runs/<run_id>/files/<name>")
def run_file(run_id, name):
    path = store().file(run_id, name)
    if path is None:
        raise NotFound(f"no file {name!r} in run {run_id!r}")
    try:  # send_file opens the file here: once open, a deletion cannot cut the answer short
        if name.endswith(".pt"):  # saved as e.g. <run>-model1-best.pt: models count from 1, as on the page
            index, kind = checkpoint_parts(name)
            return send_file(path, mimetype="application/octet-stream", as_attachment=True,
                             download_name=f"{run_id}-model{index + 1}-{kind}.pt", max_age=0)
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
    require_run(run_id)
    names = [m.get("name") for m in (store().config(run_id) or {}).get("models", [])]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in store().metrics(run_id):
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
