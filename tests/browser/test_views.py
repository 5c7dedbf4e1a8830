"""The page as views (Train, Runs, Sweeps, Explore), each at its own address, in real Chromium:
what a person works on is on screen without scrolling, compared runs are all named, the run
table is readable at 1280 px, and no view jumps while a run starts by itself."""
import json
import re

import pytest

from helpers import POLL_WAIT_MS, axe_violations, expect, fake_run, show_view, wait_for

VIEWS = ("train", "runs", "sweeps", "explore")
TINY_RUN = {"epochs": 2, "batch_size": 32, "precision": "fp32", "learning_rate": 0.01,
            "models": [{"kernels": [4, 8, 8, 8]}, {"kernels": [2, 4, 4, 4]}]}
CLS_OBSERVER = """
window.__cls = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) if (!entry.hadRecentInput) window.__cls += entry.value;
}).observe({ type: "layout-shift", buffered: true });
"""


def finish(server, body=TINY_RUN) -> str:
    code, answer = server.request("POST", "/start_training", body)
    assert code == 202, answer
    wait_for(lambda: server.request("GET", f"/runs/{answer['run_id']}")[1]["state"] == "finished", timeout=120,
             interval=0.2, message="the run to end")
    return answer["run_id"]


def in_viewport(page, selector: str) -> bool:
    """The element's box lies wholly inside the window (under the header that stays in place)."""
    return page.evaluate("""(selector) => {
        const box = document.querySelector(selector).getBoundingClientRect();
        const header = document.querySelector("header").getBoundingClientRect().bottom;
        return box.width > 0 && box.top >= header - 1 && box.bottom <= window.innerHeight + 1
            && box.left >= 0 && box.right <= window.innerWidth + 1; }""", selector)


def test_each_view_has_an_address_and_a_run_that_starts_by_itself_changes_no_view(page, server_factory, tiny_mnist):
    server = server_factory(tiny_mnist)
    page.add_init_script(CLS_OBSERVER)
    page.goto(server.url)
    links = page.locator("header nav a:visible")  # (the teacher of a class has a fifth: Class)
    expect(links).to_have_count(4)
    assert [links.nth(i).inner_text() for i in range(4)] == ["Train", "Runs", "Sweeps", "Explore"]
    for name in VIEWS:  # a header link each; only its view shows, and the address names it
        show_view(page, name)
        expect(page).to_have_url(re.compile(rf"/\?view={name}$"))
        for other in VIEWS:
            if other != name:
                expect(page.locator(f"main [data-view={other}]")).to_be_hidden()
        expect(page.locator(f"a[data-nav={name}]")).to_have_attribute("aria-current", "page")
        assert page.evaluate("() => document.querySelector('header').getBoundingClientRect().top") == 0
    page.go_back()
    expect(page.locator("main [data-view=sweeps]")).to_be_visible()
    page.go_forward()
    expect(page.locator("main [data-view=explore]")).to_be_visible()
    for address, view in (("/?runs=a,b", "runs"), ("/?sweep=nope", "sweeps"), ("/?sort=-best", "runs"),
                          ("/?run=nope", "train"), ("/?view=explore", "explore"), ("/?view=bogus", "train")):
        page.goto(server.url + address)  # the addresses of the one-page days still open what they named
        expect(page.locator(f"main [data-view={view}]")).to_be_visible()
    # in Runs, scrolled nowhere: a run started elsewhere changes no view; the Train link's badge says it
    page.goto(server.url + "/?view=runs")
    expect(page.locator("#runs-rows")).to_contain_text("no runs yet", timeout=POLL_WAIT_MS)
    page.evaluate("() => { window.__cls = 0; }")
    code, body = server.request("POST", "/start_training", dict(TINY_RUN, epochs=50))
    assert code == 202
    expect(page.locator("#train-badge")).to_have_text("1 training", timeout=POLL_WAIT_MS)
    expect(page.locator(f"#runs-rows tr[data-run-id='{body['run_id']}']")).to_be_visible()
    expect(page.locator("main [data-view=runs]")).to_be_visible()
    assert "view=runs" in page.url
    assert page.evaluate("() => window.__cls") < 0.1
    server.request("POST", "/stop_training", {})
    expect(page.locator("#train-badge")).to_have_text("", timeout=POLL_WAIT_MS)
    # the browser logs the 404s of the run and the sweep that do not exist; the page's own code logs nothing
    assert [e for e in page.console_errors if not e.startswith("Failed to load resource")] == []


