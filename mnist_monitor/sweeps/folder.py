"""A sweep's folder: the only code that knows its file names; the sweeps of a runs folder, made,
listed and summed up.

runs/sweeps/<sweep_id>/sweep.json     the spec (a POST /sweeps body that makes the sweep again), when
runs/sweeps/<sweep_id>/state.json     running | finished | stopped | failed, and when it ended
runs/sweeps/<sweep_id>/journal.log    Optuna's journal: trials, their values, reports and verdicts
runs/sweeps/<sweep_id>/driver.json    the lease of the one process that drives the sweep (renewed
                                      every second; taken, under driver.lock, only when it lapses)
runs/sweeps/<sweep_id>/stop.asked     asks that process to stop the sweep

A trial's run folder is an ordinary run; its facts (run.json) name the sweep, the trial and the
values chosen for it. The objective is the run's best validation accuracy (its best model's), or
that of the one model whose own settings vary.
"""
from __future__ import annotations

import fcntl
import logging
import os
import shutil
import threading
import time
from pathlib import Path

from mnist_monitor.config import ConfigError
from mnist_monitor.runstore import RUN_ID_PATTERN, new_run_id
from mnist_monitor.runstore.files import (Unreadable, atomic_write_bytes, atomic_write_json, read_json_object,
                                          write_error)
from mnist_monitor.runstore.liveness import HOST, process_start, writer_gone
from mnist_monitor.sweeps.pruning import make_pruner, pruner_line, pruner_text, rungs
from mnist_monitor.sweeps.spec import MAX_TRIALS, Range, SweepSpec, parse_sweep, setting_kind
from mnist_monitor.sweeps.study import (IMPORTANCE_METHOD, decode, encode, importances, journal_storage, load_optuna,
                                        objective_text, trial_row)

log = logging.getLogger("sweeps")

SWEEPS_DIR = "sweeps"  # inside the runs folder: its name is no run id, so run listings skip it
SPEC_FILE, STATE_FILE, JOURNAL_FILE, LOCK_FILE, STOP_FILE, LEASE_FILE = (
    "sweep.json", "state.json", "journal.log", "driver.lock", "stop.asked", "driver.json")
# A driver's lease lapses when not renewed for this long (it is renewed about every second), or at
# once when its process is gone (seen on the same host). Long enough that a driver held up for a
# while by a busy machine keeps its sweep; a lease held by no file that stays open.
LEASE_SECONDS = 30.0
SWEEP_STATES = ("running", "finished", "stopped", "failed")
ENDED_TRIAL_STATES = ("finished", "pruned", "failed", "stopped", "interrupted")  # trials done: with a result or none


class SweepError(Exception):
    """A sweep's folder cannot be read as written (the message says what is wrong)."""


