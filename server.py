"""MNIST Training Monitor web server: thin JSON routes over the run folders.

Run: ``python server.py`` and open http://127.0.0.1:5000.
"""
from __future__ import annotations

import argparse
import csv
import io
import logging
import os
import socket
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask, Response, jsonify, request, send_file
from werkzeug.exceptions import HTTPException

from config import ConfigError, parse_kernels, parse_train_config
from model import describe
from predict import CheckpointCache, ImageError, image_to_tensor, predict
from runstore import ACTIVE_STATES, RunStore, pid_alive
from train import Trainer, select_device

log = logging.getLogger("server")

HERE = Path(__file__).resolve().parent
MAX_REQUEST_BYTES = 2 * 1024 * 1024  # a drawn digit as PNG is ~10-50 KB; configs are tiny
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
CSV_COLUMNS = ["kind", "model", "name", "epoch", "step", "loss", "accuracy", "lr", "val_loss", "val_accuracy",
               "test_loss", "test_accuracy", "samples_per_sec", "time"]


class ApiError(Exception):
    """An error answered as JSON ``{"error": message}`` with an HTTP status code."""

    def __init__(self, code: int, message: str, field: str | None = None):
        super().__init__(message)
        self.code, self.message, self.field = code, message, field


class TrainingManager:
    """Owns the one training worker thread and its stop event."""

    def __init__(self, store: RunStore, data_dir, trainer_options: dict):
        self.store = store
        self.data_dir = data_dir
        self.trainer_options = trainer_options
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._trainer: Trainer | None = None

    @property
    def active_run_id(self) -> str | None:
        thread, trainer = self._thread, self._trainer
        return trainer.run_id if thread is not None and thread.is_alive() else None

    def start(self, body) -> str:
        config = parse_train_config(body)
        select_device(config.device)  # an unavailable device is refused before anything starts
        with self._lock:
            if self.active_run_id:
                raise ApiError(409, f"a run is already active ({self.active_run_id}); stop it first")
            run_id, run_dir = self.store.create()
            trainer = Trainer(config, self.data_dir, run_dir, **self.trainer_options)
            trainer.prepare()  # config.json and a 'starting' status.json are on disk before the 202
            thread = threading.Thread(target=self._work, args=(trainer,), name="training-worker", daemon=True)
            self._trainer, self._thread = trainer, thread
            thread.start()
        log.info("started run %s", run_id)
        return run_id

    def _work(self, trainer: Trainer) -> None:
        try:
            trainer.run()
        finally:
            self.store.cleanup(protect={trainer.run_id})

    def stop(self) -> str:
        with self._lock:
            run_id = self.active_run_id
            if not run_id:
                raise ApiError(409, "no run is active")
            self._trainer.stop_event.set()
            self._trainer.write_status(force=True)
        log.info("stop requested for run %s", run_id)
        return run_id

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the worker to end (tests, shutdown); True if it has."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True


MODEL_FIELDS = ("name", "kernels", "optimizer", "learning_rate", "batch_size", "parameters", "epoch", "epochs",
                "batch", "batches", "loss", "accuracy", "val_accuracy", "test_accuracy", "best_test_accuracy",
                "progress", "samples", "samples_per_sec", "eta_seconds")


class RunViews:
    """A run as the page sees it: its status.json plus the URLs of its images and checkpoints.

    Cached until the run folder changes: status.json and every PNG are replaced by a rename,
    which changes the folder's modification time, so a poll of an unchanged run costs two stat
    calls instead of reading and listing the folder (less GIL traffic beside the trainer)."""

    def __init__(self, store: RunStore):
        self.store = store
        self._cache: dict[str, tuple[tuple, dict]] = {}
        self._lock = threading.Lock()

    def _read(self, run_id: str) -> dict | None:
        run_dir = self.store.run_dir(run_id)
        if run_dir is None:
            return None
        try:
            key = (os.stat(run_dir).st_mtime_ns, os.stat(run_dir / "status.json").st_mtime_ns)
        except FileNotFoundError:
            return None
        with self._lock:
            cached = self._cache.get(run_id)
        if cached and cached[0] == key:
            return cached[1]
        status = self.store.status(run_id)
        if status is None:
            return None
        images = {}
        for entry in sorted(os.scandir(run_dir), key=lambda e: e.name):
            if entry.name.endswith(".png") and self.store.file(run_id, entry.name):
                images[entry.name[:-4]] = f"/runs/{run_id}/files/{entry.name}?v={entry.stat().st_mtime_ns}"
        models = [{k: m.get(k) for k in MODEL_FIELDS} for m in status.get("models", [])]
        for i, m in enumerate(models):
            best = f"model{i}_best.pt"
            m["checkpoint"] = f"/runs/{run_id}/files/{best}" if self.store.file(run_id, best) else None
        view = {
            "state": status.get("state"), "run_id": run_id, "device": status.get("device"),
            "precision": status.get("precision"), "lr_schedule": status.get("lr_schedule"),
            "error": status.get("error"), "started_at": status.get("started_at"),
            "updated_at": status.get("updated_at"), "finished_at": status.get("finished_at"),
            "eta_seconds": status.get("eta_seconds"), "eval_seconds": status.get("eval_seconds"),
            "pid": status.get("pid"), "models": models, "images": images,
            "metrics_csv": f"/runs/{run_id}/metrics.csv",
        }
        with self._lock:
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[run_id] = (key, view)
        return view

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
        if view["state"] not in ACTIVE_STATES:
            view["eta_seconds"] = None
        return view


