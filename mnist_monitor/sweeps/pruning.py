"""The pruners a sweep may use, and why each trial went on or stopped, in words with the numbers
the pruner compared.

Optuna decides; ``verdict`` works the same decision out again from the same trials, so the words
say exactly what was compared (a test holds the two to agree):

- ``median`` (Optuna's MedianPruner): after each epoch but the last, a trial stops when its best
  validation accuracy so far is below the median (interpolated, numpy's percentile) of the
  finished trials' values at that epoch. It starts once ``prune_after`` trials have finished.
- ``successive_halving`` (Optuna's SuccessiveHalvingPruner, epochs as its resource): at its rungs,
  epochs 1, 3, 9, ... (each REDUCTION times the last), a trial goes on only if its validation
  accuracy at that epoch is in the top third of the trials that reached the rung before it and
  itself (the first to arrive always goes on). Chosen over Hyperband, which runs several such
  schedules side by side and only pays off with more trials and epochs than a sweep here has; one
  schedule keeps each verdict one sentence long.
- ``none``: every trial runs all its epochs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PRUNERS = ("median", "successive_halving", "none")
REDUCTION = 3  # successive halving keeps the top third at each rung; rungs at epochs 1, 3, 9, ...


@dataclass(frozen=True)
class Verdict:
    prune: bool
    text: str

    def to_dict(self, epoch: int) -> dict:
        return {"epoch": epoch, "pruned": self.prune, "text": self.text}


def make_pruner(kind: str, prune_after: int):
    import optuna
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=prune_after, n_warmup_steps=0)
    if kind == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=REDUCTION,
                                                      min_early_stopping_rate=0, bootstrap_count=0)
    return optuna.pruners.NopPruner()


def rungs(epochs: int) -> list[int]:
    """The epochs at which successive halving judges a run of ``epochs`` (never the last one)."""
    out, epoch = [], 1
    while epoch < epochs:
        out.append(epoch)
        epoch *= REDUCTION
    return out


def pct(value: float) -> str:
    return f"{value:.1f} %"


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def verdict(kind: str, prune_after: int, trials: list, trial, epoch: int) -> Verdict | None:
    """Whether the pruner stops ``trial`` after it reported ``epoch``, and why, from ``trials`` (the
    study's trials as they were when it asked). None: the pruner judges nothing at this epoch."""
    if kind == "median":
        return median_verdict(prune_after, trials, trial, epoch)
    if kind == "successive_halving":
        return halving_verdict(trials, trial, epoch)
    return None


def median_verdict(prune_after: int, trials: list, trial, epoch: int) -> Verdict:
    finished = [t for t in trials if t.state.name == "COMPLETE"]
    if len(finished) < max(1, prune_after):
        return Verdict(False, f"not pruned: the pruner starts after {plural(prune_after, 'finished trial')} "
                              f"({len(finished)} had finished when it ended epoch {epoch})")
    values = np.asarray(list(trial.intermediate_values.values()), dtype=float)
    best = float("nan") if np.isnan(values).all() else float(np.nanmax(values))
    if math.isnan(best):
        return Verdict(True, f"pruned at epoch {epoch}: no validation accuracy to compare (not a number)")
    peers = [t.intermediate_values[epoch] for t in finished if epoch in t.intermediate_values]
    if not peers or np.isnan(np.asarray(peers, dtype=float)).all():
        return Verdict(False, f"not pruned at epoch {epoch}: no finished trial reached epoch {epoch}")
    median = float(np.nanpercentile(np.asarray(peers, dtype=float), 50))
    of = f"median {pct(median)} of {plural(len(peers), 'finished trial')}"
    if best < median:
        return Verdict(True, f"pruned at epoch {epoch}: best so far {pct(best)} < {of}")
    return Verdict(False, f"not pruned at epoch {epoch}: best so far {pct(best)} ≥ {of}")


def halving_verdict(trials: list, trial, epoch: int) -> Verdict | None:
    """Successive halving's judgement at the rungs ``epoch`` reaches that ``trial`` has not passed
    yet (one rung an epoch, as each epoch is reported)."""
    value = trial.intermediate_values[epoch]
    rung = sum(f"completed_rung_{r}" in trial.system_attrs for r in range(64))
    said = None
    while epoch >= REDUCTION ** rung:
        key = f"completed_rung_{rung}"
        competing = [t.system_attrs[key] for t in trials if key in t.system_attrs and t.number != trial.number]
        competing.append(value)
        keep = max(1, len(competing) // REDUCTION)
        cut = sorted(competing, reverse=True)[keep - 1]
        reached = f"the {plural(len(competing), 'trial')} that reached epoch {REDUCTION ** rung} so far"
        if math.isnan(value) or value < cut:
            return Verdict(True, f"pruned at epoch {epoch} (rung {rung + 1}): {pct(value)} is not in the top "
                                 f"{keep} of {reached} (the cut: {pct(cut)})")
        said = Verdict(False, f"not pruned at epoch {epoch} (rung {rung + 1}): {pct(value)} is in the top {keep} "
                              f"of {reached} (the cut: {pct(cut)})")
        rung += 1
    return said


def pruner_text(kind: str, prune_after: int, epochs: int | None) -> str:
    """When and how the sweep's pruner stops trials, in a sentence or two."""
    if kind == "median":
        return (f"Median pruner: after each epoch but the last, a trial stops if its best validation accuracy so far "
                f"is below the median of the finished trials at that epoch. It starts once "
                f"{plural(prune_after, 'trial')} {'has' if prune_after == 1 else 'have'} finished: the trials before "
                "run to the end whatever they score.")
    if kind == "successive_halving":
        at = rungs(epochs) if epochs else []
        where = (f"epoch{'s' * (len(at) != 1)} {', '.join(map(str, at))}" if at else
                 "no epoch of these trials (a rung at epochs 1, 3, 9, ..., never the last epoch)")
        return (f"Successive halving: at {where} (its rungs), a trial goes on only if its validation accuracy there "
                "is in the top third of the trials that reached that epoch so far; the first to arrive always "
                "goes on.")
    return "No pruning: every trial runs all its epochs."


def pruner_line(kind: str, trials: list) -> list[list]:
    """What the trials are cut against, per epoch, for the chart: the median of the finished
    trials at each epoch (median pruner, or none), or the cut at each rung now (successive halving)."""
    if kind == "successive_halving":
        line = []
        for rung in range(64):
            key = f"completed_rung_{rung}"
            values = [t.system_attrs[key] for t in trials if key in t.system_attrs]
            if not values:
                break
            keep = max(1, len(values) // REDUCTION)
            line.append([REDUCTION ** rung, round(sorted(values, reverse=True)[keep - 1], 4)])
        return line
    finished = [t for t in trials if t.state.name == "COMPLETE"]
    epochs = sorted({e for t in finished for e in t.intermediate_values})
    return [[e, round(float(np.nanpercentile([t.intermediate_values[e] for t in finished if e in t.intermediate_values],
                                             50)), 4)] for e in epochs]
