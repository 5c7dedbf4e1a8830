"""A run's metrics as CSV: the one-number-a-column kinds only, every model named, in row order."""
import csv
import io

from mnist_monitor.export.metrics_csv import COLUMNS, metrics_csv
from mnist_monitor.runstore import RunStore, metrics_row
from mnist_monitor.runstore.files import append_jsonl


def rows_of(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_training_windows_and_evaluations_are_rows_with_the_models_name(tmp_path):
    run = RunStore(tmp_path / "runs").create()
    append_jsonl(run.path / "metrics.jsonl", [
        metrics_row("train", model=0, epoch=0.5, step=4, loss=1.25, accuracy=60.0, lr=0.004, samples_per_sec=900.0,
                    time=1.5),
        metrics_row("layers", model=0, epoch=0.5, step=4, time=1.5, layers=["conv1"], weight_norm=[1.0],
                    grad_norm=[0.1], update_ratio=[0.01], dead_relu=[0.0]),
        metrics_row("eval", model=1, epoch=1.0, step=8, val_loss=0.5, val_accuracy=90.0, test_loss=0.6,
                    test_accuracy=89.5, time=3.0),
    ])
    rows = rows_of(metrics_csv(run, {"models": [{"name": "big"}, {"name": "small"}]}))
    assert [(r["kind"], r["name"], r["model"]) for r in rows] == [("train", "big", "0"), ("eval", "small", "1")]
    assert rows[0]["loss"] == "1.25" and rows[0]["val_accuracy"] == ""
    assert rows[1]["test_accuracy"] == "89.5" and rows[1]["loss"] == ""
    assert "layers" not in COLUMNS and list(rows[0]) == list(COLUMNS)


def test_a_run_without_a_readable_config_still_exports_its_rows_unnamed(tmp_path):
    run = RunStore(tmp_path / "runs").create()
    append_jsonl(run.path / "metrics.jsonl", [metrics_row("eval", model=3, epoch=1.0, step=8, val_loss=0.5, val_accuracy=90.0,
                                    test_loss=0.6, test_accuracy=89.5, time=3.0)])
    for config in (None, {"models": "not a list of models"}, {"models": [{"name": "only one"}]}):
        rows = rows_of(metrics_csv(run, config))
        assert [(r["kind"], r["name"]) for r in rows] == [("eval", "")]
