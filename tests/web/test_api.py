"""HTTP API through the Flask test client, training on tiny synthetic MNIST."""
import base64
import io
import threading

import numpy as np
import pytest
from PIL import Image

from helpers import PNG_BYTES, PNG_SIGNATURE as PNG, QUICK, SLOW, fake_run, start_run, wait_run_end
from helpers import start_run as start, wait_for, wait_run_end as finished


def test_idle_status_before_any_run(client):
    body = client.get("/training_status").get_json()
    assert body["state"] == "idle" and body["models"] == [] and body["images"] == {}


def test_index_page_is_served(client):
    response = client.get("/")
    assert response.status_code == 200 and b"MNIST Training Monitor" in response.data
    assert client.get("/static/app.js").status_code == 200


@pytest.mark.pictures
def test_a_run_over_the_api(client):
    run_id = start(client)
    status = finished(client)
    assert status["state"] == "finished" and status["run_id"] == run_id and status["device"] in ("cpu", "cuda", "mps")
    assert status["precision"] == "fp32" and status["error"] is None
    assert [m["name"] for m in status["models"]] == ["Model 1", "small"]
    for m in status["models"]:
        for key in ("epoch", "epochs", "batch", "batches", "loss", "accuracy", "val_accuracy", "test_accuracy",
                    "progress", "samples_per_sec"):
            assert m[key] is not None, key
        assert m["eta_seconds"] is None  # a run that is over has no time left
        assert m["progress"] == 100.0 and 0 <= m["test_accuracy"] <= 100
    assert set(status["images"]) == {"curves"}
    assert [set(m["images"]) for m in status["models"]] == [{"samples", "errors", "confusion", "filters"}] * 2
    for url in list(status["images"].values()) + [u for m in status["models"] for u in m["images"].values()]:
        image = client.get(url)
        assert image.status_code == 200 and image.mimetype == "image/png" and image.data.startswith(PNG)
    size = len(client.get("/training_status").data)
    assert size < 4608, size


@pytest.mark.slow  # over 2 s on a 2-core CPU: the whole suite runs it
def test_second_start_while_active_is_409_and_stop_ends_it(client):
    run_id = start(client, SLOW)
    again = client.post("/start_training", json=QUICK)
    assert again.status_code == 409 and "already active" in again.get_json()["error"]
    stop = client.post("/stop_training", json={})
    assert stop.status_code == 200 and stop.get_json()["run_id"] == run_id
    status = finished(client)
    assert status["state"] == "stopped"
    assert client.post("/stop_training", json={}).status_code == 409  # stop twice: nothing active
    start(client)  # start right after a stop works
    assert finished(client)["state"] == "finished"


def test_stop_without_a_run_is_409(client):
    response = client.post("/stop_training", json={})
    assert response.status_code == 409 and response.get_json()["error"]


def test_simultaneous_starts_give_exactly_one_202(client, app):
    barrier = threading.Barrier(4)
    codes = []

    def go():
        c = app.test_client()
        barrier.wait()
        codes.append(c.post("/start_training", json=SLOW).status_code)

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [202, 409, 409, 409]
    assert len(app.extensions["runs"].run_ids()) == 1


@pytest.mark.parametrize("body, field", [
    ({"epochs": 0}, "epochs"), ({"batch_size": 5000}, "batch_size"), ({"learning_rate": -1}, "learning_rate"),
    ({"optimizer": "lion"}, "optimizer"), ({"models": [{"kernels": [1, 2, 3]}]}, "models[0].kernels"),
    ({"unknown": 1}, "unknown"), ({"models": [{"kernels": [1, 1, 1, 1], "learning_rate": "x"}]}, "models[0].learning_rate"),
    ([1, 2], "body"),
])
def test_bad_configs_are_400_naming_the_field_and_start_nothing(client, app, body, field):
    response = client.post("/start_training", json=body)
    assert response.status_code == 400
    assert response.get_json()["field"] == field and field in response.get_json()["error"]
    assert app.extensions["runs"].run_ids() == [] and client.get("/training_status").get_json()["state"] == "idle"


