"""The page in real Chromium (Debian's /usr/bin/chromium driven by Playwright) against the real server."""
import re

import shutil

from helpers import FIXTURE_ID, FIXTURE_RUNS, POLL_WAIT_MS, axe_violations, expect, show_view, wait_for  # fixtures: conftest

BLUE, ORANGE, GREEN, RED = "rgb(31, 119, 180)", "rgb(255, 127, 14)", "rgb(44, 160, 44)", "rgb(214, 39, 40)"  # the models' palette


def set_row(page, row: int, kernels=None, batch=None, lr=None):
    tr = page.locator("#model-rows tr").nth(row)
    if kernels:
        for i, k in enumerate(kernels):
            tr.locator(".kernel").nth(i).fill(str(k))
    if batch is not None:
        tr.locator(".batch").fill(str(batch))
    if lr is not None:
        tr.locator(".lr").fill(str(lr))
    return tr


def test_parameter_count_follows_the_kernels(page, server_factory, tiny_mnist):
    server = server_factory(tiny_mnist)
    page.goto(server.url)
    params = page.locator("#model-rows tr").nth(0).locator(".params")
    expect(params).to_have_text("225,162")
    set_row(page, 0, kernels=[16, 32, 32, 32])
    expect(params).to_have_text("90,250")
    set_row(page, 0, kernels=[16, 32, 32, 300])
    expect(params).to_have_text("kernels: 1 to 256")
    set_row(page, 0, kernels=[16, 32, 32, 32])
    page.click("#add-model")
    expect(page.locator("#model-rows tr")).to_have_count(3)
    expect(page.locator("#model-rows tr").nth(2).locator(".params")).to_have_text("90,250")
    expect(page.locator("#model-info h3").nth(0)).to_contain_text("Model 1: 90,250 parameters")
    assert page.console_errors == []


INVALID = [  # field, a value refused, a good one, the message next to the field
    ("kernel", "0", "8", "Model 2: kernels must be whole numbers from 1 to 256"),
    ("batch", "5000", "64", "Model 2: batch size must be a whole number from 1 to 4096"),
    ("lr", "0", "0.01", "Model 2: learning rate must be greater than 0"),
    ("lr", "", "0.01", "Model 2: learning rate must be greater than 0"),
    ("name", "", "small", "row 2: give it a name"),  # not "Model 2": that may be another row's name
    ("epochs", "101", "2", "epochs must be a whole number from 1 to 100"),
]


def test_invalid_values_are_marked_next_to_their_field_until_fixed(page, server_factory, tiny_mnist):
    server = server_factory(tiny_mnist)  # one server for every case: none of them starts a run
    for field, value, good, message in INVALID:
        page.goto(server.url)
        target = page.locator("#epochs") if field == "epochs" else page.locator("#model-rows tr").nth(1).locator(f".{field}").first
        target.fill(value)
        target.press("Tab")  # checked as it is left, before Start
        expect(target).to_have_attribute("aria-invalid", "true")
        described = page.locator("#" + target.get_attribute("aria-describedby"))
        expect(described).to_contain_text(message)
        expect(described).to_be_visible()
        assert page.locator("#train-form [aria-invalid=true]").count() == 1  # not the fields not reached yet
        page.click("#start")
        expect(target).to_have_attribute("aria-invalid", "true")
        assert target.evaluate("e => e === document.activeElement"), field  # focus goes to the field to fix
        expect(page.locator("#form-error")).to_contain_text("Nothing was started: a field is marked above")
        code, runs = server.request("GET", "/runs")
        assert runs["runs"] == []  # nothing was started
        target.fill(good)  # fixed: the mark and the message go at once
        expect(target).not_to_have_attribute("aria-invalid", "true")
        expect(described).to_be_hidden()
        expect(page.locator("#form-error")).to_be_hidden()
    assert page.console_errors == []


