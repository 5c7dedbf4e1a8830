"""Bugs found by review, and README claims that did not hold: each test failed before its fix."""
import base64
import errno
import io
import os
import subprocess
import sys
import threading
import time

import pytest
import torch
from PIL import Image, PngImagePlugin

import train
from conftest import QUICK, ROOT, SLOW, start_run, tiny_config, wait_for, wait_run_end
from runstore import (ModelStatus, RunStatus, RunStore, atomic_write_json, image_name, new_run_id, read_json,
                      read_jsonl)
from train import Trainer

PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


def fake_run(store: RunStore, state="finished", pid=None, models=1, images=True) -> str:
    """A run folder as the worker leaves it, without training (status, config, images)."""
    run_id, run_dir = store.create()
    status = RunStatus(state=state, run_id=run_id, pid=pid or os.getpid(), started_at=time.time(),
                       models=[ModelStatus(name=f"Model {i + 1}", kernels=[1, 1, 1, 1], optimizer="adam",
                                           learning_rate=0.01, batch_size=8, parameters=10, epoch=1, epochs=2,
                                           batch=1, batches=2, eta_seconds=12.0) for i in range(models)])
    atomic_write_json(run_dir / "status.json", status.to_dict())
    atomic_write_json(run_dir / "config.json", {"models": [{"kernels": [1, 1, 1, 1]}] * models})
    if images:
        (run_dir / image_name("curves")).write_bytes(PNG_BYTES)
        for i in range(models):
            for kind in ("samples", "errors", "confusion"):
                (run_dir / image_name(kind, i)).write_bytes(PNG_BYTES)
    return run_id


# ---------------------------------------------------------------- 1. run ids and the clock

def test_a_run_id_in_the_future_does_not_make_start_wait(client, app):
    store = app.extensions["runs"]
    future = time.gmtime(time.time() + 20 * 60)
    future_id = time.strftime("%Y%m%d-%H%M%S", future) + "-500abc"
    (store.root / future_id).mkdir()
    answer = {}
    thread = threading.Thread(target=lambda: answer.update(r=client.post("/start_training", json=QUICK)))
    thread.start()
    thread.join(10)  # before the fix this hung until the clock passed the future id
    assert not thread.is_alive(), "POST /start_training waited for the clock"
    run_id = answer["r"].get_json()["run_id"]
    assert run_id > future_id and store.run_ids()[0] == run_id
    wait_run_end(client)


def test_run_ids_are_utc_and_ordered_after_any_existing_one():
    before = new_run_id()
    assert before[:8] == time.strftime("%Y%m%d", time.gmtime()) or before[:8] == time.strftime(
        "%Y%m%d", time.gmtime(time.time() - 5))
    later = new_run_id(after="29991231-235959-999fff")
    assert later > "29991231-235959-999fff" and later.startswith("30000101-000000-000")


# ---------------------------------------------------------------- 2. runs deleted while read

def test_runs_deleted_while_they_are_read_are_never_a_500(client, app):
    store: RunStore = app.extensions["runs"]
    codes, stop = [], threading.Event()
    ids = [fake_run(store, models=4) for _ in range(12)]

    def poll():
        c = app.test_client()
        while not stop.is_set():
            for run_id in list(ids):
                view = c.get(f"/runs/{run_id}")
                codes.append(view.status_code)
                if view.status_code == 200:
                    for url in view.get_json()["images"].values():
                        codes.append(c.get(url).status_code)
            codes.append(c.get("/runs").status_code)
            codes.append(c.post("/predict", json={"image": "data:image/png;base64,", "run_id": ids[0]}).status_code)

    pollers = [threading.Thread(target=poll) for _ in range(3)]
    for t in pollers:
        t.start()
    for _ in range(4):  # delete and re-create runs under the pollers' feet
        store.keep = 2
        store.cleanup()
        store.keep = 0
        ids[:] = [fake_run(store, models=4) for _ in range(12)]
    stop.set()
    for t in pollers:
        t.join()
    assert 500 not in codes and len(codes) > 50
    assert set(codes) <= {200, 400, 404}


# ---------------------------------------------------------------- 3. the page cannot change a seeded run

def test_model_info_and_predictions_during_training_do_not_change_a_seeded_run(tmp_path, tiny_mnist, client):
    def run(name, hook=None):
        Trainer(tiny_config(epochs=1), tiny_mnist, tmp_path / name, monitor=False, on_step=hook).run()
        return [{k: v for k, v in r.items() if k not in ("time", "samples_per_sec")}
                for r in read_jsonl(tmp_path / name / "metrics.jsonl")]

    quiet = run("quiet")
    from predict import load_checkpoint

    def busy_page(trainer, m):
        if m.step == 3:  # what the page's requests do, in the process that trains
            assert client.get("/model_info?kernels=32,64,64,64").status_code == 200
            load_checkpoint(tmp_path / "quiet" / "model0_latest.pt")

    assert run("busy", busy_page) == quiet


