"""Several runs' metrics as one CSV: each run's metrics rows (those ``metrics_csv`` writes), each
with the run's id, the device and precision it ran on, and its settings as columns (run-wide ones,
and its model's own), so a
spreadsheet or pandas can group and compare them without a join."""
from __future__ import annotations

import csv
import io

from mnist_monitor.export.metrics_csv import COLUMNS
from mnist_monitor.config import ConfigError, TrainConfig, parse_train_config
from mnist_monitor.runstore import TABLE_KINDS, RecordError, Run

RUN_SETTINGS = ("epochs", "lr_schedule", "warmup", "label_smoothing", "precision", "train_samples", "seed")
MODEL_SETTINGS = ("kernels", "optimizer", "learning_rate", "batch_size")
HEADER = ("run_id", "device", *RUN_SETTINGS, *MODEL_SETTINGS, *COLUMNS)


def runs_csv(runs: list[Run]) -> str:
    """The CSV text of ``runs``' metrics (a run whose config cannot be read has empty settings)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=HEADER, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for run in runs:
        config = settings_of(run)
        used = used_by(run)  # the device and precision it ran on ("auto" resolved)
        for row in run.metrics():
            if row.get("kind") not in TABLE_KINDS:
                continue
            index = row.get("model")
            model = config.models[index] if config and isinstance(index, int) and 0 <= index < len(config.models) else None
            shared = {k: getattr(config, k) for k in RUN_SETTINGS} if config else {}
            own = {k: getattr(model, k) for k in MODEL_SETTINGS} if model else {}
            if "kernels" in own:
                own["kernels"] = "-".join(map(str, own["kernels"]))
            writer.writerow({**row, **shared, **own, **used, "run_id": run.run_id, "name": model.name if model else None})
    return out.getvalue()


def settings_of(run: Run) -> TrainConfig | None:
    """The run's settings with every default filled in (None when its config cannot be read)."""
    try:
        return parse_train_config(run.config())
    except (RecordError, ConfigError):
        return None


def used_by(run: Run) -> dict:
    try:
        status = run.status()
    except RecordError:
        status = None
    if status is None:
        return {}
    return {k: v for k, v in (("device", status.device), ("precision", status.precision)) if v}
