"""What a sweep is: a base start body, the settings it varies (every combination of a grid, or a
search over ranges and choices), how many trials, and whether hopeless runs are pruned.

``parse_sweep`` validates a ``POST /sweeps`` body (or ``train.py --sweep`` file) into a
``SweepSpec``; every value is checked by building the run config it makes, so a sweep never
queues a run that the start form would refuse. Errors are ``ConfigError`` naming the field
(``grid.learning_rate[2]``, ``search.batch_size.high``).
"""
from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field

from mnist_monitor.config import ConfigError, TrainConfig, parse_train_config, reject_unknown
from mnist_monitor.sweeps.pruning import PRUNERS

MAX_TRIALS = 64  # runs a sweep: a morning on a laptop at a few minutes each, and one screen of lines
MODEL_LEVEL = ("optimizer", "learning_rate", "batch_size")  # also set on each model, so they apply to all
# The settings a sweep can vary, and the kind of range a search may give them.
VARIED = {
    "learning_rate": float, "batch_size": int, "optimizer": str, "epochs": int, "warmup": float,
    "label_smoothing": float, "kernels": list, "seed": int,
}
PER_MODEL = re.compile(r"models\[([0-9])\]\.(optimizer|learning_rate|batch_size)")  # one model's own setting
SPEC_KEYS = ("base", "grid", "search", "trials", "prune", "name")
NAME_MAX = 60  # characters of a sweep's name


@dataclass(frozen=True)
class Range:
    """A search range of a numeric setting: ``low`` to ``high``, spaced evenly or on a log scale."""
    low: float
    high: float
    log: bool = False

    def to_dict(self) -> dict:
        return {"low": self.low, "high": self.high, "log": self.log}