def test_after_start_the_status_and_a_live_chart_are_on_screen_without_scrolling(page, server_factory, tiny_mnist):
    server = server_factory(tiny_mnist)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(server.url)
    expect(page.locator("#model-rows tr")).to_have_count(2)
    page.fill("#epochs", "40")
    page.locator("#model-rows tr").nth(0).locator(".kernel").nth(0).fill("4")
    page.click("#start")
    expect(page.locator("#setup-fold")).not_to_have_attribute("open", "")  # the form folds while it trains
    wait_for(lambda: page.locator("[data-chart] .u-over").count() > 0, timeout=15, message="a live chart")
    where = page.evaluate("""() => ['#status-panel', '#charts', '[data-chart] .u-over', '#run-line', '#setup']
        .map((s) => s + ' ' + JSON.stringify(document.querySelector(s).getBoundingClientRect()))""")
    assert in_viewport(page, "[data-chart] .u-over"), where
    assert in_viewport(page, "#run-line")
    assert page.evaluate("() => window.scrollY") == 0
    page.click("#setup-fold > summary")  # it opens again for the next run's settings
    expect(page.locator("#model-rows tr").first).to_be_visible()
    server.request("POST", "/stop_training", {})
    assert page.console_errors == []


def test_a_drawing_and_every_models_answer_are_on_screen_together(page, server_factory, tiny_mnist):
    server = server_factory(tiny_mnist)
    run_id = finish(server, dict(TINY_RUN, epochs=1, models=[{"kernels": [2, 2, 2, 2]}] * 4))
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(server.url + "/?view=explore")
    expect(page.locator("#explore-run")).to_have_value(run_id, timeout=POLL_WAIT_MS)  # the newest with a checkpoint
    expect(page.locator("#explore-run-note")).to_contain_text("the newest with a checkpoint")
    box = page.locator("#canvas").bounding_box()
    page.mouse.move(box["x"] + 140, box["y"] + 50)
    page.mouse.down()
    page.mouse.move(box["x"] + 140, box["y"] + 230, steps=6)
    page.mouse.up()
    answers = page.locator("[data-answer]")
    expect(answers).to_have_count(4, timeout=POLL_WAIT_MS)
    assert [answers.nth(i).get_attribute("data-answer") for i in range(4)] == [f"Model {i}" for i in range(1, 5)]
    assert in_viewport(page, "#canvas")
    for i in range(4):
        assert in_viewport(page, f"[data-answer='Model {i + 1}']"), f"Model {i + 1}'s answer is off screen"
    assert page.evaluate("() => window.scrollY") == 0
    assert page.console_errors == []


def fake_compared_runs(store, count: int) -> list[str]:
    """``count`` finished one-model runs, each with a learning rate of its own and curves; the last
    diverges (its loss climbs past 100), the fourth is the best."""
    from mnist_monitor.runstore.files import append_jsonl

    ids = []
    for i in range(count):
        run_id = fake_run(store, images=False)
        run = store.run(run_id)
        status_path = run.path / "status.json"
        status = json.loads(status_path.read_text())
        best = 90.0 + i % 5 + (5 if i == 3 else 0)
        status["models"][0].update(learning_rate=0.001 * (i + 1), best_test_accuracy=best, test_accuracy=best)
        status_path.write_text(json.dumps(status))
        rows = []
        for step in range(1, 9):
            loss = 150.0 * step if i == count - 1 else 2.3 / step
            rows.append({"kind": "train", "model": 0, "epoch": step / 4, "step": step, "time": float(step),
                         "loss": loss, "accuracy": 50.0 + step, "lr": 0.01, "samples_per_sec": 1000.0})
        rows.append({"kind": "eval", "model": 0, "epoch": 2.0, "step": 8, "time": 8.0, "val_accuracy": best,
                     "test_accuracy": best})
        append_jsonl(run.path / "metrics.jsonl", rows)
        ids.append(run_id)
    return ids


