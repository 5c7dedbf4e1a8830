"""How runs are shown: a run's status as the page follows it, and a row of the run table. Reads
typed records from the run store; knows the URLs of a run's files, not the files' names."""
from __future__ import annotations

from mnist_monitor.config import ConfigError, parse_train_config
from mnist_monitor.runstore import BROKEN_STATE, IDLE_STATE, MODEL_STATUS_FIELDS, RUN_STATUS_FIELDS, RunSnapshot
from mnist_monitor.runstore.records import run_id_time
from mnist_monitor.training.recorder import planned_models
from mnist_monitor.web.access import owner_view

RUN_SETTINGS = ("epochs", "lr_schedule", "warmup", "label_smoothing", "precision", "train_samples", "seed",
                "device")  # of config.json


VIEW_FIELDS = tuple(key for key in RUN_STATUS_FIELDS if key != "pid")  # the status as answered


def file_url(run_id: str, name: str | None, versions: dict[str, int] | None = None) -> str | None:
    """The URL of a run's file; with ``versions`` (name -> mtime), one that changes with the file."""
    if name is None:
        return None
    return f"/runs/{run_id}/files/{name}" + (f"?v={versions[name]}" if versions else "")


def shown_models(s: RunSnapshot) -> list:
    """The models' status; for a run whose status cannot be read, its models as configured (so
    its curves, files and settings can still be looked at)."""
    if s.status is not None:
        return s.status.models
    try:
        return planned_models(parse_train_config(s.config)) if s.config else []
    except ConfigError:
        return []


def status_view(s: RunSnapshot) -> dict:
    """A run as the page sees it: its status, the URLs of its pictures and checkpoints, whether it
    can be resumed. A broken run says why in ``error``."""
    status = s.status
    view = {key: getattr(status, key) if status else None for key in VIEW_FIELDS}
    view.update(state=s.state, run_id=s.run_id, resumes=status.resumes if status else 0)
    if s.state == BROKEN_STATE:
        view.update(error=s.problem, started_at=run_id_time(s.run_id))
    view["models"] = []
    for i, model in enumerate(shown_models(s)):
        m = {key: getattr(model, key) for key in MODEL_STATUS_FIELDS}
        m["images"] = {kind: file_url(s.run_id, name, s.files) for kind, name in s.images(i).items()}
        m["checkpoint"] = file_url(s.run_id, s.checkpoint(i, "best"))
        m["confusion"] = file_url(s.run_id, s.confusion(i), s.files)
        view["models"].append(m)
    view["images"] = {"curves": file_url(s.run_id, s.curves(), s.files)} if s.curves() else {}
    view["resumable"] = s.resumable
    view["metrics_csv"] = f"/runs/{s.run_id}/metrics.csv"
    view["owner"] = owner_view(s.owner)
    return view


def empty_view(state: str = IDLE_STATE, run_id: str | None = None) -> dict:
    """The status shape with nothing in it: no run yet, or a run whose status.json is not written yet."""
    view = {key: None for key in VIEW_FIELDS}
    view.update(state=state, run_id=run_id, models=[], images={}, resumable=False, owner=None)
    return view


def run_summary(s: RunSnapshot) -> dict:
    """A row of the run table: the run's settings and its results."""
    status, config = s.status, s.config or {}
    models = shown_models(s)
    best = [m.best_test_accuracy for m in models if m.best_test_accuracy is not None]
    duration = status.elapsed_seconds if status else None
    end = status and (status.finished_at or status.updated_at)
    if duration is None and end and status.started_at:  # runs written before it was recorded: start to end
        duration = round(end - status.started_at, 1)
    return {
        "run_id": s.run_id, "state": s.state, "started_at": status.started_at if status else run_id_time(s.run_id),
        "duration_seconds": duration, "device": status.device if status else None,
        "precision": status.precision if status else None,
        "settings": {key: config.get(key) for key in RUN_SETTINGS},
        "models": [{"name": m.name, "kernels": m.kernels, "optimizer": m.optimizer,
                    "learning_rate": m.learning_rate, "batch_size": m.batch_size, "parameters": m.parameters,
                    "best_test_accuracy": m.best_test_accuracy, "final_test_accuracy": m.test_accuracy,
                    "color": m.color}
                   for m in models],
        "best_test_accuracy": max(best) if best else None,
        "resumes": status.resumes if status else 0,
        "resumable": s.resumable,
        "has_checkpoint": any(s.checkpoint(i, "latest") for i in range(len(models))),  # a drawing can be read
        "error": s.problem if s.state == BROKEN_STATE else status.error if status else None,
        "sweep": s.sweep,
        "owner": owner_view(s.owner),
        **s.meta,
    }


def compact(value):
    """A metrics row for the page: floats to 6 significant digits (the curves cannot show more)."""
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: compact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [compact(v) for v in value]
    return value