def test_duplicate_names_and_server_errors_name_the_model(page, server_factory, tiny_mnist):
    server = server_factory(tiny_mnist)
    page.goto(server.url)
    page.click("#add-model")
    page.click("#add-model")  # four models
    rows = page.locator("#model-rows tr")
    expect(rows).to_have_count(4)
    rows.nth(1).locator(".remove").click()
    page.click("#add-model")  # a new row gets a name no other row has
    names = [rows.nth(i).locator(".name").input_value() for i in range(4)]
    assert len(set(names)) == 4, names
    assert names == ["Model 1", "Model 3", "Model 4", "Model 2"]  # each row keeps its name when one above goes
    colours = [rows.nth(i).locator(".swatch").evaluate("e => getComputedStyle(e).backgroundColor") for i in range(4)]
    assert colours == [BLUE, GREEN, RED, ORANGE], colours  # ... and its colour (the new row: the free one)
    assert rows.nth(1).locator(".remove").get_attribute("aria-label") == "Remove Model 3"  # and is called by it
    assert rows.nth(3).locator(".lr").get_attribute("aria-label") == "Model 2 learning rate"
    rows.nth(1).locator(".lr").fill("0.001, 0.01")
    expect(page.locator("#sweep-hint")).to_contain_text("Model 3 learning rate 0.001 / 0.01")
    rows.nth(1).locator(".lr").fill("0.01")
    rows.nth(3).locator(".name").fill(names[2])
    page.click("#start")
    described = page.locator("#" + rows.nth(3).locator(".name").get_attribute("aria-describedby"))
    expect(described).to_contain_text(f'rows 3 and 4 have the same name "{names[2]}"')
    rows.nth(3).locator(".name").fill("unique")
    # the server's own check (memory of a step) is shown next to the field, with the row's name
    rows.nth(2).locator(".kernel").nth(0).fill("256")
    for k in range(1, 4):
        rows.nth(2).locator(".kernel").nth(k).fill("256")
    rows.nth(2).locator(".batch").fill("4096")
    page.click("#start")
    batch = rows.nth(2).locator(".batch")
    expect(batch).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#" + batch.get_attribute("aria-describedby"))).to_contain_text("Model 4: batch size")
    assert "models[" not in page.locator("body").text_content()
    assert server.request("GET", "/runs")[1]["runs"] == []
    # a run of these rows: each model in its row's colour, in the status, the pictures and the server's record
    for k in range(4):
        rows.nth(2).locator(".kernel").nth(k).fill("4")
    rows.nth(2).locator(".batch").fill("64")
    page.fill("#epochs", "1")
    page.click("#start")
    expect(page.locator("#state")).to_have_text("finished", timeout=POLL_WAIT_MS * 2)
    cards = page.locator("#model-cards .card")
    assert [cards.nth(i).evaluate("e => getComputedStyle(e).borderLeftColor") for i in range(4)] == colours
    assert page.locator("#img-samples-1").evaluate("e => getComputedStyle(e).borderTopColor") == GREEN
    assert [m["color"] for m in server.request("GET", "/runs")[1]["runs"][0]["models"]] == [0, 2, 3, 1]
    assert [e for e in page.console_errors if "status of 400" not in e] == []  # the browser logs the refusal


