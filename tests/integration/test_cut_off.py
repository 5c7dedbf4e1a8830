"""Runs cut off for real and resumed: on the real MNIST through a server process (stopped from the
page, killed, or the server stopped), and a server killed while it trains."""
import signal
import time

from helpers import QUICK, wait_for
from mnist_monitor.runstore.files import read_json, read_jsonl
from helpers import steps_and_epochs

METRICS_FILE = "metrics.jsonl"


# ---------------------------------------------------------------- cut off for real, on MNIST

# Two small models, 2 epochs of 47 steps (6,000 images): long enough to be caught inside epoch 2
# (the status that says where the run is comes once a second).
REAL_RUN = {"epochs": 2, "train_samples": 6000, "seed": 0,
            "models": [{"kernels": [8, 16, 16, 16]}, {"kernels": [4, 8, 8, 8]}]}


def run_state(server, run_id, states=("finished", "stopped", "failed", "interrupted")):
    code, status = server.request("GET", f"/runs/{run_id}")
    return code == 200 and status["state"] in states and status


def inside_epoch_2(server, run_id) -> bool:
    code, status = server.request("GET", f"/runs/{run_id}")
    return code == 200 and [(m["epoch"], m["batch"] >= 3) for m in status["models"]] == [(2, True)] * 2


def start_and_reach_epoch_2(server) -> str:
    code, answer = server.request("POST", "/start_training", REAL_RUN)
    assert code == 202, answer
    wait_for(lambda: inside_epoch_2(server, answer["run_id"]), timeout=180, interval=0.1, message="epoch 2")
    return answer["run_id"]


def resume_to_the_end(server, run_id) -> dict:
    code, answer = server.request("POST", f"/runs/{run_id}/resume", {})
    assert code == 202 and answer["run_id"] == run_id, answer
    status = wait_for(lambda: run_state(server, run_id), timeout=300, interval=0.2, message="the resumed run")
    assert status["state"] == "finished" and status["resumes"] == 1, status
    return status


def test_runs_cut_off_in_epoch_2_resume_to_the_uninterrupted_accuracy(server_factory, mnist_sample, tmp_path):
    """Stopped from the page, killed with SIGKILL, and a server stopped with SIGTERM: each run goes on
    after a restart with continuous metrics and ends within 0.3 points of the same run uninterrupted."""
    server = server_factory(mnist_sample)
    code, answer = server.request("POST", "/start_training", REAL_RUN)
    whole = wait_for(lambda: run_state(server, answer["run_id"]), timeout=300, interval=0.2, message="the whole run")
    assert whole["state"] == "finished"
    results = {}

    stopped = start_and_reach_epoch_2(server)
    assert server.request("POST", "/stop_training", {})[0] == 200
    assert wait_for(lambda: run_state(server, stopped), timeout=60)["state"] == "stopped"
    results["stopped"] = (stopped, resume_to_the_end(server, stopped))

    killed = start_and_reach_epoch_2(server)
    server.kill()  # SIGKILL: nothing is flushed, nothing is marked
    server = server_factory(mnist_sample)
    assert run_state(server, killed)["state"] == "interrupted"
    results["killed"] = (killed, resume_to_the_end(server, killed))

    terminated = start_and_reach_epoch_2(server)
    sent = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(10) == 0 and time.monotonic() - sent < 10
    assert read_json(tmp_path / "runs" / terminated / "status.json")["state"] == "stopped"
    server = server_factory(mnist_sample)
    results["terminated"] = (terminated, resume_to_the_end(server, terminated))

    for how, (run_id, status) in results.items():
        rows = read_jsonl(tmp_path / "runs" / run_id / METRICS_FILE)
        for model, (ours, theirs) in enumerate(zip(status["models"], whole["models"])):
            steps, evals = steps_and_epochs(rows, model)
            assert steps == sorted(set(steps)) and evals == [1, 2], how
            assert abs(ours["test_accuracy"] - theirs["test_accuracy"]) <= 0.3, (how, ours, theirs)


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
