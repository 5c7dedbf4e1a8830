import threading

import pytest
import torch

import train
from conftest import PNG_SIGNATURE as PNG, tiny_config
from model import MNISTNet
from runstore import read_json, read_jsonl
from train import Trainer, resolve_precision


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
    status = Trainer(tiny_config(models=[{"kernels": [4, 8, 8, 8]}]), tiny_mnist, run_dir).run()
    checkpoint = torch.load(run_dir / "model0_best.pt", weights_only=True)
    model = MNISTNet(checkpoint["kernels"])
    model.load_state_dict(checkpoint["state_dict"])
    model.eval()
    from data import load_mnist
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

    trainer = Trainer(tiny_config(epochs=50), tiny_mnist, tmp_path / "run", stop_event=stop, on_step=step)
    status = trainer.run()
    assert status["state"] == "stopped" and len(steps) == 5
    assert read_json(tmp_path / "run" / "status.json")["state"] == "stopped"


def test_a_loss_that_becomes_nan_fails_the_run_with_a_message(tmp_path, tiny_mnist, monkeypatch):
    real = torch.nn.functional.cross_entropy
    monkeypatch.setattr(train.nn.functional, "cross_entropy", lambda *a, **k: real(*a, **k) * float("nan"))
    status = Trainer(tiny_config(), tiny_mnist, tmp_path / "run").run()
    assert status["state"] == "failed"
    assert "Model 1" in status["error"] and "nan" in status["error"] and "learning rate" in status["error"]
    assert read_json(tmp_path / "run" / "status.json")["error"] == status["error"]


def test_missing_data_fails_the_run_with_the_reason(tmp_path, monkeypatch):
    import data
    monkeypatch.setattr(data, "ensure_mnist", lambda d, download=True: (_ for _ in ()).throw(
        data.DataError(f"MNIST is missing from {d}")))
    status = Trainer(tiny_config(), tmp_path / "none", tmp_path / "run").run()
    assert status["state"] == "failed" and "MNIST is missing from" in status["error"]


def test_precision_auto_follows_the_hardware(monkeypatch):
    monkeypatch.setattr(train, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", torch.device("cpu")) == "bf16"
    monkeypatch.setattr(train, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"
    assert resolve_precision("fp32", torch.device("cuda")) == "fp32"


def test_bf16_run_records_its_precision(tmp_path, tiny_mnist):
    status = Trainer(tiny_config(precision="bf16", epochs=1), tiny_mnist, tmp_path / "run").run()
    assert status["state"] == "finished" and status["precision"] == "bf16"
    assert read_json(tmp_path / "run" / "run.json")["precision"] == "bf16"


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

    status = Trainer(tiny_config(), tiny_mnist, tmp_path / "run", on_step=failing).run()
    assert status["state"] == "failed"
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [r["kind"] for r in rows].count("train") >= 4  # 19 steps done, a curve point every 2-5 steps


def test_training_goes_on_when_the_renderer_process_dies(tmp_path, tiny_mnist):
    def kill_renderer(trainer, m):
        if trainer.renderer and trainer.renderer.process.poll() is None:
            trainer.renderer.process.kill()
            trainer.renderer.process.wait()

    trainer = Trainer(tiny_config(epochs=3), tiny_mnist, tmp_path / "run", on_step=kill_renderer)
    status = trainer.run()
    assert status["state"] == "finished" and trainer.renderer.broken
    assert all(m["test_accuracy"] is not None for m in status["models"])


def test_cli_flags_come_from_the_config_and_folders_resolve_like_the_server(monkeypatch, tmp_path):
    import server
    from config import DEFAULT_RUNS_DIR, TrainConfig

    monkeypatch.chdir(tmp_path)  # started from another folder, both still use the project's runs/
    args = train.build_parser().parse_args([])
    assert args.runs_dir == str(DEFAULT_RUNS_DIR) == server.build_parser().parse_args([]).runs_dir
    assert args.data_dir == server.build_parser().parse_args([]).data_dir
    help_text = train.build_parser().format_help()
    assert f"default {TrainConfig.epochs}" in help_text and "{adam,sgd}" in help_text


@pytest.mark.parametrize("batches, images", [(33, 2064), (215, 55000), (9, 540), (64, 8192)])
def test_curve_windows_split_each_epoch_evenly_so_the_last_point_is_no_leftover(batches, images):
    from train import ModelRun

    run = ModelRun.__new__(ModelRun)
    run.batches = batches
    ends = []
    for step in range(1, 2 * batches + 1):
        run.step = step
        if run.window_ends(images):
            ends.append(step)
    sizes = [b - a for a, b in zip([0] + ends, ends)]
    assert batches in ends and 2 * batches in ends  # a window closes every epoch
    assert max(sizes) - min(sizes) <= 1, sizes  # equal windows, the last one too
    assert min(sizes) * images / batches >= 0.75 * 128 or min(sizes) == batches  # no window of a few images
