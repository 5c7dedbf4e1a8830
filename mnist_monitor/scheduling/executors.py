"""Where runs train: a slot each, a thread of this process (the default, one at a time) or a Ray
task in a worker process (``ray_pool.RayPool``, several at once); the slots in use, and what
happens when one ends (clean-up, then the manager's queue goes on)."""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time

from mnist_monitor.config import TrainConfig, parse_train_config
from mnist_monitor.runstore import ACTIVE_STATES, QUEUED_STATE, RecordError, Run, RunStatus, RunStore, snapshot
from mnist_monitor.runstore.files import write_error
from mnist_monitor.scheduling.ray_pool import TaskLost
from mnist_monitor.training.checkpoints import ResumeError
from mnist_monitor.training.hardware import select_device
from mnist_monitor.training.recorder import planned_status

log = logging.getLogger("worker")

SETTLE_SECONDS = 5.0  # at most this long for a run whose final status is written to finish its clean-up
TAKEOVER_SECONDS = 60.0  # a resume on Ray waits this long for a worker to begin it (a worker starts in ~5 s)
LOST_TRIES = 3  # a run whose task Ray loses before it begins goes back in line this often, then fails
WAIT_NOTE_SECONDS = 60.0  # a run handed to Ray that no worker has begun by then says so in its status
LOST_LABEL_SECONDS = 30.0  # how long the cause of a lost run waits to be written (its trainer seen gone)
STOP_LIMIT_SECONDS = 60.0  # a run asked to stop that still trains after this long is ended (a Ray worker)


class WorkerUnavailable(RuntimeError):
    """Ray did not take a run (it cannot be reached, say); the message says why."""


class ThreadSlot:
    """A run trained in a thread of this process (the default: one at a time, no Ray)."""

    def __init__(self, trainer, work):  # trainer: a train.Trainer
        self.run_id, self.trainer = trainer.run_id, trainer
        self.thread = threading.Thread(target=work, args=(trainer,), name="training-worker", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self, requeue: bool = False) -> None:
        """Stop at the next batch (a thread's trainer has begun by the time it is in a slot)."""
        self.stop_asked = self.stop_asked or time.monotonic()
        self.trainer.stop_event.set()

    stop_asked = 0.0  # when a stop was asked (monotonic seconds), 0 before
    escalated = False

    def escalate(self) -> None:
        """A thread cannot be ended from outside: say so once (its training step does not return)."""
        self.escalated = True
        log.error("run %s has not stopped %.0f s after it was asked to: its training step does not return "
                  "(a stuck device?); restart the server to end it", self.run_id, time.monotonic() - self.stop_asked)

    @property
    def ended(self) -> bool:
        return self.trainer.ended

    def join(self, timeout: float | None) -> bool:
        self.thread.join(timeout)
        return not self.thread.is_alive()


