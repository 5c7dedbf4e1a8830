"""A sweep's folder and its Optuna study: the only code that knows their file names.

runs/sweeps/<sweep_id>/sweep.json     the spec (a POST /sweeps body that makes the sweep again), when
runs/sweeps/<sweep_id>/state.json     running | finished | stopped | failed, and when it ended
runs/sweeps/<sweep_id>/journal.log    Optuna's journal: trials, their values, reports and verdicts
runs/sweeps/<sweep_id>/driver.lock    flock'd by the one process that drives the sweep
runs/sweeps/<sweep_id>/stop.asked     asks that process to stop the sweep

A trial's run folder is an ordinary run; its facts (run.json) name the sweep, the trial and the
values chosen for it. The objective is the run's best validation accuracy (its best model's), or
that of the one model whose own settings vary.
Optuna is imported only here, and only when a sweep is used.
"""
from __future__ import annotations

import fcntl
import logging
import os
import shutil
import threading
import time
import warnings
from pathlib import Path

from config import ConfigError
from runstore import RUN_ID_PATTERN, new_run_id
from runstore.files import Unreadable, atomic_write_bytes, atomic_write_json, read_json_object, write_error
from sweepspec import Range, SweepSpec, parse_sweep, setting_kind

log = logging.getLogger("sweeps")

SWEEPS_DIR = "sweeps"  # inside the runs folder: its name is no run id, so run listings skip it
SPEC_FILE, STATE_FILE, JOURNAL_FILE, LOCK_FILE, STOP_FILE = (
    "sweep.json", "state.json", "journal.log", "driver.lock", "stop.asked")
SWEEP_STATES = ("running", "finished", "stopped", "failed")
OBJECTIVE = "best validation accuracy"
IMPORTANCE_METHOD = "PED-ANOVA (Optuna's PedAnovaImportanceEvaluator)"
MIN_TRIALS_FOR_IMPORTANCE = 3  # finished trials: fewer say nothing about which setting mattered


class SweepError(Exception):
    """A sweep's folder cannot be read as written (the message says what is wrong)."""


def _optuna():
    import optuna  # a few hundred ms: only for sweeps
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _storage(journal: Path):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
    # The open-lock (O_EXCL lock file) works across processes and machines sharing the folder.
    return JournalStorage(JournalFileBackend(str(journal), lock_obj=JournalFileOpenLock(str(journal))))


def encode(key: str, value):
    """A value as Optuna stores it (choices must be numbers or text: kernels become '32,64,64,64')."""
    return ",".join(map(str, value)) if key == "kernels" else value


def decode(key: str, value):
    return [int(k) for k in value.split(",")] if key == "kernels" else value


class Sweep:
    """One sweep folder (``path``; its name is the sweep id)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.sweep_id = self.path.name
        self._spec: SweepSpec | None = None

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

    def spec(self) -> SweepSpec:
        if self._spec is None:
            try:
                self._spec = parse_sweep(self.record().get("spec"))
            except ConfigError as exc:
                raise SweepError(f"{SPEC_FILE}: {exc}") from None
        return self._spec

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
    def study(self):
        """The Optuna study in the sweep's journal, with the sweep's sampler and pruner."""
        optuna = _optuna()
        spec = self.spec()
        seed = spec.base.get("seed", 0)
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=spec.startup_trials)
        pruner = (optuna.pruners.MedianPruner(n_startup_trials=spec.prune_after, n_warmup_steps=0)
                  if spec.prune == "median" else optuna.pruners.NopPruner())
        return optuna.load_study(study_name=self.sweep_id, storage=_storage(self.path / JOURNAL_FILE),
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

    # ---------------------------------------------------------------- the driver's lock
    def try_lock(self):
        """An open file holding the driver's lock, or None if another process drives the sweep."""
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd


