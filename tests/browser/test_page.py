"""The page keeps up: recovery, a stable layout, errors, memory, phones, screen readers (Chromium)."""
import io
import os
import re
import shutil
import zipfile

import pytest
import requests

from helpers import POLL_WAIT_MS, axe_violations, expect, show_view, wait_for

TINY_RUN = {"epochs": 2, "batch_size": 32, "precision": "fp32", "learning_rate": 0.01,
            "models": [{"kernels": [4, 8, 8, 8]}, {"kernels": [2, 4, 4, 4]}]}
BLUE, GREEN = "rgb(31, 119, 180)", "rgb(44, 160, 44)"  # Model 1 and Model 3 colours


def finish(server, body=TINY_RUN) -> str:
    """Start a run and wait for it to finish; a run that fails or stops fails the test, with why."""
    code, answer = server.request("POST", "/start_training", body)
    assert code == 202, answer
    status = wait_for(lambda: (s := server.request("GET", "/training_status")[1])["state"] in ("finished", "failed",
                                                                                              "stopped") and s,
                      timeout=120, interval=0.2, message="the run to end")
    assert status["state"] == "finished", status["error"]
    return answer["run_id"]


def own_errors(page) -> list[str]:
    """Console errors of the page's own code (the browser also logs refused or failed requests)."""
    return [e for e in page.console_errors if not e.startswith("Failed to load resource")]


# ---------------------------------------------------------------- 1. recovers by itself

def test_the_page_recovers_by_itself_after_a_server_restart(page, server_factory, tiny_mnist):
    server = server_factory(tiny_mnist)
    finish(server)
    page.goto(server.url)
    expect(page.locator("#state")).to_have_text("finished", timeout=POLL_WAIT_MS)
    server.kill()
    expect(page.locator("#connection")).to_be_visible(timeout=POLL_WAIT_MS)
    expect(page.locator("#connection")).to_contain_text("not reachable")
    page.click("#start")  # pressing Start while the server is down says so, and throws nothing
    expect(page.locator("#form-error")).to_contain_text("not reachable")
    expect(page.locator("#start")).to_be_enabled()
    server.start()  # the same port
    expect(page.locator("#connection")).to_be_hidden(timeout=4_500)  # within one poll (3 s) and its answer
    expect(page.locator("#state")).to_have_text("finished")
    expect(page.locator("#start")).to_be_enabled()
    assert own_errors(page) == [], page.console_errors  # no uncaught error


def test_while_the_server_is_down_the_status_says_last_known_and_stop_is_disabled(page, server_factory, tiny_mnist):
    server = server_factory(tiny_mnist)
    code, answer = server.request("POST", "/start_training", dict(TINY_RUN, epochs=100))
    assert code == 202
    eta = {"seconds": None, "away": None}  # what the answers say of the time left and of Ray (until unrouted)

    def with_eta(route):
        status = route.fetch().json()
        for part in [status, *status["models"]]:
            part["eta_seconds"] = eta["seconds"]
        status["workers_unavailable"] = eta["away"]
        route.fulfill(json=status)

    page.route("**/training_status*", with_eta)
    page.goto(server.url)
    expect(page.locator("#state")).to_have_text("running", timeout=POLL_WAIT_MS)
    expect(page.locator("#stop")).to_be_enabled()
    expect(page.locator("#run-meta")).to_contain_text("time left: estimating")  # no estimate yet: said so
    expect(page.locator('#model-cards dd[data-field="Time left"]').first).to_have_text("estimating")
    eta["seconds"] = 75.4
    expect(page.locator("#run-meta")).to_contain_text("time left ≈ 1 min 15 s", timeout=POLL_WAIT_MS)
    expect(page.locator('#model-cards dd[data-field="Time left"]').first).to_have_text("1 min 15 s")
    eta["away"] = "the local Ray instance's node died (its raylet is gone)"  # as a --workers server says it
    expect(page.locator("#start-note")).to_have_text(f"Ray's workers are unavailable ({eta['away']}): Queue puts "
                                                     "this run in line, and it starts when they are back.",
                                                     timeout=POLL_WAIT_MS)
    expect(page.locator("#start")).to_be_disabled()
    eta["away"] = None
    expect(page.locator("#start-note")).to_have_text("A run is training: Queue puts this one in line after it.",
                                                     timeout=POLL_WAIT_MS)
    page.unroute("**/training_status*")
    server.kill()
    expect(page.locator("#run-meta")).to_contain_text("the server is not reachable", timeout=POLL_WAIT_MS)
    expect(page.locator("#run-meta")).to_contain_text(re.compile(r"^last known \d+ s ago"))
    expect(page.locator("#run-meta")).not_to_contain_text("time left")
    expect(page.locator('#model-cards dd[data-field="Time left"]').first).to_have_text("–")  # no frozen estimate
    expect(page.locator("#stop")).to_be_disabled()
    expect(page).to_have_title(re.compile("^server unreachable"))
    first = page.locator("#run-meta").text_content()
    expect(page.locator("#run-meta")).not_to_have_text(first, timeout=POLL_WAIT_MS)  # the age goes on
    server.start()  # the same port: the run this server trained is shown as cut off
    expect(page.locator("#state")).to_have_text("interrupted", timeout=POLL_WAIT_MS)
    expect(page.locator("#run-meta")).not_to_contain_text("last known")
    expect(page).not_to_have_title(re.compile("unreachable"))
    expect(page.locator("#resume")).to_be_enabled()
    assert own_errors(page) == []


# ---------------------------------------------------------------- 2. stable layout

CLS_OBSERVER = """
window.__cls = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) if (!entry.hadRecentInput) window.__cls += entry.value;
}).observe({ type: "layout-shift", buffered: true });
"""


