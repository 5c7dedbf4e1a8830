"""The words a sweep gives for each pruner's verdict say what Optuna itself decided, with the
numbers it compared: random studies, each trial's verdict worked out by ``pruning.verdict`` and
by Optuna's own ``should_prune`` on the same journal, at every epoch."""
import random
import re

import pytest

from mnist_monitor.sweeps import pruning
from mnist_monitor.sweeps.study import journal_storage, load_optuna


def play(kind: str, prune_after: int, epochs: int, seed: int, path) -> list[tuple]:
    """Trials that report made-up accuracies epoch by epoch, several at a time, in a journal as a
    sweep keeps one; every (Optuna's decision, our verdict) on the way."""
    optuna = load_optuna()
    rng = random.Random(seed)
    study = optuna.create_study(study_name="s", storage=journal_storage(path), direction="maximize",
                                pruner=pruning.make_pruner(kind, prune_after))
    seen, live = [], []
    for _ in range(14):
        live.append((study.ask(), rng.uniform(10, 90), 1))
        while live and (len(live) > 2 or rng.random() < 0.5):
            trial, level, epoch = live.pop(rng.randrange(len(live)))
            value = min(99.0, level + 3 * epoch + rng.uniform(-4, 4))
            if rng.random() < 0.1:
                value = round(value)  # ties with another trial's value
            trial.report(value, epoch)
            if epoch == epochs:
                study.tell(trial, value)
                continue
            trials = study.get_trials(deepcopy=True)
            frozen = next(t for t in trials if t._trial_id == trial._trial_id)
            said = pruning.verdict(kind, prune_after, trials, frozen, epoch)
            decided = trial.should_prune()
            seen.append((decided, said, epoch))
            if decided:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            else:
                live.append((trial, level, epoch + 1))
    return seen


@pytest.mark.parametrize("kind, prune_after, epochs", [("median", 3, 3), ("median", 1, 4), ("successive_halving", 0, 4),
                                                       ("successive_halving", 0, 10)])
def test_each_verdict_in_words_is_the_decision_optuna_took(tmp_path, kind, prune_after, epochs):
    for seed in range(6):
        seen = play(kind, prune_after, epochs, seed, tmp_path / f"{kind}-{seed}.log")
        for decided, said, epoch in seen:
            if said is None:  # successive halving between its rungs: no judgement, and no pruning
                assert kind == "successive_halving" and epoch not in pruning.rungs(epochs) and not decided
                continue
            assert said.prune == decided, (seed, epoch, said.text)
            assert said.text.startswith(f"pruned at epoch {epoch}" if decided else "not pruned")
        assert any(d for d, _, _ in seen) and not all(d for d, _, _ in seen)  # both verdicts were tried


def test_the_median_verdict_quotes_the_interpolated_median_and_the_best_so_far(tmp_path):
    optuna = load_optuna()
    study = optuna.create_study(direction="maximize", pruner=pruning.make_pruner("median", 2),
                                storage=journal_storage(tmp_path / "j.log"))
    for accuracy in (80.0, 84.0, 90.0, 95.0):  # the median of four: 87.0, between the two middle ones
        t = study.ask()
        t.report(accuracy, 1)
        study.tell(t, accuracy)
    t = study.ask()
    t.report(86.5, 1)
    frozen = study.get_trials(deepcopy=True)[-1]
    said = pruning.verdict("median", 2, study.get_trials(deepcopy=True), frozen, 1)
    assert t.should_prune() and said.prune
    assert said.text == "pruned at epoch 1: best so far 86.5 % < median 87.0 % of 4 finished trials"
    early = optuna.create_study(direction="maximize", pruner=pruning.make_pruner("median", 3))
    first = early.ask()
    first.report(10.4, 1)
    said = pruning.verdict("median", 3, early.get_trials(), early.get_trials()[0], 1)
    assert not first.should_prune()
    assert said.text == "not pruned: the pruner starts after 3 finished trials (0 had finished when it ended epoch 1)"


def test_successive_halving_names_its_rung_the_trials_that_reached_it_and_the_cut(tmp_path):
    optuna = load_optuna()
    study = optuna.create_study(direction="maximize", pruner=pruning.make_pruner("successive_halving", 0))
    said = []
    for accuracy in (50.0, 70.0, 60.0, 65.0, 90.0, 40.0):
        t = study.ask()
        t.report(accuracy, 1)
        trials = study.get_trials(deepcopy=True)
        said.append(pruning.verdict("successive_halving", 0, trials, trials[-1], 1))
        assert said[-1].prune == t.should_prune()
    assert said[0].text == "not pruned at epoch 1 (rung 1): 50.0 % is in the top 1 of the 1 trial that reached epoch 1 so far (the cut: 50.0 %)"
    assert said[2].text == "pruned at epoch 1 (rung 1): 60.0 % is not in the top 1 of the 3 trials that reached epoch 1 so far (the cut: 70.0 %)"
    assert said[5].text.startswith("pruned at epoch 1 (rung 1): 40.0 % is not in the top 2 of the 6 trials")
    assert pruning.rungs(10) == [1, 3, 9] and pruning.rungs(2) == [1] and pruning.rungs(1) == []
    assert re.search(r"at epochs 1, 3 \(its rungs\)", pruning.pruner_text("successive_halving", 0, 4))
