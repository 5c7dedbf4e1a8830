"""The training manager: starts, queues, resumes, cancels and stops runs: one at a time in a thread
of this process (the default), or several at once as Ray tasks (``ray_pool.RayPool``). Queued runs
are folders with config.json and a 'queued' status.json: they start oldest first, each when a
slot is free, and survive a restart of the server.

Errors are the domain's (``Refused``, ``UnknownRun``, ``ResumeError``, ``ConfigError``, and
``WriteError`` for a full disk); the web
routes turn them into HTTP answers."""
from __future__ import annotations

import logging
import threading

from mnist_monitor.config import ConfigError, TrainConfig
from mnist_monitor.runstore import (ACTIVE_STATES, QUEUED_STATE, RecordError, Run, RunStore, delete_unless_training,
                                    snapshot)
from mnist_monitor.scheduling.executors import Slots, WorkerUnavailable, end_unstarted, tend
from mnist_monitor.training.checkpoints import ResumeError, check_can_resume
from mnist_monitor.training.hardware import select_device
from mnist_monitor.training.recorder import planned_status

log = logging.getLogger("worker")

MAX_QUEUED = 256  # runs waiting at once: room for several full sweeps (64 runs each), and every poll stays cheap


class Refused(Exception):
    """The worker cannot do this now (a run is active, the run is not queued, the server is
    shutting down); the message says why and what to do."""


class UnknownRun(LookupError):
    """No run has this id."""


