"""Resume: a run cut off (stopped, failed, killed) goes on from its last epoch-end checkpoints,
with its metrics continuous and its result the one an uninterrupted run gets."""
import json
import signal
import time

import pytest

import train
from checkpoints import ResumeError
from runstore import METRICS_FILE, read_json, read_jsonl
from conftest import tiny_config, wait_for


def train_run(run_dir, data_dir, config, **options):
    trainer = train.Trainer(config, data_dir, run_dir, status_interval=0.05, **options)
    return trainer, trainer.run()


def stop_at(model_index: int, step: int):
    def on_step(trainer, m):
        if m.index == model_index and m.step == step:
            trainer.stop_event.set()
    return on_step


def steps_and_epochs(rows, model):
    train_steps = [r["step"] for r in rows if r["kind"] == "train" and r["model"] == model]
    evals = [r["epoch"] for r in rows if r["kind"] == "eval" and r["model"] == model]
    return train_steps, evals


@pytest.mark.parametrize("batch_sizes", [(64,), (64, 32), (32, 64)])  # which model ends an epoch last differs
def test_a_run_stopped_in_epoch_2_resumes_to_the_uninterrupted_result(tmp_path, tiny_mnist, batch_sizes):
    models = len(batch_sizes)
    config = tiny_config(epochs=3, models=[{"kernels": [4, 8, 8, 8], "batch_size": b} for b in batch_sizes])
    _, whole = train_run(tmp_path / "whole", tiny_mnist, config)
    batches = whole["models"][0]["batches"]
    _, cut = train_run(tmp_path / "cut", tiny_mnist, config, on_step=stop_at(0, batches + batches // 2))
    assert cut["state"] == "stopped" and cut["models"][0]["epoch"] == 2
    trainer, resumed = train_run(tmp_path / "cut", tiny_mnist, config, resume=True)
    assert resumed["state"] == "finished" and resumed["resumes"] == 1 and resumed["run_id"] == "cut"
    assert resumed["started_at"] == cut["started_at"]  # the same run, started when it first started
    rows, reference = read_jsonl(tmp_path / "cut" / METRICS_FILE), read_jsonl(tmp_path / "whole" / METRICS_FILE)
    for model in range(models):
        steps, evals = steps_and_epochs(rows, model)
        assert steps == sorted(set(steps)), "a step is in metrics.jsonl twice"
        assert evals == [1, 2, 3]  # each epoch evaluated once
        assert (steps, evals) == steps_and_epochs(reference, model)
        ours = [r["loss"] for r in rows if r["kind"] == "train" and r["model"] == model]
        theirs = [r["loss"] for r in reference if r["kind"] == "train" and r["model"] == model]
        assert ours == pytest.approx(theirs, rel=1e-4)  # the same steps on the same data and RNG
        assert resumed["models"][model]["test_accuracy"] == pytest.approx(whole["models"][model]["test_accuracy"], abs=0.3)
    times = [r["time"] for r in rows]
    assert max(b - a for a, b in zip(times, times[1:])) < 30  # no gap for the pause
    assert len(read_json(tmp_path / "cut" / "run.json")["resumed_at"]) == 1


def test_a_failed_run_resumes_and_a_run_without_checkpoint_cannot(tmp_path, tiny_mnist):
    config = tiny_config(epochs=2)

    def explode_in_epoch_2(trainer, m):
        if m.index == 0 and m.step == m.batches + 2:
            raise RuntimeError("simulated crash")

    _, failed = train_run(tmp_path / "a", tiny_mnist, config, on_step=explode_in_epoch_2)
    assert failed["state"] == "failed"
    with open(tmp_path / "a" / METRICS_FILE, "ab") as f:
        f.write(b'{"kind":"train","mod')  # a line cut off by a crash: not glued to the first new one
    _, resumed = train_run(tmp_path / "a", tiny_mnist, config, resume=True)
    assert resumed["state"] == "finished" and resumed["error"] is None
    lines = (tmp_path / "a" / METRICS_FILE).read_bytes().splitlines()
    assert all(json.loads(line) for line in lines)  # every line whole
    steps, evals = steps_and_epochs(read_jsonl(tmp_path / "a" / METRICS_FILE), 0)
    assert evals == [1, 2] and steps == sorted(set(steps)) and steps[-1] == 2 * resumed["models"][0]["batches"]
    with pytest.raises(ResumeError, match="finished: there is nothing to resume"):
        train.Trainer(config, tiny_mnist, tmp_path / "a", resume=True).prepare()
    _, early = train_run(tmp_path / "b", tiny_mnist, config, on_step=stop_at(0, 2))
    assert early["state"] == "stopped"
    with pytest.raises(ResumeError, match="no epoch-end checkpoint"):
        train.Trainer(config, tiny_mnist, tmp_path / "b", resume=True).prepare()
    assert read_json(tmp_path / "b" / "status.json")["state"] == "stopped"  # a refused resume changes nothing


# ---------------------------------------------------------------- cut off for real, on MNIST

# Two small models: an epoch takes about 3 s here (2 s of training, long enough to be caught in it).
REAL_RUN = {"epochs": 3, "train_samples": 8000, "seed": 0,
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


def test_runs_cut_off_in_epoch_2_resume_to_the_uninterrupted_accuracy(server_factory, mnist_dir, tmp_path):
    """Stopped from the page, killed with SIGKILL, and a server stopped with SIGTERM: each run goes on
    after a restart with continuous metrics and ends within 0.3 points of the same run uninterrupted."""
    server = server_factory(mnist_dir)
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
    server = server_factory(mnist_dir)
    assert run_state(server, killed)["state"] == "interrupted"
    results["killed"] = (killed, resume_to_the_end(server, killed))

    terminated = start_and_reach_epoch_2(server)
    sent = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(10) == 0 and time.monotonic() - sent < 10
    assert read_json(tmp_path / "runs" / terminated / "status.json")["state"] == "stopped"
    server = server_factory(mnist_dir)
    results["terminated"] = (terminated, resume_to_the_end(server, terminated))

    for how, (run_id, status) in results.items():
        rows = read_jsonl(tmp_path / "runs" / run_id / METRICS_FILE)
        for model, (ours, theirs) in enumerate(zip(status["models"], whole["models"])):
            steps, evals = steps_and_epochs(rows, model)
            assert steps == sorted(set(steps)) and evals == [1, 2, 3], how
            assert abs(ours["test_accuracy"] - theirs["test_accuracy"]) <= 0.3, (how, ours, theirs)


def test_the_cli_stops_on_ctrl_c_and_resumes_from_the_command_line(tmp_path, tiny_mnist):
    import subprocess
    import sys

    from conftest import ROOT

    runs = tmp_path / "runs"
    command = [sys.executable, str(ROOT / "train.py"), "--data-dir", str(tiny_mnist), "--runs-dir", str(runs)]
    process = subprocess.Popen(command + ["--kernels", "4,8,8,8", "--epochs", "40", "--batch-size", "8",
                                          "--precision", "fp32"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    run_dir = wait_for(lambda: next(iter(runs.glob("*")), None), timeout=60, message="the run folder")
    wait_for(lambda: [m["epoch"] for m in (read_json(run_dir / "status.json") or {}).get("models", [])] == [2],
             timeout=60, message="epoch 2")
    process.send_signal(signal.SIGINT)  # Ctrl-C
    output = process.communicate(timeout=30)[0].decode()
    assert process.returncode == 0, output
    assert read_json(run_dir / "status.json")["state"] == "stopped"
    assert f"python train.py --resume {run_dir}" in output  # it says how to go on
    refused = subprocess.run(command + ["--resume", str(run_dir), "--epochs", "3"], capture_output=True, text=True)
    assert refused.returncode == 2 and "drop the other settings flags" in refused.stderr
    # The resumed run trains to the end in the same folder (fewer epochs would not be the same run:
    # so only a short look that it goes on, then it is stopped again through its stop file).
    resumed = subprocess.Popen(command + ["--resume", str(run_dir)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    wait_for(lambda: (read_json(run_dir / "status.json") or {}).get("resumes") == 1
             and read_json(run_dir / "status.json")["state"] == "running", timeout=60, message="the resumed run")
    (run_dir / "stop.request").write_text("stop\n")
    resumed.communicate(timeout=60)
    status = read_json(run_dir / "status.json")
    assert resumed.returncode == 0 and status["state"] == "stopped" and status["resumes"] == 1
    steps, evals = steps_and_epochs(read_jsonl(run_dir / METRICS_FILE), 0)
    assert steps == sorted(set(steps)) and evals == list(range(1, len(evals) + 1))
