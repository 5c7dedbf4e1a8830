"""A sweep's Optuna study: the journal storage, values as Optuna stores them, a trial as the sweep
summary shows it, and the settings' importances. Optuna is imported only here and only when a
sweep is used (a few hundred ms)."""
from __future__ import annotations

import functools
import json
import logging
import os
import warnings
from pathlib import Path

from mnist_monitor.sweeps.spec import SweepSpec

log = logging.getLogger("sweeps")

OBJECTIVE = "best validation accuracy"
IMPORTANCE_METHOD = "PED-ANOVA (Optuna's PedAnovaImportanceEvaluator)"
MIN_TRIALS_FOR_IMPORTANCE = 3  # finished trials: fewer say nothing about which setting mattered


def load_optuna():
    import optuna  # a few hundred ms: only for sweeps
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def journal_storage(journal: Path):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileOpenLock
    # The open-lock (O_EXCL lock file) works across processes and machines sharing the folder.
    return JournalStorage(whole_line_backend()(str(journal), JournalFileOpenLock(str(journal))))


@functools.cache
def whole_line_backend():
    """Optuna's journal file backend, its appends all or nothing: a failed append (a full disk, a
    file-size limit) leaves the file exactly as it was, and a line torn by a crash is cut off before
    the next append, which would otherwise glue onto it and make every later read fail. The format
    is Optuna's own: one JSON line per log."""
    from optuna.storages.journal import JournalFileBackend

    class WholeLineJournalBackend(JournalFileBackend):
        def __init__(self, file_path: str, lock):
            super().__init__(file_path, lock_obj=lock)
            self.path, self.lock = file_path, lock

        def append_logs(self, logs: list[dict]) -> None:
            data = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs).encode()
            self.lock.acquire()
            try:
                with open(self.path, "r+b", buffering=0) as f:  # unbuffered: nothing is written after a failure
                    end = cut_torn_line(f)
                    f.seek(end)
                    try:
                        view = memoryview(data)
                        while view:  # a short write (the disk filling up) raises at the next one
                            view = view[f.write(view):]
                        os.fsync(f.fileno())
                    except BaseException:
                        f.truncate(end)  # nothing of a failed append stays
                        raise
            finally:
                self.lock.release()

    return WholeLineJournalBackend


def cut_torn_line(f) -> int:
    """Cut a last line that has no newline (a write cut short) off the open file; its new size."""
    size = f.seek(0, os.SEEK_END)
    start = size
    while start > 0:
        step = min(start, 65536)
        f.seek(start - step)
        chunk = f.read(step)
        if start == size and chunk.endswith(b"\n"):
            return size  # whole lines only
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            start = start - step + newline + 1
            break
        start -= step
    if start != size:
        log.warning("%s: cut a torn last line of %d bytes", f.name, size - start)
        f.truncate(start)
    return start


def encode(key: str, value):
    """A value as Optuna stores it (choices must be numbers or text: kernels become '32,64,64,64')."""
    return ",".join(map(str, value)) if key == "kernels" else value


def decode(key: str, value):
    return [int(k) for k in value.split(",")] if key == "kernels" else value


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
    said = trial.user_attrs.get("verdict") or {}
    pruned = state == "pruned"
    because = said.get("text") if said.get("pruned") else (snapshot.status.end_reason if models else None)
    return {
        "trial": trial.number, "run_id": run_id, "values": values, "state": state,
        "objective": objective, "epochs_reported": len(trial.intermediate_values),
        "final_val_accuracy": best(m.val_accuracy for m in models),
        "best_test_accuracy": best(m.best_test_accuracy for m in models),
        "final_test_accuracy": best(m.test_accuracy for m in models),
        "duration_seconds": snapshot.status.elapsed_seconds if models else None,
        "error": trial.user_attrs.get("error") or (None if pruned or not models else snapshot.status.end_reason),
        "pruned_because": because if pruned else None,
        "verdict": because if pruned else said.get("text"),
        "intermediate": [[epoch, round(value, 4)] for epoch, value in sorted(trial.intermediate_values.items())],
        "counted": told in ("COMPLETE", "RUNNING", "PRUNED"),
    }


def importances(trials: list, spec: SweepSpec, sweep_id: str) -> dict:
    """Each varied setting's share of the objective's variation (PED-ANOVA), over every trial with
    a result: finished ones, and pruned or failed ones at the best epoch they reached (a pruned
    run is a result of the sweep: leaving it out would hide how bad its settings were). {} until
    there are enough."""
    optuna = load_optuna()
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
        models = spec.config_for({}).models
        if len(models) == 1:
            return OBJECTIVE
        return f"{OBJECTIVE} of the better of its {len(models)} models ({', '.join(m.name for m in models)})"
    i = spec.objective_model
    models = spec.base.get("models") or []
    name = models[i].get("name") if i < len(models) and isinstance(models[i], dict) else None
    return f"best validation accuracy of {name or f'Model {i + 1}'} (models[{i}], the model whose settings vary)"
