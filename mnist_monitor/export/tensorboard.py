"""Runs as TensorBoard event files, for ``tensorboard --logdir OUT`` (``python train.py --tensorboard``).

Each model of each run is a TensorBoard run, ``OUT/<run id>/<model name>``, so its dashboards
compare models and runs the way the page does. It holds:
- the scalars of metrics.csv at their steps and wall times: ``train/loss``, ``train/accuracy``,
  ``train/lr``, ``train/samples_per_sec`` (each training window), ``eval/val_loss``,
  ``eval/val_accuracy``, ``eval/test_loss``, ``eval/test_accuracy`` (each epoch end);
- the hyperparameters in the HParams plugin's format (its dashboard lists the runs by their
  settings, with the best validation and the final test accuracy beside them);
- the run's last pictures (curves, and the model's predictions, mistakes, confusion matrix and
  filters), at the last step.
Writing a run again replaces what was written of it before (``OUT/<run id>/``), never doubles it.
TensorBoard is an optional requirement (requirements-tensorboard.txt): imported here only.
"""
from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

from mnist_monitor.export.runs_csv import settings_of
from mnist_monitor.runstore import RunStore
from mnist_monitor.runstore.carry import model_pictures

SCALARS = {"train": ("loss", "accuracy", "lr", "samples_per_sec"),
           "eval": ("val_loss", "val_accuracy", "test_loss", "test_accuracy")}


class TensorBoardMissing(Exception):
    """The tensorboard package is not installed."""


def writer_class():
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise TensorBoardMissing("TensorBoard is not installed: pip install -r requirements-tensorboard.txt") from None
    return SummaryWriter


def write_runs(store: RunStore, run_ids: list[str], out: Path) -> list[str]:
    """Write each run (KeyError naming one that is not in ``store``); the ids written."""
    SummaryWriter = writer_class()
    runs = []
    for run_id in run_ids:
        run = store.run(run_id)
        if run is None:
            raise KeyError(f"no run {run_id!r} in {store.root}")
        runs.append(run)
    for run in runs:
        shutil.rmtree(Path(out) / run.run_id, ignore_errors=True)  # written again: replaced, not doubled
        write_run(SummaryWriter, store, run, Path(out))
    return [run.run_id for run in runs]


def folder_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._ -]", "_", name).strip() or "model"


def write_run(SummaryWriter, store: RunStore, run, out: Path) -> None:
    config = settings_of(run)
    snapshot = store.snapshot(run.run_id)
    started = snapshot.status.started_at if snapshot and snapshot.status and snapshot.status.started_at else 0.0
    rows = run.metrics()
    models = config.models if config else []
    for index, model in enumerate(models):
        mine = [r for r in rows if r.get("model") == index and r.get("kind") in SCALARS]
        with SummaryWriter(log_dir=str(out / run.run_id / folder_name(model.name))) as writer:
            for row in mine:
                for field in SCALARS[row["kind"]]:
                    if isinstance(row.get(field), (int, float)):
                        writer.add_scalar(f"{row['kind']}/{field}", row[field], global_step=row.get("step", 0),
                                          walltime=started + float(row.get("time") or 0.0))
            last = max((r.get("step", 0) for r in mine), default=0)
            write_pictures(writer, run, index, last)
            evals = [r for r in mine if r["kind"] == "eval"]
            writer.add_hparams(hparams(run.run_id, config, model), {
                "hparam/best_val_accuracy": max((r.get("val_accuracy") or 0.0 for r in evals), default=0.0),
                "hparam/final_test_accuracy": (evals[-1].get("test_accuracy") or 0.0) if evals else 0.0},
                run_name=".", global_step=last)


def hparams(run_id: str, config, model) -> dict:
    """A model's settings as the HParams plugin takes them (numbers, text, booleans; no None)."""
    return {"run_id": run_id, "model": model.name, "kernels": "-".join(map(str, model.kernels)),
            "optimizer": model.optimizer, "learning_rate": model.learning_rate, "batch_size": model.batch_size,
            "epochs": config.epochs, "lr_schedule": config.lr_schedule, "warmup": config.warmup,
            "label_smoothing": config.label_smoothing, "precision": config.precision,
            "train_samples": config.train_samples or 0, "seed": config.seed}


def write_pictures(writer, run, index: int, step: int) -> None:
    """The run's curves and the model's epoch pictures, as they were at its last epoch end."""
    import numpy as np
    from PIL import Image

    for kind, path in model_pictures(run, index):
        try:
            with Image.open(io.BytesIO(path.read_bytes())) as image:
                pixels = np.asarray(image.convert("RGB"))
        except (OSError, ValueError):  # a picture being rewritten, or damaged: the others are written
            continue
        writer.add_image(f"pictures/{kind}", pixels, global_step=step, dataformats="HWC")
