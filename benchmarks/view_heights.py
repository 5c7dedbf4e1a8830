"""How tall each view of the page is, at 1280 x 900 and on a 390 x 844 phone, with a finished run
of the two default models (3,000 training images, 2 epochs) and a test digit read in Explore.

Starts ``python server.py`` on a free port with an empty runs folder, trains that run, then opens
each view (Train, Runs, Sweeps, Explore) in Chromium and prints its height in pixels, the same
figure for the single page before the views (7,715 px at 1280), and how many screens each is.

    python benchmarks/view_heights.py [--data-dir DIR]
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from bench import ROOT, parser  # noqa: E402  (puts the project on the import path)
sys.path.insert(0, str(ROOT / "tests"))

from helpers import ServerProcess, wait_for  # noqa: E402

SIZES = ((1280, 900), (390, 844))
VIEWS = ("train", "runs", "sweeps", "explore")
RUN = {"epochs": 2, "train_samples": 3000}


def main() -> None:
    args = parser(__doc__).parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(args.data_dir), Path(tmp) / "runs", Path(tmp) / "server.log", (), False).start()
        try:
            code, body = server.request("POST", "/start_training", RUN)
            assert code == 202, body
            wait_for(lambda: server.request("GET", "/training_status")[1]["state"] == "finished", timeout=600,
                     interval=0.5, message="the run to end")
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
                print(f"{'view':<8} " + " ".join(f"{w}x{h:<12}" for w, h in SIZES))
                for view in VIEWS:
                    cells = []
                    for width, height in SIZES:
                        page = browser.new_page(viewport={"width": width, "height": height})
                        page.goto(f"{server.url}/?view={view}")
                        page.wait_for_timeout(4000)  # a poll and its pictures
                        if view == "explore":
                            page.click("#predict-test-digit")
                            page.wait_for_selector("[data-answer]")
                            page.wait_for_timeout(1000)
                        tall = page.evaluate("() => document.documentElement.scrollHeight")
                        cells.append(f"{tall:>6} px ({tall / height:.1f} screens)")
                        page.close()
                    print(f"{view:<8} " + "  ".join(cells))
                browser.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