def test_a_run_from_start_to_stop_with_reload(page, server_factory, mnist_sample):
    server = server_factory(mnist_sample)
    page.goto(server.url)
    set_row(page, 0, kernels=[8, 16, 16, 16], batch=64)  # small models: epoch 1 and its pictures come soon
    set_row(page, 1, kernels=[4, 8, 8, 8], batch=64)
    page.fill("#epochs", "30")
    page.fill("#train_samples", "2048")
    page.click("#start")
    expect(page.locator("#state")).to_have_text(re.compile("starting|running"), timeout=POLL_WAIT_MS)
    code, status = server.request("GET", "/training_status")
    run_id = status["run_id"]
    assert run_id in page.locator("#run-meta").text_content()
    # live status, curves and the first epoch's sample predictions arrive through polling
    wait_for(lambda: chart_points(page) > 0, timeout=POLL_WAIT_MS / 1000, message="curve points")
    page.wait_for_selector("#img-samples-0 img", timeout=POLL_WAIT_MS * 2)
    page.wait_for_selector("#img-samples-1 img", timeout=POLL_WAIT_MS)
    cards = page.locator("#model-cards .card")
    assert cards.count() == 2
    assert "/ 30" in cards.nth(0).locator("dd[data-field=Epoch]").text_content()
    assert cards.nth(0).locator("dd[data-field='Test accuracy']").text_content().endswith("%")
    assert "device cpu" in page.locator("#run-meta").text_content()
    for img in page.locator("#per-model img").all():
        assert img.evaluate("i => i.complete && i.naturalWidth > 0"), img.get_attribute("src")
    # reload mid-run: the same run is shown, nothing lost
    page.reload()
    expect(page.locator("#run-meta")).to_contain_text(run_id, timeout=POLL_WAIT_MS)
    assert page.locator("#state").text_content() in ("running", "starting")
    page.wait_for_selector("#img-samples-0 img", timeout=POLL_WAIT_MS)
    # stop: the run ends and what was recorded stays visible
    page.click("#stop")
    expect(page.locator("#state")).to_have_text("stopped", timeout=POLL_WAIT_MS)
    assert int(page.locator("#chart-loss").get_attribute("data-points")) > 0
    expect(page.locator("#start")).to_be_enabled(timeout=POLL_WAIT_MS)  # once its worker is free
    expect(page.locator("#stop")).to_be_disabled()
    row = page.locator(f"#runs-rows tr[data-run-id='{run_id}']")
    expect(row).to_contain_text("stopped", timeout=POLL_WAIT_MS)
    # downloads: metrics as CSV, each model's best checkpoint, and (the run has ended) the whole run as a zip
    links = page.locator("#downloads a")
    expect(links).to_have_count(4)
    expect(links.last).to_have_attribute("href", f"/runs/{run_id}/export.zip")
    for link in links.all():
        response = page.request.get(server.url + link.get_attribute("href"))
        assert response.status == 200 and len(response.body()) > 100
    # draw a digit in Explore (it reads with the newest run's checkpoints): both models answer
    show_view(page, "explore")
    expect(page.locator("#explore-run")).to_have_value(run_id)
    draw_stroke(page, [(0.3, 0.2), (0.7, 0.2), (0.55, 0.5), (0.45, 0.85)])
    expect(page.locator("#prediction-bars .bars")).to_have_count(2, timeout=POLL_WAIT_MS)
    assert page.locator("#prediction-bars .bars").nth(0).locator(".bar").count() == 10
    expect(page.locator("#prediction-bars h3").nth(0)).to_have_text(re.compile(r"Model 1: \d"))
    page.click("#clear-canvas")
    expect(page.locator("#prediction-bars .bars")).to_have_count(0)
    assert page.console_errors == []


def draw_stroke(page, points):
    page.locator("#canvas").scroll_into_view_if_needed()
    box = page.locator("#canvas").bounding_box()
    page.mouse.move(box["x"] + points[0][0] * box["width"], box["y"] + points[0][1] * box["height"])
    page.mouse.down()
    for fx, fy in points[1:]:
        page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"], steps=6)
    page.mouse.up()


def test_history_opens_past_runs_and_survives_a_restart(page, server_factory, tiny_mnist, tmp_path):
    runs_dir = tmp_path / "history-runs"
    server = server_factory(tiny_mnist, runs_dir)
    quick = {"epochs": 1, "batch_size": 64, "precision": "fp32", "models": [{"kernels": [4, 8, 8, 8]}]}
    ids = []
    for name in ("first", "second"):
        code, body = server.request("POST", "/start_training", dict(quick, models=[{"kernels": [4, 8, 8, 8], "name": name}]))
        assert code == 202
        ids.append(body["run_id"])
        wait_for(lambda: server.request("GET", "/training_status")[1]["state"] == "finished", message="run end")
    server.stop()
    server = server_factory(tiny_mnist, runs_dir)  # a restarted server shows the same history
    page.goto(server.url)
    expect(page.locator("#model-cards .card h3")).to_contain_text("second", timeout=POLL_WAIT_MS)
    show_view(page, "runs")
    rows = page.locator("#runs-rows tr")
    expect(rows).to_have_count(2, timeout=POLL_WAIT_MS)
    assert rows.nth(0).get_attribute("data-run-id") == ids[1]  # newest first
    rows.nth(1).locator("button", has_text="open").click()
    expect(page.locator("main [data-view=train]")).to_be_visible()  # opened where runs are shown
    expect(page).to_have_url(re.compile(rf"view=train&run={ids[0]}$"))
    expect(page.locator("#viewing")).to_be_visible()
    expect(page.locator("#run-meta")).to_contain_text(ids[0])
    expect(page.locator("#model-cards .card h3")).to_contain_text("first")
    page.wait_for_selector("#img-samples-0 img")
    page.click("#back-live")
    expect(page.locator("#run-meta")).to_contain_text(ids[1])
    expect(page.locator("#viewing")).to_be_hidden()
    assert page.console_errors == []