class RaySlot:
    """A run handed to Ray: trained by a task in a worker process, here or on another node. Until
    the task's trainer claims the folder, this server holds it (a claim and heartbeats of its own),
    so the run reads as 'starting', not as cut off, however long the task takes to begin."""

    def __init__(self, pool, run: Run, data_dir, options: dict, resume: bool, on_end):
        self.run_id, self.run, self.pool, self.on_end = run.run_id, run, pool, on_end
        self.resume = resume
        self.taken = threading.Event()  # the task's trainer has claimed the run
        self.finished = threading.Event()
        self.error: str | None = None  # what Ray reported, for a task that failed
        self.lost = False  # Ray lost the task to the machinery (not the trainer's failure)
        self._end_lock = threading.Lock()
        self._stop_wanted = self.requeue = False
        self._claim_before = run.claim()
        self.handed_at, self.wait_noted = time.monotonic(), False
        # A resumed run is not held: its trainer checks that it was cut off (no live claim), and
        # its status says what it was until then (the resume waits for the takeover).
        self._hold = None if resume else run.hold(on_taken=self._taken)
        try:
            self.ref = pool.submit(run.path, data_dir, resume, options)
        except Exception as exc:  # Ray refused the task (a lost connection, say)
            if self._hold is not None:
                self._hold.stop()
            raise WorkerUnavailable(f"Ray did not take run {run.run_id}: {exc}") from None
        self.thread = threading.Thread(target=self._watch, name=f"ray-{run.run_id}", daemon=True)

    def start(self) -> None:
        """Watch the task (after the slot is in the table, so that its end always frees it)."""
        self.thread.start()

    def _taken(self) -> None:
        self.taken.set()
        if self._stop_wanted:  # asked to stop before the trainer began: its claim cleared the request
            self.run.request_stop()

    @property
    def stop_wanted(self) -> bool:
        return self._stop_wanted

    def is_taken(self) -> bool:
        """Whether a trainer has claimed the run: its claim is neither the one before the
        hand-over nor this server's hold (read from the folder, not only told by the hold's beats)."""
        if not self.taken.is_set():
            current = self.run.claim()
            mine = {c.owner for c in (self._claim_before, self._hold and self._hold.claim) if c is not None}
            if current is not None and current.owner not in mine:
                self.taken.set()
        return self.taken.is_set()

    def _watch(self) -> None:
        try:
            error, status = self.pool.wait(self.ref)
        except TaskLost as exc:  # a worker or node died, or the local instance went away
            self.pool.task_lost(str(exc))
            self._end(str(exc), lost=True)
            return
        if not error and isinstance(status, dict) and status.get("state") == "failed":
            error = status.get("error") or "its trainer failed"  # before its claim, only the task knows why
        self._end(error)

    def abandon(self, why: str) -> None:
        """The Ray instance the task was handed to is gone (restarted): end the slot now, as if Ray
        had said the task was lost (a task of a lost instance may never answer)."""
        self._end(why, lost=True)

    def _end(self, error: str | None, lost: bool = False) -> None:
        with self._end_lock:
            if self.finished.is_set():
                return
            if self._hold is not None:
                self._hold.stop()
            if error:
                log.error("run %s: the Ray task %s: %s", self.run_id, "was lost" if lost else "failed", error)
            self.error, self.lost = error, lost
            self.finished.set()
        self.on_end(self)

    def stop(self, requeue: bool = False) -> None:
        """Stop the run; one whose trainer has not begun (a new run, or a resume) is not started
        at all (its task is cancelled): with ``requeue`` (the server shuts down) a new one goes
        back to the queue, a resumed one stays as it was."""
        self._stop_wanted, self.requeue = True, requeue
        self.stop_asked = self.stop_asked or time.monotonic()
        self.run.request_stop()
        if not self.is_taken():
            self.pool.cancel(self.ref)

    stop_asked = 0.0  # when a stop was asked (monotonic seconds), 0 before
    escalated = False

    def escalate(self) -> None:
        """The trainer was asked to stop and goes on beating (a step that does not return, a trainer
        that misses the request): its worker process is ended, and the run is written 'stopped'
        when the task has ended (resumable from its last checkpoint, like any stopped run)."""
        self.escalated = True
        log.warning("run %s has not stopped %.0f s after it was asked to: ending its worker process",
                    self.run_id, time.monotonic() - self.stop_asked)
        self.pool.cancel(self.ref)

    @property
    def ended(self) -> bool:
        """The task returned, or its trainer has written a final status (what is left: the return)."""
        if self.finished.is_set():
            return True
        try:
            status = self.run.status() if self.is_taken() else None
        except (RecordError, OSError):
            return False
        return status is not None and status.state not in ACTIVE_STATES

    def join(self, timeout: float | None) -> bool:
        self.thread.join(timeout)
        return not self.thread.is_alive()


