import errno
import threading
import time

import pytest
import torch

import train
from helpers import PNG_SIGNATURE as PNG, tiny_config
from model import MNISTNet
from mnist_monitor.runstore.files import read_json, read_jsonl
from mnist_monitor.training import trainer as trainer_module
from mnist_monitor.training.trainer import Trainer


@pytest.mark.pictures
def test_a_run_writes_the_whole_run_folder(tmp_path, tiny_mnist):
    run_dir = tmp_path / "run"
    status = Trainer(tiny_config(), tiny_mnist, run_dir, status_interval=0.0).run()
    assert status["state"] == "finished", status["error"]
    assert read_json(run_dir / "status.json")["state"] == "finished"
    config, info = read_json(run_dir / "config.json"), read_json(run_dir / "run.json")
    assert config == tiny_config().to_dict()  # the config exactly, as a request body
    assert info["precision"] == "fp32" and info["device"] in ("cpu", "cuda", "mps") and info["run_id"] == "run"
    rows = read_jsonl(run_dir / "metrics.jsonl")
    evals = [r for r in rows if r["kind"] == "eval"]
    assert sorted((r["model"], r["epoch"]) for r in evals) == [(0, 1), (0, 2), (1, 1), (1, 2)]
    train_rows = [r for r in rows if r["kind"] == "train"]
    # batch granularity: several curve points inside the first epoch for each model
    assert sum(1 for r in train_rows if r["model"] == 0 and r["epoch"] < 1) >= 3
    for m in status["models"]:
        assert m["epoch"] == 2 and m["progress"] == 100.0 and m["batch"] == m["batches"]
        assert 0 <= m["accuracy"] <= 100 and m["test_accuracy"] is not None and m["samples_per_sec"] > 0
    assert status["models"][0]["batches"] == 9 and status["models"][1]["batches"] == 17  # 540 images
    for name in ["curves.png", "samples_m0.png", "samples_m1.png", "errors_m0.png", "confusion_m1.png"]:
        assert (run_dir / name).read_bytes().startswith(PNG), name
    # the synthetic digits are easy: a real training loop learns them (chance is 10%)
    assert status["models"][0]["test_accuracy"] > 60


def test_checkpoints_load_into_mnistnet_and_reproduce_the_accuracy(tmp_path, tiny_mnist):
    run_dir = tmp_path / "run"
    status = Trainer(tiny_config(models=[{"kernels": [4, 8, 8, 8]}]), tiny_mnist, run_dir, pictures=False).run()
    checkpoint = torch.load(run_dir / "model0_best.pt", weights_only=True)
    model = MNISTNet(checkpoint["kernels"])
    model.load_state_dict(checkpoint["state_dict"])
    model.eval()
    from mnist_monitor.data import load_mnist
    d = load_mnist(tiny_mnist, download=False)
    with torch.no_grad():
        accuracy = 100 * (model(d.test_x).argmax(1) == d.test_y).float().mean().item()
    assert accuracy == pytest.approx(checkpoint["test_accuracy"], abs=0.01)
    assert checkpoint["test_accuracy"] <= status["models"][0]["best_test_accuracy"]
    assert (run_dir / "model0_latest.pt").is_file()


def test_models_advance_together(tmp_path, tiny_mnist):
    """Interleaved by progress: a model is never more than one of its batches ahead."""
    seen = []
    trainer = Trainer(tiny_config(epochs=1), tiny_mnist, tmp_path / "run", monitor=False,
                      on_step=lambda t, m: seen.append([r.progress for r in t.models]))
    trainer.run()
    for progress in seen:
        assert max(progress) - min(progress) <= 1 / 9 + 1e-9


def test_stop_ends_the_run_within_one_batch(tmp_path, tiny_mnist):
    stop = threading.Event()
    steps = []

    def step(trainer, m):
        steps.append(1)
        if len(steps) == 5:
            stop.set()

    trainer = Trainer(tiny_config(epochs=50), tiny_mnist, tmp_path / "run", stop_event=stop, on_step=step, pictures=False)
    status = trainer.run()
    assert status["state"] == "stopped" and len(steps) == 5
    assert read_json(tmp_path / "run" / "status.json")["state"] == "stopped"


