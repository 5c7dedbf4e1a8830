"""The training worker: starts, queues, resumes, cancels and stops runs, one at a time, in a thread
of this process. Queued runs are folders with config.json and a 'queued' status.json: they start
oldest first, each when the one before it has ended, and survive a restart of the server.

Errors are the domain's (``Refused``, ``UnknownRun``, ``ResumeError``, ``ConfigError``, and
``WriteError`` for a full disk); the web
routes turn them into HTTP answers."""
from __future__ import annotations

import dataclasses
import logging
import threading
import time

from checkpoints import ResumeError, check_can_resume
from config import ConfigError, TrainConfig, parse_train_config
from hardware import select_device
from recorder import planned_status
from runstore import (ACTIVE_STATES, QUEUED_STATE, RecordError, Run, RunStatus, RunStore, delete_unless_training,
                      snapshot)
from runstore.files import write_error
from train import Trainer

log = logging.getLogger("worker")

SETTLE_SECONDS = 5.0  # at most this long for a run whose final status is written to finish its clean-up
MAX_QUEUED = 256  # runs waiting at once: room for several full sweeps (64 runs each), and every poll stays cheap


class Refused(Exception):
    """The worker cannot do this now (a run is active, the run is not queued, the server is
    shutting down); the message says why and what to do."""


class UnknownRun(LookupError):
    """No run has this id."""