class Slots:
    """The runs training now, in start order, from the moment their folder exists until their slot
    has ended (nothing else starts in them meanwhile, and clean-up never removes them); at most
    ``capacity`` (1 in a thread here, the pool's with Ray). ``on_free()`` runs after a slot ends.
    ``trainer_class``: the Trainer (``training.trainer``), given by whoever builds the manager, so
    tests and benchmarks can hand in one that records what it is asked."""

    def __init__(self, store: RunStore, data_dir, trainer_options: dict, pool, on_free, trainer_class):
        self.store, self.data_dir, self.trainer_options, self.pool = store, data_dir, trainer_options, pool
        self.trainer_class = trainer_class
        self.capacity = pool.capacity if pool else 1
        self.on_free = on_free
        self._active: dict[str, ThreadSlot | RaySlot] = {}
        self._lost: dict[str, int] = {}  # run id: its tasks Ray lost before they began
        self.lost_runs: dict[str, tuple] = {}  # run id: (run, why, until when) for runs lost while training
        if pool is not None and hasattr(pool, "restart_listeners"):
            pool.restart_listeners.append(self._ray_restarted)

    @property
    def ids(self) -> list[str]:
        return list(self._active)

    def get(self, run_id: str):
        return self._active.get(run_id)

    @property
    def full(self) -> bool:
        return len(self._active) >= self.capacity

    def launch(self, run: Run, config: TrainConfig | None = None, resume: bool = False, device=None):
        """Start training ``run`` in a free slot (the caller holds its lock). ``config``: of a new
        run (else read from its config.json). Its config.json and status.json are on disk on return
        (a 202 is never followed by a 404), except a resumed run's on Ray: ``await_takeover``."""
        if self.pool:
            return self._dispatch(run, config if config is not None or resume else parse_train_config(run.config()),
                                  resume)
        if config is None:
            config = parse_train_config(run.config())
            device = select_device(config.device)  # a device that is gone: refused before anything is written
        self._launch(self.trainer_class(config, self.data_dir, run.path, resume=resume, device=device,
                                        **self.trainer_options))
        return self._active[run.run_id]

    def _launch(self, trainer) -> None:
        self._active[trainer.run_id] = slot = ThreadSlot(trainer, self._work)
        try:
            trainer.prepare()
            slot.start()
        except BaseException as exc:
            self._active.pop(trainer.run_id, None)
            trainer.close()
            if isinstance(exc, OSError):  # a write that failed: a WriteError that names the folder
                raise write_error(exc, getattr(exc, "filename", None) or trainer.folder.path) from None
            raise

    def _dispatch(self, run: Run, config: TrainConfig | None, resume: bool) -> RaySlot:
        """A new or queued run gets its settings and a 'starting' status first; a resumed one
        keeps its status until its trainer takes it over."""
        if reason := self.pool.available():
            raise WorkerUnavailable(f"Ray workers are unavailable: {reason}")
        if not resume:
            run.write_config(config.to_dict())
            run.write_status(dataclasses.replace(planned_status(config, run.run_id), state="starting"))
        try:
            slot = RaySlot(self.pool, run, self.data_dir, self.trainer_options, resume, self._ray_ended)
        except WorkerUnavailable:
            if not resume:  # back in line (a new run's folder is removed by the caller)
                run.write_status(dataclasses.replace(planned_status(config, run.run_id), state=QUEUED_STATE))
            raise
        self._active[run.run_id] = slot
        slot.start()
        return slot

    @staticmethod
    def await_takeover(slot: RaySlot, timeout: float = TAKEOVER_SECONDS) -> None:
        """Wait until the task's trainer has claimed the run (a resume is checked and its status
        'starting' by then); ResumeError with what Ray or the trainer said if the task ended
        first, or if no worker began it within ``timeout`` (the task is then cancelled)."""
        deadline = time.monotonic() + timeout
        while not slot.is_taken():
            time.sleep(0.1)
            if time.monotonic() > deadline and not slot.is_taken():
                slot.stop()
                raise ResumeError(f"run {slot.run_id} was not resumed: no Ray worker began it within "
                                  f"{timeout:.0f} s (the cluster is busy); try again")
            if slot.finished.is_set() and not slot.is_taken():
                if slot.stop_wanted:
                    raise ResumeError(f"run {slot.run_id} was stopped before a worker began to resume it")
                if slot.lost:
                    raise WorkerUnavailable(f"run {slot.run_id} was not resumed: Ray lost its task before it "
                                            f"began ({slot.error}); it is as it was: resume it again")
                state = snapshot(slot.run).state
                raise ResumeError(f"run {slot.run_id} cannot be resumed: "
                                  + (slot.error or f"its trainer ended at once ({state})"))

    def _work(self, trainer) -> None:
        try:
            trainer.run()
            self._clean_up(trainer.run_id)
        finally:
            self._active.pop(trainer.run_id, None)
            self.on_free()

    def _ray_ended(self, slot: RaySlot) -> None:
        if slot.is_taken():
            self._lost.pop(slot.run_id, None)
            if slot.escalated:
                end_escalated(slot.run)
            elif slot.lost:  # said once the trainer is seen gone (its worker dies after its raylet)
                self.lost_runs[slot.run_id] = (slot.run, slot.error, time.monotonic() + LOST_LABEL_SECONDS)
        elif slot.error:  # it never began: the run must not stay 'starting'
            with contextlib.suppress(FileNotFoundError), slot.run.locked():
                current = slot.run.status()
                if current is not None and current.state == "starting":
                    self._end_unbegun(slot, current)
        self._clean_up(slot.run_id)
        self._active.pop(slot.run_id, None)
        self.on_free()

    def note_waits(self) -> None:
        """A run handed to Ray that no worker has begun within WAIT_NOTE_SECONDS says why in its
        status (``waiting``), once; its trainer's first status clears it."""
        for slot in list(self._active.values()):
            if (isinstance(slot, RaySlot) and not slot.wait_noted and not slot.resume
                    and time.monotonic() - slot.handed_at > WAIT_NOTE_SECONDS and not slot.is_taken()):
                slot.wait_noted = True
                place = self.pool.placement
                note = (f"no Ray worker has begun it in {time.monotonic() - slot.handed_at:.0f} s: Ray has no room "
                        f"for it now (it asks {place.threads} CPU(s)" + (f" and {place.gpus:g} GPU" if place.gpus else "")
                        + "); it starts when a worker is free")
                with contextlib.suppress(FileNotFoundError, RecordError, OSError), slot.run.locked():
                    status = slot.run.status()
                    if status is not None and status.state == "starting" and not slot.is_taken():
                        slot.run.write_status(dataclasses.replace(status, waiting=note, updated_at=time.time()))
                        log.warning("run %s: %s", slot.run_id, note)

    def _ray_restarted(self, why: str) -> None:
        """The Ray instance was restarted: the tasks handed to the old one are gone (their runs read
        interrupted, from their heartbeats, or go back in line if they never began)."""
        for slot in list(self._active.values()):
            if isinstance(slot, RaySlot):
                slot.abandon(why)

    def _end_unbegun(self, slot: RaySlot, status: RunStatus) -> None:
        """A run handed to Ray whose trainer never began: back in the queue when the server shuts
        down, or when Ray lost its task (a dead worker or node, the instance gone: at most
        ``LOST_TRIES`` times), 'stopped' (with nothing trained) when stopped, else 'failed' with
        what Ray said (the trainer's own error, or the last loss). A
        resume that never began leaves the run exactly as it was (its checkpoints are what a later
        resume goes on from; a run put back in the queue would be trained from scratch over them),
        and whoever asked for it was told why."""
        if slot.resume:
            return
        tries = self._lost.get(slot.run_id, 0) + 1 if slot.lost else 0
        if slot.lost and tries < LOST_TRIES and not slot.stop_wanted:
            self._lost[slot.run_id] = tries
            log.warning("run %s goes back in line: Ray lost its task before it began (%s)", slot.run_id, slot.error)
            slot.run.write_status(dataclasses.replace(status, state=QUEUED_STATE, updated_at=time.time()))
        elif slot.requeue:
            slot.run.write_status(dataclasses.replace(status, state=QUEUED_STATE, updated_at=time.time()))
        elif slot.stop_wanted:
            now = time.time()
            slot.run.write_status(dataclasses.replace(status, state="stopped", updated_at=now, finished_at=now,
                                                      error="stopped before a worker began to train it"))
        else:
            self._lost.pop(slot.run_id, None)
            end_unstarted(slot.run, f"it never began on Ray: {slot.error}"
                          + (f" (Ray lost its task {tries} times)" if tries else ""))

    def _clean_up(self, run_id: str) -> None:
        try:  # while the run still counts as active, so nothing starts in a folder being removed
            self.store.cleanup(protect=set(self._active) | {run_id})
        except OSError:
            log.exception("clean-up of old runs failed")

    def settle(self, timeout: float = SETTLE_SECONDS) -> None:
        """A run whose final status is on disk (the page shows it ended) has only its clean-up
        left (a stopped run: its last curves, about a second): wait for it, so that a Start, a
        Stop or a Delete right after the end sees no active run."""
        for slot in list(self._active.values()):
            if slot.ended:
                slot.join(timeout)

    def stop_all(self, requeue: bool = False) -> None:
        for slot in list(self._active.values()):
            slot.stop(requeue)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the runs training here to end (tests, shutdown); True if they have."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for slot in list(self._active.values()):
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not slot.join(left):
                return False
        return True