def test_polling_never_overlaps_and_keeps_its_pace(page, server_factory, tiny_mnist):
    server = server_factory(tiny_mnist)
    in_flight, overlaps, finished = [0], [], []
    polled = re.compile(r"/(training_status|runs(/[^/?]+)?)$")  # status and history, not images

    def on_request(request):
        if polled.search(request.url):
            in_flight[0] += 1
            if in_flight[0] > 1:
                overlaps.append(request.url)

    def on_done(request):
        if polled.search(request.url):
            in_flight[0] -= 1
        if request.resource_type == "fetch":  # the browser's own clock: exact under any load
            start = request.timing["startTime"] / 1000
            finished.append((start, start + max(request.timing["responseEnd"], 0) / 1000, request.url))

    page.on("request", on_request)
    page.on("requestfinished", on_done)
    page.on("requestfailed", on_done)
    page.goto(server.url)
    page.fill("#epochs", "1")
    set_row(page, 0, kernels=[4, 8, 8, 8])
    set_row(page, 1, kernels=[2, 4, 4, 4])
    page.click("#start")  # each of these clicks asks for an immediate poll, also while one is in flight
    for _ in range(2):
        page.locator("a[data-nav=runs]").click()
        page.locator("#runs-rows tr[data-run-id] button", has_text="open").click(timeout=POLL_WAIT_MS)
        if page.locator("#back-live").is_visible():  # the run has ended: it is shown as a past run
            page.click("#back-live")
    page.wait_for_timeout(500)  # the clicks' polls end; what follows is the page polling on its own
    finished.clear()

    def status_starts():
        return sorted(start for start, _, url in finished if url.endswith("/training_status"))

    for _ in range(200):  # up to 40 s; Playwright hands over the page's events only while it is called
        if len(status_starts()) >= 3:
            break
        page.wait_for_timeout(200)
    starts = status_starts()
    assert len(starts) >= 3, finished
    assert overlaps == []
    for before, after in zip(starts, starts[1:]):
        polls = [(end, url) for start, end, url in finished if before <= start < after]
        chain_end = max(end for end, _ in polls)  # the last answer of the poll that started at `before`
        polled_end = max(end for end, url in polls if polled.search(url))
        # one chain only: a poll starts 3 s after the previous poll's last answer, never sooner, never much later
        assert after - polled_end >= 2.95, (before, after, finished)
        assert after - chain_end <= 3 + 1.5, (before, after, finished)
    assert page.console_errors == []


def chart_points(page, chart="loss") -> int:
    return int(page.locator(f"#chart-{chart}").get_attribute("data-points"))