class Sweep:
    """One sweep folder (``path``; its name is the sweep id)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.sweep_id = self.path.name
        self._spec: SweepSpec | None = None
        self._spec_key = None  # sweep.json's (mtime, size, inode) when the spec was read

    def __repr__(self) -> str:
        return f"Sweep({str(self.path)!r})"

    # ---------------------------------------------------------------- records
    def record(self) -> dict:
        try:
            data = read_json_object(self.path / SPEC_FILE)
        except Unreadable as exc:
            raise SweepError(str(exc)) from None
        if data is None:
            raise SweepError(f"{SPEC_FILE} is missing")
        return data

    def owner(self) -> str | None:
        """The id of the student who made the sweep (None: the teacher's, or no class)."""
        owner = self.record().get("owner")
        return owner if isinstance(owner, str) and owner else None

    def spec(self) -> SweepSpec:
        """The sweep's spec, read again when sweep.json changed (trials added, by any process)."""
        try:
            stat = os.stat(self.path / SPEC_FILE)
            key = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        except OSError:
            key = None
        if self._spec is None or key != self._spec_key:
            try:
                self._spec, self._spec_key = parse_sweep(self.record().get("spec")), key
            except ConfigError as exc:
                raise SweepError(f"{SPEC_FILE}: {exc}") from None
        return self._spec

    def add_trials(self, more: int) -> SweepSpec:
        """``more`` trials of the same study (a search's: a grid trains each combination once), the
        sweep running again; ConfigError naming "trials" past MAX_TRIALS in all."""
        spec = self.spec()
        if spec.kind == "grid":
            raise ConfigError("trials", "a grid trains each combination once: to try more values, make a new sweep "
                                        "(or a search, which can take more trials)")
        if spec.trials + more > MAX_TRIALS:
            raise ConfigError("trials", f"the sweep has {spec.trials} trials; {more} more would make "
                                        f"{spec.trials + more}, and a sweep has at most {MAX_TRIALS}")
        record = self.record()
        record["spec"] = {**spec.to_dict(), "trials": spec.trials + more}
        record["added"] = [*record.get("added", []), {"at": time.time(), "trials": more}]
        atomic_write_json(self.path / SPEC_FILE, record)
        (self.path / STOP_FILE).unlink(missing_ok=True)
        self.write_state("running")
        return self.spec()

    def driven_elsewhere(self, owner: str) -> bool:
        """Whether a live driver other than ``owner`` holds the sweep's lease."""
        try:
            lease = read_json_object(self.path / LEASE_FILE)
        except Unreadable:
            return False
        return bool(lease) and lease.get("owner") != owner and lease_alive(lease)

    def state(self) -> dict:
        """{"state", "ended_at", "error"}; a sweep without a readable state is 'failed'."""
        try:
            data = read_json_object(self.path / STATE_FILE)
        except Unreadable:
            data = None
        if not data or data.get("state") not in SWEEP_STATES:
            return {"state": "failed", "ended_at": None, "error": f"{STATE_FILE} is missing or unreadable"}
        return {"state": data["state"], "ended_at": data.get("ended_at"), "error": data.get("error")}

    def write_state(self, state: str, error: str | None = None) -> None:
        ended = None if state == "running" else time.time()
        atomic_write_json(self.path / STATE_FILE, {"state": state, "ended_at": ended, "error": error})

    def stop_requested(self) -> bool:
        return (self.path / STOP_FILE).exists()

    def request_stop(self) -> None:
        atomic_write_bytes(self.path / STOP_FILE, b"stop\n")

    # ---------------------------------------------------------------- the study
    def sampler(self, number: int):
        """The sampler that picks trial ``number``'s values: seeded from the sweep's seed and the
        number, so a trial's values depend on the seed, its number and the trials before it (which
        TPE reads from the journal), never on how long the driving process has lived (a sampler
        seeded once replayed its first random trials after each restart)."""
        optuna = load_optuna()
        spec = self.spec()
        seed = (spec.base.get("seed", 0) * 1_000_003 + number) % 2**32
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=spec.startup_trials)

    def study(self):
        """The Optuna study in the sweep's journal, with the sweep's sampler and pruner."""
        optuna = load_optuna()
        spec = self.spec()
        sampler = self.sampler(0)
        pruner = make_pruner(spec.prune, spec.prune_after)
        return optuna.load_study(study_name=self.sweep_id, storage=journal_storage(self.path / JOURNAL_FILE),
                                 sampler=sampler, pruner=pruner)

    def suggest(self, trial) -> dict:
        """The values of a new trial: Optuna picks them (a grid's next combination was enqueued)."""
        values = {}
        for key, space in self.spec().space.items():
            if isinstance(space, Range):
                pick = trial.suggest_int if setting_kind(key) is int else trial.suggest_float
                values[key] = pick(key, space.low, space.high, log=space.log)
            else:
                values[key] = decode(key, trial.suggest_categorical(key, [encode(key, v) for v in space]))
        return values

    # ---------------------------------------------------------------- the driver's lease
    def take_lease(self, owner: str) -> bool:
        """Whether ``owner`` (a driver) drives the sweep now: its lease is renewed, or taken when
        there is none or it has lapsed; False while another live driver holds it. Decided under the
        folder's lock, taken for the moment of the decision only (no file stays open per sweep)."""
        with self._locked():
            try:
                lease = read_json_object(self.path / LEASE_FILE)
            except Unreadable:
                lease = None  # torn by a crash: no one holds it
            if lease and lease.get("owner") != owner and lease_alive(lease):
                return False
            atomic_write_json(self.path / LEASE_FILE, {"owner": owner, "renewed_at": time.time(), "host": HOST,
                                                       "pid": os.getpid(), "pid_start": process_start(os.getpid())},
                              durable=False)
            return True

    def release_lease(self, owner: str) -> None:
        """Give the sweep up (another driver may take it at once)."""
        with self._locked():
            try:
                lease = read_json_object(self.path / LEASE_FILE)
            except Unreadable:
                lease = None
            if lease is not None and lease.get("owner") == owner:
                (self.path / LEASE_FILE).unlink(missing_ok=True)

    def _locked(self):
        return flocked(self.path / LOCK_FILE)


