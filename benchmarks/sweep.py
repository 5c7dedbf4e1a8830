"""A 4-run sweep with the default (one run at a time in the server's thread) against --workers 2
(two Ray worker processes, one torch thread each), on the real MNIST, each mode in a fresh
``python server.py``. Prints, per mode: the sweep's wall time (first POST to last run finished),
the training images per second summed over the runs, the fixed costs (server start, from the
first POST to its run's status 'running', and the median time a trainer takes to start: MNIST
read, models built), and the p99 of GET /training_status with --pollers clients
polling while the mode trains as many runs as it can at once; then the wall-time ratio.

    python benchmarks/sweep.py [--runs 4] [--train-samples 12000] [--pollers 50] [--json]
"""
from __future__ import annotations

import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import ROOT, parser

sys.path.insert(0, str(ROOT / "tests"))


def request(port: int, method: str, path: str, body=None) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(method, path, body=None if body is None else json.dumps(body),
                 headers={"Content-Type": "application/json"})
    answer = json.loads(conn.getresponse().read())
    conn.close()
    return answer


def start_server(data_dir: str, runs_dir: Path, extra: list[str]) -> tuple[subprocess.Popen, int, float]:
    from helpers import free_port

    port, started = free_port(), time.perf_counter()
    process = subprocess.Popen([sys.executable, str(ROOT / "server.py"), "--port", str(port), "--data-dir", data_dir,
                                "--runs-dir", str(runs_dir), *extra], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, cwd=ROOT)
    while True:
        try:
            request(port, "GET", "/training_status")
            return process, port, time.perf_counter() - started
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"the server exited with {process.returncode}")
            time.sleep(0.1)


def sweep(port: int, bodies: list[dict]) -> dict:
    """Queue every run, wait for the last to finish; wall time, summed images/s, start delays."""
    started = time.perf_counter()
    ids = [request(port, "POST", "/start_training", dict(b, queue=True))["run_id"] for b in bodies]
    running, running_wall, final = {}, {}, {}
    while len(final) < len(ids):
        for run_id in ids:
            if run_id in final:
                continue
            status = request(port, "GET", f"/runs/{run_id}")
            if status["state"] == "running" and run_id not in running:
                running[run_id], running_wall[run_id] = time.perf_counter(), time.time()
            if status["state"] in ("finished", "failed", "stopped", "interrupted"):
                final[run_id] = status
        time.sleep(0.2)
    wall = time.perf_counter() - started
    failed = [s["error"] for s in final.values() if s["state"] != "finished"]
    if failed:
        raise SystemExit(f"a run did not finish: {failed}")
    images = sum(m["samples"] for s in final.values() for m in s["models"])
    return {"wall_s": round(wall, 1), "images_per_s": round(images / wall, 1),
            "first_post_to_running_s": round(running[ids[0]] - started, 2) if ids[0] in running else None,
            "trainer_start_s": round(statistics.median(running_wall[r] - final[r]["started_at"] for r in running), 2)
            if running else None,
            "run_seconds": [s["elapsed_seconds"] for s in final.values()]}


def status_p99(port: int, bodies: list[dict], pollers: int, seconds: float) -> float:
    """p99 ms of GET /training_status with ``pollers`` clients polling every second while ``bodies`` train."""
    ids = [request(port, "POST", "/start_training", b)["run_id"] for b in bodies]
    while any(request(port, "GET", f"/runs/{r}")["state"] != "running" for r in ids):
        time.sleep(0.2)
    latencies, stop = [], threading.Event()

    def poll():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while not stop.is_set():
            begun = time.perf_counter()
            conn.request("GET", "/training_status")
            conn.getresponse().read()
            latencies.append(time.perf_counter() - begun)
            stop.wait(1.0)
    threads = [threading.Thread(target=poll, daemon=True) for _ in range(pollers)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    request(port, "POST", "/stop_training", {})
    return round(1000 * statistics.quantiles(latencies, n=100)[98], 1)


def measure(args, extra: list[str], slots: int) -> dict:
    body = {"epochs": 1, "train_samples": args.train_samples, "precision": "fp32",
            "models": [{"kernels": [32, 64, 64, 64]}]}
    with tempfile.TemporaryDirectory() as tmp:
        process, port, startup = start_server(args.data_dir, Path(tmp) / "runs", extra)
        try:
            result = sweep(port, [dict(body, seed=i) for i in range(args.runs)])
            result["server_start_s"] = round(startup, 2)
            long_run = dict(body, epochs=100, train_samples=None)
            result["status_p99_ms"] = status_p99(port, [long_run] * slots, args.pollers, args.seconds)
        finally:
            process.terminate()
            process.wait(30)
    return result


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--runs", type=int, default=4)
    p.add_argument("--train-samples", type=int, default=12000, help="training images per run (one epoch)")
    p.add_argument("--pollers", type=int, default=50)
    p.add_argument("--seconds", type=float, default=10.0, help="how long the pollers poll")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    default = measure(args, [], 1)
    workers = measure(args, ["--workers", "2"], 2)
    ratio = workers["wall_s"] / default["wall_s"]
    if args.json:
        print(json.dumps({"default": default, "workers_2": workers, "wall_ratio": round(ratio, 3)}))
        return
    for name, r in (("default (thread)", default), ("--workers 2", workers)):
        print(f"{name:17s} sweep of {args.runs} runs x {args.train_samples} images: {r['wall_s']} s, "
              f"{r['images_per_s']} images/s summed; server start {r['server_start_s']} s; first POST to 'running' "
              f"{r['first_post_to_running_s']} s (of which the trainer's own start {r['trainer_start_s']} s); run times "
              f"{r['run_seconds']} s; status p99 with {args.pollers} pollers {r['status_p99_ms']} ms")
    print(f"--workers 2 / default wall time: {ratio:.2f}x (goal <= 0.85x)")


if __name__ == "__main__":
    main()
