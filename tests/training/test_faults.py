"""Faults: torn files, training errors, a killed server. Each test fails without its protection."""
import json
import threading

import pytest


from mnist_monitor.training import trainer as train
from helpers import wait_for
from helpers import QUICK, start_run as start, wait_run_end as finished


@pytest.mark.pictures
def test_readers_never_see_a_torn_or_invalid_file(tmp_path, tiny_mnist):
    """Status and images are rewritten many times a second while readers parse them nonstop."""
    from mnist_monitor.config import parse_train_config

    run_dir = tmp_path / "run"
    config = parse_train_config(dict(QUICK, epochs=1, batch_size=16))
    trainer = train.Trainer(config, tiny_mnist, run_dir, status_interval=0.0)
    thread = threading.Thread(target=trainer.run)
    reads, problems = {"status": 0, "config": 0, "metrics": 0, "png": 0}, []
    thread.start()
    wait_for(lambda: (run_dir / "status.json").exists(), message="status.json")
    while thread.is_alive() or reads["status"] < 1000:
        for name in ("status", "config"):
            try:
                json.loads((run_dir / f"{name}.json").read_bytes())
                reads[name] += 1
            except (json.JSONDecodeError, FileNotFoundError) as exc:
                problems.append(f"{name}: {exc}")
        raw = (run_dir / "metrics.jsonl").read_bytes() if (run_dir / "metrics.jsonl").exists() else b""
        for line in raw.split(b"\n")[:-1]:  # complete lines must all be valid JSON
            try:
                json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(f"metrics line: {exc}")
        reads["metrics"] += 1
        png = run_dir / "curves.png"
        if png.exists():
            data = png.read_bytes()
            if not (data.startswith(b"\x89PNG") and data.endswith(b"IEND\xaeB`\x82")):
                problems.append("torn PNG")
            reads["png"] += 1
        if not thread.is_alive() and reads["status"] >= 1000:
            break
    thread.join()
    assert trainer.state == "finished"
    assert problems == []
    assert reads["status"] >= 1000 and reads["png"] > 0


def test_an_exception_in_training_fails_the_run_and_the_server_goes_on(client, app):
    calls = []

    def exploding(trainer, m):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("simulated fault in a training step")

    options = app.extensions["training"].trainer_options
    options["on_step"] = exploding
    start(client)
    status = finished(client)
    assert status["state"] == "failed" and "simulated fault" in status["error"]
    del options["on_step"]
    start(client)  # the next run works
    assert finished(client)["state"] == "finished"


def test_stop_during_evaluation_is_well_defined(client, app, monkeypatch):
    entered = threading.Event()
    real_evaluate = train.evaluate

    def slow_evaluate(model, images, labels, device, precision, stop_event):
        entered.set()
        wait_for(lambda: stop_event.is_set(), timeout=30, message="the stop request")
        return real_evaluate(model, images, labels, device, precision, stop_event)

    monkeypatch.setattr(train, "evaluate", slow_evaluate)
    run_id = start(client)
    assert entered.wait(30)
    assert client.post("/stop_training", json={}).status_code == 200
    status = finished(client)
    assert status["state"] == "stopped"
    evals = [r for r in app.extensions["runs"].run(run_id).metrics() if r["kind"] == "eval"]
    assert evals == []  # a half-finished evaluation is not recorded
    assert client.post("/stop_training", json={}).status_code == 409


@pytest.fixture
def small_disk(tmp_path):
    """A file system of 16 MB of its own (tmpfs), to fill up; skipped where mounting is not allowed."""
    import subprocess

    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_run_that_fills_the_disk_ends_failed_with_the_reason(small_disk, tiny_mnist, make_app):
    """A run whose writes hit a full disk could not write the final status that says so: it read
    'interrupted, stopped getting heartbeats'. The space kept for it now takes that status."""
    from helpers import SLOW

    app = make_app({"RUNS_DIR": str(small_disk / "runs"), "DATA_DIR": str(tiny_mnist), "TESTING": True,
                    "TRAINER_OPTIONS": {"pictures": False, "status_interval": 0.1}})
    client = app.test_client()
    run_id = start(client, dict(SLOW, batch_size=8))
    wait_for(lambda: client.get("/training_status").get_json()["state"] == "running", message="the run to train")
    with open(small_disk / "filler", "wb") as filler:  # the disk fills up while it trains
        try:
            while True:
                filler.write(bytes(1 << 16))
                filler.flush()
        except OSError:
            pass
    try:
        ended = finished(client, states=("failed", "interrupted", "finished", "stopped"))
        assert ended["run_id"] == run_id
        assert ended["state"] == "failed" and "No space left on device" in ended["error"], ended
        assert not (small_disk / "runs" / run_id / ".space-reserve").exists()
    finally:
        (small_disk / "filler").unlink()
