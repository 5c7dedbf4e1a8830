"""A run as readers see it: its records read back, and the state decided once (interrupted when
its trainer stopped beating, stopping when asked to stop, broken when its records cannot be read)."""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

from mnist_monitor.runstore.liveness import HEARTBEAT_LIMIT_S, is_alive, pid_alive
from mnist_monitor.runstore.records import ACTIVE_STATES, BROKEN_STATE, RESUMABLE_STATES, RecordError, RunStatus
from mnist_monitor.runstore.run import (CREATING_SECONDS, CURVES_IMAGE, EPOCH_IMAGES, Run, checkpoint_name,
                                        confusion_name, image_name, owner_in)


@dataclass(frozen=True)
class RunSnapshot:
    """A run as readers see it: the state decided once (interrupted, stopping, broken), its
    status record (None while the folder is being created or when broken), its config, what the
    user said of it, and which served files exist (name -> modification time in ns)."""
    run_id: str
    state: str
    status: RunStatus | None
    config: dict | None
    meta: dict
    files: dict = field(default_factory=dict)
    problem: str | None = None  # why the run is broken
    sweep: dict | None = None  # {"sweep_id", "trial", "values"}: the sweep it is a trial of (run.json)
    owner: str | None = None  # the id of the student who started it (run.json); None: the teacher's, or no class

    def images(self, index: int) -> dict[str, str]:
        """{kind: file name} of model ``index``'s epoch images that exist."""
        return {kind: name for kind in EPOCH_IMAGES if (name := image_name(kind, index)) in self.files}

    def curves(self) -> str | None:
        name = image_name(CURVES_IMAGE)
        return name if name in self.files else None

    def checkpoint(self, index: int, kind: str = "best") -> str | None:
        name = checkpoint_name(index, kind)
        return name if name in self.files else None

    def confusion(self, index: int) -> str | None:
        name = confusion_name(index)
        return name if name in self.files else None

    @property
    def resumable(self) -> bool:
        """Cut off and with an epoch-end checkpoint to go on from."""
        models = len(self.status.models) if self.status else 0
        return self.state in RESUMABLE_STATES and any(self.checkpoint(i, "latest") for i in range(models))


def shown_state(status: RunStatus, alive: bool, stop_requested: bool) -> RunStatus:
    """The status as readers must see it: a run left active by a trainer that is gone is
    'interrupted', one asked to stop 'stopping'; no time left is shown for a run that is not active."""
    state = status.state
    if state in ACTIVE_STATES:
        if not alive:
            state = "interrupted"
            status = dataclasses.replace(status, error=status.error or "the run stopped getting heartbeats from its "
                                         "trainer (its process or machine stopped while it was training)",
                                         finished_at=status.finished_at or status.updated_at)
        elif stop_requested:
            state = "stopping"
    if state not in ACTIVE_STATES and (status.eta_seconds is not None
                                       or any(m.eta_seconds is not None for m in status.models)):
        status = dataclasses.replace(status, eta_seconds=None,
                                     models=[dataclasses.replace(m, eta_seconds=None) for m in status.models])
    return status if state == status.state else dataclasses.replace(status, state=state)


def trained_now(run: Run, status: RunStatus | None = None) -> bool:
    """Whether a trainer is training this run now (heartbeat; folders written before heartbeats
    fall back on the status's time and PID)."""
    claim = run.claim()
    if claim is None:
        status = status or run.status()
        return (status is not None and status.updated_at is not None and pid_alive(status.pid)
                and time.time() - status.updated_at <= HEARTBEAT_LIMIT_S)
    return is_alive(claim, run.beat())


def snapshot(run: Run, parsed=None) -> RunSnapshot:
    """The run as readers see it. ``parsed``: (status or RecordError, config or RecordError, meta,
    files, sweep, owner) already read (a cache); the liveness is always decided now. FileNotFoundError if the
    folder is gone."""
    status, config, meta, files, sweep, owner = parsed or read_parts(run)
    if status is None:  # no status.json yet: being created, unless that was long ago
        if run.age_seconds() < CREATING_SECONDS:
            return RunSnapshot(run.run_id, "starting", None, None, meta, files, sweep=sweep, owner=owner)
        status = RecordError("status.json is missing")
    problem = next((str(p) for p in (status, config) if isinstance(p, RecordError)), None)
    if problem:  # what can still be read is kept: the settings, the files, what the user said
        return RunSnapshot(run.run_id, BROKEN_STATE, None, config if isinstance(config, dict) else None,
                           meta, files, problem, sweep, owner)
    alive = status.state not in ACTIVE_STATES or trained_now(run, status)
    shown = shown_state(status, alive, status.state in ACTIVE_STATES and run.stop_requested())
    return RunSnapshot(run.run_id, shown.state, shown, config, meta, files, sweep=sweep, owner=owner)

def read_parts(run: Run, check_config=None) -> tuple:
    """What a snapshot is made of, read from disk (see ``snapshot``). ``check_config(body)``
    raises ValueError for settings the trainer would refuse (the run is then broken)."""
    if not run.path.is_dir():
        raise FileNotFoundError(run.path)
    parts = []
    for read in (run.status, run.config):
        try:
            parts.append(read())
        except RecordError as exc:
            parts.append(exc)
    if check_config is not None and isinstance(parts[1], dict):
        try:
            check_config(parts[1])
        except ValueError as exc:
            parts[1] = RecordError(f"config.json: {exc}")
    facts = run.facts()
    sweep = facts.get("sweep")
    if not (isinstance(sweep, dict) and isinstance(sweep.get("sweep_id"), str) and isinstance(sweep.get("trial"), int)):
        sweep = None
    else:
        sweep = {"sweep_id": sweep["sweep_id"], "trial": sweep["trial"]}
    return (*parts, run.meta(), run.files(), sweep, owner_in(facts))


def delete_unless_training(run: Run) -> bool:
    """Delete the run unless a trainer holds it (checked under the folder's lock, which a
    resume holds until its claim is written); whether it was deleted."""
    try:
        with run.locked():
            if snapshot(run).state in ACTIVE_STATES:
                return False
            run.delete()
    except FileNotFoundError:  # gone already
        pass
    return True
