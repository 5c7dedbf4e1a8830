"""The metric kinds: declared once in the registry, which the run store, the API, the CSV, the
OpenAPI document and GET /config all read; per-digit accuracy from the epoch end's confusion matrix."""
import numpy as np
import pytest

from helpers import QUICK, fake_run, start_run, wait_run_end
from mnist_monitor import metrics
from mnist_monitor.export.metrics_csv import COLUMNS
from mnist_monitor.metrics.classes import class_accuracy
from mnist_monitor.runstore import METRIC_KINDS, TABLE_KINDS, metrics_row
from mnist_monitor.runstore.files import append_jsonl


def test_the_run_store_and_the_csv_take_their_kinds_from_the_registry():
    assert list(METRIC_KINDS) == list(metrics.KINDS) == ["train", "eval", "layers", "classes"]
    for name, kind in metrics.KINDS.items():
        assert METRIC_KINDS[name] == ("model", "epoch", "step", *(f.name for f in kind.fields), "time")
        assert all(f.unit is not None and f.description for f in kind.fields)
    assert TABLE_KINDS == ("train", "eval")  # one number a column: the others are lists
    assert "class_accuracy" not in COLUMNS and "val_accuracy" in COLUMNS
    with pytest.raises(ValueError, match="no metric kind"):
        metrics_row("confusion", model=0, epoch=1, step=1, time=0.0)


def test_class_accuracy_is_each_digits_share_of_right_answers():
    matrix = np.zeros((10, 10), int)
    for digit in range(10):
        matrix[digit, digit] = 90 + digit
        matrix[digit, (digit + 1) % 10] = 10 - digit
    matrix[7] = 0  # no 7 in this test set: no accuracy for it
    accuracy = class_accuracy(matrix)
    assert accuracy[0] == 90.0 and accuracy[9] == 99.0 and accuracy[7] is None
    assert len(accuracy) == 10


def test_config_describes_every_kind_with_its_fields_units_and_charts(client):
    kinds = {k["name"]: k for k in client.get("/config").get_json()["metric_kinds"]}
    assert list(kinds) == list(metrics.KINDS)
    assert kinds["classes"]["fields"] == [{"name": "class_accuracy", "unit": "%", "shape": "per_digit",
                                           "description": "test accuracy on the images of each digit, 0 to 9"}]
    assert kinds["classes"]["charts"][0]["form"] == "heat_strip" and kinds["eval"]["moment"] == "epoch_end"
    charts = [c for k in kinds.values() for c in k["charts"]]
    assert len({c["id"] for c in charts}) == len(charts) and all(c["kind"] in kinds for c in charts)


def test_a_kind_missing_from_the_registry_is_not_served(client, app):
    run_id = fake_run(app.extensions["runs"])
    path = app.extensions["runs"].run(run_id).path / "metrics.jsonl"
    append_jsonl(path, [{"kind": "confusion", "model": 0, "epoch": 1, "step": 1, "time": 1.0},
                        metrics_row("classes", model=0, epoch=1, step=1, time=1.0, class_accuracy=[50.0] * 10)])
    rows = client.get(f"/runs/{run_id}/metrics").get_json()["rows"]
    assert [r["kind"] for r in rows] == ["classes"]
    refused = client.get(f"/runs/{run_id}/metrics?kind=confusion")
    assert refused.status_code == 400 and "classes" in refused.get_json()["error"]


def test_a_run_records_per_digit_accuracy_at_each_epoch_end_near_its_test_accuracy(client):
    run_id = start_run(client, dict(QUICK, epochs=2))
    assert wait_run_end(client)["state"] == "finished"
    rows = client.get(f"/runs/{run_id}/metrics?kind=classes,eval").get_json()["rows"]
    classes = [r for r in rows if r["kind"] == "classes"]
    evals = {(r["model"], r["epoch"]): r["test_accuracy"] for r in rows if r["kind"] == "eval"}
    assert sorted((r["model"], r["epoch"]) for r in classes) == sorted(evals) == [(0, 1), (0, 2), (1, 1), (1, 2)]
    for row in classes:
        values = row["class_accuracy"]
        assert len(values) == 10 and all(v is None or 0 <= v <= 100 for v in values)
        # the mean over digits weighs each digit alike; the test accuracy each image: a few points apart
        assert abs(np.mean([v for v in values if v is not None]) - evals[row["model"], row["epoch"]]) < 5
