"""The sweep view in Chromium: a real search sweep on tiny data, its parallel-coordinates lines,
the filters (typed and dragged) that hide runs in the table, the best run marked, axe-core."""
import re

from helpers import POLL_WAIT_MS, expect, wait_for
from helpers import axe_violations

BASE = {"epochs": 2, "batch_size": 32, "precision": "fp32", "models": [{"kernels": [4, 8, 8, 8]}]}


def test_the_sweep_view_draws_a_line_per_run_filters_them_and_marks_the_best(page, server_factory, tiny_mnist):
    server = server_factory(tiny_mnist)
    code, made = server.request("POST", "/sweeps", {
        "base": BASE, "trials": 6, "prune": "median", "name": "lr search",
        "search": {"learning_rate": {"low": 0.0001, "high": 3.0, "log": True}, "seed": [0, 1]}})
    assert code == 202, made
    sweep_id = made["sweep_id"]
    done = wait_for(lambda: (s := server.request("GET", f"/sweeps/{sweep_id}")[1])["state"] != "running" and s,
                    timeout=300, interval=0.5, message="the sweep to end")
    assert done["state"] == "finished" and len(done["runs"]) == 6
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{server.url}/?sweep={sweep_id}")
    expect(page.locator("#sweep-title")).to_contain_text("Sweep lr search: search of 6 trials over learning rate, seed",
                                                         timeout=POLL_WAIT_MS)
    lines = page.locator(".parcoords path[data-run-id]")
    expect(lines).to_have_count(6)
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
    # Results first, sortable: by trial, then back.
    page.locator("#sweep-head button", has_text="Trial").click()
    trials = page.locator("#sweep-rows tr").evaluate_all("rows => rows.map(r => Number(r.dataset.trial))")
    assert trials == list(range(6))
    page.locator("#sweep-head button", has_text="Best val. %").click()
    assert page.locator("#sweep-rows tr").first.get_attribute("data-run-id") == done["best_run_id"]
    # Typed filter: only the runs at or above 50 % best validation accuracy stay, in the plot and the table.
    page.get_by_label("best val. accuracy % min").fill("50")
    good = [r for r in done["runs"] if r["objective"] is not None and r["objective"] >= 50]
    expect(page.locator("#sweep-rows tr:not([hidden])")).to_have_count(len(good))
    expect(page.locator(".parcoords path:not(.filtered)")).to_have_count(len(good))
    expect(page.locator("#sweep-shown")).to_have_text(f"{len(good)} of 6 trials shown")
    page.get_by_label("best val. accuracy % max").fill("10")  # a min above its max is said, not just an empty plot
    expect(page.locator("#sweep-shown")).to_contain_text("the min of best val. accuracy % is above its max")
    page.get_by_label("best val. accuracy % max").fill("")
    page.click("#sweep-clear")
    page.get_by_label("best val. accuracy % min").fill("")
    expect(page.locator("#sweep-rows tr:not([hidden])")).to_have_count(6)
    # Dragged filter: on the learning-rate axis, from its bottom to its middle (1e-4 to ~0.017).
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