def test_layout_does_not_jump_during_a_run_and_the_charts_stay_put(page, server_factory, tiny_mnist):
    server = server_factory(tiny_mnist)
    finish(server)  # an earlier run whose pictures the new one replaces
    page.add_init_script(CLS_OBSERVER)
    page.goto(server.url)
    page.wait_for_selector("#img-samples-0 img", timeout=POLL_WAIT_MS)
    page.wait_for_timeout(500)
    assert page.evaluate("() => window.__cls") < 0.1  # the page filling in at load moves nothing much either
    chart = page.locator("[data-chart=eval]")  # the second row of charts: under the status and the first row
    canvas_y = chart.bounding_box()["y"]
    page.evaluate("() => { window.__cls = 0; }")
    code, _ = server.request("POST", "/start_training", dict(TINY_RUN, epochs=3))  # started elsewhere: no input here
    assert code == 202
    ys = []

    def ended() -> bool:  # samples where the chart is at every poll until the run ends
        ys.append(chart.bounding_box()["y"])
        return server.request("GET", "/training_status")[1]["state"] in ("finished", "failed")

    wait_for(ended, timeout=120, interval=0.3, message="the run to end")
    page.wait_for_timeout(3500)  # the last poll
    ys.append(chart.bounding_box()["y"])
    cls = page.evaluate("() => window.__cls")
    assert cls < 0.1, cls
    assert max(abs(y - canvas_y) for y in ys) < 1, (canvas_y, ys)


FOUR_MODELS = dict(TINY_RUN, epochs=2, models=[{"kernels": [4, 8, 8, 8]}, {"kernels": [2, 4, 4, 4]},
                                                {"kernels": [3, 6, 6, 6]}, {"kernels": [2, 2, 2, 2]}])


@pytest.mark.parametrize("width, height", [(1280, 900), (390, 844)])
def test_a_first_run_started_elsewhere_moves_nothing_a_user_scrolled_to(page, server_factory, tiny_mnist, width,
                                                                         height):
    """From an idle page with no runs, scrolled to the curves: a run of one model that starts
    without a click here (the command line, another tab), then a queued run of four models that
    starts when it is stopped, fill in the status above them and the curves, and the charts do
    not move (the drawing canvas, below them on the single page, moved 2,794 px once); axe-core
    finds nothing at the end."""
    server = server_factory(tiny_mnist)
    page.set_viewport_size({"width": width, "height": height})
    page.add_init_script(CLS_OBSERVER)
    page.goto(server.url)
    expect(page.locator("#run-meta")).to_contain_text("no run yet", timeout=POLL_WAIT_MS)
    expect(page.locator(".cards-placeholder")).to_contain_text("A card per model")  # the idle space says what it is for
    anchor = page.locator("#chart-grid")
    page.evaluate("() => window.scrollTo(0, document.getElementById('chart-grid').getBoundingClientRect().top"
                  " + scrollY - innerHeight / 3)")
    page.wait_for_timeout(300)
    canvas_y = anchor.bounding_box()["y"]
    page.evaluate("() => { window.__cls = 0; }")
    code, first = server.request("POST", "/start_training", dict(TINY_RUN, epochs=100, models=FOUR_MODELS["models"][:1]))
    assert code == 202
    assert server.request("POST", "/start_training", dict(FOUR_MODELS, queue=True))[0] == 202
    expect(page.locator("#state")).to_have_text("running", timeout=POLL_WAIT_MS)
    page.wait_for_selector("#img-samples-0 img", timeout=POLL_WAIT_MS * 2)  # its first epoch's pictures
    server.request("POST", f"/runs/{first['run_id']}/stop", {})  # the queued run starts
    expect(page.locator("#model-cards .card")).to_have_count(4, timeout=POLL_WAIT_MS * 2)
    expect(page.locator("#state")).to_have_text("finished", timeout=POLL_WAIT_MS * 3)
    page.wait_for_selector("#img-samples-3 img", timeout=POLL_WAIT_MS)
    page.wait_for_timeout(3500)  # the last poll's pictures
    assert abs(anchor.bounding_box()["y"] - canvas_y) < 2
    cls = page.evaluate("() => window.__cls")
    assert cls < 0.1, cls
    assert axe_violations(page) == []
    assert own_errors(page) == []


# ---------------------------------------------------------------- 3. colours follow the model

def test_prediction_bars_take_their_models_colour(page, server_factory, tiny_mnist, tmp_path):
    runs_dir = tmp_path / "colour-runs"
    server = server_factory(tiny_mnist, runs_dir)
    run_id = finish(server, dict(TINY_RUN, models=[{"kernels": [2, 2, 2, 2]}] * 1 + [
        {"kernels": [2, 2, 2, 2], "name": "B"}, {"kernels": [2, 2, 2, 2], "name": "C"}]))
    for i in (0, 1):  # as mid-run, when only Model 3 has reached an epoch end
        (runs_dir / run_id / f"model{i}_latest.pt").unlink()
    page.goto(server.url + "/?view=explore")
    page.fill("#test-index", "3")
    page.click("#predict-test-digit")
    bars = page.locator("#prediction-bars .bars")
    expect(bars).to_have_count(1, timeout=POLL_WAIT_MS)
    assert bars.nth(0).get_attribute("data-model") == "C"
    color = bars.nth(0).locator(".bar").first.evaluate("b => getComputedStyle(b).backgroundColor")
    assert color == GREEN, color


# ---------------------------------------------------------------- 4. and 5. history and the live run

