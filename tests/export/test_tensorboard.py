"""Runs written as TensorBoard event files by ``python train.py --tensorboard`` and read back with
TensorBoard's own reader: every scalar equal to metrics.csv's at its step, the hyperparameters in
the HParams plugin's format, the pictures; and ``--import`` of an exported run from the command line."""
import csv
import io

import pytest

from helpers import need



def reader(folder):
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        need(False, "tensorboard is not installed (pip install -r requirements-tensorboard.txt)")
    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def test_tensorboard_reads_back_every_scalar_of_metrics_csv_the_hyperparameters_and_the_pictures(trained, tmp_path):
    from PIL import Image
    from tensorboard.plugins.hparams import plugin_data_pb2

    import train
    client, run_id = trained
    runs_dir = client.application.config["RUNS_DIR"]
    picture = io.BytesIO()
    Image.new("RGB", (6, 4), (255, 0, 0)).save(picture, format="PNG")
    (client.application.extensions["runs"].run(run_id).path / "curves.png").write_bytes(picture.getvalue())
    assert train.main(["--tensorboard", str(tmp_path / "tb"), "--runs-dir", runs_dir, run_id]) == 0
    table = list(csv.DictReader(io.StringIO(client.get(f"/runs/{run_id}/metrics.csv").get_data(as_text=True))))
    for index, name in enumerate(["Model 1", "small"]):
        events = reader(tmp_path / "tb" / run_id / name)
        for kind, fields in (("train", ("loss", "accuracy", "lr", "samples_per_sec")),
                             ("eval", ("val_loss", "val_accuracy", "test_loss", "test_accuracy"))):
            mine = [r for r in table if r["kind"] == kind and r["model"] == str(index)]
            assert mine, (kind, index)
            for field in fields:
                read = [(e.step, e.value) for e in events.Scalars(f"{kind}/{field}")]
                assert read == [(int(r["step"]), pytest.approx(float(r[field]), rel=1e-6)) for r in mine], field
        content = events.PluginTagToContent("hparams")
        start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
        assert start.hparams["kernels"].string_value == ("4-8-8-8" if index == 0 else "2-4-4-4")
        assert start.hparams["learning_rate"].number_value == pytest.approx(0.01)
        assert start.hparams["run_id"].string_value == run_id
        best = max(float(r["val_accuracy"]) for r in table if r["kind"] == "eval" and r["model"] == str(index))
        assert events.Scalars("hparam/best_val_accuracy")[-1].value == pytest.approx(best, rel=1e-6)
    assert reader(tmp_path / "tb" / run_id / "Model 1").Tags()["images"] == ["pictures/curves"]
    files = sorted(p.name for p in (tmp_path / "tb").rglob("*") if p.is_file())
    assert train.main(["--tensorboard", str(tmp_path / "tb"), "--runs-dir", runs_dir, run_id]) == 0  # again: replaced
    assert len(sorted(p.name for p in (tmp_path / "tb").rglob("*") if p.is_file())) == len(files)
    assert [e.step for e in reader(tmp_path / "tb" / run_id / "small").Scalars("eval/val_accuracy")] == \
        [int(r["step"]) for r in table if r["kind"] == "eval" and r["model"] == "1"]  # not doubled
    assert train.main(["--tensorboard", str(tmp_path / "tb"), "--runs-dir", runs_dir, "20990101-000000-000abc"]) == 1
    assert train.main(["--tensorboard", str(tmp_path / "tb2"), "--runs-dir", str(tmp_path / "none")]) == 1  # no runs


def test_train_py_imports_an_exported_run_and_refuses_a_bad_zip(trained, tmp_path, capsys):
    import train
    client, run_id = trained
    (tmp_path / "run.zip").write_bytes(client.get(f"/runs/{run_id}/export.zip").data)
    assert train.main(["--import", str(tmp_path / "run.zip"), "--runs-dir", str(tmp_path / "runs")]) == 0
    assert f"imported as run {run_id}" in capsys.readouterr().out
    assert train.main(["--import", str(tmp_path / "run.zip"), "--runs-dir", str(tmp_path / "runs")]) == 1
    assert f"already here, as run {run_id}" in capsys.readouterr().err
    (tmp_path / "bad.zip").write_bytes(b"nope")
    assert train.main(["--import", str(tmp_path / "bad.zip"), "--runs-dir", str(tmp_path / "runs")]) == 1
    assert "not a zip file" in capsys.readouterr().err
