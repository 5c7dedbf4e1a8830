"""MNIST Training Monitor web server: the app factory, the one training worker, the command line.

Run: ``python server.py`` and open http://127.0.0.1:5000.
"""
from __future__ import annotations

import argparse
import logging
import secrets
import signal
import socket
import sys
import threading

from flask import Flask

import api
import errors
import security
from config import (DEFAULT_KEEP_RUNS, DEFAULT_RUNS_DIR, PROJECT_DIR, ConfigError, default_data_dir,
                    parse_train_config)
from errors import ApiError, BadRequest, Conflict, InsufficientStorage
from predict import CheckpointCache
from runstore import ACTIVE_STATES, QUEUED_STATE, RunStore, write_error
from checkpoints import ResumeError, check_can_resume
from train import Trainer, planned_status, select_device

log = logging.getLogger("server")

MAX_REQUEST_BYTES = 2 * 1024 * 1024  # a drawn digit as PNG is ~10-50 KB; configs are tiny
SHUTDOWN_WAIT = 7.0  # seconds to wait for the active run to stop on SIGTERM or Ctrl-C (then up to 5 s
# for the request threads): the process is gone within the 10 s a service manager usually allows


class TrainingManager:
    """Owns the one training worker thread, its stop event, and the queue of runs waiting for it.

    Queued runs are folders with config.json and a 'queued' status.json: they start oldest first,
    each when the one before it has ended, and survive a restart of the server."""

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
        self._closing = False  # shutting down: nothing new starts, the queue waits on disk
        self.last_run_id: str | None = None  # the run the worker trained last (shown when idle)

    @property
    def active_run_id(self) -> str | None:
        return self._active_run_id

    @property
    def closing(self) -> bool:
        return self._closing

    def start(self, body) -> tuple[str, str]:
        """Start a run now, or with ``"queue": true`` put it in line while another trains;
        (run id, 'starting' or 'queued')."""
        self.settle()
        body = dict(body)
        queue = body.pop("queue", False)
        if not isinstance(queue, bool):
            raise BadRequest("queue: must be true or false", field="queue")
        config = parse_train_config(body)
        select_device(config.device)  # an unavailable device is refused before anything starts
        self.start_next()  # a queue left waiting by a failure goes on first
        with self._lock:
            self._refuse_while_closing()
            busy = bool(self._active_run_id or self.store.queued())
            if busy and not queue:
                raise Conflict(f"a run is already active ({self._active_run_id}); stop it first, or queue this one"
                               if self._active_run_id else "runs are queued: queue this one after them")
            run_id, run_dir = self._writing(self.store.create)
            if busy:
                try:
                    self._writing(lambda: self.store.enqueue(run_id, config.to_dict(), planned_status(config, run_id)))
                except InsufficientStorage:
                    self.store.delete(run_id)  # no empty folder left behind
                    raise
                log.info("queued run %s", run_id)
                return run_id, QUEUED_STATE
            self._launch(Trainer(config, self.data_dir, run_dir, **self.trainer_options))
        log.info("started run %s", run_id)
        return run_id, "starting"

    def resume(self, run_id: str) -> str:
        """Go on with a stopped, failed or interrupted run from its last epoch-end checkpoints."""
        self.settle()
        with self._lock:
            self._refuse_while_closing()
            if self._active_run_id:
                raise Conflict(f"a run is active ({self._active_run_id}); resume this one when it has ended")
            if self.store.trained_elsewhere(run_id):
                raise Conflict(f"run {run_id} is being trained by another process")
            try:
                check_can_resume(self.store.run_dir(run_id))
                self._launch(self._trainer_of(run_id, resume=True))
            except (ResumeError, ConfigError) as exc:
                raise BadRequest(f"run {run_id} cannot be resumed: {exc}") from None
        log.info("resumed run %s", run_id)
        return run_id

    def cancel(self, run_id: str) -> None:
        """Take a queued run out of the queue (its folder, which holds only its settings, goes)."""
        with self._lock:
            state = (self.store.status(run_id) or {}).get("state")
            if state != QUEUED_STATE:
                raise Conflict(f"run {run_id} is {state or 'not started yet'}, not queued: only a queued run "
                               "can be cancelled" + (" (stop it instead)" if state in ACTIVE_STATES else ""))
            self.store.delete(run_id)
        log.info("cancelled queued run %s", run_id)

    def _refuse_while_closing(self) -> None:
        if self._closing:
            raise Conflict("the server is shutting down: start or resume the run when it is back")

    def settle(self, timeout: float = 5.0) -> None:
        """A run whose final status is on disk (the page shows it ended) has only its clean-up
        left (a stopped run: its last curves, about a second): wait for it, so that a Start, a
        Stop or a Delete right after the end sees no active run."""
        trainer, thread = self._trainer, self._thread
        if trainer is not None and thread is not None and trainer.ended:
            thread.join(timeout)

    def _writing(self, action):
        """Run ``action``; a full disk or a folder without permission is a 507 that names the path."""
        try:
            return action()
        except OSError as exc:
            raise InsufficientStorage(str(write_error(exc, getattr(exc, "filename", None) or self.store.root))) from None

    def _trainer_of(self, run_id: str, resume: bool = False) -> Trainer:
        """A trainer for a run that has its folder already (queued, or to resume), from its config.json."""
        config = parse_train_config(self.store.config(run_id))
        select_device(config.device)  # a GPU that is gone is refused before anything is written
        return Trainer(config, self.data_dir, self.store.run_dir(run_id), resume=resume, **self.trainer_options)

    def _launch(self, trainer: Trainer) -> None:
        """Start ``trainer`` on the worker thread (the lock is held). Its config.json and status.json
        are on disk on return, so a 202 is never followed by a 404."""
        self._active_run_id = self.last_run_id = trainer.run_id
        try:
            self._writing(trainer.prepare)
            thread = threading.Thread(target=self._work, args=(trainer,), name="training-worker", daemon=True)
            self._trainer, self._thread = trainer, thread
            thread.start()
        except BaseException:
            self._active_run_id = None
            trainer.close()
            raise

    def start_next(self) -> str | None:
        """Start the oldest queued run if nothing trains; its id. A queued run that cannot start
        (its device is gone, say) ends 'failed' with the reason, and the next one is tried."""
        with self._lock:
            if self._active_run_id or self._closing:
                return None
            for run_id in self.store.queued():
                try:
                    self._launch(self._trainer_of(run_id))
                    log.info("started queued run %s", run_id)
                    return run_id
                except (ConfigError, ApiError, OSError) as exc:
                    log.error("queued run %s cannot start: %s", run_id, exc)
                    try:
                        self.store.end_queued(run_id, f"could not start: {getattr(exc, 'message', exc)}")
                    except OSError:
                        log.exception("could not mark run %s failed", run_id)
                        return None
        return None

    def _work(self, trainer: Trainer) -> None:
        try:
            trainer.run()
            try:  # while the run still counts as active, so nothing starts in a folder being removed
                self.store.cleanup(protect={trainer.run_id})
            except OSError:
                log.exception("clean-up of old runs failed")
        finally:
            with self._lock:
                self._active_run_id = None
            self.start_next()

    def stop(self) -> str:
        """Stop this server's run within one batch, else ask a run that another process trains
        (python train.py into the same runs folder) to stop, through its stop file."""
        self.settle()
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

    def shutdown(self, timeout: float) -> bool:
        """Stop the active run at its next batch and wait for it to end 'stopped' (resumable);
        queued runs stay queued. True if the worker ended within ``timeout`` seconds."""
        with self._lock:
            self._closing = True
            if self._active_run_id:
                self._trainer.stop_event.set()
        return self.wait(timeout)

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
    app.extensions["training"].start_next()  # runs queued before a restart go on
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


def stop_gracefully(manager: TrainingManager) -> None:
    """On SIGTERM or Ctrl-C: stop the active run at its next batch (it ends 'stopped', resumable
    from its last epoch-end checkpoint; queued runs stay queued), then leave the server loop."""
    def handler(signum, frame):
        if manager.closing:  # a second Ctrl-C: no more waiting
            raise SystemExit(1)
        log.info("%s: stopping the active run, then exiting", signal.Signals(signum).name)
        if not manager.shutdown(SHUTDOWN_WAIT):
            log.warning("the run did not stop within %.0f s; exiting anyway (it will show as interrupted)",
                        SHUTDOWN_WAIT)
        raise SystemExit(0)  # waitress closes its sockets and request threads on SystemExit

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


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
    stop_gracefully(app.extensions["training"])
    shown = f"[{args.host}]" if ":" in args.host else args.host
    address = f"http://{shown}:{args.port}/" + (f"?token={token}" if token else "")
    log.info("MNIST Training Monitor on %s (data %s, runs %s)", address, args.data_dir, args.runs_dir)
    print(f"Open {address}", flush=True)
    waitress.serve(app, host=args.host, port=args.port, threads=args.threads, ident="mnist-monitor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
