"""The records of a run folder: states, the status (typed both ways, validated on the way in),
metrics rows, run ids. Writer and reader import these; nothing else defines them."""
from __future__ import annotations

import re
import secrets
import time
from dataclasses import MISSING, asdict, dataclass, field, fields
from datetime import datetime, timezone

from mnist_monitor.metrics import KINDS, PLACE

ACTIVE_STATES = ("starting", "running", "stopping")
FINAL_STATES = ("finished", "stopped", "failed", "interrupted", "pruned")
PRUNED_STATE = "pruned"  # a sweep's trial stopped early by the sweep's pruner: a result, not to be resumed
QUEUED_STATE = "queued"  # waiting for the runs before it: config.json and status.json, nothing trained yet
RESUMABLE_STATES = ("stopped", "failed", "interrupted")  # cut off: can go on from the last epoch-end checkpoint
BROKEN_STATE = "broken"  # its status or config cannot be read as the contract says: it can only be deleted
IDLE_STATE = "idle"  # no run at all (never written to disk)
WRITTEN_STATES = ACTIVE_STATES + FINAL_STATES + (QUEUED_STATE,)  # what a status.json may hold


class RecordError(ValueError):
    """A record read from disk is not what the contract says; the message says what is wrong."""


@dataclass
class ModelStatus:
    """One model's part of status.json."""
    name: str
    kernels: list
    optimizer: str
    learning_rate: float
    batch_size: int
    parameters: int
    epoch: int
    epochs: int
    batch: int
    batches: int
    loss: float | None = None
    accuracy: float | None = None  # percent, over the last curve window
    val_accuracy: float | None = None  # percent, at the last epoch end
    test_accuracy: float | None = None
    best_test_accuracy: float | None = None
    progress: float = 0.0  # percent of this model's steps done
    samples: int = 0  # training images seen
    samples_per_sec: float | None = None
    eta_seconds: float | None = None
    color: int | None = None  # a palette index (its config's); None in a status written before colours


@dataclass
class RunStatus:
    """status.json: small, replaced atomically, read at every poll."""
    state: str
    run_id: str | None = None
    pid: int | None = None  # the process that wrote it (liveness is the heartbeat's, not this)
    device: str | None = None
    host: str | None = None  # the machine that trains it
    node_id: str | None = None  # the Ray node that trains it (runs handed to Ray)
    precision: str | None = None
    lr_schedule: str | None = None
    train_images: int | None = None  # training images per epoch
    error: str | None = None
    end_reason: str | None = None  # why a run ended early when no error did it (a sweep's pruner)
    waiting: str | None = None  # why a run handed to Ray has not begun after a while ('starting' only)
    started_at: float | None = None  # Unix seconds
    updated_at: float | None = None
    finished_at: float | None = None
    eta_seconds: float | None = None
    eval_seconds: float | None = None  # wall time spent evaluating so far
    resumes: int = 0  # times the run went on from an epoch-end checkpoint after being cut off
    elapsed_seconds: float | None = None  # seconds it has trained (the pauses before resumes not counted)
    models: list[ModelStatus] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data) -> "RunStatus":
        """The record from parsed JSON; RecordError naming the first field that breaks the contract."""
        values = _checked(cls, data, "status")
        if values["state"] not in WRITTEN_STATES:
            raise RecordError(f"status: state {values['state']!r} is not one of {', '.join(WRITTEN_STATES)}")
        values["models"] = [ModelStatus(**_checked(ModelStatus, m, f"status.models[{i}]"))
                            for i, m in enumerate(values["models"])]
        return cls(**values)


RUN_STATUS_FIELDS = tuple(f.name for f in fields(RunStatus))
MODEL_STATUS_FIELDS = tuple(f.name for f in fields(ModelStatus))
_TYPES = {"str": (str,), "int": (int,), "float": (int, float), "list": (list,), "None": (type(None),)}


