"""The sweep view in Chromium: a search made in the new-sweep form (the body it shows is the body it
sends) and run to the end on tiny data, why each trial ended (visible at 390 px, the pruner's own
numbers), the trials over epochs, each trial marked in every chart from its row by keyboard and
from its line by pointer, ticks on every axis, the filters (typed and dragged) that hide runs in
the table, the best run marked, two trials added to the finished search, axe-core at both sizes."""
import json
import re

from helpers import POLL_WAIT_MS, expect, wait_for
from helpers import axe_violations

FORM = {"epochs": 2, "precision": "fp32", "models": [{"name": "Model 1", "kernels": [4, 8, 8, 8], "batch_size": 32,
                                                      "learning_rate": 0.01, "optimizer": "adam"}]}


def make_search_in_the_form(page, server) -> tuple[str, dict]:
    """The Train form's settings (remembered), then a search over the learning rate (a log range)
    and the seed (choices), 8 trials, median pruner, named: the body shown is the body sent."""
    page.add_init_script(f"localStorage.setItem('mnist-monitor-form', JSON.stringify({json.dumps(FORM)}))")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{server.url}/?view=sweeps")
    expect(page.locator("#sb-base")).to_contain_text("2 epochs on all training images; Model 1 4,8,8,8", timeout=POLL_WAIT_MS)
    page.fill("#sb-name", "lr search")
    lr = page.locator('#sb-rows tr[data-key="learning_rate"]')
    expect(lr.locator("select")).to_have_value("range")  # what a learner tunes first is ready
    page.check('input[name="sb-kind"][value="grid"]')  # a grid: the range becomes its decades, the size is said
    expect(lr.locator(".sb-list")).to_have_value("0.0001, 0.001, 0.01, 0.1")
    page.locator('#sb-rows tr[data-key="seed"] select').select_option("list")
    page.get_by_label("seed: values, separated by commas").fill(", ".join(map(str, range(20))))
    expect(page.locator("#sb-size")).to_have_text("80 combinations: a sweep trains at most 64 runs")
    page.locator('#sb-rows tr[data-key="seed"] select').select_option("fixed")
    expect(page.locator("#sb-size")).to_have_text("4 combinations: 4 runs of 2 epochs.")
    page.check('input[name="sb-kind"][value="search"]')
    lr.locator("select").select_option("range")
    lr.get_by_label("learning rate: highest").fill("3")
    page.locator('#sb-rows tr[data-key="seed"] select').select_option("list")
    page.get_by_label("seed: values, separated by commas").fill("0, 1, 1")
    page.click("#sb-start")  # a value twice is said next to its setting, and nothing is sent
    expect(page.locator('#sb-rows tr[data-key="seed"] .field-error')).to_have_text("seed: 1 is there twice")
    page.get_by_label("seed: values, separated by commas").fill("0, 1")
    page.select_option("#sb-prune", "successive_halving")
    page.locator('#sb-rows tr[data-key="epochs"] select').select_option("list")
    page.get_by_label("epochs: values, separated by commas").fill("1, 2")
    page.click("#sb-start")
    expect(page.locator('#sb-rows tr[data-key="epochs"] .field-error')).to_contain_text(
        "epochs: successive halving judges every trial at the same epochs")
    page.locator('#sb-rows tr[data-key="epochs"] select').select_option("fixed")
    page.select_option("#sb-prune", "median")
    page.click("#sb-json summary")
    shown = json.loads(page.locator("#sb-body").inner_text())
    assert shown["search"] == {"learning_rate": {"low": 0.0001, "high": 3, "log": True}, "seed": [0, 1]}
    assert (shown["trials"], shown["prune"], shown["name"], shown["base"]["epochs"]) == (8, "median", "lr search", 2)
    with page.expect_request(lambda r: r.url.endswith("/sweeps") and r.method == "POST") as sent:
        page.click("#sb-start")
    assert sent.value.post_data_json == shown
    expect(page).to_have_url(re.compile(r"view=sweeps&sweep="), timeout=POLL_WAIT_MS)
    sweep_id = re.search(r"sweep=([^&]+)", page.url).group(1)
    done = wait_for(lambda: (s := server.request("GET", f"/sweeps/{sweep_id}")[1])["state"] != "running" and s,
                    timeout=300, interval=0.5, message="the sweep to end")
    return sweep_id, done