def test_live_curves_grow_at_every_poll_and_can_be_read_and_smoothed(page, server_factory, mnist_sample):
    server = server_factory(mnist_sample)
    page.goto(server.url)
    page.fill("#epochs", "5")  # longer than the test needs on any machine: it is stopped once seen to grow
    page.fill("#train_samples", "8192")
    set_row(page, 0, batch=64)
    set_row(page, 1, batch=64)
    page.click("#start")
    # sample the loss chart while it trains: it must gain points poll after poll
    seen = []
    wait_for(lambda: page.locator("#state").text_content() == "running", timeout=60, message="running")
    while page.locator("#state").text_content() == "running" and len(set(seen)) < 4:
        seen.append(chart_points(page))
        page.wait_for_timeout(500)
    growth = sorted(set(seen))
    assert len(growth) >= 3 and growth[0] < growth[-1], seen  # at least three polls, each with new points
    page.click("#stop")
    expect(page.locator("#state")).to_have_text("stopped", timeout=60_000)
    # hover: the legend reads off every line's value at the cursor, on every chart (synced)
    over = page.locator("#chart-loss .u-over")
    over.scroll_into_view_if_needed()
    box = over.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.5)
    values = page.locator("#chart-loss .u-legend .u-series .u-value")
    expect(values.nth(1)).to_have_text(re.compile(r"^\d+\.\d+"))
    expect(values.nth(2)).to_have_text(re.compile(r"^\d+\.\d+ \(raw \d+\.\d+\)$"))  # smoothed, and raw beside it
    # label smoothing 0.1 (the default): the loss's floor is said beside the chart's title
    expect(page.locator("#chart-loss").locator("xpath=..").locator("figcaption")).to_contain_text(
        "cannot go below 0.50 with label smoothing 0.1 (not 0)")
    expect(page.locator("#chart-accuracy .u-legend .u-series .u-value").nth(1)).to_have_text(re.compile(r"^\d+\.\d+"))
    ticks = page.locator("#chart-accuracy .uplot").get_attribute("data-y-ticks").split()
    assert len(ticks) >= 3, ticks  # the accuracy axis had one label ("50") on a chart this short
    # the same learning rate for both models: the line drawn second is dashed, so the first shows through
    page.mouse.move(0, 0)  # no cursor points on the charts
    blue, orange = page.evaluate("""() => {
      const canvas = document.querySelector('#chart-lr canvas');
      const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      const near = (i, [r, g, b]) => Math.abs(d[i] - r) < 40 && Math.abs(d[i + 1] - g) < 40 && Math.abs(d[i + 2] - b) < 40;
      let blue = 0, orange = 0;
      for (let i = 0; i < d.length; i += 4) { if (near(i, [31, 119, 180])) blue++; if (near(i, [255, 127, 14])) orange++; }
      return [blue, orange];
    }""")
    assert blue > 100 and orange > 50, (blue, orange)  # drawn over each other, one colour would be near 0
    # smoothing: on, each model is drawn twice (faint raw + smoothed); at 0 only the raw line
    smoothed = chart_points(page)
    page.locator("#smoothing").fill("0")
    wait_for(lambda: chart_points(page) < smoothed, timeout=10, message="the raw curve alone")
    assert chart_points(page) * 2 == smoothed
    assert page.locator("#chart-loss .u-legend .u-series").count() == 3  # x and the two models
    page.check("#log-loss")  # the scale changes only when asked
    expect(page.locator("#chart-loss .u-legend .u-series")).to_have_count(3)
    assert page.console_errors == []


