"""The trainer's side of a sweep: what a trainer of a trial's run does at each epoch end. It runs
wherever the trainer runs (a Ray worker on another machine reads the same journal on the shared
runs folder)."""
from __future__ import annotations

import logging
from pathlib import Path

from mnist_monitor.sweeps import pruning
from mnist_monitor.sweeps.folder import SWEEPS_DIR, Sweep
from mnist_monitor.sweeps.study import load_optuna

log = logging.getLogger("sweeps")


class TrialReporter:
    """Reports the run's validation accuracy to the study at each epoch end and asks the pruner
    whether to go on."""

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
        run here, else None. Each verdict is kept on the trial in words (the sweep view shows why
        each trial went on or stopped)."""
        optuna = load_optuna()
        study = self.sweep.study()
        trial = optuna.trial.Trial(study, self.trial_id)
        trial.report(value, epoch)
        if not verdict:
            return None
        spec = self.sweep.spec()
        trials = study.get_trials(deepcopy=True)  # as the pruner is about to see them
        frozen = next(t for t in trials if t._trial_id == self.trial_id)
        said = pruning.verdict(spec.prune, spec.prune_after, trials, frozen, epoch)
        prune = trial.should_prune()
        if said is not None and said.prune != prune:  # another process told a result in between
            log.warning("trial %d: the pruner's verdict changed as it was taken (%s)", frozen.number, said.text)
            said = pruning.Verdict(prune, f"{'pruned' if prune else 'not pruned'} at epoch {epoch}: "
                                          f"{pruning.pct(value)}, judged against the trials as they were a moment later")
        if said is not None:
            trial.set_user_attr("verdict", said.to_dict(epoch))
        return said.text if prune and said is not None else (f"pruned at epoch {epoch}" if prune else None)


def reporter_for(run_dir, facts: dict, models: int, epochs: int) -> TrialReporter | None:
    """The reporter of a run that is a trial of a sweep (its epochs are reported whether or not
    the sweep prunes: the sweep view shows them live), else None."""
    sweep = facts.get("sweep") if isinstance(facts, dict) else None
    if not isinstance(sweep, dict) or not {"sweep_id", "trial_id"} <= set(sweep):
        return None
    return TrialReporter(run_dir, sweep, models, epochs)
