"""Regenerate images/screenshot.png from a real run: python scripts/screenshot.py [--data-dir DIR]

Starts the server on a free port, trains both default models for a short run through the page
(3,000 training images, 3 epochs), draws a 7 on the canvas, and screenshots the top of the page.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def draw_seven(page) -> None:
    page.locator("#canvas").scroll_into_view_if_needed()
    box = page.locator("#canvas").bounding_box()
    x, y, w, h = box["x"], box["y"], box["width"], box["height"]
    page.mouse.move(x + 0.25 * w, y + 0.2 * h)
    page.mouse.down()
    for fx, fy in [(0.5, 0.2), (0.75, 0.2), (0.62, 0.5), (0.5, 0.85)]:
        page.mouse.move(x + fx * w, y + fy * h, steps=8)
    page.mouse.up()


def main() -> None:
    from playwright.sync_api import expect, sync_playwright

    from conftest import ServerProcess

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data-dir", default=os.environ.get("MNIST_DATA_DIR", str(ROOT.parent / "shared" / "mnist")))
    p.add_argument("--out", default=str(ROOT / "images" / "screenshot.png"))
    p.add_argument("--chromium", default="/usr/bin/chromium")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(args.data_dir), Path(tmp) / "runs", Path(tmp) / "server.log").start()
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=args.chromium, args=[
                    "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
                page = browser.new_page(viewport={"width": 1320, "height": 900})
                page.goto(server.url)
                page.fill("#train_samples", "3000")
                page.click("#start")
                expect(page.locator("#state")).to_have_text("finished", timeout=300_000)
                page.wait_for_selector("#img-confusion-1 img", timeout=30_000)
                page.wait_for_timeout(3500)  # one more poll: the final curves
                draw_seven(page)
                page.wait_for_selector("#prediction-bars .bars", timeout=30_000)
                top = page.evaluate("() => document.getElementById('predictions').getBoundingClientRect().top + scrollY")
                # the form, the status, the curves and the first pictures: the page's top, as a user first sees it
                page.screenshot(path=args.out, full_page=True,
                                clip={"x": 0, "y": 0, "width": 1320, "height": top + 700})
                browser.close()
        finally:
            server.stop()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