IDLE_STATUS = {"state": "idle", "run_id": None, "device": None, "precision": None, "error": None, "models": [],
               "images": {}}


def _host_name(value: str) -> str:
    """'localhost:5000' -> 'localhost', '[::1]:5000' -> '::1'."""
    try:
        return (urlsplit("//" + value).hostname or "").lower()
    except ValueError:
        return ""


def create_app(test_config: dict | None = None) -> Flask:
    app = Flask(__name__, static_folder=str(HERE / "static"), static_url_path="/static")
    app.config.update(
        DATA_DIR=os.environ.get("MNIST_DATA_DIR", str(HERE / "data")),
        RUNS_DIR=str(HERE / "runs"),
        KEEP_RUNS=5,
        ALLOWED_HOSTS=sorted(LOCAL_HOSTS),
        TRAINER_OPTIONS={},
        MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES,
        JSON_SORT_KEYS=False,
    )
    if test_config:
        app.config.update(test_config)
    store = RunStore(app.config["RUNS_DIR"], keep=app.config["KEEP_RUNS"])
    marked = store.mark_interrupted()
    if marked:
        log.info("marked %d run(s) interrupted: %s", len(marked), ", ".join(marked))
    manager = TrainingManager(store, app.config["DATA_DIR"], app.config["TRAINER_OPTIONS"])
    checkpoints = CheckpointCache()
    views = RunViews(store)
    allowed_hosts = {h.lower() for h in app.config["ALLOWED_HOSTS"]}
    app.extensions["training"] = manager
    app.extensions["runs"] = store

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError):
        body = {"error": exc.message}
        if exc.field:
            body["field"] = exc.field
        return jsonify(body), exc.code

    @app.errorhandler(ConfigError)
    def config_error(exc: ConfigError):
        return jsonify({"error": str(exc), "field": exc.field}), 400

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        message = exc.description or exc.name
        if exc.code == 413:
            message = f"request body too large (limit {app.config['MAX_CONTENT_LENGTH']} bytes)"
        response = jsonify({"error": message})
        response.status_code = exc.code or 500
        if exc.code == 405 and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.path)
        return jsonify({"error": f"internal error: {type(exc).__name__}"}), 500

    @app.before_request
    def guard():
        # DNS rebinding: a foreign page's name resolving to 127.0.0.1 still sends its own Host
        if "*" not in allowed_hosts and _host_name(request.host) not in allowed_hosts:
            raise ApiError(403, f"host {request.host!r} is not allowed; start the server with --allowed-host")
        if request.method in ("POST", "PUT", "PATCH", "DELETE"):
            origin = request.headers.get("Origin")
            if origin is not None and urlsplit(origin).netloc.lower() != request.host.lower():
                raise ApiError(403, f"cross-origin request from {origin!r} refused")
            if request.headers.get("Sec-Fetch-Site") == "cross-site":
                raise ApiError(403, "cross-site request refused")
            if request.mimetype != "application/json":
                raise ApiError(415, "Content-Type must be application/json")

    @app.after_request
    def headers(response: Response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
        return response

    def json_body() -> dict:
        data = request.get_json(silent=True)
        if data is None:
            raise ApiError(400, "body must be valid JSON", field="body")
        if not isinstance(data, dict):
            raise ApiError(400, "body must be a JSON object", field="body")
        return data

    def conditional_json(payload) -> Response:
        response = jsonify(payload)
        response.headers["Cache-Control"] = "no-cache"
        response.add_etag()
        return response.make_conditional(request)

    @app.get("/")
    def index():
        return app.send_static_file("index.html")

    @app.get("/training_status")
    def training_status():
        active = manager.active_run_id
        run_id = active or next(iter(store.run_ids()), None)
        view = views.view(run_id, active) if run_id else None
        return conditional_json(view or IDLE_STATUS)

    @app.post("/start_training")
    def start_training():
        run_id = manager.start(json_body())
        return jsonify({"run_id": run_id}), 202

    @app.post("/stop_training")
    def stop_training():
        if request.content_length:
            json_body()  # no fields, but a body that is sent must be a JSON object
        return jsonify({"run_id": manager.stop(), "state": "stopping"}), 200

    @app.get("/model_info")
    def model_info():
        if set(request.args) - {"kernels"}:
            raise ApiError(400, f"unknown parameter {sorted(set(request.args) - {'kernels'})[0]!r}")
        kernels = request.args.get("kernels")
        if kernels is None:
            raise ApiError(400, "kernels: is required, e.g. ?kernels=32,64,64,64", field="kernels")
        return jsonify(describe(parse_kernels(kernels)))

    @app.get("/runs")
    def runs():
        active = manager.active_run_id
        listing = []
        for run_id in store.run_ids():
            view = views.view(run_id, active)
            if view is None:
                continue
            best = [m["best_test_accuracy"] for m in view["models"] if m.get("best_test_accuracy") is not None]
            listing.append({"run_id": run_id, "state": view["state"], "started_at": view["started_at"],
                            "models": [{"name": m["name"], "kernels": m["kernels"]} for m in view["models"]],
                            "best_test_accuracy": max(best) if best else None})
        return conditional_json({"runs": listing})

    def require_run(run_id: str):
        if store.run_dir(run_id) is None:
            raise ApiError(404, f"no run {run_id!r}")

    @app.get("/runs/<run_id>")
    def run_status(run_id):
        require_run(run_id)
        view = views.view(run_id, manager.active_run_id)
        if view is None:
            raise ApiError(404, f"run {run_id!r} has no status yet")
        return conditional_json(view)

    @app.get("/runs/<run_id>/files/<name>")
    def run_file(run_id, name):
        path = store.file(run_id, name)
        if path is None:
            raise ApiError(404, f"no file {name!r} in run {run_id!r}")
        if name.endswith(".pt"):
            return send_file(path, mimetype="application/octet-stream", as_attachment=True,
                             download_name=f"{run_id}-{name}", max_age=0)
        response = send_file(path, mimetype="image/png", max_age=0, etag=True, conditional=True)
        if request.args.get("v"):  # versioned URL: the content at this URL never changes
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response

    @app.get("/runs/<run_id>/metrics.csv")
    def metrics_csv(run_id):
        require_run(run_id)
        names = [m.get("name") for m in (store.config(run_id) or {}).get("models", [])]
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in store.metrics(run_id):
            model = row.get("model")
            name = names[model] if isinstance(model, int) and 0 <= model < len(names) else None
            writer.writerow({**row, "name": name})
        return Response(out.getvalue(), mimetype="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{run_id}-metrics.csv"'})

    @app.post("/predict")
    def predict_digit():
        body = json_body()
        unknown = sorted(set(body) - {"image", "run_id"})
        if unknown:
            raise ApiError(400, f"{unknown[0]}: unknown key (allowed: image, run_id)", field=unknown[0])
        if "image" not in body:
            raise ApiError(400, "image: is required (a PNG data URL)", field="image")
        run_id = body.get("run_id")
        if run_id is None:
            run_id = manager.active_run_id or next(iter(store.run_ids()), None)
            if run_id is None:
                raise ApiError(409, "no run yet: train a model first")
        elif not isinstance(run_id, str):
            raise ApiError(400, "run_id: must be a string", field="run_id")
        require_run(run_id)
        try:
            image = image_to_tensor(body["image"])
        except ImageError as exc:
            raise ApiError(400, f"image: {exc}", field="image") from None
        config = store.config(run_id) or {}
        models = []
        for i in range(len(config.get("models", []))):
            path = store.file(run_id, f"model{i}_latest.pt")
            if path is not None:
                model, name = checkpoints.load(path)
                models.append((name, model))
        if not models:
            raise ApiError(409, f"run {run_id} has no checkpoint yet: one is saved at the end of each epoch")
        return jsonify({"run_id": run_id, "predictions": predict(models, image)})

    return app


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="MNIST Training Monitor: train CNNs and watch them live.")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; anything else exposes training to the network)")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--data-dir", default=os.environ.get("MNIST_DATA_DIR", str(HERE / "data")),
                   help="folder that holds MNIST/raw/ (env MNIST_DATA_DIR; downloaded there if missing)")
    p.add_argument("--runs-dir", default=str(HERE / "runs"), help="where run folders are kept")
    p.add_argument("--keep-runs", type=int, default=5, help="keep the newest N runs (0: keep all)")
    p.add_argument("--allowed-host", action="append", default=[],
                   help="extra Host name the server answers to (repeatable; '*' for any)")
    p.add_argument("--threads", type=int, default=8, help="request threads of the WSGI server")
    return p


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    allowed = set(LOCAL_HOSTS) | {h.lower() for h in args.allowed_host}
    if args.host not in LOCAL_HOSTS:
        log.warning("listening on %s: anyone who can reach this address can start and stop training", args.host)
        if args.host not in ("0.0.0.0", "::"):
            allowed.add(args.host.lower())
        allowed.add(socket.gethostname().lower())
    app = create_app({"DATA_DIR": args.data_dir, "RUNS_DIR": args.runs_dir, "KEEP_RUNS": args.keep_runs,
                      "ALLOWED_HOSTS": sorted(allowed), "TRAINER_OPTIONS": {"progress_bar": True}})
    from train import tune_malloc
    tune_malloc()
    import waitress
    shown = f"[{args.host}]" if ":" in args.host else args.host
    log.info("MNIST Training Monitor on http://%s:%d (data %s, runs %s)", shown, args.port, args.data_dir,
             args.runs_dir)
    waitress.serve(app, host=args.host, port=args.port, threads=args.threads, ident="mnist-monitor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