@dataclass(frozen=True)
class SweepSpec:
    base: dict  # a start body (validated), without the varied settings' own values
    kind: str  # "grid" or "search"
    space: dict  # setting -> list of values (grid, choices) or Range (search)
    trials: int
    prune: str
    name: str = ""
    grid: list = field(default_factory=list)  # a grid's combinations, in order

    @property
    def varied(self) -> list[str]:
        return list(self.space)

    @property
    def objective_model(self) -> int | None:
        """The model a trial is scored on when only one model's own settings vary (the others are
        the same in every trial, and the best of all models would score them, not the setting);
        None: the run's best model."""
        matches = [PER_MODEL.fullmatch(key) for key in self.varied]
        models = {int(m[1]) for m in matches if m}
        return models.pop() if all(matches) and len(models) == 1 else None

    def to_dict(self) -> dict:
        """The body that makes this sweep again."""
        space = {k: v.to_dict() if isinstance(v, Range) else list(v) for k, v in self.space.items()}
        body = {"base": self.base, self.kind: space, "prune": self.prune}
        if self.kind == "search":
            body["trials"] = self.trials
        if self.name:
            body["name"] = self.name
        return body

    def body_for(self, values: dict) -> dict:
        """The start body of the trial that takes ``values``."""
        return apply_values(self.base, values)

    def config_for(self, values: dict) -> TrainConfig:
        return parse_train_config(self.body_for(values))

    # Optuna's defaults (10 random trials before TPE models anything, 5 finished trials before the
    # median pruner prunes) suit sweeps of a hundred; a sweep here has at most 64.
    @property
    def startup_trials(self) -> int:
        """Random trials before the TPE sampler takes over: a third of the sweep, 2 to 10."""
        return max(2, min(10, self.trials // 3))

    @property
    def prune_after(self) -> int:
        """Trials that must have finished before the median pruner stops any: a quarter, 3 to 5 (with
        2, every later trial of a small search was judged against the mean of two runs)."""
        return max(3, min(5, self.trials // 4))


def apply_values(base: dict, values: dict) -> dict:
    """``base`` with each varied setting set for the whole run: top-level, and on every model for
    the settings a model may carry itself; kernels replace the (one) model's."""
    body = {**base, "models": [dict(m) for m in base.get("models", default_models())]}
    for key, value in values.items():
        if match := PER_MODEL.fullmatch(key):
            body["models"][int(match[1])][match[2]] = value
            continue
        if key == "kernels":
            body["models"][0]["kernels"] = list(value)
            continue
        body[key] = value
        if key in MODEL_LEVEL:
            for model in body["models"]:
                model[key] = value
    return body


def default_models() -> list[dict]:
    return [{"kernels": list(m.kernels)} for m in parse_train_config({}).models]


def parse_sweep(body) -> SweepSpec:
    """The sweep a request body describes; ConfigError naming the first bad field."""
    if not isinstance(body, dict):
        raise ConfigError("body", "must be a JSON object such as {\"base\": {...}, \"grid\": {\"learning_rate\": "
                                  "[0.001, 0.004]}}")
    reject_unknown(body, SPEC_KEYS)
    if "base" not in body:  # {} would train the defaults, 3 epochs of 55,000 images, in every trial
        raise ConfigError("base", "is required: the start body every trial shares, e.g. {\"epochs\": 1, "
                                  "\"train_samples\": 3000} ({} trains the defaults: 3 epochs on all 55,000 images)")
    base = body["base"]
    if not isinstance(base, dict):
        raise ConfigError("base", "must be a start body (a JSON object), such as {\"epochs\": 2}")
    if "queue" in base:
        raise ConfigError("base.queue", "a sweep queues its runs itself: leave \"queue\" out")
    try:
        config = parse_train_config(base)
    except ConfigError as exc:
        raise ConfigError(f"base.{exc.field}", exc.problem) from None
    kinds = [k for k in ("grid", "search") if k in body]
    if len(kinds) != 1:
        raise ConfigError("grid", "give either \"grid\" (every combination of the values) or \"search\" "
                                  "(ranges and choices to search), not both" if kinds else
                                  "give \"grid\" (every combination of the values) or \"search\" (ranges and "
                                  "choices to search)")
    kind = kinds[0]
    space = body[kind]
    if not isinstance(space, dict) or not space:
        raise ConfigError(kind, "must be an object naming at least one setting, such as {\"learning_rate\": "
                                "[0.001, 0.004]}")
    parsed = _space(kind, space, base, len(config.models))
    prune = _pruner(body, kind, parsed)
    name = body.get("name", "")
    if not isinstance(name, str) or len(name) > NAME_MAX or any(ord(c) < 32 for c in name):
        raise ConfigError("name", f"must be text of at most {NAME_MAX} characters on one line")
    if kind == "grid":
        if "trials" in body:
            raise ConfigError("trials", "a grid trains every combination once: leave \"trials\" out "
                                        "(or use \"search\" to pick a number of trials)")
        grid = combinations(base, parsed)
        return SweepSpec(base, kind, parsed, len(grid), prune, name.strip(), grid)
    if "trials" not in body:
        raise ConfigError("trials", f"is required for a search: how many runs to try, 1 to {MAX_TRIALS}")
    trials = body["trials"]
    if isinstance(trials, bool) or not isinstance(trials, int) or not 1 <= trials <= MAX_TRIALS:
        raise ConfigError("trials", f"must be an integer from 1 to {MAX_TRIALS}, got {trials!r}"[:200])
    return SweepSpec(base, kind, parsed, trials, prune, name.strip())


def _pruner(body: dict, kind: str, space: dict) -> str:
    prune = body.get("prune", "median" if kind == "search" else "none")
    if prune not in PRUNERS:
        raise ConfigError("prune", f"must be one of {', '.join(PRUNERS)}; got {prune!r}"[:200])
    if prune == "successive_halving" and "epochs" in space:
        raise ConfigError("prune", "successive halving judges trials at epochs 1, 3, 9, ...: its trials must all "
                                   "train the same epochs, so vary \"epochs\" with prune \"median\" or \"none\"")
    return prune


def combinations(base: dict, values: dict) -> list[dict]:
    """Every combination of a grid's values, in order; each one a run config accepts (each value
    passed alone; together they must fit too: batch and kernels share the memory limit)."""
    size = math.prod(len(v) for v in values.values())
    if size > MAX_TRIALS:
        raise ConfigError("grid", f"{size} combinations: a sweep trains at most {MAX_TRIALS} runs")
    grid = [dict(zip(values, combo)) for combo in itertools.product(*values.values())]
    for combo in grid:
        try:
            parse_train_config(apply_values(base, combo))
        except ConfigError as exc:
            said = ", ".join(f"{k} {v!r}" for k, v in combo.items())
            raise ConfigError("grid", f"the combination {said} makes a run the start form refuses: {exc}"[:300]) \
                from None
    return grid


def _space(kind: str, space: dict, base: dict, models: int) -> dict:
    """Each varied setting's values (a grid, or a search's choices) or Range (a search), checked."""
    for key in space:  # a run-wide setting, or one model's: "models[1].learning_rate"
        match = PER_MODEL.fullmatch(key) if isinstance(key, str) else None
        if match and int(match[1]) >= models:
            raise ConfigError(f"{kind}.{key}", f"the base has {models} model(s): there is no models[{match[1]}]")
        if not match:
            reject_unknown([key], VARIED, what="setting to vary (or models[i].learning_rate, .batch_size, "
                                               ".optimizer)", prefix=f"{kind}.")
    for key in space:  # "learning_rate" sets every model's: "models[1].learning_rate" beside it is one or the other
        match = PER_MODEL.fullmatch(key) if isinstance(key, str) else None
        if match and match[2] in space:
            raise ConfigError(f"{kind}.{key}", f"varies beside {match[2]}, which already sets every model's {match[2]}: "
                                               f"vary one or the other")
    if "kernels" in space and models != 1:
        raise ConfigError(f"{kind}.kernels", f"a sweep over kernels needs a base with one model, not {models}")
    return {key: (_values(base, key, value, f"{kind}.{key}") if kind == "grid" or isinstance(value, list)
                  else _range(base, key, value, f"{kind}.{key}"))
            for key, value in space.items()}


def setting_kind(key: str) -> type:
    """The type of a varied setting's values ("models[1].batch_size" is an int like "batch_size")."""
    match = PER_MODEL.fullmatch(key)
    return VARIED[match[2] if match else key]


def _values(base: dict, key: str, values, where: str) -> list:
    """A list of distinct values of ``key``, each one a run config accepts."""
    if not isinstance(values, list) or not values:
        raise ConfigError(where, "must be a non-empty list of values")
    if len(values) > MAX_TRIALS:
        raise ConfigError(where, f"{len(values)} values: a sweep trains at most {MAX_TRIALS} runs")
    seen = []
    for i, value in enumerate(values):
        if key == "kernels" and isinstance(value, list):
            value = list(value)
        if value in seen or (isinstance(value, bool) and key != "kernels"):
            raise ConfigError(f"{where}[{i}]", f"{value!r} is there twice" if value in seen else
                              f"must be a {setting_kind(key).__name__}, got {value!r}")
        try:
            parse_train_config(apply_values(base, {key: value}))
        except ConfigError as exc:
            raise ConfigError(f"{where}[{i}]", f"{value!r} makes a run the start form refuses: {exc}"[:300]) from None
        seen.append(value)
    return seen


def _range(base: dict, key: str, spec, where: str) -> Range:
    """``{"low", "high", "log"}`` of a numeric setting, both ends accepted by the run config."""
    kind = setting_kind(key)
    if kind not in (int, float):
        raise ConfigError(where, f"{key} takes a list of choices, such as [\"adam\", \"sgd\"], not a range")
    if not isinstance(spec, dict):
        raise ConfigError(where, "must be a list of choices or a range {\"low\": ..., \"high\": ..., \"log\": ...}")
    reject_unknown(spec, ("low", "high", "log"), prefix=f"{where}.")
    for end in ("low", "high"):
        value = spec.get(end)
        if end not in spec:
            raise ConfigError(f"{where}.{end}", "is required")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
            raise ConfigError(f"{where}.{end}", f"must be {'an integer' if kind is int else 'a number'}, got {value!r}")
        try:
            parse_train_config(apply_values(base, {key: value}))
        except ConfigError as exc:
            raise ConfigError(f"{where}.{end}", f"{value!r} makes a run the start form refuses: {exc}"[:300]) from None
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}.log", f"must be true or false, got {log!r}")
    low, high = spec["low"], spec["high"]
    if low >= high:
        raise ConfigError(f"{where}.low", f"must be below high ({high!r}), got {low!r}")
    if log and low <= 0:
        raise ConfigError(f"{where}.low", f"a log range must start above 0, got {low!r}")
    return Range(low, high, log)