def test_a_loss_that_becomes_nan_fails_the_run_with_a_message(tmp_path, tiny_mnist, monkeypatch):
    real = torch.nn.functional.cross_entropy
    monkeypatch.setattr(torch.nn.functional, "cross_entropy", lambda *a, **k: real(*a, **k) * float("nan"))
    status = Trainer(tiny_config(), tiny_mnist, tmp_path / "run", pictures=False).run()
    assert status["state"] == "failed"
    assert "Model 1" in status["error"] and "nan" in status["error"] and "learning rate" in status["error"]
    assert read_json(tmp_path / "run" / "status.json")["error"] == status["error"]


def test_missing_data_fails_the_run_with_the_reason(tmp_path, monkeypatch):
    from mnist_monitor import data
    monkeypatch.setattr(data, "ensure_mnist", lambda d, download=True: (_ for _ in ()).throw(
        data.DataError(f"MNIST is missing from {d}")))
    status = Trainer(tiny_config(), tmp_path / "none", tmp_path / "run").run()
    assert status["state"] == "failed" and "MNIST is missing from" in status["error"]


def test_bf16_run_records_its_precision(tmp_path, tiny_mnist):
    status = Trainer(tiny_config(precision="bf16", epochs=1), tiny_mnist, tmp_path / "run", pictures=False).run()
    assert status["state"] == "finished" and status["precision"] == "bf16"
    assert read_json(tmp_path / "run" / "run.json")["precision"] == "bf16"


@pytest.mark.pictures
def test_cli_trains_and_writes_a_run_folder(tmp_path, tiny_mnist, capsys):
    code = train.main(["--kernels", "4,8,8,8", "--epochs", "1", "--data-dir", str(tiny_mnist),
                       "--runs-dir", str(tmp_path / "runs"), "--precision", "fp32"])
    assert code == 0
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and read_json(runs[0] / "status.json")["state"] == "finished"
    assert "test accuracy" in capsys.readouterr().out


