"""Polling under load: N concurrent pages polling during a real training run.

Starts ``python server.py`` on a free port with a run of the page's default models, then
measures, in the same run: training images/s without pollers, with N pollers, and without
pollers again. Each poller does what the page does at every poll: GET /training_status, then
GET /runs/<id>/metrics?since=<next> (only the new rows), then GET /runs (revalidated with its
ETag), then waits --interval seconds. Prints p50/p99 latency of a whole poll, errors, the sizes of
the status and metrics answers, and the training speed with pollers against the mean of the two
quiet windows.

    python benchmarks/load.py [--pollers 50] [--interval 1.0] [--window 10] [--json]
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

from bench import ROOT, parser  # noqa: E402  (puts the project on the import path)
sys.path.insert(0, str(ROOT / "tests"))


def get_status(port: int) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/training_status")
    body = json.loads(conn.getresponse().read())
    conn.close()
    return body


def training_rate(port: int, seconds: float) -> float:
    """Training images/s over ``seconds``, from the samples and timestamps in the status, less the
    time the run spent evaluating in between."""
    first = get_status(port)
    time.sleep(seconds)
    last = get_status(port)
    samples = lambda s: sum(m["samples"] for m in s["models"])  # noqa: E731
    elapsed = (last["updated_at"] - first["updated_at"]) - (last["eval_seconds"] - first["eval_seconds"])
    return (samples(last) - samples(first)) / elapsed


def poller(port: int, run_id: str, interval: float, stop: threading.Event, latencies: list, errors: list,
           sizes: dict) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    next_row, runs_etag, first = 0, None, True

    def get(path: str, headers=None) -> tuple[int, bytes, http.client.HTTPResponse]:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read(), response

    while not stop.is_set():
        started = time.perf_counter()
        try:
            code, status, _ = get("/training_status")
            code_m, metrics, _ = get(f"/runs/{run_id}/metrics?since={next_row}")
            code_r, _, runs = get("/runs", {"If-None-Match": runs_etag} if runs_etag else None)
            if code != 200 or code_m != 200 or code_r not in (200, 304):
                errors.append((code, code_m, code_r))
            else:
                latencies.append(time.perf_counter() - started)
                runs_etag = runs.getheader("ETag") or runs_etag
                next_row = json.loads(metrics)["next"]
                sizes["status"].append(len(status))
                if not first:  # the first poll catches up on the run so far; later ones are the steady state
                    sizes["metrics"].append(len(metrics))
                first = False
        except (OSError, http.client.HTTPException) as exc:
            errors.append(repr(exc))
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        stop.wait(interval)
    conn.close()


def main() -> None:
    from helpers import free_port

    p = parser(__doc__)
    p.add_argument("--pollers", type=int, default=50)
    p.add_argument("--interval", type=float, default=1.0, help="seconds each poller waits between requests "
                                                              "(the page waits 3 s)")
    p.add_argument("--window", type=float, default=10.0, help="seconds per measurement window")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen([sys.executable, str(ROOT / "server.py"), "--port", str(port), "--data-dir",
                                   args.data_dir, "--runs-dir", tmp, "--threads", "16"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(300):
                try:
                    get_status(port)
                    break
                except OSError:
                    time.sleep(0.1)
            conn = http.client.HTTPConnection("127.0.0.1", port)
            conn.request("POST", "/start_training", json.dumps({"epochs": 100}), {"Content-Type": "application/json"})
            response = conn.getresponse()
            assert response.status == 202
            run_id = json.loads(response.read())["run_id"]
            while get_status(port)["state"] != "running" or not get_status(port)["models"][0]["samples"]:
                time.sleep(0.2)
            time.sleep(3)  # warm-up
            quiet_before = training_rate(port, args.window)
            stop, latencies, errors, sizes = threading.Event(), [], [], {"status": [], "metrics": []}
            threads = [threading.Thread(target=poller, args=(port, run_id, args.interval, stop, latencies, errors, sizes))
                       for _ in range(args.pollers)]
            for t in threads:
                t.start()
            time.sleep(1)
            loaded = training_rate(port, args.window)
            stop.set()
            for t in threads:
                t.join()
            quiet_after = training_rate(port, args.window)
        finally:
            server.terminate()
            server.wait(10)
    quiet = (quiet_before + quiet_after) / 2
    q = statistics.quantiles(latencies, n=100) if len(latencies) >= 2 else [float("nan")] * 99
    result = {"pollers": args.pollers, "interval_seconds": args.interval, "requests": len(latencies) + len(errors),
              "errors": len(errors), "p50_ms": 1000 * q[49], "p99_ms": 1000 * q[98],
              "images_per_sec_quiet": quiet, "images_per_sec_polled": loaded, "slowdown": 1 - loaded / quiet,
              "quiet_windows": [quiet_before, quiet_after],
              "status_bytes_max": max(sizes["status"], default=0),
              "metrics_bytes_max": max(sizes["metrics"], default=0),
              "metrics_bytes_mean": statistics.mean(sizes["metrics"]) if sizes["metrics"] else 0}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.pollers} pollers, one page poll (status, new metrics rows, run list) each every {args.interval:g} s, "
          f"{args.window:g} s windows")
    print(f"  polls {result['requests']}, errors {result['errors']}, "
          f"latency of a poll p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms")
    print(f"  answers: status at most {result['status_bytes_max']} bytes; metrics at most "
          f"{result['metrics_bytes_max']} bytes, {result['metrics_bytes_mean']:.0f} on average")
    print(f"  training: {quiet:.0f} images/s without pollers ({quiet_before:.0f} before, {quiet_after:.0f} after), "
          f"{loaded:.0f} with them: slowed by {100 * result['slowdown']:+.1f}%")


if __name__ == "__main__":
    main()