# ---------------------------------------------------------------- 4. the checkpoint cache is bounded

def test_checkpoint_cache_keeps_a_few_models_and_forgets_deleted_runs(tmp_path):
    from model import MNISTNet
    from predict import CheckpointCache

    paths = []
    for i in range(12):
        (tmp_path / f"run{i}").mkdir()
        path = tmp_path / f"run{i}" / "model0_latest.pt"
        torch.save({"kernels": [2, 2, 2, 2], "name": f"m{i}", "state_dict": MNISTNet((2, 2, 2, 2)).state_dict()}, path)
        paths.append(path)
    cache = CheckpointCache(capacity=4)
    for path in paths:
        model, name = cache.load(path)
    assert len(cache) == 4 and name == "m11"
    paths[10].unlink()
    cache.load(paths[0])
    assert paths[10] not in cache and paths[0] in cache and paths[11] in cache  # the deleted run's model is gone


# ---------------------------------------------------------------- 5. time left counts evaluation

def test_time_left_counts_the_evaluations_still_to_come(tmp_path, tiny_mnist, monkeypatch):
    real = train.evaluate
    eval_seconds = 0.3

    def slow_evaluate(*args, **kwargs):
        deadline = time.perf_counter() + eval_seconds  # evaluation made costly, as on the full test set
        result = real(*args, **kwargs)
        while time.perf_counter() < deadline:
            pass
        return result

    monkeypatch.setattr(train, "evaluate", slow_evaluate)
    seen = []

    def record(trainer, m):
        if m.step == m.batches + 1 and m.index == 0:  # just after model 1's first epoch end
            seen.append((trainer.eta_seconds(), sum(e.evals for e in trainer.models)))

    Trainer(tiny_config(epochs=3), tiny_mnist, tmp_path / "run", monitor=False, on_step=record).run()
    eta, evals_done = seen[0]
    evaluations_left = 2 * (2 * 3 - evals_done)  # validation + test, per model and epoch end
    assert eta >= 0.8 * evaluations_left * eval_seconds, (eta, evals_done)


# ---------------------------------------------------------------- 6. a failed epoch end keeps its metrics

def test_a_failed_checkpoint_write_keeps_the_epochs_metrics_and_status_agrees(tmp_path, tiny_mnist, monkeypatch):
    import checkpoints

    real = checkpoints.atomic_write_bytes

    def full_disk(path, data):
        if str(path).endswith(".pt"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(checkpoints, "atomic_write_bytes", full_disk)
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


# ---------------------------------------------------------------- 7. images PIL refuses are a 400

def test_a_png_whose_text_chunk_decompresses_too_large_is_a_400(client):
    start_run(client)
    wait_run_end(client)
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "x" * (20 * 1024 * 1024), zip=True)  # 20 MB of text in a ~20 KB zTXt chunk
    buffer = io.BytesIO()
    Image.new("L", (28, 28), 255).save(buffer, format="PNG", pnginfo=info)
    assert len(buffer.getvalue()) < 100_000
    response = client.post("/predict", json={"image": "data:image/png;base64,"
                                             + base64.b64encode(buffer.getvalue()).decode()})
    assert response.status_code == 400 and response.get_json()["field"] == "image"


# ---------------------------------------------------------------- 8. interrupted runs have no time left

def test_an_interrupted_run_shows_no_time_left_for_any_model(client, app):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run_id = fake_run(app.extensions["runs"], state="running", pid=dead.pid, models=2)
    view = client.get(f"/runs/{run_id}").get_json()
    assert view["state"] == "interrupted" and view["eta_seconds"] is None
    assert [m["eta_seconds"] for m in view["models"]] == [None, None]


# ---------------------------------------------------------------- 9. a new run is 'starting' from the start

def test_a_new_run_is_never_shown_idle_or_interrupted_while_it_starts(client, monkeypatch):
    import server

    seen = []
    real_prepare = server.Trainer.prepare

    def watched_prepare(self):
        seen.append(client.get("/training_status").get_json()["state"])  # folder made, no status.json yet
        real_prepare(self)
        seen.append(client.get("/training_status").get_json()["state"])  # status.json written, no thread yet

    monkeypatch.setattr(server.Trainer, "prepare", watched_prepare)
    start_run(client)
    assert seen[:2] == ["starting", "starting"]
    wait_run_end(client)


# ---------------------------------------------------------------- read in review, then fixed

def test_nothing_replaces_the_final_status(tmp_path, tiny_mnist):
    trainer = Trainer(tiny_config(epochs=1), tiny_mnist, tmp_path / "run")
    assert trainer.run()["state"] == "finished"
    trainer.stop_event.set()  # a stop request that arrives after the end
    trainer.write_status(force=True)
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


def test_many_runs_do_not_empty_the_view_cache(app):
    from api import RunViews

    store = app.extensions["runs"]
    ids = [fake_run(store, images=False) for _ in range(70)]
    views = RunViews(store)
    for run_id in ids:
        views.view(run_id, None)
    assert len(views._cache) == 70
    reads = []
    real = store.status
    store.status = lambda run_id: reads.append(run_id) or real(run_id)
    for run_id in ids:
        views.view(run_id, None)
    assert reads == []  # every view came from the cache