class TrainingManager:
    """Owns the runs training now (each in a slot: a thread of this process, or a Ray task when
    ``pool`` is given, up to its capacity) and the queue of runs waiting for a free slot."""

    def __init__(self, store: RunStore, data_dir, trainer_options: dict | None = None, pool=None, *, trainer_class):
        self.store = store
        self.pool = pool  # a cluster.RayPool, or None: one run at a time in a thread here
        self.slots = Slots(store, data_dir, trainer_options or {}, pool, on_free=self.start_next,
                           trainer_class=trainer_class)  # train.Trainer
        self.capacity, self.data_dir = self.slots.capacity, data_dir
        self.trainer_options = self.slots.trainer_options  # the one dict the slots use
        self._lock = threading.Lock()
        self._closing = False  # shutting down: nothing new starts, the queue waits on disk
        self.last_run_id: str | None = None  # the run started last here (shown when idle)
        self.next_in_turn = None  # (queued runs, oldest first) -> the one to start, or None: see next_queued

    @property
    def active_run_ids(self) -> list[str]:
        """The runs training here, newest start last."""
        return self.slots.ids

    active_run_id = property(lambda self: self.active_run_ids[-1] if self.active_run_ids else None)  # started last

    @property
    def workers_unavailable(self) -> str | None:
        """Why Ray cannot take runs now (its instance is being restarted, say); else None."""
        return self.pool.available() if self.pool is not None else None

    closing = property(lambda self: self._closing)

    # ---------------------------------------------------------------- starting
    def start(self, config: TrainConfig, queue: bool = False, facts: dict | None = None) -> tuple[str, str]:
        """Start a run now (a slot is free), or with ``queue`` put it in line; (run id, 'starting' or 'queued').
        An unavailable device is refused before anything is written. ``facts``: its first facts (run.json)."""
        device = None if self.pool else select_device(config.device)  # a Ray task finds its own
        self.slots.settle()
        self.start_next()  # a queue left waiting by a failure goes on first
        with self._lock:
            self._refuse_while_closing()
            waiting = len(self.store.queued())  # (Ray away: a run asked to queue waits; a start is 503)
            busy = self.slots.full or bool(waiting) or (queue and bool(self.workers_unavailable))
            refuse_unless_room(self.active_run_ids, waiting, queue, busy)
            run = self.store.create()
            if facts:
                try:
                    run.write_config(config.to_dict(), facts={"run_id": run.run_id, **facts})
                except OSError:
                    run.delete()  # no half-made folder left behind
                    raise
            if busy:
                enqueue(run, config)
                log.info("queued run %s", run.run_id)
            else:
                try:
                    self.slots.launch(run, config, device=device)
                    self.last_run_id = run.run_id
                except BaseException:
                    run.delete()  # it never started: no folder is left that nothing lists or cleans
                    raise
        if busy:
            self.start_next()  # a free worker that the queue's turns left waiting takes it now
            return run.run_id, QUEUED_STATE
        log.info("started run %s", run.run_id)
        return run.run_id, "starting"

    def resume(self, run_id: str) -> str:
        """Go on with a stopped, failed or interrupted run from its last epoch-end checkpoints."""
        self.slots.settle()
        run = self._run(run_id)
        with self._lock:
            self._refuse_while_closing()
            if self.slots.get(run_id):
                raise Refused(f"run {run_id} is being resumed already")
            if self.slots.full:
                raise Refused(f"{'every worker is' if self.pool else 'a run is'} busy ({', '.join(self.slots.ids)}); "
                              "resume this one when a run has ended")
            if snapshot(run).state in ACTIVE_STATES:
                raise Refused(f"run {run_id} is being trained by another process")
            try:
                check_can_resume(run)
                slot = self.slots.launch(run, resume=True)
                self.last_run_id = run_id
            except (ResumeError, ConfigError, RecordError) as exc:
                raise ResumeError(f"run {run_id} cannot be resumed: {exc}") from None
        if self.pool:
            self.slots.await_takeover(slot)
        log.info("resumed run %s", run_id)
        return run_id

    def start_next(self) -> list[str]:
        """Start the oldest queued runs while slots are free; their ids. A queued run that cannot
        start (its device is gone, say) ends 'failed' with the reason, and the next one is tried."""
        started = []
        tend(self.slots)  # long waits for a worker said, stops not obeyed escalated
        if self.workers_unavailable:  # the queue waits for Ray to be back (said in /training_status)
            return started
        with self._lock:
            if self._closing:
                return started
            tried = set()
            while not self.slots.full and (run := next_queued(self.store, tried, self.next_in_turn)) is not None:
                tried.add(run.run_id)
                try:
                    with run.locked():  # compare and set: another process sharing the folder may start it first
                        if snapshot(run).state != QUEUED_STATE:
                            continue
                        self.slots.launch(run)
                    self.last_run_id = run.run_id
                    log.info("started queued run %s", run.run_id)
                    started.append(run.run_id)
                except FileNotFoundError:  # cancelled or deleted meanwhile
                    continue
                except WorkerUnavailable as exc:  # Ray is away: the run stays queued for the next try
                    log.error("queued run %s waits: %s", run.run_id, exc)
                    break
                except (ConfigError, RecordError, ResumeError, OSError) as exc:
                    log.error("queued run %s cannot start: %s", run.run_id, exc)
                    if not end_unstarted(run, f"could not start: {exc}"):
                        break
        return started

    # ---------------------------------------------------------------- stopping and removing
    def stop(self, run_id: str) -> str:
        """Stop one run within one batch: one trained here, or one that another process trains
        (python train.py into the same runs folder, or another machine), through its stop request."""
        self.slots.settle()
        run = self._run(run_id)
        with self._lock:
            slot = self.slots.get(run_id)
            if slot is not None:
                slot.stop()
        if slot is None and snapshot(run).state not in ACTIVE_STATES:
            raise Refused(f"run {run_id} is not training")
        run.request_stop()  # every reader sees 'stopping' from now on
        log.info("stop requested for run %s", run_id)
        return run_id

    def stop_all(self, among=None) -> list[str]:
        """Stop every run training here and every run another process trains here; ``among(run_id)``: those it picks."""
        self.slots.settle()
        run_ids = [r for r in dict.fromkeys(self.active_run_ids[::-1] + self.store.live()) if among is None or among(r)]
        if not run_ids:
            raise Refused("no run is active")
        stopped = []
        for run_id in run_ids:
            try:
                stopped.append(self.stop(run_id))
            except (Refused, UnknownRun):  # ended (or deleted) meanwhile
                continue
        if not stopped:
            raise Refused("no run is active")
        return stopped

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
        self.slots.settle()
        run = self._run(run_id)
        with self._lock:
            if self.slots.get(run_id) or not delete_unless_training(run):
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

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the runs training here to end (tests, shutdown); True if they have."""
        return self.slots.wait(timeout)

    def begin_shutdown(self) -> None:
        """Nothing new starts from now on (409); the active runs stop at their next batch and end
        'stopped' (resumable); queued runs stay queued."""
        with self._lock:
            self._closing = True
        self.slots.stop_all(requeue=True)  # a run handed to Ray that has not begun goes back to the queue

    def shutdown(self, timeout: float) -> bool:
        """``begin_shutdown``, then wait; True if every run ended within ``timeout`` seconds."""
        self.begin_shutdown()
        return self.wait(timeout)

def next_queued(store: RunStore, tried: set, next_in_turn) -> Run | None:
    """The queued run to start next, of those not tried in this round: the oldest, or the one
    ``next_in_turn(queued)`` picks (a class's fair share); None if none may start now."""
    queued = [r for r in store.queued() if r.run_id not in tried]
    if next_in_turn is None or not queued:
        return queued[0] if queued else None
    return next_in_turn(queued)


def refuse_unless_room(active: list[str], waiting: int, queue: bool, busy: bool) -> None:
    """Refused unless a run can start now (not ``busy``), or (``queue``) wait in a queue that is not full."""
    if busy and not queue:
        raise Refused("runs are queued: queue this one after them" if waiting and len(active) == 0 else
                      f"a run is already active ({', '.join(active)}); stop it first, or queue this one"
                      if len(active) == 1 else
                      f"every worker is busy ({', '.join(active)}); queue this run, or stop one first")
    if waiting >= MAX_QUEUED:
        raise Refused(f"the queue is full ({MAX_QUEUED} runs wait already): cancel some, or queue this one when "
                      "they have started")


def check_device(config: TrainConfig, pool) -> None:
    """ConfigError (naming "device") if this server cannot train on the device ``config`` asks for;
    a Ray task (``pool``) finds its own device, so then nothing is checked here."""
    if pool is None:
        select_device(config.device)


def enqueue(run: Run, config: TrainConfig) -> None:
    """Make a new, empty run folder a queued run: its settings and a 'queued' status."""
    try:
        run.write_config(config.to_dict())
        run.write_status(planned_status(config, run.run_id))
    except OSError:
        run.delete()  # no half-made folder left behind
        raise
