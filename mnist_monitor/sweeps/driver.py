"""Drives sweeps: asks each sweep's study for its next trial when a worker is free, queues the
trial as an ordinary run (the queue on disk stays the one line of runs), and tells the study each
run's result when it ends. One process drives a sweep at a time (the server, or
``python train.py --sweep``): the one holding the lock in the sweep's folder. A sweep whose
driver went away is taken over by the next server started on the runs folder; its trials cut off
by the restart are resumed with their runs."""
from __future__ import annotations

import contextlib
import logging
import secrets
import threading

from mnist_monitor.config import MAX_MODELS, ConfigError, parse_train_config
from mnist_monitor.runstore import (ACTIVE_STATES, PRUNED_STATE, QUEUED_STATE, RESUMABLE_STATES, RecordError, Run,
                                    RunStore)
from mnist_monitor.scheduling.executors import WorkerUnavailable
from mnist_monitor.scheduling.manager import MAX_QUEUED, Refused, TrainingManager, UnknownRun, check_device
from mnist_monitor.sweeps.folder import Sweep, SweepError, SweepStore
from mnist_monitor.sweeps.spec import SweepSpec
from mnist_monitor.training.checkpoints import ResumeError

log = logging.getLogger("sweeps")

PUMP_INTERVAL = 1.0  # seconds between looks at the sweeps' runs (a run's end is also told at once)
MAX_CUT_OFFS = 3  # a trial cut off by the machinery is resumed or started again this many times at most
MAX_RUNNING_SWEEPS = 16  # each running sweep holds its driver's lock file open and is looked at every
# second; 16 at most keeps a busy server well inside its open-files limit and its CPU


class QueueRoom:
    """Places left in the run queue, counted once per look at the sweeps (listing the queue reads
    every run folder's status), then as trials are queued."""

    def __init__(self, store: RunStore):
        self.store, self._left = store, None

    def take(self) -> bool:
        if self._left is None:
            self._left = MAX_QUEUED - len(self.store.queued())
        if self._left <= 0:
            return False
        self._left -= 1
        return True


class Held:
    """A sweep this process drives: its lease's owner, its study, and the trials to resume."""

    def __init__(self, sweep: Sweep, owner: str):
        self.sweep, self.owner = sweep, owner
        self.study = sweep.study()
        self.to_resume: set[str] | None = None  # decided at the first look after taking the lease

    def release(self) -> None:
        self.sweep.release_lease(self.owner)