def test_cli_refuses_bad_flags_with_the_field(tmp_path, capsys):
    assert train.main(["--kernels", "4,8,8", "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "--kernels 4,8,8: must be 4 comma-separated integers" in capsys.readouterr().err


def test_a_failing_run_keeps_the_metrics_it_computed(tmp_path, tiny_mnist, monkeypatch):
    """Metrics lines are batched; the lines computed before a failure still reach the file."""
    calls = []

    def failing(trainer, m):
        calls.append(1)
        if len(calls) == 20:
            raise RuntimeError("simulated fault")

    status = Trainer(tiny_config(), tiny_mnist, tmp_path / "run", on_step=failing, pictures=False).run()
    assert status["state"] == "failed"
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [r["kind"] for r in rows].count("train") >= 4  # 19 steps done, a curve point every 2-5 steps


@pytest.mark.pictures
def test_training_goes_on_when_the_renderer_process_dies(tmp_path, tiny_mnist):
    def kill_renderer(trainer, m):
        renderer = trainer.recorder.renderer
        if renderer and renderer.process.poll() is None:
            renderer.process.kill()
            renderer.process.wait()

    trainer = Trainer(tiny_config(epochs=3), tiny_mnist, tmp_path / "run", on_step=kill_renderer)
    status = trainer.run()
    assert status["state"] == "finished" and trainer.recorder.renderer.broken
    assert all(m["test_accuracy"] is not None for m in status["models"])


def test_cli_flags_come_from_the_config_and_folders_resolve_like_the_server(monkeypatch, tmp_path):
    import server
    from mnist_monitor.config import DEFAULT_RUNS_DIR, TrainConfig

    monkeypatch.chdir(tmp_path)  # started from another folder, both still use the project's runs/
    args = train.build_parser().parse_args([])
    assert args.runs_dir == str(DEFAULT_RUNS_DIR) == server.build_parser().parse_args([]).runs_dir
    assert args.data_dir == server.build_parser().parse_args([]).data_dir
    help_text = train.build_parser().format_help()
    assert f"default {TrainConfig.epochs}" in help_text and "{adam,adamw,sgd,rmsprop}" in help_text
    assert "{constant,onecycle}" in help_text  # the page's word for the schedule
    assert train.build_parser().parse_args(["--lr-schedule", "none"]).lr_schedule == "constant"  # the old word


def test_model_info_and_predictions_during_training_do_not_change_a_seeded_run(tmp_path, tiny_mnist, client):
    def run(name, hook=None):
        Trainer(tiny_config(epochs=1), tiny_mnist, tmp_path / name, monitor=False, on_step=hook).run()
        return [{k: v for k, v in r.items() if k not in ("time", "samples_per_sec")}
                for r in read_jsonl(tmp_path / name / "metrics.jsonl")]

    quiet = run("quiet")
    from mnist_monitor.inference.predict import load_checkpoint

    def busy_page(trainer, m):
        if m.step == 3:  # what the page's requests do, in the process that trains
            assert client.get("/model_info?kernels=32,64,64,64").status_code == 200
            load_checkpoint(tmp_path / "quiet" / "model0_latest.pt")

    assert run("busy", busy_page) == quiet


@pytest.mark.slow  # over 2 s on a 2-core CPU: the whole suite runs it
def test_time_left_counts_the_evaluations_still_to_come(tmp_path, tiny_mnist, monkeypatch):
    real = trainer_module.evaluate
    eval_seconds = 0.2

    def slow_evaluate(*args, **kwargs):
        deadline = time.perf_counter() + eval_seconds  # evaluation made costly, as on the full test set
        result = real(*args, **kwargs)
        while time.perf_counter() < deadline:
            pass
        return result

    monkeypatch.setattr(trainer_module, "evaluate", slow_evaluate)
    seen = []

    def record(trainer, m):
        if m.step == m.batches + 1 and m.index == 0:  # just after model 1's first epoch end
            seen.append((trainer.recorder.eta_seconds(), sum(e.evals for e in trainer.models)))

    Trainer(tiny_config(epochs=2), tiny_mnist, tmp_path / "run", monitor=False, on_step=record).run()
    eta, evals_done = seen[0]
    evaluations_left = 2 * (2 * 2 - evals_done)  # validation + test, per model and epoch end
    assert eta >= 0.8 * evaluations_left * eval_seconds, (eta, evals_done)


def test_a_failed_checkpoint_write_keeps_the_epochs_metrics_and_status_agrees(tmp_path, tiny_mnist, monkeypatch):
    import mnist_monitor.runstore.run

    real = mnist_monitor.runstore.run.atomic_write_bytes

    def full_disk(path, data, durable=True):
        if str(path).endswith(".pt"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data, durable)

    monkeypatch.setattr(mnist_monitor.runstore.run, "atomic_write_bytes", full_disk)
    run_dir = tmp_path / "run"
    status = Trainer(tiny_config(), tiny_mnist, run_dir, monitor=False).run()
    assert status["state"] == "failed" and "No space left" in status["error"]
    rows = read_jsonl(run_dir / "metrics.jsonl")
    evals = [r for r in rows if r["kind"] == "eval"]
    assert [(r["model"], r["epoch"]) for r in evals] == [(0, 1)]  # written before the checkpoint failed
    on_disk = read_json(run_dir / "status.json")
    for i, m in enumerate(on_disk["models"]):
        train_rows = [r for r in rows if r["kind"] == "train" and r["model"] == i]
        assert m["loss"] == (train_rows[-1]["loss"] if train_rows else None)
        model_evals = [r for r in evals if r["model"] == i]
        assert m["test_accuracy"] == (model_evals[-1]["test_accuracy"] if model_evals else None)


def test_nothing_replaces_the_final_status(tmp_path, tiny_mnist):
    trainer = Trainer(tiny_config(epochs=1), tiny_mnist, tmp_path / "run", pictures=False)
    assert trainer.run()["state"] == "finished"
    trainer.stop_event.set()  # a stop request that arrives after the end
    trainer.recorder.write_status(force=True)
    assert read_json(tmp_path / "run" / "status.json")["state"] == "finished"


def test_a_stopped_run_keeps_the_steps_after_its_last_curve_point(tmp_path, tiny_mnist):
    stop = threading.Event()

    def stop_at_5(trainer, m):
        if sum(r.step for r in trainer.models) == 5:
            stop.set()

    config = tiny_config(epochs=5, batch_size=1, models=[{"kernels": [2, 2, 2, 2]}])  # a point every 21 steps
    trainer = Trainer(config, tiny_mnist, tmp_path / "run", stop_event=stop, monitor=False, on_step=stop_at_5)
    assert trainer.run()["state"] == "stopped"
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [(r["kind"], r["step"]) for r in rows] == [("train", 5)]


def test_best_test_accuracy_is_that_of_the_best_checkpoint(tmp_path, tiny_mnist):
    run_dir = tmp_path / "run"
    status = Trainer(tiny_config(epochs=3), tiny_mnist, run_dir, monitor=False).run()
    for i, m in enumerate(status["models"]):
        best = torch.load(run_dir / f"model{i}_best.pt", weights_only=True)
        assert m["best_test_accuracy"] == best["test_accuracy"]


def test_warmup_and_label_smoothing_reach_the_schedule_and_the_loss(tmp_path, tiny_mnist, monkeypatch):
    from mnist_monitor.config import parse_train_config

    seen = {"smoothing": set()}
    real_loss = torch.nn.functional.cross_entropy

    def spy(*args, **kwargs):  # what the training step asks of the loss
        seen["smoothing"].add(kwargs.get("label_smoothing", 0.0))
        return real_loss(*args, **kwargs)

    def look(trainer, m):
        seen.setdefault("pct", (m.scheduler._schedule_phases[0]["end_step"] + 1) / m.total_steps)

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", spy)
    config = parse_train_config({"epochs": 1, "warmup": 0.1, "label_smoothing": 0.2, "precision": "fp32", "batch_size": 8,
                                 "models": [{"kernels": [2, 2, 2, 2]}]})
    Trainer(config, tiny_mnist, tmp_path / "run", monitor=False, on_step=look).run()
    assert abs(seen["pct"] - 0.1) < 0.01
    assert 0.2 in seen["smoothing"]  # training steps; evaluation measures the plain loss (smoothing 0)
    assert seen["smoothing"] <= {0.2, 0.0}


@pytest.mark.pictures
def test_resuming_from_the_command_line_makes_no_other_folder(tmp_path, tiny_mnist, monkeypatch):
    import shutil

    from helpers import FIXTURE_ID, FIXTURE_RUNS as FIXTURE

    shutil.copytree(FIXTURE / FIXTURE_ID, tmp_path / "elsewhere" / FIXTURE_ID)
    monkeypatch.setattr(train, "DEFAULT_RUNS_DIR", tmp_path / "default-runs")  # the project's runs/ in a test
    assert train.main(["--resume", str(tmp_path / "elsewhere" / FIXTURE_ID), "--data-dir", str(tiny_mnist)]) == 0
    assert read_json(tmp_path / "elsewhere" / FIXTURE_ID / "status.json")["state"] == "finished"
    assert not (tmp_path / "default-runs").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "tiny-mnist"]


def test_an_epochs_rows_are_synced_before_its_checkpoint_and_every_rename_is_synced(tmp_path, tiny_mnist,
                                                                                    monkeypatch):
    import os

    events, real_fsync, real_replace = [], os.fsync, os.replace
    here = threading.get_ident()  # the trainer's writes; the status and heartbeat threads write too

    def fsync(fd):
        if threading.get_ident() == here:
            events.append(("fsync", os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))))
        return real_fsync(fd)

    def replace(src, dst):
        if threading.get_ident() == here:
            events.append(("replace", os.path.basename(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    Trainer(tiny_config(epochs=1), tiny_mnist, tmp_path / "run", monitor=False).run()
    checkpoint = events.index(("replace", "model0_latest.pt"))
    assert ("fsync", "metrics.jsonl") in events[:checkpoint]  # the epoch's rows survive whatever its checkpoint does
    replaced = [i for i, e in enumerate(events) if e[0] == "replace" and e[1] != "heartbeat.json"]
    assert replaced and all(events[i + 1] == ("fsync", "run") for i in replaced)  # the rename itself is durable
