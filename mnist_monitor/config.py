"""One validated training configuration, built from request JSON or CLI flags.

Every value that reaches the trainer passed through ``parse_train_config``: unknown keys,
wrong types and out-of-range values are refused with a ``ConfigError`` that names the field.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from mnist_monitor.palette import MODEL_COLORS, MORE_COLORS
from mnist_monitor.training.optimizers import OPTIMIZER_ADVICE, OPTIMIZER_LABELS, OPTIMIZERS
from model import map_sides

# Limits (documented in the README). They keep every accepted config inside memory and time
# a laptop can give: see ``estimate_training_bytes``.
MAX_MODELS = 4
KERNEL_RANGE = (1, 256)  # output channels of one conv layer
BATCH_RANGE = (1, 4096)  # images per training step
EPOCH_RANGE = (1, 100)
LR_MAX = 10.0  # learning rates are in (0, LR_MAX]
TRAIN_POOL = 55_000  # 60,000 training images minus the 5,000 held out for validation
SEED_RANGE = (0, 2**31 - 1)
WARMUP_RANGE = (0.01, 0.9)  # share of the one-cycle schedule (OneCycleLR's pct_start)
LABEL_SMOOTHING_RANGE = (0.0, 0.5)
MAX_TRAINING_BYTES = 4 * 1024**3  # per model, estimated activations of one training step
NAME_MAX = 40  # characters of a model name
NAME_CHARACTERS = "letters, digits, spaces or .,:()+-[]_"
NAME_PATTERN = re.compile(r"[\w .,:()+\-\[\]]{1,%d}" % NAME_MAX)  # the whole name (fullmatch): no newline
INT_TEXT = re.compile(r"[0-9]{1,9}")  # a whole number written in text: ASCII digits only, at most 9 of them

PRECISIONS = ("auto", "fp32", "bf16")
LR_SCHEDULES = ("constant", "onecycle")
OLD_SCHEDULE_NAMES = {"none": "constant"}  # accepted: config.json files written before the rename hold it
DEVICES = ("auto", "cpu", "cuda", "mps")

DEFAULT_KERNELS = ((32, 64, 64, 64), (16, 32, 32, 32))
SEED_SCHEMES = (1, 2)  # how model seeds derive from the run seed; 1 only to repeat runs written before 2
SEED_SCHEME = SEED_SCHEMES[-1]

# Folders. Relative paths given on the command line (server or trainer) are taken relative to the
# working directory; the defaults are inside the project folder, so `python train.py` writes runs
# the server lists wherever either is started from.
PROJECT_DIR = Path(__file__).resolve().parent.parent  # the project root: server.py, model.py, runs/, data/
DEFAULT_RUNS_DIR = PROJECT_DIR / "runs"
DEFAULT_KEEP_RUNS = 0  # 0 keeps every run; N > 0 deletes all but the newest N (starred runs are kept)
DATA_DIR_ENV = "MNIST_DATA_DIR"


def default_data_dir() -> str:
    """$MNIST_DATA_DIR if set, else the project's data/ folder (MNIST is downloaded there)."""
    return os.environ.get(DATA_DIR_ENV) or str(PROJECT_DIR / "data")


class ConfigError(ValueError):
    """A config value is invalid; ``field`` names it (dotted, e.g. ``models[1].kernels``)."""

    def __init__(self, field_name: str, problem: str):
        super().__init__(f"{field_name}: {problem}")
        self.field = field_name
        self.problem = problem


@dataclass(frozen=True)
class ModelConfig:
    name: str
    kernels: tuple[int, int, int, int]
    optimizer: str
    learning_rate: float
    batch_size: int
    color: int | None = None  # its colour on the page and in the pictures (a palette index); parsed: never None


@dataclass(frozen=True)
class TrainConfig:
    models: tuple[ModelConfig, ...]
    # Defaults measured to reach 99% test accuracy (Model 1) in ONE epoch, median of seeds 0-2 (99.05%),
    # and 99.43% after the 3 epochs (README table, benchmarks/one_epoch.py)
    epochs: int = 3
    optimizer: str = "adam"
    learning_rate: float = 0.004  # the peak of the one-cycle schedule
    batch_size: int = 128
    lr_schedule: str = "onecycle"
    warmup: float = 0.3  # share of the one-cycle schedule spent rising to the peak learning rate
    label_smoothing: float = 0.1  # weight moved from the true class to the others in the loss
    precision: str = "auto"
    train_samples: int | None = None
    seed: int = 0
    device: str = "auto"
    seed_scheme: int = SEED_SCHEME

    def to_dict(self) -> dict:
        data = asdict(self)
        data["models"] = [dict(m, kernels=list(m["kernels"])) for m in data["models"]]
        return data


