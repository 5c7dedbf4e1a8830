"""The command-line trainer (python train.py) beside the server, in its own process: stopped with
Ctrl-C or from the page, resumed from the command line or from the page, and killed."""
import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import ROOT, wait_for
from mnist_monitor.runstore import HEARTBEAT_LIMIT_S, RunStore
from mnist_monitor.runstore.files import read_json, read_jsonl
from helpers import steps_and_epochs


def cli_run(runs_dir, data_dir, *flags) -> subprocess.Popen:
    """``python train.py`` into ``runs_dir``, as a user starts it beside the server."""
    return subprocess.Popen([sys.executable, str(ROOT / "train.py"), "--runs-dir", str(runs_dir), "--data-dir",
                             str(data_dir), "--precision", "fp32", *flags], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
def cli_processes():
    """Command-line trainers a test starts; none outlives it."""
    processes = []
    yield processes
    for process in processes:
        process.kill()
        process.wait()


def test_the_cli_stops_on_ctrl_c_and_resumes_from_the_command_line(tmp_path, tiny_mnist):
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
    steps, evals = steps_and_epochs(read_jsonl(run_dir / "metrics.jsonl"), 0)
    assert steps == sorted(set(steps)) and evals == list(range(1, len(evals) + 1))


def test_a_command_line_run_in_the_servers_folder_can_be_stopped_from_the_page(client, app, tiny_mnist):
    runs_dir = app.extensions["runs"].root
    cli = cli_run(runs_dir, tiny_mnist, "--kernels", "2,2,2,2", "--epochs", "100", "--batch-size", "1")
    try:
        status = wait_for(lambda: (s := client.get("/training_status").get_json())["state"] == "running" and s,
                          message="the command-line run to be running")
        response = client.post("/stop_training", json={})
        assert response.status_code == 200 and response.get_json()["run_id"] == status["run_id"]
        assert cli.wait(30) == 0
        assert read_json(runs_dir / status["run_id"] / "status.json")["state"] == "stopped"
    finally:
        cli.kill()


def test_a_command_line_run_stopped_from_the_page_resumes_from_the_page_and_finishes(client, app, tiny_mnist,
                                                                                      cli_processes):
    runs_dir = app.extensions["runs"].root
    cli_processes.append(cli_run(runs_dir, tiny_mnist, "--kernels", "2,2,2,2", "--epochs", "4", "--batch-size", "4"))
    in_epoch_2 = wait_for(lambda: (s := client.get("/training_status").get_json())["state"] == "running"
                          and s["models"][0]["epoch"] == 2 and s, timeout=60, message="the run in epoch 2")
    run_id = in_epoch_2["run_id"]
    assert client.post("/stop_training", json={}).get_json()["run_id"] == run_id
    assert cli_processes[0].wait(30) == 0
    assert not (runs_dir / run_id / "stop.request").exists()  # removed when the run ended
    assert client.get(f"/runs/{run_id}").get_json()["state"] == "stopped"
    assert client.post(f"/runs/{run_id}/resume", json={}).status_code == 202
    status = wait_for(lambda: (s := client.get(f"/runs/{run_id}").get_json())["state"] in ("finished", "stopped",
                                                                                           "failed") and s,
                      timeout=120, message="the resumed run to end")
    assert status["state"] == "finished" and status["resumes"] == 1
    assert [m["epoch"] for m in status["models"]] == [4]


def test_a_killed_trainer_is_interrupted_at_once_even_if_its_pid_is_reused(tmp_path, tiny_mnist, cli_processes):
    runs_dir = tmp_path / "runs"
    cli_processes.append(cli_run(runs_dir, tiny_mnist, "--kernels", "2,2,2,2", "--epochs", "50", "--batch-size", "4"))
    store = RunStore(runs_dir)
    run_id = wait_for(lambda: next((r for r in store.live() if store.snapshot(r).state == "running"), None),
                      timeout=60, message="the run to train")
    cli_processes[0].kill()  # SIGKILL: no final status, no last beat
    cli_processes[0].wait()
    killed_at = time.monotonic()
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    cli_processes.append(stand_in)
    beat = read_json(runs_dir / run_id / "heartbeat.json")
    beat["pid"] = stand_in.pid  # as if the system gave the dead trainer's PID to another program
    (runs_dir / run_id / "heartbeat.json").write_text(__import__("json").dumps(beat))
    snapshot = wait_for(lambda: (s := store.snapshot(run_id)).state == "interrupted" and s, timeout=HEARTBEAT_LIMIT_S + 5,
                        interval=0.1, message="the run to be interrupted")
    assert time.monotonic() - killed_at < HEARTBEAT_LIMIT_S  # seen by the PID's start time, before the limit
    assert snapshot.resumable is False or snapshot.status.models[0].epoch >= 1
    assert read_json(runs_dir / run_id / "status.json")["state"] == "running"  # readers decide, never write
    os.kill(stand_in.pid, signal.SIGKILL)