class TrainingManager:
    """Owns the one training thread, its trainer, and the queue of runs waiting for it."""

    def __init__(self, store: RunStore, data_dir, trainer_options: dict | None = None):
        self.store = store
        self.data_dir = data_dir
        self.trainer_options = trainer_options or {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._trainer: Trainer | None = None
        # Set from the moment the run folder exists until the thread has ended: nothing else starts
        # meanwhile, and clean-up never removes it.
        self._active_run_id: str | None = None
        self._closing = False  # shutting down: nothing new starts, the queue waits on disk
        self.last_run_id: str | None = None  # the run trained last here (shown when idle)

    @property
    def active_run_id(self) -> str | None:
        return self._active_run_id

    @property
    def closing(self) -> bool:
        return self._closing

    # ---------------------------------------------------------------- starting
    def start(self, config: TrainConfig, queue: bool = False) -> tuple[str, str]:
        """Start a run now, or with ``queue`` put it in line while another trains; (run id,
        'starting' or 'queued'). An unavailable device is refused before anything is written."""
        device = select_device(config.device)
        self.settle()
        self.start_next()  # a queue left waiting by a failure goes on first
        with self._lock:
            self._refuse_while_closing()
            waiting = len(self.store.queued())
            busy = bool(self._active_run_id or waiting)
            refuse_unless_room(self._active_run_id, waiting, queue)
            run = self.store.create()
            if busy:
                enqueue(run, config)
                log.info("queued run %s", run.run_id)
                return run.run_id, QUEUED_STATE
            try:
                self._launch(Trainer(config, self.data_dir, run.path, device=device, **self.trainer_options))
            except BaseException:
                run.delete()  # it never started: no folder is left that nothing lists or cleans
                raise
        log.info("started run %s", run.run_id)
        return run.run_id, "starting"

    def resume(self, run_id: str) -> str:
        """Go on with a stopped, failed or interrupted run from its last epoch-end checkpoints."""
        self.settle()
        run = self._run(run_id)
        with self._lock:
            self._refuse_while_closing()
            if self._active_run_id:
                raise Refused(f"a run is active ({self._active_run_id}); resume this one when it has ended")
            if snapshot(run).state in ACTIVE_STATES:
                raise Refused(f"run {run_id} is being trained by another process")
            try:
                check_can_resume(run)
                self._launch(self._trainer_of(run, resume=True))
            except (ResumeError, ConfigError, RecordError) as exc:
                raise ResumeError(f"run {run_id} cannot be resumed: {exc}") from None
        log.info("resumed run %s", run_id)
        return run_id

    def start_next(self) -> str | None:
        """Start the oldest queued run if nothing trains; its id. A queued run that cannot start
        (its device is gone, say) ends 'failed' with the reason, and the next one is tried."""
        with self._lock:
            if self._active_run_id or self._closing:
                return None
            for run in self.store.queued():
                try:
                    self._launch(self._trainer_of(run))
                    log.info("started queued run %s", run.run_id)
                    return run.run_id
                except (ConfigError, RecordError, ResumeError, OSError) as exc:
                    log.error("queued run %s cannot start: %s", run.run_id, exc)
                    if not end_queued(run, f"could not start: {exc}"):
                        return None
        return None

    def _trainer_of(self, run: Run, resume: bool = False) -> Trainer:
        """A trainer for a run that has its folder already (queued, or to resume), from its config.json;
        a device that is gone is refused before anything is written."""
        config = parse_train_config(run.config())
        return Trainer(config, self.data_dir, run.path, resume=resume, device=select_device(config.device),
                       **self.trainer_options)

    def _launch(self, trainer: Trainer) -> None:
        """Start ``trainer`` on the training thread (the lock is held). Its config.json and status.json
        are on disk on return, so a 202 is never followed by a 404."""
        self._active_run_id = self.last_run_id = trainer.run_id
        try:
            trainer.prepare()
            thread = threading.Thread(target=self._work, args=(trainer,), name="training-worker", daemon=True)
            self._trainer, self._thread = trainer, thread
            thread.start()
        except BaseException as exc:
            self._active_run_id = None
            trainer.close()
            if isinstance(exc, OSError):  # a write that failed: a WriteError that names the folder
                raise write_error(exc, getattr(exc, "filename", None) or trainer.folder.path) from None
            raise

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

    # ---------------------------------------------------------------- stopping and removing
    def stop(self) -> str:
        """Stop the run trained here within one batch, else the newest run that another process
        trains (python train.py into the same runs folder, or another machine), through its stop
        request; the id of the run asked to stop."""
        self.settle()
        with self._lock:
            run_id = self._active_run_id
            if run_id:
                self._trainer.stop_event.set()
        if not run_id:
            live = self.store.live()
            if not live:
                raise Refused("no run is active")
            run_id = live[0]
        self._run(run_id).request_stop()  # every reader sees 'stopping' from now on
        log.info("stop requested for run %s", run_id)
        return run_id

    def cancel(self, run_id: str) -> None:
        """Take a queued run out of the queue (its folder, which holds only its settings, goes)."""
        run = self._run(run_id)
        with self._lock:
            state = snapshot(run).state
            if state != QUEUED_STATE:
                raise Refused(f"run {run_id} is {state}, not queued: only a queued run can be cancelled"
                              + (" (stop it instead)" if state in ACTIVE_STATES else ""))
            run.delete()
        self.store.recount_size()
        log.info("cancelled queued run %s", run_id)

    def delete(self, run_id: str) -> None:
        """Delete a run and all its files; never one that trains (here or elsewhere)."""
        self.settle()
        run = self._run(run_id)
        with self._lock:
            if run_id == self._active_run_id or not delete_unless_training(run):
                raise Refused(f"run {run_id} is training: stop it before deleting it")
        self.store.recount_size()
        log.info("deleted run %s", run_id)

    def _run(self, run_id: str) -> Run:
        run = self.store.run(run_id)
        if run is None:
            raise UnknownRun(f"no run {run_id!r}")
        return run

    def _refuse_while_closing(self) -> None:
        if self._closing:
            raise Refused("the server is shutting down: start or resume the run when it is back")

    def settle(self, timeout: float = SETTLE_SECONDS) -> None:
        """A run whose final status is on disk (the page shows it ended) has only its clean-up
        left (a stopped run: its last curves, about a second): wait for it, so that a Start, a
        Stop or a Delete right after the end sees no active run."""
        trainer, thread = self._trainer, self._thread
        if trainer is not None and thread is not None and trainer.ended:
            thread.join(timeout)

    def begin_shutdown(self) -> None:
        """Nothing new starts from now on (409); the active run stops at its next batch and ends
        'stopped' (resumable); queued runs stay queued."""
        with self._lock:
            self._closing = True
            if self._active_run_id:
                self._trainer.stop_event.set()

    def shutdown(self, timeout: float) -> bool:
        """``begin_shutdown``, then wait; True if the training thread ended within ``timeout`` seconds."""
        self.begin_shutdown()
        return self.wait(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the training thread to end (tests, shutdown); True if it has."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True


def refuse_unless_room(active_run_id: str | None, waiting: int, queue: bool) -> None:
    """Refused unless a run can start now, or (``queue``) wait in a queue that is not full."""
    if (active_run_id or waiting) and not queue:
        raise Refused(f"a run is already active ({active_run_id}); stop it first, or queue this one"
                      if active_run_id else "runs are queued: queue this one after them")
    if waiting >= MAX_QUEUED:
        raise Refused(f"the queue is full ({MAX_QUEUED} runs wait already): cancel some, or queue this one when "
                      "they have started")


def enqueue(run: Run, config: TrainConfig) -> None:
    """Make a new, empty run folder a queued run: its settings and a 'queued' status."""
    try:
        run.write_config(config.to_dict())
        run.write_status(planned_status(config, run.run_id))
    except OSError:
        run.delete()  # no half-made folder left behind
        raise


def end_queued(run: Run, error: str) -> bool:
    """A queued run that cannot start ends 'failed' with ``error``; False if that cannot be written."""
    try:
        status = run.status() or RunStatus(state="failed", run_id=run.run_id)
    except RecordError:
        status = RunStatus(state="failed", run_id=run.run_id)
    now = time.time()
    try:
        run.write_status(dataclasses.replace(status, state="failed", error=error, updated_at=now, finished_at=now))
        return True
    except OSError:
        log.exception("could not mark run %s failed", run.run_id)
        return False
