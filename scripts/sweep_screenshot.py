"""Regenerate images/sweep.png from a real sweep: python scripts/sweep_screenshot.py [--data-dir DIR]

Starts the server on a free port, runs the README's search (12 trials over learning rate
1e-4..0.3 on a log scale and seed 0-2, 2 epochs of 3,000 training images, median pruning) and
screenshots the sweep view.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

SEARCH = {"base": {"epochs": 2, "train_samples": 3000, "models": [{"kernels": [16, 32, 32, 32]}]},
          "search": {"learning_rate": {"low": 0.0001, "high": 0.3, "log": True}, "seed": [0, 1, 2]},
          "trials": 12, "prune": "median", "name": "find a learning rate"}


def main() -> None:
    from playwright.sync_api import expect, sync_playwright

    from helpers import ServerProcess, wait_for

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data-dir", default=os.environ.get("MNIST_DATA_DIR", str(ROOT.parent / "shared" / "mnist")))
    p.add_argument("--out", default=str(ROOT / "images" / "sweep.png"))
    p.add_argument("--chromium", default="/usr/bin/chromium")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(args.data_dir), Path(tmp) / "runs", Path(tmp) / "server.log").start()
        try:
            code, made = server.request("POST", "/sweeps", SEARCH)
            assert code == 202, made
            sweep_id = made["sweep_id"]
            wait_for(lambda: server.request("GET", f"/sweeps/{sweep_id}")[1]["state"] != "running", timeout=1200,
                     interval=2, message="the sweep to end")
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=args.chromium, args=[
                    "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(f"{server.url}/?sweep={sweep_id}")
                expect(page.locator(".parcoords path[data-run-id]")).to_have_count(12, timeout=30_000)
                page.locator("#sweeps").screenshot(path=args.out)
                browser.close()
        finally:
            server.stop()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
