"""The page in real Chromium (Debian's /usr/bin/chromium driven by Playwright) against the real server."""
import os
import re
import shutil

import pytest

from conftest import need

playwright_api = pytest.importorskip("playwright.sync_api") if os.environ.get("REQUIRE_FULL_TESTS") != "1" else None
from playwright.sync_api import expect, sync_playwright  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
POLL_WAIT_MS = 20_000  # the page polls every 3 s; leave room for several polls on a busy CI machine


@pytest.fixture(scope="module")
def browser():
    need(os.path.exists(CHROMIUM) or bool(shutil.which("chromium")), f"Chromium not found at {CHROMIUM}")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1300, "height": 1000})
    page = context.new_page()
    page.console_errors = []
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
    page.on("pageerror", lambda e: page.console_errors.append(str(e)))
    yield page
    context.close()


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


@pytest.mark.parametrize("field, value, message", [
    ("kernel", "0", "kernels must be whole numbers from 1 to 256"),
    ("batch", "5000", "batch size must be a whole number from 1 to 4096"),
    ("lr", "0", "learning rate must be greater than 0"),
    ("epochs", "101", "epochs must be a whole number from 1 to 100"),
])
def test_invalid_values_are_refused_in_the_form(page, server_factory, tiny_mnist, field, value, message):
    server = server_factory(tiny_mnist)
    page.goto(server.url)
    if field == "epochs":
        page.fill("#epochs", value)
    else:
        page.locator("#model-rows tr").nth(1).locator(f".{field}").first.fill(value)
    page.click("#start")
    assert message in page.locator("#form-error").text_content()
    assert page.locator("#form-error").is_visible()
    code, runs = server.request("GET", "/runs")
    assert runs["runs"] == []  # nothing was started
    assert page.console_errors == []


def test_a_run_from_start_to_stop_with_reload(page, server_factory, mnist_dir):
    server = server_factory(mnist_dir)
    page.goto(server.url)
    set_row(page, 0, batch=64)
    set_row(page, 1, batch=64)
    page.fill("#epochs", "30")
    page.fill("#train_samples", "2048")
    page.click("#start")
    expect(page.locator("#state")).to_have_text(re.compile("starting|running"), timeout=POLL_WAIT_MS)
    code, status = server.request("GET", "/training_status")
    run_id = status["run_id"]
    assert run_id in page.locator("#run-meta").text_content()
    # live status, curves and the first epoch's sample predictions arrive through polling
    page.wait_for_selector("#curves:not([hidden])", timeout=POLL_WAIT_MS)
    page.wait_for_selector("#img-samples_m0 img", timeout=POLL_WAIT_MS * 2)
    page.wait_for_selector("#img-samples_m1 img", timeout=POLL_WAIT_MS)
    cards = page.locator("#model-cards .card")
    assert cards.count() == 2
    assert "/ 30" in cards.nth(0).locator("dd[data-field=Epoch]").text_content()
    assert cards.nth(0).locator("dd[data-field='Test accuracy']").text_content().endswith("%")
    assert "device cpu" in page.locator("#run-meta").text_content()
    for img in page.locator("#curves, #per-model img").all():
        assert img.evaluate("i => i.complete && i.naturalWidth > 0"), img.get_attribute("src")
    # reload mid-run: the same run is shown, nothing lost
    page.reload()
    expect(page.locator("#run-meta")).to_contain_text(run_id, timeout=POLL_WAIT_MS)
    assert page.locator("#state").text_content() in ("running", "starting")
    page.wait_for_selector("#img-samples_m0 img", timeout=POLL_WAIT_MS)
    # stop: the run ends and what was recorded stays visible
    page.click("#stop")
    expect(page.locator("#state")).to_have_text("stopped", timeout=POLL_WAIT_MS)
    assert page.locator("#curves").is_visible()
    assert page.locator("#start").is_enabled() and page.locator("#stop").is_disabled()
    page.wait_for_selector(f"#runs-rows tr[data-run-id='{run_id}']", timeout=POLL_WAIT_MS)
    assert "stopped" in page.locator(f"#runs-rows tr[data-run-id='{run_id}']").text_content()
    assert page.console_errors == []