def test_a_shown_run_that_is_deleted_returns_the_page_to_live(page, server_factory, tiny_mnist, tmp_path):
    runs_dir = tmp_path / "deleted-runs"
    server = server_factory(tiny_mnist, runs_dir)
    first = finish(server)
    second = finish(server)
    page.goto(server.url)
    expect(page.locator("#run-meta")).to_contain_text(second, timeout=POLL_WAIT_MS)
    show_view(page, "runs")
    page.locator(f"#runs-rows tr[data-run-id='{first}'] button", has_text="open").click(timeout=POLL_WAIT_MS)
    expect(page.locator("#viewing")).to_be_visible()
    expect(page).to_have_url(re.compile(rf"\?view=train&run={first}$"))  # the run opened is in the address ...
    expect(page.locator("#run-meta")).to_contain_text(first)
    page.go_back()  # ... back returns to the run table, and Train to the live view ...
    expect(page.locator("main [data-view=runs]")).to_be_visible()
    page.go_back()
    expect(page.locator("#viewing")).to_be_hidden()
    expect(page.locator("#run-meta")).to_contain_text(second, timeout=POLL_WAIT_MS)
    page.go_forward()
    page.go_forward()
    expect(page.locator("#run-meta")).to_contain_text(first, timeout=POLL_WAIT_MS)
    bookmark = page.url
    page.goto("about:blank")
    page.goto(bookmark)  # ... and a bookmark (or a shared link) opens that run
    expect(page.locator("#viewing")).to_be_visible(timeout=POLL_WAIT_MS)
    expect(page.locator("#run-meta")).to_contain_text(first)
    shutil.rmtree(runs_dir / first)
    expect(page.locator("#viewing")).to_be_hidden(timeout=POLL_WAIT_MS)
    expect(page.locator("#status-note")).to_contain_text(f"Run {first} no longer exists (deleted)")
    expect(page.locator("#status-note")).to_be_visible()
    expect(page.locator("#run-meta")).to_contain_text(second)
    expect(page.locator(f"#runs-rows tr[data-run-id='{first}']")).to_have_count(0, timeout=POLL_WAIT_MS)
    assert "run=" not in page.url  # the address no longer names the run that is gone
    assert own_errors(page) == []


def test_opening_the_running_run_follows_it_live_and_the_buttons_follow_the_training_run(page, server_factory,
                                                                                       tiny_mnist):
    server = server_factory(tiny_mnist)
    past = finish(server)
    code, body = server.request("POST", "/start_training", dict(TINY_RUN, epochs=100, batch_size=1))
    running = body["run_id"]
    page.goto(server.url)
    expect(page.locator("#state")).to_have_text("running", timeout=POLL_WAIT_MS)
    expect(page.locator("#live-mark")).to_be_visible()
    show_view(page, "runs")
    page.locator(f"#runs-rows tr[data-run-id='{running}'] button", has_text="open").click()
    expect(page).to_have_url(re.compile(rf"\?view=train&run={running}$"))  # the training run has an address too
    expect(page.locator("#live-mark")).to_be_visible()  # and says it is live
    expect(page.locator("#viewing")).to_contain_text("the run you opened")
    expect(page.locator("#start")).to_be_disabled()
    page.reload()  # the address opens it, live
    expect(page.locator("#run-meta")).to_contain_text(running, timeout=POLL_WAIT_MS)
    expect(page.locator("#live-mark")).to_be_visible()
    expect(page.locator("#state")).to_have_text("running")
    show_view(page, "runs")
    page.locator(f"#runs-rows tr[data-run-id='{past}'] button", has_text="open").click()
    expect(page.locator("#viewing")).to_be_visible()
    expect(page.locator("#start")).to_be_disabled()  # a past run is shown, but a run trains: Start waits
    page.click("#stop")  # and Stop stops the run that trains
    page.click("#back-live")
    expect(page.locator("#state")).to_have_text("stopped", timeout=POLL_WAIT_MS)
    assert server.request("GET", f"/runs/{running}")[1]["state"] == "stopped"
    expect(page.locator("#start")).to_be_enabled()
    assert own_errors(page) == []


# ---------------------------------------------------------------- 10. and 12. remembers, and says what it is

def test_settings_survive_a_reload_and_the_page_says_what_it_runs(page, server_factory, tiny_mnist):
    server = server_factory(tiny_mnist)
    page.goto(server.url)
    row = page.locator("#model-rows tr").nth(0)
    row.locator(".name").fill("mine")
    for i, k in enumerate([4, 8, 8, 8]):
        row.locator(".kernel").nth(i).fill(str(k))
    page.locator("#model-rows tr").nth(1).locator(".remove").click()
    page.fill("#epochs", "1")
    page.fill("#train_samples", "300")
    page.fill("#seed", "9")
    page.click("#start")
    expect(page.locator("#state")).to_have_text("finished", timeout=POLL_WAIT_MS * 2)
    expect(page.locator("#run-meta")).to_contain_text("300 training images")
    expect(page.locator("#run-meta")).to_contain_text("LR schedule one-cycle")
    expect(page).to_have_title("finished · MNIST Training Monitor")
    page.reload()
    expect(page.locator("#model-rows tr")).to_have_count(1)
    expect(page.locator("#model-rows .name")).to_have_value("mine")
    expect(page.locator("#epochs")).to_have_value("1")
    expect(page.locator("#train_samples")).to_have_value("300")
    expect(page.locator("#seed")).to_have_value("9")
    # model information follows the form, also once a run exists
    page.locator("#model-rows .kernel").nth(0).fill("16")
    expect(page.locator("#model-info h3").first).to_contain_text("mine")
    expect(page.locator("#model-info table").first).to_contain_text("16×1×3×3")
    # the best checkpoint downloads with the model counted from 1, as the page counts
    link = page.locator("#downloads a", has_text="mine best checkpoint")
    response = page.request.get(server.url + link.get_attribute("href"))
    assert re.search(r"-model1-best\.pt", response.headers["content-disposition"])