def test_temp_files_of_cut_off_writes_are_removed_at_start(tmp_path):
    from server import create_app

    store = RunStore(tmp_path / "runs")
    run_id = fake_run(store, images=False)
    stale = store.root / run_id / ".status.json.abc123.tmp"
    fresh = store.root / run_id / ".status.json.def456.tmp"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"being written")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    create_app({"RUNS_DIR": str(tmp_path / "runs")})
    assert not stale.exists() and fresh.exists()


def test_best_test_accuracy_is_that_of_the_best_checkpoint(tmp_path, tiny_mnist):
    run_dir = tmp_path / "run"
    status = Trainer(tiny_config(epochs=3), tiny_mnist, run_dir, monitor=False).run()
    for i, m in enumerate(status["models"]):
        best = torch.load(run_dir / f"model{i}_best.pt", weights_only=True)
        assert m["best_test_accuracy"] == best["test_accuracy"]


# ---------------------------------------------------------------- README claims made true

@pytest.mark.parametrize("method, path, kwargs, code", [
    ("post", "/start_training", {"json": {"epochs": 0}}, 400),
    ("post", "/start_training", {"data": "{", "content_type": "application/json"}, 400),
    ("get", "/training_status", {"headers": {"Host": "evil.example"}}, 403),
    ("get", "/runs/20260101-000000-000abc", {}, 404),
    ("get", "/nope", {}, 404),
    ("get", "/start_training", {}, 405),
    ("post", "/stop_training", {"json": {}}, 409),
    ("post", "/start_training", {"data": "x" * (3 * 1024 * 1024), "content_type": "application/json"}, 413),
    ("post", "/start_training", {"data": "{}", "content_type": "text/plain"}, 415),
])
def test_every_error_has_one_shape(client, method, path, kwargs, code):
    response = getattr(client, method)(path, **kwargs)
    body = response.get_json()
    assert response.status_code == code and set(body) <= {"error", "field"} and isinstance(body["error"], str)
    if "field" in body:
        assert body["error"].startswith(body["field"] + ": ")


def test_keep_runs_applies_at_start_up(tmp_path):
    from server import create_app

    store = RunStore(tmp_path / "runs")
    ids = [fake_run(store, images=False) for _ in range(4)]
    create_app({"RUNS_DIR": str(tmp_path / "runs"), "KEEP_RUNS": 2})
    assert store.run_ids() == sorted(ids, reverse=True)[:2]


def test_a_command_line_run_in_the_servers_folder_can_be_stopped_from_the_page(client, app, tiny_mnist):
    runs_dir = app.extensions["runs"].root
    cli = subprocess.Popen([sys.executable, str(ROOT / "train.py"), "--runs-dir", str(runs_dir), "--data-dir",
                            str(tiny_mnist), "--kernels", "2,2,2,2", "--epochs", "100", "--batch-size", "1",
                            "--precision", "fp32"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        status = wait_for(lambda: (s := client.get("/training_status").get_json())["state"] == "running" and s,
                          message="the command-line run to be running")
        response = client.post("/stop_training", json={})
        assert response.status_code == 200 and response.get_json()["run_id"] == status["run_id"]
        assert cli.wait(30) == 0
        assert read_json(runs_dir / status["run_id"] / "status.json")["state"] == "stopped"
    finally:
        cli.kill()


def test_posting_a_runs_config_json_back_repeats_the_run(client, app):
    run_id = start_run(client, dict(QUICK, seed=7, models=[{"kernels": [2, 2, 2, 2], "name": "one"}]))
    wait_run_end(client)
    store = app.extensions["runs"]
    config = store.config(run_id)
    again = start_run(client, config)
    wait_run_end(client)
    assert store.config(again) == config
    rows = [[{k: v for k, v in r.items() if k not in ("time", "samples_per_sec")} for r in store.metrics(i)]
            for i in (run_id, again)]
    assert rows[0] == rows[1]  # the same seed and settings: the same run


def test_only_the_names_the_worker_writes_are_served(client, app):
    run_id = fake_run(app.extensions["runs"])
    run_dir = app.extensions["runs"].run_dir(run_id)
    (run_dir / "notes.png").write_bytes(PNG_BYTES)
    (run_dir / "model9_best.pt").write_bytes(b"x")
    assert client.get(f"/runs/{run_id}/files/curves.png").status_code == 200
    assert client.get(f"/runs/{run_id}/files/notes.png").status_code == 404
    assert client.get(f"/runs/{run_id}/files/model9_best.pt").status_code == 404


def test_origin_must_match_scheme_host_and_port(client, app):
    headers = {"Origin": "https://localhost:5000", "Host": "localhost:5000"}
    assert client.post("/start_training", json=SLOW, headers=headers).status_code == 403
    assert app.extensions["runs"].run_ids() == []