def test_a_comparison_of_twelve_runs_names_every_run_marks_the_best_and_clips_a_diverging_loss(
        page, server_factory, tiny_mnist, tmp_path):
    from mnist_monitor.runstore import RunStore

    runs_dir = tmp_path / "compare-runs"
    ids = fake_compared_runs(RunStore(runs_dir), 12)
    server = server_factory(tiny_mnist, runs_dir)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{server.url}/?view=runs&runs={','.join(ids)}")
    legend = page.locator("#chart-loss .u-legend .u-series:not(:first-child):not(.raw-series)")
    wait_for(lambda: legend.count() == 12, timeout=POLL_WAIT_MS / 1000, message="12 legend entries")
    clipped = page.evaluate("""() => [...document.querySelectorAll('#chart-loss .u-legend .u-series')].filter((e) => {
        const box = e.getBoundingClientRect();
        for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) {
          const style = getComputedStyle(p);
          if (style.overflowY === 'visible' && style.overflowX === 'visible') continue;
          const outer = p.getBoundingClientRect();
          if (box.top < outer.top - 1 || box.bottom > outer.bottom + 1 || box.right > outer.right + 1) return true;
        }
        return false; }).length""")
    assert clipped == 0
    texts = legend.all_text_contents()
    for i in range(12):
        assert any(f"lr {0.001 * (i + 1):.3g} " in t for t in texts), (i, texts)
    best = [t for t in texts if "★ best" in t]
    assert len(best) == 1 and "lr 0.004 " in best[0], best  # the best run is marked on the charts
    ticks = [float(t) for t in page.locator("#chart-loss .uplot").get_attribute("data-y-ticks").split()]
    assert max(ticks) <= 2.5, ticks  # one diverging run does not flatten the others' lines
    expect(page.locator("#loss-clip")).to_contain_text(re.compile(r"lr 0\.012 · Model 1 goes up to \d{3,}"))
    page.check("#log-loss")  # on a log scale the axis shows every line whole
    wait_for(lambda: max(float(t) for t in page.locator("#chart-loss .uplot").get_attribute("data-y-ticks").split()) >= 1000,
             timeout=5, message="a log axis up to the diverging run")
    expect(page.locator("#loss-clip")).to_be_hidden()
    # the pictures are not under the comparison: a run's own pictures say which run they are of
    expect(page.locator("#predictions")).to_be_hidden()
    page.locator(f"#runs-rows tr[data-run-id='{ids[3]}'] button", has_text="open").click()
    expect(page.locator("#pictures-run")).to_contain_text(f"Pictures of run {ids[3]}")
    assert page.console_errors == []