class flocked:
    """An exclusive lock on ``path`` (a file opened for writing, as an exclusive lock over NFS
    needs) for the length of a ``with`` block."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        os.close(self.fd)  # closing releases the lock


def lease_alive(lease: dict, now: float | None = None) -> bool:
    """Whether a driver's lease still holds: renewed within LEASE_SECONDS by a process that is not
    gone (on this host, its PID and that process's start time say so at once)."""
    renewed = lease.get("renewed_at")
    if not isinstance(renewed, (int, float)) or writer_gone(lease.get("host"), lease.get("pid"),
                                                            lease.get("pid_start")):
        return False
    return (time.time() if now is None else now) - renewed <= LEASE_SECONDS


class SweepStore:
    """The sweeps of a runs folder: made, listed and summed up."""

    def __init__(self, runs_dir: str | os.PathLike):
        self.root = Path(runs_dir) / SWEEPS_DIR
        self._summaries: dict[str, tuple] = {}  # sweep id -> (journal key, trials, importances)
        self._lock = threading.Lock()

    def create(self, spec: SweepSpec, owner: str | None = None) -> Sweep:
        """A new sweep folder: its spec, a 'running' state, a study (a grid's combinations enqueued).
        ``owner``: the student who makes it, in a class."""
        newest = max(self.ids(), default="")
        sweep_id = new_run_id(after=newest)
        sweep = Sweep(self.root / sweep_id)
        try:
            sweep.path.mkdir(parents=True)
        except OSError as exc:  # a full disk, a runs folder without permission: 507, naming the folder
            raise write_error(exc, sweep.path) from None
        try:
            atomic_write_json(sweep.path / SPEC_FILE, {"sweep_id": sweep_id, "created_at": time.time(),
                                                       "spec": spec.to_dict(), "owner": owner})
            optuna = load_optuna()
            study = optuna.create_study(study_name=sweep_id, storage=journal_storage(sweep.path / JOURNAL_FILE),
                                        direction="maximize")
            for combo in spec.grid:
                study.enqueue_trial({k: encode(k, v) for k, v in combo.items()})
            sweep.write_state("running")
        except BaseException as exc:
            shutil.rmtree(sweep.path, ignore_errors=True)  # no half-made sweep left behind
            if isinstance(exc, OSError):
                raise write_error(exc, sweep.path) from None
            raise
        log.info("sweep %s made: %s of %d trials over %s", sweep_id, spec.kind, spec.trials, ", ".join(spec.varied))
        return sweep

    def ids(self) -> list[str]:
        """Sweep ids, newest first."""
        try:
            names = [e.name for e in os.scandir(self.root) if e.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            return []
        return sorted((n for n in names if RUN_ID_PATTERN.fullmatch(n)), reverse=True)

    def get(self, sweep_id: str) -> Sweep | None:
        if not isinstance(sweep_id, str) or not RUN_ID_PATTERN.fullmatch(sweep_id):
            return None
        path = self.root / sweep_id
        return Sweep(path) if path.is_dir() and not path.is_symlink() else None

    def running(self) -> list[Sweep]:
        return [s for i in self.ids() if (s := self.get(i)) and s.state()["state"] == "running"]

    # ---------------------------------------------------------------- summaries
    def summary(self, sweep: Sweep, runs) -> dict:
        """The sweep as GET /sweeps/<id> answers it: its state, each trial's run with the values
        chosen for it, its state and objective, the best run, and each setting's importance.
        ``runs``: the RunStore of the runs folder (for the states of the trials' runs)."""
        record, spec, state = sweep.record(), sweep.spec(), sweep.state()
        trials, importance = self._trials(sweep)
        rows = [trial_row(t, runs, state["state"] == "running", spec.objective_model) for t in trials]
        scored = [r for r in rows if r["objective"] is not None and r["counted"]]
        best = max(scored, key=lambda r: (r["objective"], -r["trial"]), default=None)
        for row in rows:
            row.pop("counted")
        return {**self._facts(sweep, record, spec, state, trials), "runs": rows,
                "best_run_id": best["run_id"] if best else None, "best_objective": best["objective"] if best else None,
                "trials_done": sum(r["state"] in ENDED_TRIAL_STATES for r in rows),
                "trials_pruned": sum(r["state"] == "pruned" for r in rows), "importance": importance}

    @staticmethod
    def _facts(sweep: Sweep, record: dict, spec: SweepSpec, state: dict, trials: list) -> dict:
        """What the sweep is (its spec, state, objective and pruner), apart from its trials' rows."""
        epochs = spec.config_for({}).epochs if "epochs" not in spec.space else None
        return {
            "sweep_id": sweep.sweep_id, "name": spec.name, "kind": spec.kind, "state": state["state"],
            "created_at": record.get("created_at"), "ended_at": state["ended_at"], "error": state["error"],
            "objective": objective_text(spec), "varied": spec.varied, "spec": spec.to_dict(), "trials": spec.trials,
            "prune": spec.prune, "importance_method": IMPORTANCE_METHOD, "owner": sweep.owner(),
            "pruner": {"kind": spec.prune, "text": pruner_text(spec.prune, spec.prune_after, epochs),
                       "starts_after": spec.prune_after if spec.prune == "median" else None,
                       "rungs": rungs(epochs) if spec.prune == "successive_halving" and epochs else [],
                       "line": pruner_line(spec.prune, trials),
                       "line_name": "cut at each rung" if spec.prune == "successive_halving"
                       else "median of the finished trials"},
        }

    def listing(self, runs) -> list[dict]:
        """Every sweep's summary without its runs' rows (a count of them by state instead), newest first."""
        out = []
        for sweep_id in self.ids():
            sweep = self.get(sweep_id)
            try:
                summary = self.summary(sweep, runs)
            except (SweepError, OSError, ValueError) as exc:
                log.warning("sweep %s cannot be read: %s", sweep_id, exc)
                continue
            counts: dict[str, int] = {}
            for row in summary.pop("runs"):
                counts[row["state"]] = counts.get(row["state"], 0) + 1
            out.append({**summary, "run_states": counts})
        return out

    def _trials(self, sweep: Sweep) -> tuple[list, dict]:
        """The study's trials and the importances, read again only when the journal changed."""
        try:
            stat = os.stat(sweep.path / JOURNAL_FILE)
            key = (stat.st_size, stat.st_mtime_ns)
        except FileNotFoundError:
            raise SweepError(f"{JOURNAL_FILE} is missing") from None
        with self._lock:
            cached = self._summaries.get(sweep.sweep_id)
        if cached and cached[0] == key:
            return cached[1], cached[2]
        trials = sweep.study().get_trials(deepcopy=False)
        importance = importances(trials, sweep.spec(), sweep.sweep_id)
        with self._lock:
            self._summaries[sweep.sweep_id] = (key, trials, importance)
        return trials, importance


