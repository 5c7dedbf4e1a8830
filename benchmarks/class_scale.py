"""A class of N students on one server: their pages polling every 3 s while runs train.

Starts ``python server.py --class`` on a free port (one worker: the server's own thread, as on a
laptop; pass --workers for Ray), joins N students, and lets each poll as its page does: GET
/training_status, GET /runs (revalidated with its ETag), GET /class/board, then waits
--interval seconds. Meanwhile student A (their queue limit raised by the teacher) queues ten short
runs and, a moment later, student B queues one. Prints the latency of a whole poll (p50, p99) and
its errors, and how long B's first run waited for a worker against A's runs (the fair share
starts it after A's first, not after A's tenth).

    python benchmarks/class_scale.py [--students 30] [--interval 3] [--workers N]
"""
from __future__ import annotations

import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import ROOT, parser  # noqa: E402  (puts the project on the import path)
sys.path.insert(0, str(ROOT / "tests"))

from helpers import ServerProcess, wait_for  # noqa: E402

TEACHER, CODE = "bench-teacher-token", "BENCH-CODE"
RUN = {"epochs": 1, "train_samples": 2000, "queue": True, "models": [{"kernels": [16, 32, 32, 32]}]}


def poll_once(port: int, token: str, etag: dict) -> float:
    """One poll as the page does it; its seconds (an error raises)."""
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for path in ("/training_status", "/runs", "/class/board"):
        headers = {"Authorization": f"Bearer {token}"}
        if path in etag:
            headers["If-None-Match"] = etag[path]
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status not in (200, 304):
            raise RuntimeError(f"{path}: HTTP {response.status}")
        etag[path] = response.getheader("ETag") or etag.get(path, "")
    conn.close()
    return time.perf_counter() - start


def poller(port: int, token: str, interval: float, stop: threading.Event, times: list, errors: list) -> None:
    etag: dict = {}
    while not stop.is_set():
        try:
            times.append(poll_once(port, token, etag))
        except Exception as exc:  # counted, and the page polls on
            errors.append(str(exc))
        stop.wait(interval)


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--students", type=int, default=30)
    p.add_argument("--interval", type=float, default=3.0)
    p.add_argument("--workers", type=int)
    args = p.parse_args()
    extra = ["--class", "--class-code", CODE, "--token", TEACHER] + (["--workers", str(args.workers)] if args.workers else [])
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(args.data_dir), Path(tmp) / "runs", Path(tmp) / "server.log", extra).start()
        try:
            tokens = []
            for i in range(args.students):
                code, joined = server.request("POST", "/class/join", {"code": CODE, "name": f"Student {i + 1}"})
                assert code == 201, joined
                tokens.append((joined["id"], joined["token"]))
            server.request("PATCH", f"/class/students/{tokens[0][0]}", {"limits": {"queued_runs": 20}},
                           {"Authorization": f"Bearer {TEACHER}"})
            stop, times, errors = threading.Event(), [], []
            threads = [threading.Thread(target=poller, args=(server.port, t, args.interval, stop, times, errors),
                                        daemon=True) for _, t in tokens]
            for t in threads:
                t.start()
            a, b = ({"Authorization": f"Bearer {t}"} for _, t in tokens[:2])
            a_runs = [server.request("POST", "/start_training", RUN, a)[1]["run_id"] for _ in range(10)]
            time.sleep(1.0)
            queued_at = time.time()
            b_run = server.request("POST", "/start_training", RUN, b)[1]["run_id"]
            started = lambda r: server.request("GET", f"/runs/{r}", headers=a)[1].get("started_at")  # noqa: E731
            wait_for(lambda: server.request("GET", f"/runs/{b_run}", headers=b)[1]["state"] == "finished",
                     timeout=1800, interval=1, message="B's run to end")
            b_started = server.request("GET", f"/runs/{b_run}", headers=b)[1]["started_at"]
            a_started = sorted(s for r in a_runs if (s := started(r)))
            wait_for(lambda: all(server.request("GET", f"/runs/{r}", headers=a)[1]["state"] == "finished"
                                 for r in a_runs), timeout=3600, interval=1, message="A's runs to end")
            trained_for = time.time() - queued_at
            stop.set()
            for t in threads:
                t.join(30)
        finally:
            server.stop()
    times.sort()
    print(f"{args.students} students polling every {args.interval:g} s for {trained_for:.0f} s of training: {len(times)} polls, "
          f"{len(errors)} errors; a poll (status, runs, board) p50 {statistics.median(times) * 1000:.0f} ms, "
          f"p99 {times[int(len(times) * 0.99) - 1] * 1000:.0f} ms")
    print(f"B's first run waited {b_started - queued_at:.1f} s for a worker; A's runs had started "
          f"{sum(s < b_started for s in a_started)} of 10 by then (first-come-first-served: all 10)")
    print(json.dumps({"polls": len(times), "errors": len(errors), "p50_ms": statistics.median(times) * 1000,
                      "p99_ms": times[int(len(times) * 0.99) - 1] * 1000, "b_wait_s": b_started - queued_at,
                      "a_started_before_b": sum(s < b_started for s in a_started)}))


if __name__ == "__main__":
    main()