def test_the_run_table_at_1280_px_shows_every_column_whole_and_a_note_uncovered(page, server_factory, tiny_mnist,
                                                                             tmp_path):
    from mnist_monitor.runstore import RunStore

    runs_dir = tmp_path / "table-runs"
    store = RunStore(runs_dir)
    ids = [fake_run(store, models=2, images=False) for _ in range(3)]
    (runs_dir / ids[0] / "run.json").write_text(json.dumps({"sweep": {"sweep_id": "20261207-101010-abcdef",
                                                                       "trial": 11}}))
    (runs_dir / ids[1] / "meta.json").write_text(json.dumps({"starred": False, "note": "lr too high, try 0.003"}))
    server = server_factory(tiny_mnist, runs_dir)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(server.url + "/?view=runs")
    note = page.locator(f"#runs-rows tr[data-run-id='{ids[1]}'] td[data-column=note]")
    expect(note).to_have_text("lr too high, try 0.003", timeout=POLL_WAIT_MS)
    covered = page.evaluate("""(cell) => { const box = cell.getBoundingClientRect();
        const hit = document.elementFromPoint(box.left + 4, box.top + box.height / 2);
        return !(hit === cell || cell.contains(hit)); }""", note.element_handle())
    assert not covered, "the note is covered"
    assert page.evaluate("() => { const s = document.querySelector('#history .table-scroll'); "
                         "return s.scrollWidth <= s.clientWidth; }"), "the run table scrolls sideways at 1280 px"
    cut = page.evaluate("""() => [...document.querySelectorAll('#runs-head th')]
        .filter((th) => th.scrollWidth > th.clientWidth + 1 || th.querySelector('button')
                        && th.querySelector('button').scrollWidth > th.querySelector('button').clientWidth + 1)
        .map((th) => th.textContent)""")
    assert cut == []
    trial = page.locator(f"#runs-rows tr[data-run-id='{ids[0]}'] td[data-column=sweep] a")
    expect(trial).to_have_text("trial 12 of 20261207-101010-abcdef")  # not "trial 1": the number and its sweep
    assert trial.get_attribute("href") == "/?view=sweeps&sweep=20261207-101010-abcdef"
    assert page.console_errors == []


@pytest.mark.slow
@pytest.mark.parametrize("width, height", [(1280, 900), (390, 844)])
def test_every_view_passes_axe_and_stays_still_while_a_run_starts_by_itself(page, server_factory, tiny_mnist,
                                                                           width, height):
    server = server_factory(tiny_mnist)
    finish(server)  # a finished two-model run: every view has something to show
    page.set_viewport_size({"width": width, "height": height})
    page.add_init_script(CLS_OBSERVER)
    for view in VIEWS:
        page.goto(f"{server.url}/?view={view}")
        expect(page.locator("#train-badge")).to_have_text("", timeout=POLL_WAIT_MS)
        page.wait_for_timeout(3500)  # a poll: the view filled in
        assert page.evaluate("() => window.__cls") < 0.1, view
        page.evaluate("() => { window.__cls = 0; }")
        code, body = server.request("POST", "/start_training", dict(TINY_RUN, epochs=100))  # not from this page
        assert code == 202
        expect(page.locator("#train-badge")).to_have_text("1 training", timeout=POLL_WAIT_MS)
        if view == "runs":  # the new run waits behind a button: inserted on top, it would push every row down
            expect(page.locator("#show-new-runs")).to_have_text(re.compile(r"Show 1 new run \((starting|running)\)"))
            expect(page.locator(f"#runs-rows tr[data-run-id='{body['run_id']}']")).to_have_count(0)
        wait_for(lambda: server.request("GET", f"/runs/{body['run_id']}")[1]["models"][0]["epoch"] >= 2, timeout=60,
                 interval=0.2, message="its second epoch (the first epoch's pictures shown)")
        server.request("POST", "/stop_training", {})
        expect(page.locator("#train-badge")).to_have_text("", timeout=POLL_WAIT_MS)
        page.wait_for_timeout(500)
        cls = page.evaluate("() => window.__cls")
        assert cls < 0.1, (view, cls)
        assert axe_violations(page) == [], view
        if view == "runs":
            page.click("#show-new-runs")
            expect(page.locator(f"#runs-rows tr[data-run-id='{body['run_id']}']")).to_be_visible()
            expect(page.locator("#show-new-runs")).to_be_hidden()
        assert page.evaluate("() => document.documentElement.scrollWidth") <= width, view
    assert page.console_errors == []