def test_runs_compared_from_the_url_and_rerun_fills_the_form(page, server_factory, tiny_mnist):
    server = server_factory(tiny_mnist)
    ids = []
    for lr in (0.01, 0.003):
        code, body = server.request("POST", "/start_training", {
            "epochs": 1, "batch_size": 64, "learning_rate": lr, "precision": "fp32", "seed": 5,
            "models": [{"kernels": [4, 8, 8, 8], "name": f"lr {lr}"}]})
        assert code == 202
        ids.append(body["run_id"])
        wait_for(lambda: server.request("GET", "/training_status")[1]["state"] == "finished", message="run end")
    # select both in the run table and compare: the view goes into the URL
    page.goto(server.url + "/?view=runs")
    for run_id in ids:
        page.locator(f"#runs-rows tr[data-run-id='{run_id}'] input[type=checkbox]").check()
    expect(page).to_have_url(re.compile(r"ticked="))
    page.reload()  # the ticks are in the address: a reload keeps them
    for run_id in ids:
        expect(page.locator(f"#runs-rows tr[data-run-id='{run_id}'] input[type=checkbox]")).to_be_checked(
            timeout=POLL_WAIT_MS)
    page.click("#compare-selected")
    expect(page).to_have_url(re.compile(r"[?&]runs="))
    url = page.url
    page.goto(url)  # reload or bookmark: the same comparison comes back
    table = page.locator("#compare-table")
    expect(table).to_be_visible(timeout=POLL_WAIT_MS)
    for run_id in ids:
        expect(table.locator("thead")).to_contain_text(run_id)
    differs = table.locator("tr.differs th")
    expect(differs.first).to_be_visible()
    differing = [t.split(" (")[0] for t in differs.all_text_contents()]
    assert "Learning rate" in differing and "Epochs" not in differing and "Seed" not in differing
    legend = page.locator("#chart-loss .u-legend")  # each run named by what differs, in the order they were made
    expect(legend).to_contain_text("lr 0.01 · lr 0.01", timeout=POLL_WAIT_MS)
    expect(legend).to_contain_text("lr 0.003 · lr 0.003")
    heads = table.locator("thead th").all_text_contents()
    assert heads[1].startswith(f"lr 0.01 ({ids[0]})") and heads[2].startswith(f"lr 0.003 ({ids[1]})")
    listed = {r["run_id"]: r for r in server.request("GET", "/runs")[1]["runs"]}
    best = max(ids, key=lambda r: listed[r]["best_test_accuracy"])  # the first made, if they tie
    expect(table.locator("thead th.best")).to_contain_text(f"({best}) ★ best")
    wait_for(lambda: chart_points(page, "eval") >= 4, timeout=POLL_WAIT_MS / 1000,
             message="both runs' evaluations")  # 2 runs x validation and test, one epoch
    # per-digit accuracy side by side: a table per run, named by it
    strips = page.locator("#chart-classes .heat-strip")
    expect(strips).to_have_count(2)
    expect(strips.nth(0).locator("caption")).to_contain_text("lr 0.01 · lr 0.01")
    expect(strips.nth(1).locator("caption")).to_contain_text("lr 0.003 · lr 0.003")
    swatches = [strips.nth(i).locator(".swatch").evaluate("e => e.style.background") for i in range(2)]
    assert swatches == [BLUE, ORANGE]  # each table in its line's colour (both runs' Model 1 was blue)
    # How each layer learns (in Explore): for any run, picked by name
    show_view(page, "explore")
    picker = page.locator("#explore-run")
    expect(picker.locator("option")).to_have_count(2, timeout=POLL_WAIT_MS)
    page.click("#predict-test-digit")
    expect(page.locator("[data-answer]")).to_have_count(1, timeout=POLL_WAIT_MS)
    with page.expect_request(lambda r: f"/runs/{ids[0]}/metrics" in r.url and "layers" in r.url), \
            page.expect_request(lambda r: r.url.endswith("/predict") and ids[0] in (r.post_data or "")):
        picker.select_option(ids[0])  # the same digit, read again by the run picked
    expect(page.locator("[data-answer]")).to_have_count(1, timeout=POLL_WAIT_MS)
    expect(page).to_have_url(re.compile(rf"view=explore&run={ids[0]}$"))
    page.go_back()  # the comparison, as it was left
    expect(page.locator("#compare-table")).to_be_visible()
    # re-run with the settings of the first run: the form in Train
    page.locator(f"#runs-rows tr[data-run-id='{ids[0]}'] button", has_text="re-run").click()
    expect(page.locator("main [data-view=train]")).to_be_visible()
    row = page.locator("#model-rows tr")
    expect(row).to_have_count(1)
    expect(row.nth(0).locator(".name")).to_have_value("lr 0.01")
    expect(row.nth(0).locator(".lr")).to_have_value("0.01")
    expect(page.locator("#epochs")).to_have_value("1")
    expect(page.locator("#seed")).to_have_value("5")
    page.go_back()
    page.click("#stop-compare")
    expect(page.locator("#compare-panel")).to_be_hidden()
    assert "runs=" not in page.url
    assert page.console_errors == []


