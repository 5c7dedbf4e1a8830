"""Polling under load: N concurrent pollers on /training_status during a real training run.

Starts ``python server.py`` on a free port with a run of Model 1 (batch 512), then measures, in
the same run: training images/s without pollers, with N pollers (each GET /training_status, then
waits --interval seconds), and without pollers again. Prints p50/p99 latency, errors, and the
training speed with pollers against the mean of the two quiet windows.

    python benchmarks/load.py [--pollers 50] [--interval 1.0] [--window 10] [--json]
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
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


def poller(port: int, interval: float, stop: threading.Event, latencies: list, errors: list) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    while not stop.is_set():
        started = time.perf_counter()
        try:
            conn.request("GET", "/training_status")
            response = conn.getresponse()
            body = response.read()
            if response.status != 200 or not body.startswith(b"{"):
                errors.append(response.status)
            else:
                latencies.append(time.perf_counter() - started)
        except (OSError, http.client.HTTPException) as exc:
            errors.append(repr(exc))
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        stop.wait(interval)
    conn.close()


def main() -> None:
    from conftest import free_port

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pollers", type=int, default=50)
    p.add_argument("--interval", type=float, default=1.0, help="seconds each poller waits between requests "
                                                              "(the page waits 3 s)")
    p.add_argument("--window", type=float, default=10.0, help="seconds per measurement window")
    p.add_argument("--json", action="store_true")
    p.add_argument("--data-dir", default=os.environ.get("MNIST_DATA_DIR", str(ROOT.parent / "shared" / "mnist")))
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
            conn.request("POST", "/start_training", json.dumps({"models": [{"kernels": [32, 64, 64, 64]}],
                                                                "epochs": 100}),
                         {"Content-Type": "application/json"})
            assert conn.getresponse().status == 202
            while get_status(port)["state"] != "running" or not get_status(port)["models"][0]["samples"]:
                time.sleep(0.2)
            time.sleep(3)  # warm-up
            quiet_before = training_rate(port, args.window)
            stop, latencies, errors = threading.Event(), [], []
            threads = [threading.Thread(target=poller, args=(port, args.interval, stop, latencies, errors))
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
              "quiet_windows": [quiet_before, quiet_after]}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.pollers} pollers, one GET /training_status each every {args.interval:g} s, {args.window:g} s windows")
    print(f"  requests {result['requests']}, errors {result['errors']}, "
          f"latency p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms")
    print(f"  training: {quiet:.0f} images/s without pollers ({quiet_before:.0f} before, {quiet_after:.0f} after), "
          f"{loaded:.0f} with them: slowed by {100 * result['slowdown']:+.1f}%")


if __name__ == "__main__":
    main()