class SweepDriver:
    """Drives every running sweep of ``sweeps`` that no other process drives, through ``manager``."""

    def __init__(self, sweeps: SweepStore, manager: TrainingManager, interval: float = PUMP_INTERVAL):
        self.sweeps, self.manager, self.store = sweeps, manager, manager.store
        self.interval = interval
        self._held: dict[str, Held] = {}
        self.owner = secrets.token_hex(8)  # this driver, in the leases of the sweeps it drives
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._closing = False
        self._thread: threading.Thread | None = None
        # owner of a sweep -> how many of its trials may be queued or training at once (None: as many as
        # there are workers); a class caps a student's at their limits of active and queued runs
        self.in_flight_limit = lambda owner: None

    # ---------------------------------------------------------------- life
    def start(self) -> "SweepDriver":
        self._thread = threading.Thread(target=self._loop, name="sweeps", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._closing:
            try:
                self.pump_all()
            except Exception:  # a bad sweep folder must not end the driving of the others
                log.exception("driving the sweeps failed; trying again")
            self._wake.wait(self.interval)
            self._wake.clear()

    def drives(self, sweep_id: str) -> bool:
        """Whether this process drives the sweep now (it has runs pending or goes on)."""
        with self._lock:
            return sweep_id in self._held

    def wake(self) -> None:
        self._wake.set()

    def close(self) -> None:
        """Drive no more (before the worker stops its runs: a run stopped by a shutdown is a trial
        to resume, not a result). The sweeps stay 'running' on disk for the next driver."""
        with self._lock:
            self._closing = True
            for held in self._held.values():
                held.release()
            self._held.clear()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

    # ---------------------------------------------------------------- requests
    def create(self, spec: SweepSpec, owner: str | None = None) -> Sweep:
        """Make a sweep and queue its first trials (202 at once: the runs train in the background);
        ``owner``: the student who makes it (its trials are theirs), in a class."""
        with self._lock:
            if self._closing or self.manager.closing:
                raise Refused("the server is shutting down: start the sweep when it is back")
            running = len(self.sweeps.running())
            if running >= MAX_RUNNING_SWEEPS:
                raise Refused(f"{running} sweeps are running, the most this server drives at once: stop one, "
                              "or start this one when one has ended")
            try:  # what a trial's start would refuse is refused before the sweep exists
                check_device(spec.config_for({}), self.manager.pool)
            except ConfigError as exc:
                raise ConfigError(f"base.{exc.field}", exc.problem) from None
            sweep = self.sweeps.create(spec, owner)
            self._take(sweep)
            self.pump(sweep.sweep_id)
        return sweep

    def stop(self, sweep_id: str) -> None:
        """Stop a sweep: its queued trials are cancelled, its training ones stopped. A sweep another
        process drives gets the request through its folder."""
        sweep = self.sweeps.get(sweep_id)
        if sweep is None:
            raise UnknownRun(f"no sweep {sweep_id!r}")
        state = sweep.state()["state"]
        if state != "running":
            raise Refused(f"sweep {sweep_id} is {state}, not running")
        sweep.request_stop()
        with self._lock:
            if sweep_id in self._held:
                self.pump(sweep_id)
        self.wake()

    def add_trials(self, sweep_id: str, more: int) -> Sweep:
        """``more`` trials of a search, running or ended: the same study goes on (a finished or
        stopped sweep runs again), driven here."""
        with self._lock:
            if self._closing or self.manager.closing:
                raise Refused("the server is shutting down: add the trials when it is back")
            sweep = self.sweeps.get(sweep_id)
            if sweep is None:
                raise UnknownRun(f"no sweep {sweep_id!r}")
            if sweep_id not in self._held and sweep.driven_elsewhere(self.owner):
                raise Refused(f"sweep {sweep_id} is driven by another process (python train.py --sweep, or another "
                              "server on this runs folder): add trials there, or when it has ended")
            running = len(self.sweeps.running())
            if sweep.state()["state"] != "running" and running >= MAX_RUNNING_SWEEPS:
                raise Refused(f"{running} sweeps are running, the most this server drives at once: add trials to "
                              "this one when one has ended")
            sweep.add_trials(more)
            if sweep_id not in self._held:
                self._take(sweep)
            self.pump(sweep_id)
        return sweep

    # ---------------------------------------------------------------- driving
    def pump_all(self) -> None:
        with self._lock:
            if self._closing:
                return
            for sweep in self.sweeps.running():
                if sweep.sweep_id not in self._held:
                    self._take(sweep)
            for sweep_id, held in list(self._held.items()):  # each lease renewed: it lapses unrenewed
                if not held.sweep.take_lease(self.owner):
                    log.warning("sweep %s is driven by another process now (this one was held up past its "
                                "lease)", sweep_id)
                    del self._held[sweep_id]
            room = QueueRoom(self.store)  # one look at the queue for every sweep
            for sweep_id in list(self._held):
                self.pump(sweep_id, room)
        self.manager.start_next()

    def _take(self, sweep: Sweep) -> bool:
        if not sweep.take_lease(self.owner):
            return False  # python train.py --sweep (or another server) drives it
        try:
            self._held[sweep.sweep_id] = Held(sweep, self.owner)
        except (SweepError, OSError, ValueError) as exc:
            sweep.release_lease(self.owner)
            log.error("sweep %s cannot be driven: %s", sweep.sweep_id, exc)
            sweep.write_state("failed", f"cannot be driven: {exc}")
            return False
        log.info("driving sweep %s", sweep.sweep_id)
        return True

    def pump(self, sweep_id: str, room: QueueRoom | None = None) -> None:
        """Tell the study the results of the trials whose runs ended, then ask for new trials while
        workers are free (or, for a sweep asked to stop, cancel and stop its runs)."""
        with self._lock:
            held = self._held.get(sweep_id)
            if held is None or self._closing or self.manager.closing:
                return  # shutting down: runs stopped now are trials to resume, not results
            sweep, study = held.sweep, held.study
            stopping = sweep.stop_requested()
            trials = study.get_trials(deepcopy=False)
            if held.to_resume is None:  # cut off by the last driver's end (a server restart)
                held.to_resume = {t.user_attrs.get("run_id") for t in trials if t.state.name == "RUNNING"
                                  and (s := self.store.snapshot(t.user_attrs.get("run_id") or "")) is not None
                                  and s.state in RESUMABLE_STATES}
            pending = sum(settle(self, held, t, stopping) for t in trials if t.state.name == "RUNNING")
            if stopping:
                if sweep.state()["state"] == "running":
                    sweep.write_state("stopped")
                    log.info("sweep %s stopped", sweep_id)
            else:
                made = sum(t.state.name != "WAITING" for t in trials)  # a grid's combinations wait enqueued
                places = room or QueueRoom(self.store)
                cap = min(self.manager.capacity, self.in_flight_limit(sweep.owner()) or self.manager.capacity)
                while pending < cap and made < sweep.spec().trials:
                    if not ask_trial(held, self.manager, places):
                        break
                    made += 1
                    pending += 1
                if made >= sweep.spec().trials and pending == 0:
                    end_sweep(held)
            if pending == 0 and (stopping or sweep.state()["state"] != "running"):
                held.release()
                del self._held[sweep_id]
        if room is None:  # a look at one sweep; a look at them all starts the queue once, after them
            self.manager.start_next()

def settle(driver: SweepDriver, held: Held, trial, stopping: bool) -> bool:
    """Look at an unfinished trial's run: tell the study its result if it ended; whether it is
    still pending (queued, training, or waiting to be resumed)."""
    study = held.study
    run_id = trial.user_attrs.get("run_id")
    if not run_id and "values" in trial.user_attrs:  # asked, but not queued yet
        if stopping:
            fail_trial(held, trial, "cancelled: the sweep was stopped")
            return False
        values = trial.user_attrs["values"]
        queue_trial(held, driver.manager, trial, values, held.sweep.spec().config_for(values))
        return True
    snap = driver.store.snapshot(run_id) if run_id else None
    if snap is None:
        fail_trial(held, trial, "its run was deleted before it ended" if run_id else "its run was never made")
        return False
    if snap.state == QUEUED_STATE:
        if not stopping:
            return True
        try:
            driver.manager.cancel(run_id)
            set_attr(held, trial, "ended", "cancelled")
            fail_trial(held, trial, "cancelled: the sweep was stopped")
            return False
        except (Refused, UnknownRun):  # it started meanwhile: stopped at the next look
            return True
    if snap.state in ACTIVE_STATES:
        if stopping and snap.state != "stopping":
            try:
                driver.manager.stop(run_id)
            except (Refused, UnknownRun):
                pass
        return True
    if snap.state == "finished":
        study.tell(trial.number, objective(driver.store, run_id, held.sweep.spec().objective_model))
    elif snap.state == PRUNED_STATE:
        study.tell(trial.number, state=_state("PRUNED"))
    elif driver.manager.closing:
        return True  # stopped by the shutdown: resumed by the next driver
    elif (run_id in (held.to_resume or ()) or snap.state == "interrupted") and not stopping:
        return resume_trial(driver.manager, held, trial, run_id)  # cut off by the machinery: not a result
    else:  # failed (a NaN loss), stopped by the user, interrupted, broken: a result of the sweep
        reason = (snap.status.error if snap.status else snap.problem) or snap.state
        fail_trial(held, trial, f"{snap.state}: {reason}" if reason != snap.state else snap.state)
    log.info("sweep %s: trial %d (run %s) %s", held.sweep.sweep_id, trial.number, run_id, snap.state)
    return False


def resume_trial(manager: TrainingManager, held: Held, trial, run_id: str) -> bool:
    """A trial cut off by the machinery (a restart, a lost worker or node) goes on from its
    checkpoints, or is trained again with the same values when it has none; a trial cut off
    more than MAX_CUT_OFFS times is failed (something kills it every time)."""
    if manager.slots.full:
        return True  # waits for a free worker
    (held.to_resume or set()).discard(run_id)
    cut_offs = trial.user_attrs.get("cut_offs", 0) + 1
    if cut_offs > MAX_CUT_OFFS:
        fail_trial(held, trial, f"cut off {cut_offs - 1} times: not tried again")
        return False
    set_attr(held, trial, "cut_offs", cut_offs)
    run = manager.store.run(run_id)
    if run is not None and not any(run.checkpoint(i, "latest") for i in range(MAX_MODELS)):
        return start_trial_again(manager, held, trial, run, cut_offs)
    try:
        manager.resume(run_id)
        log.info("sweep %s: trial %d resumed (run %s)", held.sweep.sweep_id, trial.number, run_id)
        return True
    except (Refused, ResumeError, ConfigError, UnknownRun) as exc:
        fail_trial(held, trial, f"cut off and could not be resumed: {exc}")
        return False

def start_trial_again(manager: TrainingManager, held: Held, trial, run: Run, cut_offs: int) -> bool:
    """A trial cut off before its first epoch ended (nothing to resume from): a new run with the
    same settings and values takes its place in the trial, and the cut-off one goes."""
    try:
        config = parse_train_config(run.config())
        facts = run.facts()
        new_id, _ = manager.start(config, queue=True, facts={"sweep": facts["sweep"], "owner": facts.get("owner")})
    except (Refused, OSError) as exc:  # the queue is full or the server closing: tried at a later look
        log.warning("sweep %s: trial %d not started again yet: %s", held.sweep.sweep_id, trial.number, exc)
        set_attr(held, trial, "cut_offs", cut_offs - 1)
        return True
    except (RecordError, ConfigError, KeyError) as exc:
        fail_trial(held, trial, f"cut off before its first epoch ended, and its settings cannot be read: {exc}")
        return False
    set_attr(held, trial, "run_id", new_id)
    with contextlib.suppress(Refused, UnknownRun, OSError):
        manager.delete(run.run_id)
    log.info("sweep %s: trial %d cut off before its first checkpoint: started again as run %s",
             held.sweep.sweep_id, trial.number, new_id)
    return True


def ask_trial(held: Held, manager: TrainingManager, room: QueueRoom) -> bool:
    """A new trial of the sweep, queued as a run; False if the queue has no room now."""
    sweep, study = held.sweep, held.study
    if manager.closing or not room.take():
        return False  # asked again at a later look
    trial = ask_next(sweep, study)
    try:
        values = sweep.suggest(trial)
        trial.set_user_attr("values", values)
        config = sweep.spec().config_for(values)
    except ConfigError as exc:  # a searched combination the run config refuses (memory)
        trial.set_user_attr("error", str(exc))
        study.tell(trial, state=_state("FAIL"))
        return True
    return queue_trial(held, manager, trial, values, config)


def queue_trial(held: Held, manager: TrainingManager, trial, values: dict, config) -> bool:
    """Queue an asked trial as a run; False if it could not be now (the queue filled or the server
    began to close since the look, a full disk, Ray away): the trial keeps its values and waits,
    and is queued at a later look (Optuna cannot take an asked trial back, and a failed one would
    count as one of the sweep's trials: a grid's combination would never be trained)."""
    sweep = held.sweep
    facts = {"sweep": {"sweep_id": sweep.sweep_id, "trial": trial.number,
                       "trial_id": trial._trial_id,  # Optuna's id of the trial (what Trial() is made from)
                       "values": values}, "owner": sweep.owner()}
    try:
        run_id, _ = manager.start(config, queue=True, facts=facts)
    except (Refused, OSError, WorkerUnavailable) as exc:
        log.warning("sweep %s: trial %d not queued yet: %s", sweep.sweep_id, trial.number, exc)
        set_attr(held, trial, "error", f"waiting to be queued: {exc}")
        return False
    set_attr(held, trial, "run_id", run_id)
    if trial.user_attrs.get("error"):
        set_attr(held, trial, "error", None)
    log.info("sweep %s: trial %d queued as run %s (%s)", sweep.sweep_id, trial.number, run_id, values)
    return True


def ask_next(sweep: Sweep, study):
    """Ask the study for its next trial, picked by that trial number's own sampler."""
    study.sampler = sweep.sampler(len(study.get_trials(deepcopy=False)))
    return study.ask()


def end_sweep(held: Held) -> None:
    """Every trial has a result: 'finished', or 'failed' if none ended with one."""
    trials = held.study.get_trials(deepcopy=False)
    results = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    if results:
        held.sweep.write_state("finished")
    else:
        held.sweep.write_state("failed", f"none of its {len(trials)} trials ended with a result")
    log.info("sweep %s %s", held.sweep.sweep_id, "finished" if results else "failed")


def set_attr(held: Held, trial, key: str, value) -> None:
    import optuna
    optuna.trial.Trial(held.study, trial._trial_id).set_user_attr(key, value)


def fail_trial(held: Held, trial, reason: str) -> None:
    """Tell the study the trial failed, and why (the sweep view shows it)."""
    set_attr(held, trial, "error", reason[:300])
    held.study.tell(trial.number, state=_state("FAIL"))


def _state(name: str):
    import optuna
    return getattr(optuna.trial.TrialState, name)


def objective(store: RunStore, run_id: str, model: int | None = None) -> float:
    """A run's best validation accuracy (percent), of its best model, or of model ``model`` (the
    one whose settings the sweep varies)."""
    run = store.run(run_id)
    rows, _ = store.metrics.read(run) if run else ([], None)
    values = [r["val_accuracy"] for r in rows if r.get("kind") == "eval" and r.get("val_accuracy") is not None
              and (model is None or r.get("model") == model)]
    return max(values, default=0.0)
