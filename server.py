"""MNIST Training Monitor web server: the app factory, the one training worker, the command line.

Run: ``python server.py`` and open http://127.0.0.1:5000.
"""
from __future__ import annotations

import argparse
import logging
import secrets
import socket
import sys
import threading

from flask import Flask

import api
import errors
import security
from config import DEFAULT_KEEP_RUNS, DEFAULT_RUNS_DIR, PROJECT_DIR, default_data_dir, parse_train_config
from errors import Conflict
from predict import CheckpointCache
from runstore import RunStore
from train import Trainer, select_device

log = logging.getLogger("server")

MAX_REQUEST_BYTES = 2 * 1024 * 1024  # a drawn digit as PNG is ~10-50 KB; configs are tiny


class TrainingManager:
    """Owns the one training worker thread and its stop event."""

    def __init__(self, store: RunStore, data_dir, trainer_options: dict):
        self.store = store
        self.data_dir = data_dir
        self.trainer_options = trainer_options
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._trainer: Trainer | None = None
        # Set from the moment the run folder exists until the worker has ended, so no reader ever
        # takes the new run for one that a dead process left behind.
        self._active_run_id: str | None = None

    @property
    def active_run_id(self) -> str | None:
        return self._active_run_id

    def start(self, body) -> str:
        config = parse_train_config(body)
        select_device(config.device)  # an unavailable device is refused before anything starts
        with self._lock:
            if self._active_run_id:
                raise Conflict(f"a run is already active ({self._active_run_id}); stop it first")
            run_id, run_dir = self.store.create()
            self._active_run_id = run_id
            try:
                trainer = Trainer(config, self.data_dir, run_dir, **self.trainer_options)
                trainer.prepare()  # config.json and a 'starting' status.json are on disk before the 202
                thread = threading.Thread(target=self._work, args=(trainer,), name="training-worker", daemon=True)
                self._trainer, self._thread = trainer, thread
                thread.start()
            except BaseException:
                self._active_run_id = None
                raise
        log.info("started run %s", run_id)
        return run_id

    def _work(self, trainer: Trainer) -> None:
        try:
            trainer.run()
        finally:
            with self._lock:
                self._active_run_id = None
            self.store.cleanup(protect={trainer.run_id})

    def stop(self) -> str:
        """Stop this server's run within one batch, else ask a run that another process trains
        (python train.py into the same runs folder) to stop, through its stop file."""
        with self._lock:
            run_id = self._active_run_id
            if run_id:
                self._trainer.stop_event.set()
                self._trainer.write_status(force=True)
        if not run_id:
            run_id = self.store.other_process_run()
            if not run_id:
                raise Conflict("no run is active")
            self.store.request_stop(run_id)
        log.info("stop requested for run %s", run_id)
        return run_id

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the worker to end (tests, shutdown); True if it has."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True


def create_app(test_config: dict | None = None) -> Flask:
    app = Flask(__name__, static_folder=str(PROJECT_DIR / "static"), static_url_path="/static")
    app.config.update(DATA_DIR=default_data_dir(), RUNS_DIR=str(DEFAULT_RUNS_DIR), KEEP_RUNS=DEFAULT_KEEP_RUNS,
                      ALLOWED_HOSTS=list(security.LOCAL_HOSTS), TRAINER_OPTIONS={},
                      MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES)
    app.config.update(test_config or {})
    app.json.sort_keys = False  # answers keep the contract's field order
    store = RunStore(app.config["RUNS_DIR"], keep=app.config["KEEP_RUNS"])
    marked = store.mark_interrupted()
    if marked:
        log.info("marked %d run(s) interrupted: %s", len(marked), ", ".join(marked))
    store.cleanup()  # --keep-runs applies from the start, not only after the next run
    store.remove_stale_temp_files()
    app.extensions.update(
        training=TrainingManager(store, app.config["DATA_DIR"], app.config["TRAINER_OPTIONS"]),
        runs=store, run_views=api.RunViews(store), checkpoints=CheckpointCache())
    errors.init_app(app)
    security.init_app(app)
    app.register_blueprint(api.bp)
    return app


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="MNIST Training Monitor: train CNNs and watch them live.")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; anything else exposes training to the network)")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--data-dir", default=default_data_dir(),
                   help="folder that holds MNIST/raw/ (env MNIST_DATA_DIR; default: the project's data/, "
                        "downloaded there if missing)")
    p.add_argument("--runs-dir", default=str(DEFAULT_RUNS_DIR), help="where run folders are kept "
                                                                     "(default: the project's runs/)")
    p.add_argument("--keep-runs", type=int, default=DEFAULT_KEEP_RUNS,
                   help=f"keep the newest N runs (0: keep all; default {DEFAULT_KEEP_RUNS})")
    p.add_argument("--allowed-host", action="append", default=[],
                   help="extra Host name the server answers to (repeatable; '*' for any)")
    p.add_argument("--threads", type=int, default=8, help="request threads of the WSGI server")
    p.add_argument("--token", help="access token every request must carry (default: none on a loopback address, "
                                   "a random one printed at start-up on any other)")
    return p


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    allowed = set(security.LOCAL_HOSTS) | {h.lower() for h in args.allowed_host}
    if args.host not in security.LOCAL_HOSTS:
        log.warning("listening on %s: anyone who can reach this address can start and stop training", args.host)
        if args.host not in ("0.0.0.0", "::"):
            allowed.add(args.host.lower())
        allowed.add(socket.gethostname().lower())
    token = args.token or (None if args.host in security.LOCAL_HOSTS else secrets.token_urlsafe(24))
    app = create_app({"DATA_DIR": args.data_dir, "RUNS_DIR": args.runs_dir, "KEEP_RUNS": args.keep_runs,
                      "ALLOWED_HOSTS": sorted(allowed), "TRAINER_OPTIONS": {"progress_bar": True}, "TOKEN": token})
    from train import tune_malloc
    tune_malloc()
    import waitress
    shown = f"[{args.host}]" if ":" in args.host else args.host
    address = f"http://{shown}:{args.port}/" + (f"?token={token}" if token else "")
    log.info("MNIST Training Monitor on %s (data %s, runs %s)", address, args.data_dir, args.runs_dir)
    print(f"Open {address}", flush=True)
    waitress.serve(app, host=args.host, port=args.port, threads=args.threads, ident="mnist-monitor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