def test_the_tab_title_shows_progress_and_a_run_end_notifies(page, server_factory, tiny_mnist):
    page.context.grant_permissions(["notifications"])
    page.add_init_script("""
      window.__notes = [];
      window.Notification = class { constructor(title, options) { window.__notes.push(title + ': ' + options.body); }
        static get permission() { return 'granted'; } static requestPermission() { return Promise.resolve('granted'); } };
    """)
    server = server_factory(tiny_mnist)
    page.goto(server.url)
    page.fill("#epochs", "40")
    page.click("#start")
    expect(page).to_have_title(re.compile(r"^\d+ % · MNIST Training Monitor$"), timeout=POLL_WAIT_MS)
    server.request("POST", "/stop_training", {})
    expect(page.locator("#state")).to_have_text("stopped", timeout=POLL_WAIT_MS)
    notes = page.evaluate("() => window.__notes")
    assert len(notes) == 1 and notes[0].startswith("Training stopped"), notes


# ---------------------------------------------------------------- 13. phones

def test_a_phone_sized_page_needs_no_sideways_scrolling_and_controls_are_big_enough(browser, server_factory, tiny_mnist):
    server = server_factory(tiny_mnist)
    finish(server)
    context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    page = context.new_page()
    try:
        page.goto(server.url)
        page.wait_for_selector("#img-samples-0 img", timeout=POLL_WAIT_MS)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
        small = page.evaluate("""() => [...document.querySelectorAll('button, input, select, summary')]
            .filter((e) => e.offsetParent !== null)
            .map((e) => [e.id || e.className || e.tagName, e.getBoundingClientRect()])
            .filter(([, r]) => r.width < 24 || r.height < 24).map(([n, r]) => `${n} ${r.width}x${r.height}`)""")
        assert small == []
        for selector in ["#model-rows .lr", "#model-rows .batch", "#model-rows .remove", "#start", "a[data-nav=explore]"]:
            box = page.locator(selector).first.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= 390, selector
        show_view(page, "runs")
        for selector in ["#runs-rows button.delete", "#runs-rows td[data-column=best]", "#runs-head button.sort"]:
            box = page.locator(selector).first.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= 390, selector
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
        # the run history: a card per run, each value headed by its column's name (it showed only two columns)
        heading = page.evaluate("""() => getComputedStyle(document.querySelector('#runs-rows td[data-column=best]'),
                                                           '::before').content""")
        assert heading == '"Best test %"'
        # the pictures at their own size (their labels 12 px tall, not 5), swiped sideways inside their figure
        show_view(page, "train")
        for kind in ("samples", "confusion"):
            shown, natural = page.evaluate(f"""() => {{ const img = document.querySelector('#img-{kind}-0 img');
                return [img.getBoundingClientRect().width, img.naturalWidth]; }}""")
            assert shown >= natural - 1, (kind, shown, natural)
        expect(page.locator("#img-samples-0 figcaption")).to_contain_text("swipe sideways")
        # drawing by touch: a tap-and-drag on the canvas asks the models
        show_view(page, "explore")
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
        box = page.locator("#canvas").bounding_box()
        page.touchscreen.tap(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        expect(page.locator("#prediction-bars .bars")).to_have_count(2, timeout=POLL_WAIT_MS)
    finally:
        context.close()


# ---------------------------------------------------------------- 14. screen readers and axe-core


def test_axe_finds_no_violations_idle_during_and_after_a_run_with_four_models(page, server_factory, tiny_mnist):
    server = server_factory(tiny_mnist)
    page.goto(server.url)
    expect(page.locator("#model-rows tr")).to_have_count(2)
    assert axe_violations(page) == []  # idle
    page.click("#add-model")
    page.click("#add-model")
    for i in range(4):
        row = page.locator("#model-rows tr").nth(i)
        for k, value in enumerate([2, 4, 4, 4]):
            row.locator(".kernel").nth(k).fill(str(value))
        row.locator(".batch").fill("32")
    page.fill("#epochs", "30")
    page.click("#start")
    page.wait_for_selector("#img-samples-3 img", timeout=POLL_WAIT_MS * 2)
    assert axe_violations(page) == []  # during the run
    page.click("#stop")
    expect(page.locator("#state")).to_have_text("stopped", timeout=POLL_WAIT_MS)
    page.locator("#confusion-table-0 summary").click()
    assert axe_violations(page) == []  # after it


def test_keyboard_alternative_to_drawing_and_polite_announcements(page, server_factory, tiny_mnist):
    server = server_factory(tiny_mnist)
    finish(server)
    page.goto(server.url)
    expect(page.locator("#state")).to_have_text("finished", timeout=POLL_WAIT_MS)
    page.locator("a[data-nav=explore]").focus()  # the views' links are reached by keyboard too
    page.keyboard.press("Enter")
    expect(page.locator("main [data-view=explore]")).to_be_visible()
    assert page.locator("#canvas").get_attribute("aria-label")
    page.locator("#test-index").focus()
    page.keyboard.press("Control+a")
    page.keyboard.type("7")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # "Predict this test digit"
    expect(page.locator("#prediction-bars .bars")).to_have_count(2, timeout=POLL_WAIT_MS)
    expect(page.locator("#prediction-bars")).to_contain_text("Test digit 7: its true label is")
    expect(page.locator("#test-digit-image")).to_be_visible()
    assert page.locator("#announcer").get_attribute("aria-live") == "polite"
    expect(page.locator("#announcer")).to_contain_text("reads")
    # a run: the region speaks at state changes, not at every poll
    said = []
    page.expose_function("__said", lambda text: said.append(text))
    page.evaluate("""() => new MutationObserver(() => window.__said(document.getElementById('announcer').textContent))
        .observe(document.getElementById('announcer'), { childList: true, characterData: true, subtree: true })""")
    show_view(page, "train")
    code, new = server.request("POST", "/start_training", dict(TINY_RUN, epochs=6, batch_size=8))
    expect(page.locator("#run-meta")).to_contain_text(new["run_id"], timeout=POLL_WAIT_MS)
    expect(page.locator("#state")).to_have_text("finished", timeout=POLL_WAIT_MS * 3)  # said, however fast it ran
    page.wait_for_timeout(3500)
    assert 1 <= len(said) <= 4, said  # starting/running, finished (with the accuracies)
    assert "finished" in said[-1] and "Test accuracy" in said[-1], said
    confusion = page.locator("#confusion-table-0")
    confusion.locator("summary").click()
    expect(confusion.locator("tbody tr")).to_have_count(10)
    assert own_errors(page) == []


# ---------------------------------------------------------------- 11. and 12. readable pictures, plain words

def test_picture_labels_are_large_enough_to_read(monkeypatch):
    import numpy as np

    from mnist_monitor.training import renderer

    figures = []
    monkeypatch.setattr(renderer, "_png", lambda fig: figures.append(fig) or b"")
    renderer.render_digits("t", np.zeros((3, 28, 28), np.uint8), [1, 2, 3], [1, 2, 4], 16)
    renderer.render_confusion("t", np.full((10, 10), 5))
    digits, confusion = figures
    labels = [t for t in digits.axes[0].texts]
    assert labels and min(t.get_fontsize() for t in labels) >= 9  # 9 pt: about 12 px in the full-size picture
    assert labels[2].get_text() == "3, true 4"  # a wrong answer names the true digit
    assert min(t.get_fontsize() for t in confusion.axes[0].texts) >= 7.5


def test_a_run_stopped_before_its_first_epoch_says_why_it_has_no_checkpoint(client):
    from helpers import SLOW, start_run

    start_run(client, SLOW)
    assert client.post("/stop_training", json={}).status_code == 200
    wait_for(lambda: client.get("/training_status").get_json()["state"] == "stopped", message="the stop")
    response = client.post("/predict", json={"test_index": 0})
    assert response.status_code == 409 and "ended before its first epoch did" in response.get_json()["error"]


def test_runs_are_starred_and_deleted_with_a_confirmation_and_nothing_fails_silently(page, server_factory,
                                                                                      tiny_mnist, tmp_path):
    page.add_init_script("""  // a browser that refuses notifications when asked
      window.Notification = class { static get permission() { return 'default'; }
        static requestPermission() { return Promise.resolve('denied'); } };
    """)
    server = server_factory(tiny_mnist)
    first, second = finish(server), finish(server)
    page.goto(server.url + f"/?view=train&run={second}")  # the whole run as a zip, imported back below
    with page.expect_download() as download:
        page.locator("#downloads a", has_text="the whole run").click(timeout=POLL_WAIT_MS)
    saved = tmp_path / "run.zip"
    download.value.save_as(saved)
    page.goto(server.url + "/?view=runs")
    row = page.locator(f"#runs-rows tr[data-run-id='{first}']")
    row.locator("button.star").click(timeout=POLL_WAIT_MS)
    expect(row.locator("button.star")).to_have_attribute("aria-pressed", "true", timeout=POLL_WAIT_MS)
    expect(page.locator("#runs-size")).to_contain_text("Every run is kept until you delete it")
    answers = []

    def answer(dialog):
        answers.append(dialog.message)
        dialog.dismiss() if len(answers) == 1 else dialog.accept()

    page.on("dialog", answer)
    page.locator(f"#runs-rows tr[data-run-id='{second}'] button.delete").click()  # dismissed: nothing happens
    page.wait_for_timeout(500)
    assert len(server.request("GET", "/runs")[1]["runs"]) == 2
    page.locator(f"#runs-rows tr[data-run-id='{second}'] button.delete").click()  # confirmed
    expect(page.locator(f"#runs-rows tr[data-run-id='{second}']")).to_have_count(0, timeout=POLL_WAIT_MS)
    assert "cannot be undone" in answers[0]
    assert [r["run_id"] for r in server.request("GET", "/runs")[1]["runs"]] == [first]
    # notifications refused: said where the button was
    show_view(page, "train")
    page.click("#notify")
    expect(page.locator("#notify-note")).to_contain_text("blocked for this page")
    expect(page.locator("#notify")).to_be_hidden()
    # a test digit number out of range: the error alone, not beside the previous digit's picture
    show_view(page, "explore")
    page.fill("#test-index", "7")
    page.click("#predict-test-digit")
    expect(page.locator("#test-digit-image")).to_be_visible(timeout=POLL_WAIT_MS)
    page.fill("#test-index", "12000")
    page.click("#predict-test-digit")
    expect(page.locator("#prediction-bars")).to_contain_text("from 0 to 9,999")
    expect(page.locator("#test-digit-image")).to_be_hidden()
    expect(page.locator("#test-index")).to_have_attribute("aria-invalid", "true")
    # the run shown deleted from this page: the page goes back to live and says so where it shows runs
    show_view(page, "runs")
    page.locator(f"#runs-rows tr[data-run-id='{first}'] button", has_text="open").click()
    expect(page.locator("#viewing")).to_be_visible()
    expect(page).to_have_url(re.compile(f"run={first}"))
    show_view(page, "runs")
    page.locator(f"#runs-rows tr[data-run-id='{first}'] button.delete").click()
    show_view(page, "train")
    expect(page.locator("#status-note")).to_contain_text(f"Run {first} deleted: showing the live run.")
    expect(page.locator("#status-note")).to_be_visible()
    expect(page.locator("#viewing")).to_be_hidden()
    assert "run=" not in page.url
    page.click("#status-note-dismiss")
    expect(page.locator("#status-note")).to_be_hidden()
    # the deleted run imported back from its zip in the Runs view; the same run again is refused, said
    show_view(page, "runs")
    page.set_input_files("#import-file", str(saved))
    expect(page.locator("#import-note")).to_contain_text(f"run.zip imported: open run {second}", timeout=POLL_WAIT_MS)
    expect(page.locator(f"#runs-rows tr[data-run-id='{second}']")).to_have_count(1, timeout=POLL_WAIT_MS)
    page.set_input_files("#import-file", str(saved))
    expect(page.locator("#history-error")).to_contain_text(f"run.zip was not imported: this run is already here, as run {second}")
    big = io.BytesIO()  # a zip over every other route's 2 MiB reaches the import's own checks (waitress lets it in)
    with zipfile.ZipFile(big, "w") as archive:
        archive.writestr("notes.bin", os.urandom(3 * 2**20))
    answer = requests.post(f"{server.url}/runs/import", data=big.getvalue(), headers={"Content-Type": "application/zip"},
                           timeout=30)
    assert answer.status_code == 400 and "a file a run folder does not have" in answer.json()["error"]
    too_big = requests.post(f"{server.url}/start_training", data=b" " * (3 * 2**20),
                            headers={"Content-Type": "application/json"}, timeout=30)
    assert too_big.status_code == 413 and "limit 2097152 bytes" in too_big.json()["error"]
    expect(page.locator("#runs-csv")).to_have_attribute("href", "/runs.csv")  # no run ticked: every run's metrics
    page.locator(f"#runs-rows tr[data-run-id='{second}'] input[type=checkbox]").check()
    expect(page.locator("#runs-csv")).to_have_attribute("href", f"/runs.csv?runs={second}")
    assert own_errors(page) == []


def test_the_page_works_with_an_access_token_after_the_first_visit(page, server_factory, tiny_mnist):
    server = server_factory(tiny_mnist, extra_args=["--token", "t0k3n"])
    assert server.request("GET", "/training_status")[0] == 401
    page.goto(server.url + "/?token=t0k3n")
    expect(page.locator("#run-meta")).to_contain_text("no run yet", timeout=POLL_WAIT_MS)
    assert "token" not in page.url  # kept in the cookie, out of the address bar and the history
    page.fill("#epochs", "1")
    page.click("#start")  # the page's own requests carry the token in its cookie
    expect(page.locator("#state")).to_have_text("finished", timeout=POLL_WAIT_MS * 2)
    page.goto(server.url)  # later visits need no token in the address
    expect(page.locator("#state")).to_have_text("finished", timeout=POLL_WAIT_MS)
    assert own_errors(page) == []


# ---------------------------------------------------------------- 9. nothing lost: queue, sweep, resume

def run_states(server) -> dict:
    return {r["run_id"]: r for r in server.request("GET", "/runs")[1]["runs"]}


def test_a_sweep_queues_one_run_per_value_a_queued_run_is_cancelled_and_a_stopped_one_resumed(page, server_factory,
                                                                                             tiny_mnist):
    server = server_factory(tiny_mnist)
    # 100 epochs: it trains until the test stops it (twice), however fast the CPU (8 ended before the sweep's
    # trials were checked on a CPU 1.7x faster than the one that chose 8)
    code, busy = server.request("POST", "/start_training", dict(TINY_RUN, epochs=100, batch_size=4))
    assert code == 202
    page.goto(server.url)
    expect(page.locator("#state")).to_have_text("running", timeout=POLL_WAIT_MS)
    expect(page.locator("#start")).to_be_disabled()
    page.fill("#epochs", "1")
    page.locator("#model-rows tr").nth(1).locator(".remove").click()
    page.locator("#model-rows tr").first.locator(".kernel").nth(0).fill("4")
    lr = page.locator("#model-rows tr").first.locator(".lr")
    for typed, said in [("0.01,,abc", "a value is missing"), ("0.01, abc", '"abc" is not a number'),
                        ("0.001 0.003, 0.01", "separate several values with commas"),
                        ("0.001 0.003", "separate several values with commas"), ("0.001,0.001", "0.001 is there twice"),
                        (", ".join(str(0.001 * (i + 1)) for i in range(65)), "65 runs: a sweep trains at most 64")]:
        lr.fill(typed)  # what is wrong shows before anything is pressed, and the buttons promise no count
        expect(page.locator("#sweep-hint")).to_contain_text(said)
        expect(page.locator("#queue")).to_have_text("Queue")
    lr.fill("0.001, 0.003,0.01")
    expect(page.locator("#queue")).to_have_text("Queue 3 runs")
    expect(page.locator("#sweep-hint")).to_contain_text("Sweep of 3 runs (Model 1 learning rate 0.001 / 0.003 / 0.01)")
    page.click("#queue")  # a sweep: made at once, its runs asked one per free worker; the view stays
    expect(page.locator("#status-note")).to_contain_text("Sweep of 3 runs made", timeout=POLL_WAIT_MS)
    expect(page.locator("main [data-view=train]")).to_be_visible()
    show_view(page, "sweeps")
    page.locator("#sweep-list a").first.click()
    expect(page.locator("#sweep-title")).to_contain_text("grid of 3 trials over learning rate", timeout=POLL_WAIT_MS)
    sweep_id = page.evaluate("new URLSearchParams(location.search).get('sweep')")
    sweep = server.request("GET", f"/sweeps/{sweep_id}")[1]
    assert [(r["values"], r["state"]) for r in sweep["runs"]] == [  # a grid's combinations wait to be asked
        ({"learning_rate": 0.001}, "queued"), ({"learning_rate": 0.003}, "waiting"), ({"learning_rate": 0.01}, "waiting")]
    first = sweep["runs"][0]["run_id"]
    assert run_states(server)[first]["models"][0]["learning_rate"] == 0.001
    expect(page.locator("#queue-count")).to_contain_text("1 run queued (see the run history)", timeout=POLL_WAIT_MS)
    show_view(page, "runs")
    expect(page.locator(f"#runs-rows tr[data-run-id='{first}'] .state")).to_have_text("queued #1")
    page.locator(f"#runs-rows tr[data-run-id='{first}'] button", has_text="cancel").click()
    # The cancelled trial stays in the sweep (as deleted); the next combination is queued in its place.
    expect(page.locator("#sweep-rows tr[data-trial='0'] .state")).to_have_text("deleted", timeout=POLL_WAIT_MS)
    expect(page.locator("#sweep-rows tr[data-trial='1'] .state")).to_have_text("queued", timeout=POLL_WAIT_MS)
    second = wait_for(lambda: server.request("GET", f"/sweeps/{sweep_id}")[1]["runs"][1]["run_id"], timeout=30,
                      message="the next trial's run")  # asked first ("queued"), then its run is made
    assert first not in run_states(server)
    page.locator("#show-new-runs").click(timeout=POLL_WAIT_MS)  # it appeared while the table was read
    page.locator(f"#runs-rows tr[data-run-id='{second}']").get_by_role("button", name="open").click()
    expect(page.locator("#stop")).to_be_enabled()  # viewing another run: Stop still stops the one that trains
    expect(page.locator("#start")).to_be_disabled()
    page.click("#back-live")
    # The busy run, stopped inside epoch 2 (after its first checkpoint), can go on from the page.
    wait_for(lambda: server.request("GET", "/training_status")[1]["models"][0]["epoch"] >= 2, timeout=120,
             interval=0.1, message="epoch 2 of the busy run")
    page.click("#stop")
    done = wait_for(lambda: (s := server.request("GET", f"/sweeps/{sweep_id}")[1])["state"] != "running" and s,
                    timeout=120, interval=0.2, message="the sweep to run")
    assert done["state"] == "finished" and [r["state"] for r in done["runs"]] == ["deleted", "finished", "finished"]
    ends = [server.request("GET", f"/runs/{r['run_id']}")[1] for r in done["runs"][1:]]
    assert ends[0]["finished_at"] <= ends[1]["started_at"]  # one after another
    code, last = server.request("POST", "/start_training", dict(TINY_RUN, epochs=50, batch_size=4, queue=True))
    assert code == 202  # a long run after the sweep, to be stopped later
    wait_for(lambda: run_states(server)[last["run_id"]]["state"] == "running", timeout=60, interval=0.2,
             message="the long run to train")  # the page follows a run that starts: open the stopped one after
    row = page.locator(f"#runs-rows tr[data-run-id='{busy['run_id']}']")
    show_view(page, "runs")
    row.get_by_role("button", name="open").click(timeout=POLL_WAIT_MS)  # the stopped run says it can go on...
    expect(page.locator("#resume-note")).to_contain_text(f"A run is training ({last['run_id']})", timeout=POLL_WAIT_MS)
    expect(page.locator("#resume")).to_be_disabled()  # ...once the long run has ended
    expect(row.locator("button.resume")).to_be_disabled()
    server.request("POST", "/stop_training", {})
    expect(page.locator("#resume")).to_be_enabled(timeout=POLL_WAIT_MS)  # without a reload
    expect(page.locator("#resume-note")).to_contain_text("goes on in this same run from its last epoch-end checkpoint")
    page.click("#resume")
    expect(page.locator("#run-meta")).to_contain_text("resumed once", timeout=POLL_WAIT_MS)
    expect(page.locator("#state")).to_have_text("running")
    expect(page.locator("#resume-line")).to_be_hidden()
    page.click("#stop")
    expect(page.locator("#state")).to_have_text("stopped", timeout=POLL_WAIT_MS)
    page.reload()  # the resumed run is still the one shown (not the newer runs)
    expect(page.locator("#run-meta")).to_contain_text(busy["run_id"], timeout=POLL_WAIT_MS)
    expect(lr).to_have_value("0.001, 0.003, 0.01")  # the sweep as typed comes back
    assert run_states(server)[busy["run_id"]]["resumes"] == 1
    expect(page.locator("#queue-count")).to_have_text("")
    assert own_errors(page) == []


# ---------------------------------------------------------------- several runs at once (--workers)

def test_with_two_workers_the_page_shows_both_runs_and_follows_the_one_picked(page, server_factory, tiny_mnist):
    server = server_factory(tiny_mnist, extra_args=["--workers", "2"])
    long_run = dict(TINY_RUN, epochs=100)
    first = server.request("POST", "/start_training", dict(long_run, learning_rate=0.02))[1]["run_id"]
    page.goto(server.url)
    expect(page.locator("#start")).to_be_enabled(timeout=POLL_WAIT_MS)  # one worker is still free
    expect(page.locator("#sweep-hint")).to_contain_text("2 at a time, as workers come free")
    second = server.request("POST", "/start_training", long_run)[1]["run_id"]
    chips = page.locator("#active-runs button")
    expect(chips).to_have_count(2, timeout=POLL_WAIT_MS)
    expect(page.locator("#active-runs")).to_contain_text("Training now (2 of 2 workers)")
    expect(chips.nth(1)).to_contain_text("lr 0.02", timeout=POLL_WAIT_MS)  # newest first; what sets it apart
    expect(chips.nth(0)).to_contain_text("lr 0.01")
    expect(page.locator("#run-meta")).to_contain_text(second, timeout=POLL_WAIT_MS)  # the newest, by default
    expect(page.locator("#start")).to_be_disabled()
    expect(page.locator("#start-note")).to_have_text("All 2 workers are busy: Queue puts this run in line.")
    chips.nth(1).click()
    expect(page.locator("#run-meta")).to_contain_text(first, timeout=POLL_WAIT_MS)
    expect(chips.nth(1)).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#stop")).to_have_text("Stop this run")
    wait_for(lambda: server.request("GET", f"/runs/{first}")[1]["models"][0]["epoch"] >= 2, timeout=120,
             interval=0.2, message="the first run past an epoch end")
    page.click("#stop")  # stops the followed run only
    wait_for(lambda: server.request("GET", f"/runs/{first}")[1]["state"] == "stopped", timeout=60, interval=0.2,
             message="the followed run to stop")
    assert server.request("GET", f"/runs/{second}")[1]["state"] in ("starting", "running")
    expect(page.locator("#state")).to_have_text("stopped", timeout=POLL_WAIT_MS)  # it goes on showing it
    expect(chips).to_have_count(1)  # the one still training, to switch to
    expect(page.locator("#active-runs")).to_contain_text("Training now (1 of 2 workers)")
    expect(page.locator("#resume")).to_be_enabled()  # a worker is free: it can go on now
    expect(page.locator(f"#runs-rows tr[data-run-id='{first}'] button.resume")).to_be_enabled()
    expect(page.locator("#start-note")).to_have_text("")
    assert axe_violations(page) == []
    chips.nth(0).click()  # pick the second run, then stop it with "Stop this run"
    expect(page.locator("#run-meta")).to_contain_text(second, timeout=POLL_WAIT_MS)
    page.click("#stop")
    wait_for(lambda: server.request("GET", f"/runs/{second}")[1]["state"] == "stopped", timeout=60, interval=0.2,
             message="the second run to stop")
    expect(page.locator("#state")).to_have_text("stopped", timeout=POLL_WAIT_MS)
    expect(page.locator("#run-meta")).to_contain_text(second)  # still the run that was stopped
    expect(page.locator("#active-runs")).to_be_hidden(timeout=POLL_WAIT_MS)
    assert own_errors(page) == []


NOTIFICATIONS = """
  window.__notes = [];
  window.Notification = class { constructor(title, options) { window.__notes.push(title + ': ' + options.body); }
    static get permission() { return 'granted'; } static requestPermission() { return Promise.resolve('granted'); } };
"""


def test_with_two_workers_a_shown_run_is_followed_to_its_end_and_a_new_run_announced(page, server_factory, tiny_mnist):
    page.add_init_script(NOTIFICATIONS)
    server = server_factory(tiny_mnist, extra_args=["--workers", "2"])
    long_run = dict(TINY_RUN, epochs=100, batch_size=8)
    first = server.request("POST", "/start_training", long_run)[1]["run_id"]
    page.goto(server.url)
    expect(page.locator("#run-meta")).to_contain_text(first, timeout=POLL_WAIT_MS)
    short = server.request("POST", "/start_training", dict(TINY_RUN, epochs=3))[1]["run_id"]
    # no run picked: the page goes to the run that starts, and shows it to its end (title, notification),
    # though the newest run training is then the first one again
    expect(page.locator("#run-meta")).to_contain_text(short, timeout=POLL_WAIT_MS)
    expect(page.locator("#announcer")).to_contain_text(short)
    expect(page.locator("#state")).to_have_text("finished", timeout=POLL_WAIT_MS * 3)
    expect(page).to_have_title("finished · MNIST Training Monitor")
    assert page.evaluate("() => window.__notes")[0].startswith("Training finished")
    assert server.request("GET", f"/runs/{first}")[1]["state"] == "running"
    third = server.request("POST", "/start_training", dict(long_run, batch_size=16))[1]["run_id"]
    expect(page.locator("#run-meta")).to_contain_text(third, timeout=POLL_WAIT_MS)  # still no run picked
    expect(page).to_have_title(re.compile(r"^\d+ % · "))
    chips = page.locator("#active-runs button")
    expect(chips.nth(0)).to_contain_text("batch 16", timeout=POLL_WAIT_MS)  # newest first; what sets it apart
    page.click("#stop")  # Stop stops the run shown, which stays shown (not the run still training)
    expect(page.locator("#state")).to_have_text("stopped", timeout=POLL_WAIT_MS * 3)
    expect(page.locator("#run-meta")).to_contain_text(third)
    assert server.request("GET", f"/runs/{first}")[1]["state"] == "running"
    chips.last.click()  # the user picks the first run ...
    expect(page.locator("#run-meta")).to_contain_text(first, timeout=POLL_WAIT_MS)
    fourth = server.request("POST", "/start_training", long_run)[1]["run_id"]
    # ... so a run that starts is announced, and the page stays on the run picked
    expect(page.locator("#announcer")).to_contain_text(f"Run {fourth} started; this panel stays on the run you picked",
                                                       timeout=POLL_WAIT_MS)
    expect(page.locator("#run-meta")).to_contain_text(first)
    notes = [note.split(":")[0] for note in page.evaluate("() => window.__notes")]
    assert notes == ["Training finished", "Training stopped"]  # the runs shown, not the one that started
    page.click("#stop-all")
    wait_for(lambda: server.request("GET", f"/runs/{first}")[1]["state"] == "stopped", timeout=60, interval=0.2,
             message="every run to stop")
    assert own_errors(page) == []