def _accepts(annotation: str) -> tuple[type, ...]:
    """'float | None' -> (int, float, NoneType); 'list[ModelStatus]' -> (list,)."""
    return tuple(t for part in annotation.split("|") for t in _TYPES[part.strip().split("[")[0]])


def _checked(cls, data, where: str) -> dict:
    """The fields of dataclass ``cls`` from ``data``, type-checked; unknown keys are ignored (a
    newer writer may add some), a missing field takes its default or is an error."""
    if not isinstance(data, dict):
        raise RecordError(f"{where}: must be a JSON object, got {type(data).__name__}")
    values = {}
    for f in fields(cls):
        if f.name not in data:
            if f.default is MISSING and f.default_factory is MISSING:
                raise RecordError(f"{where}.{f.name}: is missing")
            continue
        value = data[f.name]
        accepted = _accepts(f.type)
        if isinstance(value, bool) or not isinstance(value, accepted):
            raise RecordError(f"{where}.{f.name}: {value!r} is not a {f.type}"[:200])
        values[f.name] = value
    return {f.name: values.get(f.name, f.default_factory() if f.default_factory is not MISSING else f.default)
            for f in fields(cls)}


# Metrics rows: one a line of metrics.jsonl, of a kind the metrics registry declares (its module
# says what the kind is, its fields and units). A row holds "kind", where it stands and its fields.
METRIC_KINDS = {name: kind.columns for name, kind in KINDS.items()}  # kind -> its row's keys besides "kind"
METRIC_COLUMNS = ("kind",) + PLACE[:3] + tuple(dict.fromkeys(
    f.name for kind in KINDS.values() for f in kind.fields)) + PLACE[3:]  # every key, in the order rows keep
TABLE_KINDS = tuple(name for name, kind in KINDS.items() if kind.tabular)  # one number a column (the CSV's)


def metrics_row(kind: str, **values) -> dict:
    """A metrics row of ``kind`` with exactly its fields, in METRIC_COLUMNS order; a kind the
    registry does not declare cannot be written."""
    if kind not in METRIC_KINDS:
        raise ValueError(f"{kind!r} is no metric kind (the registry has {', '.join(METRIC_KINDS)})")
    expected = METRIC_KINDS[kind]
    if set(values) != set(expected):
        raise ValueError(f"a {kind!r} metrics row needs {expected}, got {sorted(values)}")
    values["kind"] = kind
    return {column: values[column] for column in METRIC_COLUMNS if column in values}


RUN_ID_PATTERN = re.compile(r"[0-9]{8}-[0-9]{6}-[0-9]{3}[0-9a-f]{3}")  # matched whole (fullmatch), ASCII only
RUN_ID_TIME = "%Y%m%d-%H%M%S"  # UTC, so ids sort the same whatever the time zone of the writer


def run_id_time(run_id: str) -> float | None:
    """The Unix time a run id was made at (its start, or when it was queued); None if it is no id."""
    if not RUN_ID_PATTERN.fullmatch(run_id):
        return None
    stamp = datetime.strptime(run_id[:15], RUN_ID_TIME).replace(tzinfo=timezone.utc)
    return stamp.timestamp() + int(run_id[16:19]) / 1000


def new_run_id(after: str = "") -> str:
    """'20261126-183300-482a3f': start time (UTC) to the millisecond, then 3 random hex digits.

    The id sorts after ``after`` without waiting for the clock: if the clock is behind (set back,
    or a folder written by another machine), the time part is ``after``'s plus one millisecond."""
    millis = int(time.time() * 1000)
    if after and RUN_ID_PATTERN.fullmatch(after):
        stamp = datetime.strptime(after[:15], RUN_ID_TIME).replace(tzinfo=timezone.utc)
        millis = max(millis, int(stamp.timestamp()) * 1000 + int(after[16:19]) + 1)
    stamp = datetime.fromtimestamp(millis // 1000, timezone.utc).strftime(RUN_ID_TIME)
    return f"{stamp}-{millis % 1000:03d}{secrets.token_hex(2)[:3]}"
