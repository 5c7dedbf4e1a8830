"""python server.py as a user runs it: a graceful stop that keeps answering until the run has stopped."""
import json
import signal
import time

from helpers import QUICK, wait_for

# Steps of a second or more on two cores (540 images through [64, 128, 128, 128]): a stop waits for one.
SLOW_STEPS = dict(QUICK, epochs=20, batch_size=1024, models=[{"kernels": [64, 128, 128, 128]}])


def test_the_server_answers_while_it_shuts_down_then_exits(server_factory, tiny_mnist):
    server = server_factory(tiny_mnist)
    code, finished = server.request("POST", "/start_training", dict(QUICK, epochs=1))
    wait_for(lambda: server.request("GET", "/training_status")[1]["state"] == "finished", timeout=60,
             message="a first run to finish")
    code, answer = server.request("POST", "/start_training", SLOW_STEPS)
    assert code == 202, answer
    wait_for(lambda: server.request("GET", "/training_status")[1]["state"] == "running", timeout=60,
             message="the slow run to be running")
    sent = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    code, status = server.request("GET", "/training_status")
    assert code == 200 and status["run_id"] == answer["run_id"]
    code, refused = server.request("POST", "/start_training", QUICK)
    assert code == 409 and "shutting down" in refused["error"]
    code, refused = server.request("POST", f"/runs/{finished['run_id']}/resume", {})
    assert code == 409 and "shutting down" in refused["error"]
    assert server.process.wait(10) == 0 and time.monotonic() - sent < 10
    assert (server.runs_dir / answer["run_id"] / "status.json").exists()
    from mnist_monitor.runstore import RunStore

    assert RunStore(server.runs_dir).snapshot(answer["run_id"]).state == "stopped"  # resumable, not interrupted