@pytest.mark.parametrize("data, content_type, code", [
    ("{not json", "application/json", 400),
    ("", "application/json", 400),
    ('{"epochs": 1}', "text/plain", 415),
    ("epochs=1", "application/x-www-form-urlencoded", 415),
    ('{"epochs": 1}', None, 415),
])
def test_non_json_bodies_are_refused(client, app, data, content_type, code):
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/start_training", data=data, headers=headers)
    assert response.status_code == code and "error" in response.get_json()
    assert app.extensions["runs"].run_ids() == []


@pytest.mark.parametrize("path", ["/start_training", "/sweeps", "/predict"])
def test_json_nested_deeper_than_the_parser_goes_is_a_400_that_changes_nothing(client, app, path):
    body = "[" * 100_000 + "]" * 100_000  # 200 KB of brackets: a RecursionError in the parser
    response = client.post(path, data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.get_json()
    assert response.get_json() == {"error": "body: JSON nested too deeply", "field": "body"}
    assert app.extensions["runs"].run_ids() == [] and app.extensions["sweeps"].ids() == []


def test_oversized_bodies_are_413(client):
    response = client.post("/start_training", data='{"x": "' + "a" * (3 * 1024 * 1024) + '"}',
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and "too large" in response.get_json()["error"]


def test_unknown_route_and_method_are_json_errors(client):
    assert client.get("/nope").status_code == 404 and client.get("/nope").get_json()["error"]
    response = client.get("/start_training")
    assert response.status_code == 405 and response.get_json()["error"]


def test_model_info_lists_layers_and_parameters(client):
    body = client.get("/model_info?kernels=32,64,64,64").get_json()
    assert body["total_parameters"] == 225_162 and len(body["layers"]) == 16
    assert body["layers"][0] == {"type": "Conv2d", "weight_shape": [32, 1, 3, 3], "output_shape": [32, 26, 26],
                                 "parameters": 320, "macs": 32 * 9 * 26 * 26}


@pytest.mark.parametrize("query", ["", "?kernels=", "?kernels=1,2,3", "?kernels=0,1,1,1", "?kernels=a,b,c,d",
                                   "?kernels=1,2,3,300", "?kernels=1,1,1,1&x=1"])
def test_model_info_bad_kernels_are_400(client, query):
    response = client.get("/model_info" + query)
    assert response.status_code == 400 and response.get_json()["error"]


def test_status_supports_etag_revalidation(client):
    first = client.get("/training_status")
    again = client.get("/training_status", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""


def test_runs_history_details_files_and_csv(client):
    run_id = start(client)
    finished(client)
    runs = client.get("/runs").get_json()["runs"]
    assert [r["run_id"] for r in runs] == [run_id]
    assert runs[0]["state"] == "finished" and runs[0]["best_test_accuracy"] is not None
    assert (runs[0]["models"][1]["name"], runs[0]["models"][1]["kernels"]) == ("small", [2, 4, 4, 4])
    detail = client.get(f"/runs/{run_id}").get_json()
    # the worker lets go of its slot a moment after it writes the final status
    followed = wait_for(lambda: (s := client.get("/training_status").get_json())["active_runs"] == [] and s,
                        timeout=10, message="the worker to let go of the finished run")
    assert (followed.pop("active_runs"), followed.pop("queued"), followed.pop("workers"), followed.pop("workers_busy"),
            followed.pop("workers_unavailable")) == ([], 0, 1, 0, None)
    assert detail == followed
    checkpoint = client.get(detail["models"][0]["checkpoint"])
    assert checkpoint.status_code == 200 and "attachment" in checkpoint.headers["Content-Disposition"]
    import torch
    from model import MNISTNet
    saved = torch.load(io.BytesIO(checkpoint.data), weights_only=True)
    MNISTNet(saved["kernels"]).load_state_dict(saved["state_dict"])
    csv_text = client.get(f"/runs/{run_id}/metrics.csv").get_data(as_text=True)
    header, *rows = csv_text.strip().splitlines()
    assert header.startswith("kind,model,name,epoch,step,loss,accuracy")
    assert any(r.startswith("eval,1,small,1,") for r in rows) and any(r.startswith("train,0,Model 1,") for r in rows)


@pytest.mark.parametrize("path", ["/runs/nope", "/runs/20260101-000000-123abc", "/runs/../etc/files/x.png",
                                  "/runs/%2e%2e/files/curves.png", "/runs/nope/metrics.csv"])
def test_unknown_runs_are_404(client, path):
    response = client.get(path)
    assert response.status_code == 404


def test_file_routes_cannot_escape_the_run_folder(client, app, tmp_path):
    run_id = start(client)
    finished(client)
    run_dir = app.extensions["runs"].run(run_id).path
    (tmp_path / "secret.png").write_bytes(PNG + b"secret")
    (run_dir / "evil.png").symlink_to(tmp_path / "secret.png")
    for name in ["..%2F..%2Fsecret.png", "../../secret.png", "%2e%2e%2fsecret.png", "evil.png", "status.json",
                 "config.json", "metrics.jsonl", "..", "%2Fetc%2Fpasswd", "curves.png%00.png"]:
        response = client.get(f"/runs/{run_id}/files/{name}")
        assert response.status_code == 404, name
        assert b"secret" not in response.data


def digit_png(draw=True, size=200) -> str:
    image = np.zeros((size, size), dtype=np.uint8)
    if draw:  # the synthetic class 3: a block in the top row, fourth column
        image[20:90, 95:125] = 255
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_predict_returns_probabilities_per_model(client):
    run_id = start(client)
    finished(client)
    body = client.post("/predict", json={"image": digit_png()}).get_json()
    assert body["run_id"] == run_id and [p["model"] for p in body["predictions"]] == ["Model 1", "small"]
    for p in body["predictions"]:
        assert len(p["probabilities"]) == 10 and sum(p["probabilities"]) == pytest.approx(1, abs=1e-4)
        assert p["digit"] == int(np.argmax(p["probabilities"]))
    assert client.post("/predict", json={"image": digit_png(), "run_id": run_id}).status_code == 200


@pytest.mark.parametrize("body, code", [
    ({"image": "data:image/jpeg;base64,AAAA"}, 400),
    ({"image": "data:image/png;base64,@@@"}, 400),
    ({"image": "data:image/png;base64," + base64.b64encode(b"not a png").decode()}, 400),
    ({"image": 7}, 400),
    ({}, 400),
    ({"image": "x", "extra": 1}, 400),
    ({"image": digit_png(draw=False)}, 400),
    ({"image": digit_png(), "run_id": "20260101-000000-123abc"}, 404),
    ({"image": digit_png(), "run_id": 5}, 400),
])
def test_predict_refuses_bad_requests(trained, body, code):
    client, _ = trained
    response = client.post("/predict", json=body)
    assert response.status_code == code and response.get_json()["error"]


def test_predict_before_any_checkpoint_is_409(client):
    assert client.post("/predict", json={"image": digit_png()}).status_code == 409  # no run at all
    run_id = start(client, SLOW)
    response = client.post("/predict", json={"image": digit_png(), "run_id": run_id})
    assert response.status_code == 409 and "checkpoint" in response.get_json()["error"]


@pytest.mark.pictures
def test_status_stays_small_with_four_models_and_images_are_cacheable(client):
    models = [{"kernels": [2, 4, 4, 4], "name": f"model number {i} with a long name, 40 ch"[:40]} for i in range(4)]
    start(client, dict(QUICK, models=models, epochs=1))
    status = finished(client)
    assert len(status["models"]) == 4 and len(status["images"]) + sum(len(m["images"]) for m in status["models"]) == 17
    size = len(client.get("/training_status").data)
    assert size < 4608, size
    url = status["images"]["curves"]
    assert "?v=" in url  # the URL changes when the image does, so browsers may cache it for good
    response = client.get(url)
    assert "immutable" in response.headers["Cache-Control"]
    again = client.get(url, headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304


def test_config_gives_the_page_defaults_limits_choices_and_states(client):
    from mnist_monitor.config import DEFAULT_KERNELS, MAX_MODELS, TrainConfig

    body = client.get("/config").get_json()
    assert body["defaults"]["epochs"] == TrainConfig.epochs and body["defaults"]["batch_size"] == TrainConfig.batch_size
    assert [m["kernels"] for m in body["defaults"]["models"]] == [list(k) for k in DEFAULT_KERNELS]
    assert body["limits"]["models"] == [1, MAX_MODELS] and body["limits"]["kernels"] == [1, 256]
    assert "onecycle" in body["choices"]["lr_schedule"] and "sgd" in body["choices"]["optimizer"]
    assert body["states"]["active"] == ["starting", "running", "stopping"]


def test_answers_keep_the_contracts_field_order(client):
    from mnist_monitor.runstore import RUN_STATUS_FIELDS

    text = client.get("/training_status").get_data(as_text=True)
    keys = list(client.get("/training_status").get_json())
    assert keys == [k for k in RUN_STATUS_FIELDS if k != "pid"] + ["images", "resumable", "owner", "active_runs",
                                                                 "queued", "workers", "workers_busy", "workers_unavailable"], text


# ---------------------------------------------------------------- metrics over HTTP, run table

def test_metrics_are_served_incrementally_from_since(client, app):
    run_id = start(client)
    finished(client)
    all_rows = app.extensions["runs"].run(run_id).metrics()
    body = client.get(f"/runs/{run_id}/metrics").get_json()
    assert body["run_id"] == run_id and body["next"] == len(all_rows) and body["more"] is False
    assert [(r["kind"], r["model"], r["step"]) for r in body["rows"]] == [(r["kind"], r["model"], r["step"]) for r in all_rows]
    assert {"epoch", "step", "time", "loss", "accuracy", "lr", "samples_per_sec"} <= set(body["rows"][0])
    tail = client.get(f"/runs/{run_id}/metrics?since=3").get_json()
    assert tail["rows"] == body["rows"][3:] and tail["next"] == len(all_rows)
    page = client.get(f"/runs/{run_id}/metrics?since=2&limit=2").get_json()
    assert page["rows"] == body["rows"][2:4] and page["next"] == 4 and page["more"] is True
    done = client.get(f"/runs/{run_id}/metrics?since={len(all_rows)}").get_json()
    assert done["rows"] == [] and done["next"] == len(all_rows)


def test_metrics_never_return_a_torn_line_and_pick_it_up_once_complete(client, app):
    run_id = start(client)
    finished(client)
    path = app.extensions["runs"].run(run_id).path / "metrics.jsonl"
    n = client.get(f"/runs/{run_id}/metrics").get_json()["next"]
    with open(path, "ab") as f:
        f.write(b'{"kind":"train","model":0,"step":999,"epo')  # an append cut off mid-line
    torn = client.get(f"/runs/{run_id}/metrics?since={n}").get_json()
    assert torn["rows"] == [] and torn["next"] == n
    with open(path, "ab") as f:
        f.write(b'ch":1.0,"loss":0.1,"accuracy":99.0,"lr":0.001,"samples_per_sec":10.0,"time":5.0}\n')
    whole = client.get(f"/runs/{run_id}/metrics?since={n}").get_json()
    assert [r["step"] for r in whole["rows"]] == [999] and whole["next"] == n + 1


@pytest.mark.parametrize("query", ["since=-1", "since=x", "since=1.5", "since=99999", "limit=0", "other=1",
                                   "since=²", "since=٣", "since=" + "9" * 5000, "limit=+5"])
def test_bad_metrics_queries_are_400(trained, query):
    client, run_id = trained
    response = client.get(f"/runs/{run_id}/metrics?{query}")
    assert response.status_code == 400 and response.get_json()["field"] in query


def test_metrics_of_an_unknown_run_are_404(client):
    assert client.get("/runs/20260101-000000-000abc/metrics").status_code == 404


def test_the_run_table_has_settings_and_results_and_config_repeats_a_run(client):
    run_id = start(client, dict(QUICK, seed=3))
    finished(client)
    run = client.get("/runs").get_json()["runs"][0]
    assert run["run_id"] == run_id and run["state"] == "finished" and run["duration_seconds"] > 0
    assert run["settings"] == {"epochs": 1, "lr_schedule": "onecycle", "warmup": 0.3, "label_smoothing": 0.1,
                               "precision": "fp32", "train_samples": None, "seed": 3, "device": "auto"}
    assert run["device"] in ("cpu", "cuda", "mps") and run["precision"] == "fp32"
    small = run["models"][1]
    assert (small["name"], small["kernels"], small["batch_size"], small["optimizer"]) == ("small", [2, 4, 4, 4], 64, "adam")
    assert small["final_test_accuracy"] is not None and small["best_test_accuracy"] is not None
    config = client.get(f"/runs/{run_id}/config").get_json()
    assert config["seed"] == 3 and config["models"][1]["name"] == "small"
    assert client.get("/runs/20260101-000000-000abc/config").status_code == 404


# ---------------------------------------------------------------- what the page needs of the API

def test_predictions_carry_the_models_index_and_a_test_digit_can_be_read(client, tiny_mnist):
    from mnist_monitor.data import ensure_mnist, read_idx

    start(client)
    finished(client)
    body = client.post("/predict", json={"test_index": 5}).get_json()
    labels = read_idx(ensure_mnist(tiny_mnist, download=False)["test_labels"])
    assert body["test_index"] == 5 and body["label"] == int(labels[5])
    assert body["digit_image"].startswith("data:image/png;base64,")
    assert [p["index"] for p in body["predictions"]] == [0, 1]
    for bad in (-1, 10**6, "3", True, 2.5):
        response = client.post("/predict", json={"test_index": bad})
        assert response.status_code == 400 and response.get_json()["field"] == "test_index"
    both = client.post("/predict", json={"test_index": 1, "image": digit_png()})
    assert both.status_code == 400


def test_checkpoints_download_with_the_model_counted_from_one_and_confusion_numbers_are_served(client):
    run_id = start(client)
    status = finished(client)
    response = client.get(status["models"][1]["checkpoint"])
    assert f'{run_id}-model2-best.pt' in response.headers["Content-Disposition"]
    confusion = client.get(status["models"][0]["confusion"]).get_json()
    assert confusion["epoch"] == 1 and len(confusion["matrix"]) == 10
    assert sum(map(sum, confusion["matrix"])) == 200  # the tiny test set
    sizes = client.get("/config").get_json()["image_sizes"]
    assert sizes["samples"][1] < sizes["errors"][1] and sizes["confusion"] == [460, 420]


# ---------------------------------------------------------------- keeping runs

def test_runs_are_kept_starred_noted_and_deleted_only_when_asked(client, app):
    ids = [start(client), None]
    finished(client)
    ids[1] = start(client)
    finished(client)
    listing = client.get("/runs").get_json()
    assert listing["keep_runs"] == 0 and listing["runs_bytes"] > 0 and len(listing["runs"]) == 2
    assert client.post(f"/runs/{ids[0]}/meta", json={"starred": True, "note": "lr 0.01 baseline"}).status_code == 200
    run = next(r for r in client.get("/runs").get_json()["runs"] if r["run_id"] == ids[0])
    assert run["starred"] is True and run["note"] == "lr 0.01 baseline"
    for bad in ({"starred": "yes"}, {"note": "x" * 201}, {"color": 1}):
        assert client.post(f"/runs/{ids[0]}/meta", json=bad).status_code == 400
    store = app.extensions["runs"]
    store.keep = 1
    assert store.cleanup() == []  # the older run is starred: kept
    deleted = client.delete(f"/runs/{ids[1]}")
    assert deleted.status_code == 200 and deleted.get_json() == {"run_id": ids[1], "deleted": True}
    assert store.run_ids() == [ids[0]] and client.delete(f"/runs/{ids[1]}").status_code == 404
    active = start(client, SLOW)
    assert client.delete(f"/runs/{active}").status_code == 409  # never the active run
    assert client.delete(f"/runs/{ids[0]}", headers={"Origin": "http://evil.example"}).status_code == 403


@pytest.mark.slow  # over 2 s on a 2-core CPU: the whole suite runs it
def test_seven_runs_in_a_row_are_all_kept_by_default(client, app):
    tiny = dict(QUICK, models=[{"kernels": [2, 2, 2, 2]}])
    for _ in range(7):
        start(client, tiny)
        finished(client)
    assert len(client.get("/runs").get_json()["runs"]) == 7 and len(app.extensions["runs"].run_ids()) == 7


@pytest.mark.slow  # over 2 s on a 2-core CPU: the whole suite runs it
def test_runs_deleted_while_they_are_read_are_never_a_500(client, app):
    store = app.extensions["runs"]
    codes, stop = [], threading.Event()
    ids = [fake_run(store, models=4) for _ in range(8)]

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
    for _ in range(3):  # delete and re-create runs under the pollers' feet
        store.keep = 2
        store.cleanup()
        store.keep = 0
        ids[:] = [fake_run(store, models=4) for _ in range(8)]
    stop.set()
    for t in pollers:
        t.join()
    assert 500 not in codes and len(codes) > 50
    assert set(codes) <= {200, 400, 404}


def test_an_interrupted_run_shows_no_time_left_for_any_model(client, app):
    run_id = fake_run(app.extensions["runs"], state="running", beat="dead", models=2)
    view = client.get(f"/runs/{run_id}").get_json()
    assert view["state"] == "interrupted" and view["eta_seconds"] is None
    assert [m["eta_seconds"] for m in view["models"]] == [None, None]


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


def test_posting_a_runs_config_json_back_repeats_the_run(client, app):
    run_id = start_run(client, dict(QUICK, seed=7, models=[{"kernels": [2, 2, 2, 2], "name": "one"}]))
    wait_run_end(client)
    store = app.extensions["runs"]
    config = store.run(run_id).config()
    again = start_run(client, config)
    wait_run_end(client)
    assert store.run(again).config() == config
    rows = [[{k: v for k, v in r.items() if k not in ("time", "samples_per_sec")} for r in store.run(i).metrics()]
            for i in (run_id, again)]
    assert rows[0] == rows[1]  # the same seed and settings: the same run


def test_only_the_names_the_worker_writes_are_served(client, app):
    run_id = fake_run(app.extensions["runs"])
    run_dir = app.extensions["runs"].run(run_id).path
    (run_dir / "notes.png").write_bytes(PNG_BYTES)
    (run_dir / "model9_best.pt").write_bytes(b"x")
    assert client.get(f"/runs/{run_id}/files/curves.png").status_code == 200
    assert client.get(f"/runs/{run_id}/files/notes.png").status_code == 404
    assert client.get(f"/runs/{run_id}/files/model9_best.pt").status_code == 404


@pytest.mark.parametrize("content", [b"[1]", b'{"state": "finished", "models": [1]}', b'{"state": "fin', b""])
def test_a_malformed_status_is_listed_broken_and_every_route_still_answers(tmp_path, tiny_mnist, content, make_app):
    from mnist_monitor.runstore import RunStore

    store = RunStore(tmp_path / "runs")
    good, bad = fake_run(store), fake_run(store)
    (store.root / bad / "status.json").write_bytes(content)
    client = make_app({"RUNS_DIR": str(store.root), "DATA_DIR": str(tiny_mnist)}).test_client()  # it starts
    listing = {r["run_id"]: r for r in client.get("/runs").get_json()["runs"]}
    assert listing[good]["state"] == "finished"
    broken = listing[bad]
    assert broken["state"] == "broken" and broken["error"].startswith("status")
    assert [m["name"] for m in broken["models"]] == ["Model 1"] and broken["settings"]["epochs"] is None
    assert broken["started_at"] and abs(broken["started_at"] - listing[good]["started_at"]) < 5  # from its id
    assert client.get(f"/runs/{bad}/config").get_json() == {"models": [{"kernels": [1, 1, 1, 1]}], "seed_scheme": 1}
    status = client.get("/training_status")  # the broken run is the newest: shown, with why
    assert status.status_code == 200 and status.get_json()["state"] == "broken" and status.get_json()["error"]
    assert client.get(f"/runs/{bad}").get_json()["state"] == "broken"
    resume = client.post(f"/runs/{bad}/resume", json={})
    assert resume.status_code == 400 and "broken" in resume.get_json()["error"]
    assert client.post("/predict", json={"test_index": 0, "run_id": bad}).status_code == 409
    assert client.get(f"/runs/{bad}/metrics.csv").status_code == 200
    assert client.get("/config").get_json()["states"]["broken"] == "broken"
    size = client.get("/runs").get_json()["runs_bytes"]
    assert client.delete(f"/runs/{bad}").status_code == 200 and store.run_ids() == [good]
    assert client.get("/runs").get_json()["runs_bytes"] < size  # counted again after a delete