TOP_LEVEL_KEYS = {f for f in TrainConfig.__dataclass_fields__}
MODEL_KEYS = {"name", "kernels", "optimizer", "learning_rate", "batch_size", "color"}
COLOR_RANGE = (0, len(MODEL_COLORS) - 1)  # a model's colour: an index into the palette


def reject_unknown(keys, allowed, what: str = "key", prefix: str = "") -> None:
    """ConfigError naming the first of ``keys`` that is not in ``allowed`` (sorted, so the same
    request always names the same field)."""
    unknown = sorted(set(keys) - set(allowed))
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}", f"unknown {what} (allowed: {', '.join(sorted(allowed))})")


def _int(value, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(name, f"must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(name, f"must be between {low} and {high}, got {value}")
    return value


def _learning_rate(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(name, f"must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or not 0 < value <= LR_MAX:
        raise ConfigError(name, f"must be greater than 0 and at most {LR_MAX:g}, got {value!r}")
    return value


def _fraction(value, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(name, f"must be a number, got {value!r}")
    if not math.isfinite(value) or not low <= value <= high:
        raise ConfigError(name, f"must be between {low:g} and {high:g}, got {value!r}")
    return float(value)


def renamed_schedule(value):
    """The constant schedule was called "none" before; that word still means it."""
    return OLD_SCHEDULE_NAMES.get(value, value) if isinstance(value, str) else value


def _choice(value, name: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(name, f"must be one of {', '.join(choices)}; got {value!r}")
    return value


def parse_kernels(value, name: str = "kernels") -> tuple[int, int, int, int]:
    """Kernels as a JSON list of 4 integers (a string such as "32,64,64,64" is a wrong type here)."""
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise ConfigError(name, f"must be a list of 4 integers, got {value!r}"[:200])
    return tuple(_int(k, f"{name}[{i}]", *KERNEL_RANGE) for i, k in enumerate(value))


def int_text(text: str) -> int | None:
    """The whole number ``text`` spells in ASCII digits (at most 9), else None: '²', '٣', '+5' and
    a 5,000-digit number are not numbers here, whatever ``int()`` makes of them."""
    return int(text) if isinstance(text, str) and INT_TEXT.fullmatch(text) else None


def parse_kernels_text(text: str, name: str = "kernels") -> tuple[int, int, int, int]:
    """Kernels written as ``"32,64,64,64"`` (a query string, a command-line flag)."""
    values = [int_text(part.strip()) for part in text.split(",")]
    if None in values or len(values) != 4:
        raise ConfigError(name, f"must be 4 comma-separated integers, got {text!r}"[:200])
    return parse_kernels(values, name)


def estimate_training_bytes(kernels, batch_size: int) -> int:
    """Rough upper bound of one training step's activation memory (fp32, forward + backward).

    The two full-resolution conv outputs (26x26 and 24x24) dominate; each is kept for backward,
    with its ReLU mask and gradient, so about 4 copies of them are alive at the peak.
    """
    conv1, conv2, pool1, conv3, conv4, _ = map_sides()
    k1, k2, k3, k4 = kernels
    per_image = k1 * conv1 ** 2 + k2 * conv2 ** 2 + k2 * pool1 ** 2 + k3 * conv3 ** 2 + k4 * conv4 ** 2
    return 4 * 4 * per_image * batch_size


def _model(entry, index: int, defaults: dict) -> ModelConfig:
    prefix = f"models[{index}]"
    if not isinstance(entry, dict):
        raise ConfigError(prefix, f"must be an object such as {{\"kernels\": [32, 64, 64, 64]}}, got {entry!r}")
    reject_unknown(entry, MODEL_KEYS, prefix=prefix + ".")
    if "kernels" not in entry:
        raise ConfigError(f"{prefix}.kernels", "is required")
    kernels = parse_kernels(entry["kernels"], f"{prefix}.kernels")
    name = entry.get("name", f"Model {index + 1}")
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ConfigError(f"{prefix}.name", f"must be 1 to {NAME_MAX} {NAME_CHARACTERS}")
    optimizer = _choice(entry.get("optimizer", defaults["optimizer"]), f"{prefix}.optimizer", OPTIMIZERS)
    lr = _learning_rate(entry.get("learning_rate", defaults["learning_rate"]), f"{prefix}.learning_rate")
    batch = _int(entry.get("batch_size", defaults["batch_size"]), f"{prefix}.batch_size", *BATCH_RANGE)
    if estimate_training_bytes(kernels, batch) > MAX_TRAINING_BYTES:
        raise ConfigError(
            f"{prefix}.batch_size",
            f"batch size {batch} with kernels {list(kernels)} needs about "
            f"{estimate_training_bytes(kernels, batch) / 1024**3:.1f} GiB per step "
            f"(limit {MAX_TRAINING_BYTES // 1024**3} GiB); use a smaller batch or fewer kernels",
        )
    color = entry.get("color")
    if color is not None:
        color = _int(color, f"{prefix}.color", *COLOR_RANGE)
    return ModelConfig(name=name, kernels=kernels, optimizer=optimizer, learning_rate=lr, batch_size=batch, color=color)


def with_colors(models: tuple[ModelConfig, ...]) -> tuple[ModelConfig, ...]:
    """Each model keeps the colour it was given (a page keeps a model's colour when the models
    above it are removed); the others take the free ones in order (no colour given: by position)."""
    given = [m.color for m in models]
    for i, color in enumerate(given):
        if color is not None and color in given[:i]:
            raise ConfigError(f"models[{i}].color", f"colour {color} is taken by models[{given.index(color)}]: "
                                                    f"each model has a colour of its own")
    free = iter(c for c in range(COLOR_RANGE[1] + 1) if c not in given)
    return tuple(m if m.color is not None else replace(m, color=next(free)) for m in models)


def parse_train_config(data) -> TrainConfig:
    """Build a ``TrainConfig`` from JSON-like data; missing keys take the defaults."""
    if not isinstance(data, dict):
        raise ConfigError("body", "must be a JSON object")
    reject_unknown(data, TOP_LEVEL_KEYS)
    defaults = TrainConfig.__dataclass_fields__
    get = lambda key: data.get(key, defaults[key].default)  # noqa: E731
    shared = {
        "epochs": _int(get("epochs"), "epochs", *EPOCH_RANGE),
        "optimizer": _choice(get("optimizer"), "optimizer", OPTIMIZERS),
        "learning_rate": _learning_rate(get("learning_rate"), "learning_rate"),
        "batch_size": _int(get("batch_size"), "batch_size", *BATCH_RANGE),
        "lr_schedule": _choice(renamed_schedule(get("lr_schedule")), "lr_schedule", LR_SCHEDULES),
        "warmup": _fraction(get("warmup"), "warmup", *WARMUP_RANGE),
        "label_smoothing": _fraction(get("label_smoothing"), "label_smoothing", *LABEL_SMOOTHING_RANGE),
        "precision": _choice(get("precision"), "precision", PRECISIONS),
        "device": _choice(get("device"), "device", DEVICES),
        "seed": _int(get("seed"), "seed", *SEED_RANGE),
        "seed_scheme": _int(get("seed_scheme"), "seed_scheme", SEED_SCHEMES[0], SEED_SCHEMES[-1]),
    }
    train_samples = data.get("train_samples")
    if train_samples is not None:
        train_samples = _int(train_samples, "train_samples", 1, TRAIN_POOL)
    models = data.get("models", [{"kernels": list(k)} for k in DEFAULT_KERNELS])
    if not isinstance(models, list) or not 1 <= len(models) <= MAX_MODELS:
        raise ConfigError("models", f"must be a list of 1 to {MAX_MODELS} models, got {models!r}"[:200])
    parsed = tuple(_model(entry, i, shared) for i, entry in enumerate(models))
    names = [m.name.strip().casefold() for m in parsed]  # "Model 1" and "model 1 " read the same in a legend
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f"models[{i}].name", f"duplicate model name {parsed[i].name!r}: names must differ "
                                                   f"(letter case and spaces around them do not count)")
    return TrainConfig(models=with_colors(parsed), train_samples=train_samples, **shared)


SHARED_KEYS = ("epochs", "optimizer", "learning_rate", "batch_size", "lr_schedule", "warmup", "label_smoothing",
               "precision", "train_samples",
               "seed", "device")  # the run-wide settings, in the order forms and --help list them
CHOICES = {"optimizer": OPTIMIZERS, "precision": PRECISIONS, "lr_schedule": LR_SCHEDULES, "device": DEVICES}


def form_settings() -> dict:
    """Defaults, limits and choices of the settings, for the page's form (``GET /config``) and the
    command line's flags."""
    defaults = {f.name: f.default for f in fields(TrainConfig) if f.name in SHARED_KEYS}
    defaults["models"] = [{"name": f"Model {i + 1}", "kernels": list(k)} for i, k in enumerate(DEFAULT_KERNELS)]
    return {
        "defaults": defaults,
        "limits": {
            "models": [1, MAX_MODELS], "kernels": list(KERNEL_RANGE), "batch_size": list(BATCH_RANGE),
            "epochs": list(EPOCH_RANGE), "learning_rate": [0, LR_MAX], "train_samples": [1, TRAIN_POOL],
            "seed": list(SEED_RANGE), "name_length": [1, NAME_MAX], "warmup": list(WARMUP_RANGE),
            "label_smoothing": list(LABEL_SMOOTHING_RANGE),
        },
        "choices": {key: list(values) for key, values in CHOICES.items()},
        "labels": {"optimizer": dict(OPTIMIZER_LABELS)},
        "advice": {"optimizer": dict(OPTIMIZER_ADVICE)},
        "colors": {"models": list(MODEL_COLORS), "more": list(MORE_COLORS)},
        "name_characters": NAME_CHARACTERS,
    }


def _schema_int(low: int, high: int, **extra) -> dict:
    return {"type": "integer", "minimum": low, "maximum": high, **extra}


def request_schema() -> dict:
    """JSON Schema (2020-12) of a start body, written from the limits and choices above, so the
    API's OpenAPI document cannot drift from what ``parse_train_config`` accepts. Two rules it
    cannot say are checked only here (400 naming the field): model names must differ, and a
    model's batch must fit the memory limit (see ``estimate_training_bytes``)."""
    defaults = {f.name: f.default for f in fields(TrainConfig) if f.name != "models"}
    number = {"type": "number", "exclusiveMinimum": 0, "maximum": LR_MAX}
    model = {
        "type": "object", "additionalProperties": False, "required": ["kernels"],
        "properties": {
            "name": {"type": "string", "pattern": f"^{NAME_PATTERN.pattern}$",
                     "description": f"1 to {NAME_MAX} {NAME_CHARACTERS}; default 'Model <n>'"},
            "kernels": {"type": "array", "minItems": 4, "maxItems": 4, "items": _schema_int(*KERNEL_RANGE),
                        "description": "output channels of the 4 conv layers"},
            "optimizer": {"enum": list(OPTIMIZERS)},
            "learning_rate": number,
            "batch_size": _schema_int(*BATCH_RANGE),
            "color": {**_schema_int(*COLOR_RANGE), "description": "the model's colour (a palette index), its own; "
                      "default: the first one no other model has"},
        },
    }
    properties = {
        "models": {"type": "array", "minItems": 1, "maxItems": MAX_MODELS, "items": model,
                   "default": [{"kernels": list(k)} for k in DEFAULT_KERNELS]},
        "epochs": _schema_int(*EPOCH_RANGE),
        "optimizer": {"enum": list(OPTIMIZERS)},
        "learning_rate": dict(number),
        "batch_size": _schema_int(*BATCH_RANGE),
        "lr_schedule": {"enum": [*LR_SCHEDULES, *OLD_SCHEDULE_NAMES],
                        "description": "none: the old name of constant, still accepted"},
        "warmup": {"type": "number", "minimum": WARMUP_RANGE[0], "maximum": WARMUP_RANGE[1]},
        "label_smoothing": {"type": "number", "minimum": LABEL_SMOOTHING_RANGE[0],
                            "maximum": LABEL_SMOOTHING_RANGE[1]},
        "precision": {"enum": list(PRECISIONS)},
        "train_samples": {"type": ["integer", "null"], "minimum": 1, "maximum": TRAIN_POOL},
        "seed": _schema_int(*SEED_RANGE),
        "device": {"enum": list(DEVICES)},
        "seed_scheme": _schema_int(SEED_SCHEMES[0], SEED_SCHEMES[-1]),
    }
    for key, value in defaults.items():
        properties[key] = {**properties[key], "default": value}
    return {"type": "object", "additionalProperties": False, "required": [], "properties": properties}
