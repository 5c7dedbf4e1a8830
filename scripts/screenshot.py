"""Regenerate the README's screenshots from real training: python scripts/screenshot.py [--view run|sweep|class]

Starts the server on a free port. ``run`` (images/screenshot.png and images/explore.png): trains
both default models for a short run through the page (3,000 training images, 3 epochs),
screenshots the Train view as the window shows it at 1280 x 900 (the status and the curves), then
draws a 7 on the canvas of the Explore view and screenshots it. ``sweep`` (images/sweep.png): runs the README's search (12
trials over learning rate 1e-4..0.3 on a log scale and seed 0-2, 2 epochs of 3,000 training
images, median pruning) and screenshots the sweep view, then the New sweep form set for that search
(images/sweep-new.png). ``class`` (images/class.png, in docs/class.md):
a class (``--class``) that three students join, each training a short run of their own, and the
teacher's Class view.
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
    box = page.locator("#canvas").bounding_box()
    x, y, w, h = box["x"], box["y"], box["width"], box["height"]
    page.mouse.move(x + 0.25 * w, y + 0.2 * h)
    page.mouse.down()
    for fx, fy in [(0.5, 0.2), (0.75, 0.2), (0.62, 0.5), (0.5, 0.85)]:
        page.mouse.move(x + fx * w, y + fy * h, steps=8)
    page.mouse.up()


SEARCH = {"base": {"epochs": 2, "train_samples": 3000, "models": [{"kernels": [16, 32, 32, 32]}]},
          "search": {"learning_rate": {"low": 0.0001, "high": 0.3, "log": True}, "seed": [0, 1, 2]},
          "trials": 12, "prune": "median", "name": "find a learning rate"}


def shoot_run(server, page, out: str) -> None:
    from playwright.sync_api import expect

    page.goto(server.url)
    page.fill("#train_samples", "3000")
    page.click("#start")
    expect(page.locator("#state")).to_have_text("finished", timeout=300_000)
    page.wait_for_selector("#img-confusion-1 img", timeout=30_000)
    page.wait_for_timeout(3500)  # one more poll: the final curves
    page.screenshot(path=out)  # the window as the user sees it after Start: the form folded, status, curves
    page.locator("a[data-nav=explore]").click()
    draw_seven(page)
    page.wait_for_selector("[data-answer]", timeout=30_000)
    page.wait_for_timeout(500)
    page.screenshot(path=str(Path(out).with_name("explore.png")))


def shoot_sweep(server, page, out: str) -> None:
    from playwright.sync_api import expect

    from helpers import wait_for

    code, made = server.request("POST", "/sweeps", SEARCH)
    assert code == 202, made
    sweep_id = made["sweep_id"]
    wait_for(lambda: server.request("GET", f"/sweeps/{sweep_id}")[1]["state"] != "running", timeout=1200,
             interval=2, message="the sweep to end")
    page.goto(f"{server.url}/?view=sweeps&sweep={sweep_id}")
    expect(page.locator(".parcoords path[data-run-id]")).to_have_count(SEARCH["trials"], timeout=30_000)
    page.evaluate("document.querySelector('header.top').style.position = 'static'")  # not over the panels shot whole
    page.locator("#sweeps").screenshot(path=out)
    page.locator("#sb-rows tr").first.wait_for()  # the New sweep form, as that search is made in it
    page.fill("#sb-name", SEARCH["name"])
    page.fill("#sb-trials", str(SEARCH["trials"]))
    page.get_by_label("learning rate: highest").fill("0.3")
    page.locator('#sb-rows tr[data-key="seed"] select').select_option("list")
    page.get_by_label("seed: values, separated by commas").fill("0, 1, 2")
    page.locator("#sweep-new").screenshot(path=str(Path(out).with_name("sweep-new.png")))


CLASS_CODE, TEACHER_TOKEN = "K7QM-4TXA", "screenshot-teacher-token"


def shoot_class(server, page, out: str) -> None:
    from playwright.sync_api import expect

    from helpers import wait_for

    runs = []
    for name, lr in (("Ana", 0.004), ("Ben", 0.02), ("Chloe", 0.001)):
        code, student = server.request("POST", "/class/join", {"code": CLASS_CODE, "name": name})
        assert code == 201, student
        me = {"Authorization": f"Bearer {student['token']}"}
        code, run = server.request("POST", "/start_training", {"epochs": 1, "train_samples": 2000, "queue": True,
                                                                "models": [{"kernels": [16, 32, 32, 32],
                                                                            "learning_rate": lr}]}, me)
        assert code == 202, run
        runs.append((run["run_id"], me))
    for run_id, me in runs:
        wait_for(lambda: server.request("GET", f"/runs/{run_id}", headers=me)[1]["state"] == "finished",
                 timeout=600, interval=1, message="the students' runs to end")
    page.goto(f"{server.url}/?token={TEACHER_TOKEN}&view=class")
    expect(page.locator("#class-rows tr")).to_have_count(3)
    page.wait_for_timeout(500)
    page.screenshot(path=out)


def main() -> None:
    from playwright.sync_api import sync_playwright

    from helpers import ServerProcess

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data-dir", default=os.environ.get("MNIST_DATA_DIR", str(ROOT.parent / "shared" / "mnist")))
    p.add_argument("--view", choices=("run", "sweep", "class"), default="run")
    p.add_argument("--out", help="default: images/screenshot.png (run), images/sweep.png (sweep), images/class.png")
    p.add_argument("--chromium", default="/usr/bin/chromium")
    args = p.parse_args()
    out = args.out or str(ROOT / "images" / {"run": "screenshot.png", "sweep": "sweep.png", "class": "class.png"}[args.view])
    extra = ["--class", "--class-code", CLASS_CODE, "--token", TEACHER_TOKEN] if args.view == "class" else []
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(args.data_dir), Path(tmp) / "runs", Path(tmp) / "server.log", extra).start()
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=args.chromium, args=[
                    "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                {"run": shoot_run, "sweep": shoot_sweep, "class": shoot_class}[args.view](server, page, out)
                browser.close()
        finally:
            server.stop()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