def test_the_run_table_sorts_by_any_column(page, server_factory, tiny_mnist):
    server = server_factory(tiny_mnist)
    for lr in (0.003, 0.02, 0.01):
        code, _ = server.request("POST", "/start_training", {"epochs": 1, "learning_rate": lr, "precision": "fp32",
                                                             "models": [{"kernels": [2, 2, 2, 2]}]})
        assert code == 202
        wait_for(lambda: server.request("GET", "/training_status")[1]["state"] == "finished", message="run end")
    page.goto(server.url)
    show_view(page, "runs")
    expect(page.locator("#runs-rows tr")).to_have_count(3, timeout=POLL_WAIT_MS)
    header = page.locator("#runs-head th", has_text="Learning rate")
    header.locator("button").click()
    lr_cells = lambda: [float(t) for t in page.locator("#runs-rows td[data-column=lr]").all_text_contents()]  # noqa: E731
    assert lr_cells() == [0.02, 0.01, 0.003] and header.get_attribute("aria-sort") == "descending"
    header.locator("button").click()
    assert lr_cells() == [0.003, 0.01, 0.02] and header.get_attribute("aria-sort") == "ascending"
    expect(page).to_have_url(re.compile(r"sort=lr$"))
    page.reload()  # the order is in the address
    expect(page.locator("#runs-rows tr")).to_have_count(3, timeout=POLL_WAIT_MS)
    assert lr_cells() == [0.003, 0.01, 0.02]
    expect(page.locator("#runs-head th", has_text="Learning rate")).to_have_attribute("aria-sort", "ascending")
    assert page.console_errors == []


def test_per_digit_accuracy_shows_which_digits_lag_and_old_runs_say_they_have_none(page, server_factory, tiny_mnist,
                                                                                    tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(FIXTURE_RUNS / FIXTURE_ID, runs / FIXTURE_ID)  # a run made before per-digit accuracy
    server = server_factory(tiny_mnist, runs)
    code, body = server.request("POST", "/start_training", {
        "epochs": 2, "batch_size": 64, "learning_rate": 0.01, "precision": "fp32",
        "models": [{"kernels": [4, 8, 8, 8]}, {"kernels": [2, 4, 4, 4], "name": "small"}]})
    assert code == 202
    wait_for(lambda: server.request("GET", "/training_status")[1]["state"] == "finished", message="run end")
    for width, height in ((1280, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.goto(f"{server.url}/?run={body['run_id']}")
        expect(page.locator("#optimizer-advice dt")).to_have_text(  # what each optimizer does, in the form
            ["Adam", "AdamW (weight decay 0.01)", "SGD (Nesterov momentum 0.9)", "RMSprop (no momentum)"])
        strips = page.locator("#chart-classes .heat-strip")
        expect(strips).to_have_count(2, timeout=POLL_WAIT_MS)
        expect(strips.nth(1).locator("caption")).to_contain_text("small")
        expect(strips.nth(0).locator("caption")).to_contain_text(
            re.compile(r"weakest: \d \(\d+\.\d %\)|all alike \(100 %\)"))
        cells = strips.nth(0).locator("tbody tr").last.locator("td")
        expect(cells).to_have_count(10)  # digits 0 to 9, each with its number
        assert all(re.fullmatch(r"\d+\.\d|100|–", c) for c in cells.all_text_contents())
        assert strips.nth(0).locator("tbody tr").count() == 2  # one row per epoch
        assert strips.nth(0).locator("thead th").all_text_contents() == ["epoch", *map(str, range(10))]
        box = strips.nth(0).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width  # readable without scrolling sideways
        page.locator("#chart-classes").scroll_into_view_if_needed()
        assert axe_violations(page) == []
    page.goto(f"{server.url}/?run={FIXTURE_ID}")
    expect(page.locator("#chart-classes .heat-missing")).to_contain_text(
        "trained before per-digit accuracy was recorded", timeout=POLL_WAIT_MS)
    expect(page.locator("#chart-classes .heat-strip table")).to_have_count(0)
    assert page.console_errors == []