class SweepStore:
    """The sweeps of a runs folder: made, listed and summed up."""

    def __init__(self, runs_dir: str | os.PathLike):
        self.root = Path(runs_dir) / SWEEPS_DIR
        self._summaries: dict[str, tuple] = {}  # sweep id -> (journal key, trials, importances)
        self._lock = threading.Lock()

    def create(self, spec: SweepSpec) -> Sweep:
        """A new sweep folder: its spec, a 'running' state, a study (a grid's combinations enqueued)."""
        newest = max(self.ids(), default="")
        sweep_id = new_run_id(after=newest)
        sweep = Sweep(self.root / sweep_id)
        try:
            sweep.path.mkdir(parents=True)
        except OSError as exc:  # a full disk, a runs folder without permission: 507, naming the folder
            raise write_error(exc, sweep.path) from None
        try:
            atomic_write_json(sweep.path / SPEC_FILE, {"sweep_id": sweep_id, "created_at": time.time(),
                                                       "spec": spec.to_dict()})
            optuna = _optuna()
            study = optuna.create_study(study_name=sweep_id, storage=_storage(sweep.path / JOURNAL_FILE),
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
        return {
            "sweep_id": sweep.sweep_id, "name": spec.name, "kind": spec.kind, "state": state["state"],
            "created_at": record.get("created_at"), "ended_at": state["ended_at"], "error": state["error"],
            "objective": objective_text(spec), "varied": spec.varied, "spec": spec.to_dict(), "trials": spec.trials,
            "prune": spec.prune, "runs": rows, "best_run_id": best["run_id"] if best else None,
            "importance": importance, "importance_method": IMPORTANCE_METHOD,
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


def trial_row(trial, runs, running: bool = True, model: int | None = None) -> dict:
    """One trial of a sweep summary: its run, values, state and objective. A grid's combination
    that was never asked is 'waiting' while the sweep runs, 'cancelled' once it has ended. Its
    accuracies are its best model's, or model ``model``'s (the one the sweep varies)."""
    run_id = trial.user_attrs.get("run_id")
    snapshot = runs.snapshot(run_id) if run_id else None
    told = trial.state.name  # RUNNING (asked, not told), COMPLETE, PRUNED, FAIL, WAITING
    values = trial.user_attrs.get("values", {})
    if told == "WAITING":  # a grid's combination not asked yet: no run, its values known
        state = "waiting" if running else "cancelled"
        values = {k: decode(k, v) for k, v in trial.system_attrs.get("fixed_params", {}).items()}
    elif run_id is None:
        state = "failed" if told == "FAIL" else "queued"
    elif snapshot is None:
        state = trial.user_attrs.get("ended", "deleted")  # cancelled by a stop of the sweep, or deleted
    else:
        state = snapshot.state
    if told == "COMPLETE":
        objective = trial.value
    else:  # the best epoch reported so far (pruned, cut off, or still training)
        objective = max(trial.intermediate_values.values(), default=None)
    models = snapshot.status.models if snapshot is not None and snapshot.status is not None else []
    if model is not None:
        models = models[model:model + 1]
    best = lambda values: max((v for v in values if v is not None), default=None)  # noqa: E731  (the best model's)
    return {
        "trial": trial.number, "run_id": run_id, "values": values, "state": state,
        "objective": objective, "epochs_reported": len(trial.intermediate_values),
        "final_val_accuracy": best(m.val_accuracy for m in models),
        "best_test_accuracy": best(m.best_test_accuracy for m in models),
        "final_test_accuracy": best(m.test_accuracy for m in models),
        "duration_seconds": snapshot.status.elapsed_seconds if models else None,
        "error": trial.user_attrs.get("error") or (snapshot.status.end_reason if models else None),
        "counted": told in ("COMPLETE", "RUNNING", "PRUNED"),
    }


def importances(trials: list, spec: SweepSpec, sweep_id: str) -> dict:
    """Each varied setting's share of the objective's variation (PED-ANOVA), over every trial with
    a result: finished ones, and pruned or failed ones at the best epoch they reached (a pruned
    run is a result of the sweep: leaving it out would hide how bad its settings were). {} until
    there are enough."""
    optuna = _optuna()
    scored = []
    for t in trials:
        value = t.value if t.state.name == "COMPLETE" else max(t.intermediate_values.values(), default=None)
        if t.state.name in ("COMPLETE", "PRUNED", "FAIL") and value is not None and set(spec.varied) <= set(t.params):
            scored.append(optuna.trial.create_trial(params={k: t.params[k] for k in spec.varied},
                                                    distributions={k: t.distributions[k] for k in spec.varied},
                                                    value=value))
    if len(scored) < MIN_TRIALS_FOR_IMPORTANCE:
        return {}
    if len(spec.varied) == 1:
        return {spec.varied[0]: 1.0}
    results = optuna.create_study(direction="maximize")  # in memory: the sweep's journal is not touched
    results.add_trials(scored)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        try:
            found = optuna.importance.get_param_importances(
                results, evaluator=optuna.importance.PedAnovaImportanceEvaluator(), params=spec.varied,
                normalize=True)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:  # e.g. every trial scored the same
            log.info("importance of sweep %s not computed: %s", sweep_id, exc)
            return {}
    if any("importances will be equal" in str(w.message) for w in said):
        return {}  # too few trials to tell the good region from the rest: equal shares would say nothing
    return {key: round(float(share), 4) for key, share in found.items()}


def objective_text(spec: SweepSpec) -> str:
    """What a trial is scored on, in words."""
    if spec.objective_model is None:
        return OBJECTIVE
    i = spec.objective_model
    models = spec.base.get("models") or []
    name = models[i].get("name") if i < len(models) and isinstance(models[i], dict) else None
    return f"best validation accuracy of {name or f'Model {i + 1}'} (models[{i}], the model whose settings vary)"


# ---------------------------------------------------------------- the trainer's side

class TrialReporter:
    """What a trainer of a sweep's run does at each epoch end: report the run's validation
    accuracy to the study and ask the pruner whether to go on. It runs wherever the trainer runs
    (a Ray worker on another machine reads the same journal on the shared runs folder)."""

    def __init__(self, run_dir: Path, facts: dict, models: int, epochs: int):
        self.sweep = Sweep(Path(run_dir).parent / SWEEPS_DIR / facts["sweep_id"])
        self.trial_id = facts["trial_id"]
        self.models, self.epochs = models, epochs
        self.scored_model = self.sweep.spec().objective_model  # None: the best of the models
        self._values: dict[int, dict[int, float]] = {}  # epoch -> model index -> validation accuracy

    def epoch_end(self, epoch: int, model_index: int, val_accuracy: float) -> str | None:
        """A model ended ``epoch``: once every model has, the run's result (its best model's, or
        the scored model's) is reported, and the pruner's verdict taken (none after the last
        epoch); the reason if it prunes the run here, else None."""
        values = self._values.setdefault(epoch, {})
        values[model_index] = val_accuracy
        if len(values) < self.models:
            return None
        scored = values.get(self.scored_model) if self.scored_model is not None else None
        value = scored if scored is not None else max(values.values())
        return self.report(epoch, value, verdict=epoch < self.epochs)

    def report(self, epoch: int, value: float, verdict: bool = True) -> str | None:
        """Report; with ``verdict`` (not after the last epoch), the reason if the pruner stops the
        run here, else None."""
        optuna = _optuna()
        study = self.sweep.study()
        trial = optuna.trial.Trial(study, self.trial_id)
        trial.report(value, epoch)
        if not verdict or not trial.should_prune():
            return None
        peers = [t.intermediate_values[epoch] for t in study.get_trials(deepcopy=False)
                 if t.state.name == "COMPLETE" and epoch in t.intermediate_values]
        median = sorted(peers)[len(peers) // 2] if peers else None
        return (f"pruned after epoch {epoch}: validation accuracy {value:.2f} % is below the median of the "
                f"finished trials at that epoch" + (f" ({median:.2f} %)" if median is not None else ""))


def reporter_for(run_dir, facts: dict, models: int, epochs: int) -> TrialReporter | None:
    """The reporter of a run that is a trial of a sweep (its epochs are reported whether or not
    the sweep prunes: the sweep view shows them live), else None."""
    sweep = facts.get("sweep") if isinstance(facts, dict) else None
    if not isinstance(sweep, dict) or not {"sweep_id", "trial_id"} <= set(sweep):
        return None
    return TrialReporter(run_dir, sweep, models, epochs)