def tend(slots: Slots) -> None:
    """The checks made every second (by the sweep driver's loop): runs waiting long for a Ray
    worker say so; a run asked to stop STOP_LIMIT_SECONDS ago that has not ended is ended (its Ray
    worker), or the log says it cannot be (a thread of this server)."""
    slots.note_waits()
    for run_id, (run, why, until) in list(slots.lost_runs.items()):
        if say_lost(run, why) or time.monotonic() > until:
            slots.lost_runs.pop(run_id, None)
    for slot in [slots.get(run_id) for run_id in slots.ids]:
        if slot is not None and slot.stop_asked and not slot.escalated and not slot.ended \
                and time.monotonic() - slot.stop_asked > STOP_LIMIT_SECONDS:
            slot.escalate()


def say_lost(run: Run, why: str) -> bool:
    """A run whose Ray task was lost while it trained, once its trainer is gone: 'interrupted' with
    the cause (readers would say only that its heartbeats stopped), resumable as ever; whether
    there is nothing more to do (written, or the run is no longer left active)."""
    with contextlib.suppress(FileNotFoundError, RecordError, OSError), run.locked():
        status = run.status()
        if status is None or status.state not in ACTIVE_STATES:
            return True
        if snapshot(run).state != "interrupted":
            return False  # its trainer still beats (a worker dies a moment after its raylet)
        now = time.time()
        run.write_status(dataclasses.replace(status, state="interrupted", updated_at=now, finished_at=now,
                                             error=f"its Ray worker was lost ({why}): resume it to go on from "
                                                   "its last epoch-end checkpoint"))
        return True
    return True


def end_escalated(run: Run) -> None:
    """A run whose worker was ended because it did not stop when asked: 'stopped', with why,
    unless its trainer wrote a final status meanwhile."""
    with contextlib.suppress(FileNotFoundError, RecordError, OSError), run.locked():
        status = run.status()
        if status is not None and status.state in ACTIVE_STATES:
            now = time.time()
            run.write_status(dataclasses.replace(status, state="stopped", updated_at=now, finished_at=now,
                                                 error=f"did not stop within {STOP_LIMIT_SECONDS:.0f} s of the "
                                                       "request: its worker process was ended"))


def end_unstarted(run: Run, error: str) -> bool:
    """A run that never started (queued, or handed to a worker that did not begin) ends 'failed'
    with ``error``; False if that cannot be written."""
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