def test_a_search_made_in_the_form_shows_why_each_trial_ended_and_takes_more_trials(page, server_factory, tiny_mnist):
    server = server_factory(tiny_mnist)
    sweep_id, done = make_search_in_the_form(page, server)
    assert done["state"] == "finished" and len(done["runs"]) == 8
    pruned = [r for r in done["runs"] if r["state"] == "pruned"]
    assert pruned and all(re.fullmatch(r"pruned at epoch 1: best so far \d+\.\d % < median \d+\.\d % of \d finished trials",
                                       r["pruned_because"]) for r in pruned), [r["pruned_because"] for r in pruned]
    page.reload()
    expect(page.locator("#sweep-title")).to_contain_text("Sweep lr search: search of 8 trials over learning rate, seed",
                                                         timeout=POLL_WAIT_MS)
    expect(page.locator("#sweep-pruner")).to_contain_text("It starts once 3 trials have finished")
    expect(page.locator("#sweep-list")).to_contain_text(re.compile(r"lr search · search over learning rate, seed · finished · "
                                                                   r"8 of 8 trials done, \d+ pruned · best \d+\.\d\d %"))
    # Trials over epochs: a marked line for every trial with a result, the pruned ones ending in a cross.
    chart = page.locator('[data-chart="intermediate"]')
    scored = [r for r in done["runs"] if r["intermediate"]]
    expect(chart.locator("path.trial-line[data-trial]")).to_have_count(len(scored))
    expect(chart.locator("path.cut[data-trial]")).to_have_count(len(pruned))
    expect(chart.locator("path.pruner-line")).to_have_count(2)  # the median per epoch, and its legend
    assert chart.locator("path.pruner-line").first.get_attribute("d").count("L") == 1  # epochs 1 and 2
    # Every parallel-coordinates axis has ticks between its ends.
    for axis in page.locator(".parcoords g.axis").all():
        assert axis.locator("text.tick").count() >= 2
    assert page.locator(".parcoords g.axis").first.locator("text.tick").count() >= 4  # 1e-4 .. 3 on a log scale
    # One tab stop a row; focusing a row marks its trial's line in both charts, and the readout names it.
    page.locator("#sweep-head button", has_text="Trial").click()
    first = page.locator("#sweep-rows tr").first
    first.focus()
    page.keyboard.press("Tab")
    second = page.locator("#sweep-rows tr").nth(1)
    expect(second).to_be_focused()
    trial = second.get_attribute("data-trial")
    for box in ("#sweep-parcoords", "#sweep-intermediate"):
        expect(page.locator(f"{box} path.hot")).to_have_count(1)
        assert page.locator(f"{box} path.hot").get_attribute("data-trial") == trial
    expect(page.locator("#sweep-readout")).to_contain_text(f"Trial {int(trial) + 1} (")
    # A line under the pointer marks its row; a click on it goes to the row.
    line = page.locator(f'#sweep-intermediate path.trial-line[data-trial="{pruned[0]["trial"]}"]')
    line.dispatch_event("pointerenter")
    expect(page.locator(f'#sweep-rows tr[data-trial="{pruned[0]["trial"]}"]')).to_have_class(re.compile("hot"))
    line.dispatch_event("click")
    expect(page.locator(f'#sweep-rows tr[data-trial="{pruned[0]["trial"]}"]')).to_be_focused()
    assert axe_violations(page) == []
    # A pruned trial's own page says why it ended, the epochs it trained, and its sweep by name (a link).
    page.goto(f"{server.url}/?view=train&run={pruned[0]['run_id']}")
    expect(page.locator("#run-meta")).to_contain_text(pruned[0]["pruned_because"], timeout=POLL_WAIT_MS)
    expect(page.locator("#model-cards")).to_contain_text("1 / 2, pruned")
    expect(page.locator("#run-sweep")).to_have_text(f"trial {pruned[0]['trial'] + 1} of sweep lr search")
    page.click("#run-sweep")
    expect(page.locator("#sweep-title")).to_contain_text("Sweep lr search", timeout=POLL_WAIT_MS)
    # At 390 px each pruned trial's reason is read in its row, inside the screen, with no hover.
    page.set_viewport_size({"width": 390, "height": 844})
    for run in pruned:
        why = page.locator(f'#sweep-rows tr[data-trial="{run["trial"]}"] .why')
        expect(why).to_have_text(run["pruned_because"])
        why.scroll_into_view_if_needed()
        box = why.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    assert axe_violations(page) == []
    page.set_viewport_size({"width": 1280, "height": 900})
    # Two more trials of the finished search: two more runs of the same study.
    page.fill("#sweep-more", "2")
    page.click("#sweep-add")
    expect(page.locator("#sweep-added")).to_have_text("2 more trials asked for: 10 in all.")
    more = wait_for(lambda: (s := server.request("GET", f"/sweeps/{sweep_id}")[1])["state"] != "running"
                    and len(s["runs"]) == 10 and s, timeout=300, interval=0.5, message="the two added trials")
    assert more["state"] == "finished" and [r["run_id"] for r in more["runs"][:8]] == [r["run_id"] for r in done["runs"]]
    assert len({r["run_id"] for r in more["runs"]}) == 10
    expect(page.locator("#sweep-rows tr")).to_have_count(10, timeout=POLL_WAIT_MS)
    done = more
    # How far to trust the best: said when few trials ran to the end, or an early look proved wrong.
    ended = [r for r in done["runs"] if r["state"] == "finished"]
    line = dict((int(e), v) for e, v in done["pruner"]["line"])
    late = [r for r in ended if line.get(r["intermediate"][-1][0], 101) <= r["intermediate"][-1][1]
            and any(e < r["intermediate"][-1][0] and e in line and v < line[e] for e, v in r["intermediate"])]
    caution = page.locator("#sweep-caution")
    if len(ended) <= 3:
        expect(caution).to_contain_text(f"Only {len(ended)} trial")
    if late:
        expect(caution).to_contain_text(f"An early look can be wrong: trial {late[0]['trial'] + 1} was at")
    expect(caution).not_to_contain_text("Every trial used seed")  # the seed varies here
    lines = page.locator(".parcoords path[data-run-id]")
    expect(lines).to_have_count(10)
    assert sorted(lines.evaluate_all("ps => ps.map(p => p.dataset.runId)")) == sorted(r["run_id"] for r in done["runs"])
    best = page.locator("#sweep-rows tr.best")
    expect(best).to_have_count(1)
    assert best.get_attribute("data-run-id") == done["best_run_id"]
    expect(best.locator("td").first).to_contain_text("★ best")
    expect(page.locator("#sweep-importance")).to_contain_text("PED-ANOVA")
    # The objective against each varied setting: a plot each, a dot per run with a result.
    scored = [r for r in done["runs"] if r["objective"] is not None]
    expect(page.locator("#sweep-scatter svg")).to_have_count(2)
    expect(page.locator("#sweep-scatter svg").first).to_have_attribute("aria-label", re.compile("learning rate \\(log scale\\)"))
    expect(page.locator("#sweep-scatter svg").first.locator("circle")).to_have_count(len(scored))
    # Sortable: by trial (the page was loaded again above: in order), again for the other direction, then by result.
    order = lambda: page.locator("#sweep-rows tr").evaluate_all("rows => rows.map(r => Number(r.dataset.trial))")  # noqa: E731
    page.locator("#sweep-head button", has_text="Trial").click()
    assert order() == list(range(10))
    page.locator("#sweep-head button", has_text="Trial").click()
    assert order() == list(range(10))[::-1]
    page.locator("#sweep-head button", has_text="Best val. %").click()
    assert page.locator("#sweep-rows tr").first.get_attribute("data-run-id") == done["best_run_id"]
    # Typed filter: only the runs at or above 50 % best validation accuracy stay, in the plot and the table.
    page.get_by_label("best val. accuracy % min").fill("50")
    good = [r for r in done["runs"] if r["objective"] is not None and r["objective"] >= 50]
    expect(page.locator("#sweep-rows tr:not([hidden])")).to_have_count(len(good))
    expect(page.locator(".parcoords path:not(.filtered)")).to_have_count(len(good))
    expect(page.locator("#sweep-shown")).to_have_text(f"{len(good)} of 10 trials shown")
    page.get_by_label("best val. accuracy % max").fill("10")  # a min above its max is said, not just an empty plot
    expect(page.locator("#sweep-shown")).to_contain_text("the min of best val. accuracy % is above its max")
    page.get_by_label("best val. accuracy % max").fill("")
    page.click("#sweep-clear")
    page.get_by_label("best val. accuracy % min").fill("")
    expect(page.locator("#sweep-rows tr:not([hidden])")).to_have_count(10)
    # Dragged filter: on the learning-rate axis, from its bottom to its middle (1e-4 to ~0.017).
    page.locator(".parcoords").scroll_into_view_if_needed()
    zone = page.locator(".parcoords .brush-zone").first.bounding_box()
    page.mouse.move(zone["x"] + zone["width"] / 2, zone["y"] + zone["height"] - 1)
    page.mouse.down()
    page.mouse.move(zone["x"] + zone["width"] / 2, zone["y"] + zone["height"] / 2, steps=5)
    page.mouse.up()
    low = [r for r in done["runs"] if r["values"]["learning_rate"] <= 0.0173]
    expect(page.locator("#sweep-rows tr:not([hidden])")).to_have_count(len(low))
    assert float(page.get_by_label("learning rate max").input_value()) < 0.02
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280  # no sideways scroll
    for box in ("#sweeps .table-scroll", "#history .table-scroll"):  # nor inside the tables, at 1280 px
        width = page.evaluate(f"(b => [b.scrollWidth, b.clientWidth])(document.querySelector('{box}'))")
        assert width[0] <= width[1], (box, width)
    trial = page.locator("#runs-rows td[data-column=sweep] a").first  # the history links each trial to its sweep
    expect(trial).to_contain_text("trial ")
    assert axe_violations(page) == []
    page.click("#sweep-compare")  # the runs' curves overlaid, each legend naming its values, in sweep order
    expect(page).to_have_url(re.compile(r"runs="))
    compared = [r["run_id"] for r in done["runs"]]
    assert page.evaluate("new URLSearchParams(location.search).get('runs')").split(",") == compared
    best_lr = next(r for r in done["runs"] if r["run_id"] == done["best_run_id"])["values"]["learning_rate"]
    expect(page.locator("#chart-loss .u-legend")).to_contain_text(f"lr {float(f'{best_lr:.4g}')}", timeout=POLL_WAIT_MS)
    page.go_back()  # back: the sweep alone again
    expect(page.locator("#compare-panel")).to_be_hidden()
    expect(page.locator("#sweep-view")).to_be_visible()
    page.click("#sweep-best")  # the best settings fill the form
    expect(page.locator("#model-rows tr").first.locator(".lr")).to_have_value(str(best_lr))