def test_a_body_over_the_limit_is_refused_before_it_is_read(server_factory, tiny_mnist):
    """Over 256 MiB (a run's zip, the largest body): refused by the HTTP server as soon as the length
    is known. Over 2 MiB to any other route: refused by the app with its JSON error, chunked too."""
    import socket

    from server import MAX_REQUEST_BYTES

    server = server_factory(tiny_mnist)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /runs/import HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/zip\r\n"
                     + f"Content-Length: {1024 ** 3}\r\n\r\n".encode())  # 1 GiB announced, none of it sent
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:  # chunked, past 2 MiB
        sock.sendall(b"POST /start_training HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 65536
        for _ in range(MAX_REQUEST_BYTES // len(chunk) + 8):
            sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        sock.sendall(b"0\r\n\r\n")
        answer = b""
        while chunk_in := sock.recv(65536):
            answer += chunk_in
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert f"limit {MAX_REQUEST_BYTES} bytes".encode() in answer
    assert server.request("GET", "/training_status")[0] == 200  # and it goes on serving


def test_with_workers_two_runs_train_at_once_and_a_stop_ends_them_and_ray(server_factory, tiny_mnist):
    """python server.py --workers 2: a local Ray instance trains two runs at once. Its agent
    processes killed (the raylet goes down with them, as after an out-of-memory kill): the runs in
    flight end interrupted and resumable, the server restarts the instance by itself, the queued
    run finishes and a new run trains (the queued run failed, and every start, until a restart by
    hand). SIGTERM stops the runs resumably within 10 s, leaves the queued run queued, and takes
    Ray's processes with it."""
    import psutil

    # Its parent gone, as under a service manager: Ray's driver then took its raylet for dead and
    # ended the server in the restart's ray.shutdown() (a server started by pytest has a parent).
    server = server_factory(tiny_mnist, extra_args=["--workers", "2"], orphan=True)
    assert psutil.Process(server.process.pid).ppid() == 1
    long_run = dict(QUICK, epochs=100, batch_size=32)
    runs = [server.request("POST", "/start_training", long_run)[1]["run_id"] for _ in range(2)]
    code, queued = server.request("POST", "/start_training", dict(QUICK, epochs=2, queue=True))
    assert code == 202 and queued["state"] == "queued"

    def past_an_epoch(run_ids):
        states = [server.request("GET", f"/runs/{r}")[1] for r in run_ids]
        return all(s["state"] == "running" and s["models"][0]["epoch"] >= 2 for s in states)
    wait_for(lambda: past_an_epoch(runs), timeout=120, interval=0.5, message="both runs to train past an epoch end")
    code, status = server.request("GET", "/training_status")
    assert sorted(status["active_runs"]) == sorted(runs) and status["queued"] == 1 and status["node_id"]
    assert status["workers_unavailable"] is None

    ray_processes = psutil.Process(server.process.pid).children(recursive=True)
    raylet = next(p for p in ray_processes if "raylet" in " ".join(p.cmdline()))
    agents = [p for p in ray_processes if p.cmdline()[0].endswith("Agent")]  # ray::DashboardAgent, ...
    assert agents, [p.cmdline() for p in ray_processes]
    for agent in agents:
        agent.kill()
    raylet.wait(30)  # the raylet goes down with its agents (psutil.TimeoutExpired if it does not)
    for run_id in runs:
        ended = wait_state(server, run_id, ("interrupted",), timeout=30)
        assert ended["resumable"], ended
        # the cause, not only that its heartbeats stopped (written once the server has heard from Ray)
        wait_for(lambda: "its Ray worker was lost" in (server.request("GET", f"/runs/{run_id}")[1]["error"] or ""),
                 timeout=30, interval=0.2, message="the cause of the cut-off in its status")
    assert wait_state(server, queued["run_id"], ("finished",), timeout=120)["error"] is None
    gone, alive = psutil.wait_procs(ray_processes, timeout=15)  # the first instance's are ended with it
    assert alive == [], [p.cmdline() for p in alive]
    log = server.log_path.read_text()
    assert "WARNING cluster: Ray workers are unavailable: " in log  # the node died, or the cluster is silent
    assert "restarting Ray (try 1)" in log and "Ray workers are available again (restarted)" in log
    code, fresh = server.request("POST", "/start_training", long_run)
    assert code == 202, fresh
    code, second = server.request("POST", "/start_training", dict(long_run, queue=True))
    assert code == 202 and second["state"] == "starting"  # a worker is free: it starts at once
    runs = [fresh["run_id"], second["run_id"]]
    wait_for(lambda: past_an_epoch(runs), timeout=120, interval=0.5, message="new runs to train")
    code, queued = server.request("POST", "/start_training", dict(long_run, queue=True))
    assert code == 202 and queued["state"] == "queued"

    ray_processes = psutil.Process(server.process.pid).children(recursive=True)
    assert any("raylet" in " ".join(p.cmdline()) for p in ray_processes)
    sent = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(10)  # (its exit code goes to init; the other tests here check it is 0)
    assert time.monotonic() - sent < 10
    assert server.log_path.read_text().rstrip().endswith("SIGTERM: stopping the active run, then exiting")
    gone, alive = psutil.wait_procs(ray_processes, timeout=15)
    assert alive == [], [p.cmdline() for p in alive]
    on_disk = json.loads((server.runs_dir / queued["run_id"] / "status.json").read_text())
    assert on_disk["state"] == "queued"  # waits for the next start of the server
    restarted = server_factory(tiny_mnist, runs_dir=server.runs_dir)  # the default: no Ray
    for run_id in runs:
        code, status = restarted.request("GET", f"/runs/{run_id}")
        assert status["state"] == "stopped" and status["resumable"], status
    restarted.process.send_signal(signal.SIGTERM)


def wait_state(server, run_id, states, timeout) -> dict:
    found = {}

    def reached():
        found.update(server.request("GET", f"/runs/{run_id}")[1])
        return found.get("state") in states
    wait_for(reached, timeout=timeout, interval=0.2, message=f"run {run_id} to be {states}")
    return found
