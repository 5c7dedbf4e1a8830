"""Faults: torn files, training errors, a killed server. Each test fails without its protection."""
import json
import threading


import train
from conftest import wait_for
from runstore import read_jsonl
from conftest import QUICK, start_run as start, wait_run_end as finished


def test_readers_never_see_a_torn_or_invalid_file(tmp_path, tiny_mnist):
    """Status and images are rewritten many times a second while readers parse them nonstop."""
    from config import parse_train_config

    run_dir = tmp_path / "run"
    config = parse_train_config(dict(QUICK, epochs=3, batch_size=16))
    trainer = train.Trainer(config, tiny_mnist, run_dir, status_interval=0.0)
    thread = threading.Thread(target=trainer.run)
    reads, problems = {"status": 0, "config": 0, "metrics": 0, "png": 0}, []
    thread.start()
    wait_for(lambda: (run_dir / "status.json").exists(), message="status.json")
    while thread.is_alive() or reads["status"] < 2000:
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
        if not thread.is_alive() and reads["status"] >= 2000:
            break
    thread.join()
    assert trainer.state == "finished"
    assert problems == []
    assert reads["status"] >= 2000 and reads["png"] > 0


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
    evals = [r for r in app.extensions["runs"].metrics(run_id) if r["kind"] == "eval"]
    assert evals == []  # a half-finished evaluation is not recorded
    assert client.post("/stop_training", json={}).status_code == 409


def test_killed_server_leaves_an_interrupted_run_with_its_data(server_factory, tiny_mnist, tmp_path):
    runs_dir = tmp_path / "runs"
    server = server_factory(tiny_mnist, runs_dir)
    code, body = server.request("POST", "/start_training", dict(QUICK, epochs=100, batch_size=8))
    assert code == 202
    run_id = body["run_id"]

    def progressed():
        code, status = server.request("GET", "/training_status")
        return status["models"] and (status["models"][0]["test_accuracy"] is not None) and "curves" in status["images"] and status

    wait_for(progressed, timeout=120, interval=0.2, message="an epoch and a curve")
    server.kill()  # SIGKILL: no chance to clean up
    metrics_before = read_jsonl(runs_dir / run_id / "metrics.jsonl")
    assert metrics_before

    server = server_factory(tiny_mnist, runs_dir)
    code, runs = server.request("GET", "/runs")
    assert [(r["run_id"], r["state"]) for r in runs["runs"]] == [(run_id, "interrupted")]
    code, view = server.request("GET", f"/runs/{run_id}")
    assert view["state"] == "interrupted" and view["error"]
    assert view["models"][0]["test_accuracy"] is not None
    assert read_jsonl(runs_dir / run_id / "metrics.jsonl")[:len(metrics_before)] == metrics_before
    code, png = server.request("GET", view["images"]["curves"])
    assert code == 200 and png.startswith(b"\x89PNG")
    code, csv_text = server.request("GET", f"/runs/{run_id}/metrics.csv")
    table_rows = [r for r in metrics_before if r["kind"] in ("train", "eval")]  # the CSV leaves out the layer rows
    assert code == 200 and len(csv_text.splitlines()) == len(table_rows) + 1
    code, body = server.request("POST", "/start_training", QUICK)  # a new run starts normally
    assert code == 202
    wait_for(lambda: server.request("GET", "/training_status")[1]["state"] == "finished", timeout=120,
             interval=0.2, message="the new run to finish")
