"""Shared fixtures: tiny IDX data sets, the Flask app on a temp runs folder, the real MNIST, a
server process, Chromium; and which tests are slow. The helpers they use are in helpers.py."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from helpers import (CHROMIUM, ROOT, ServerProcess, make_mnist_dir, need, start_run, wait_run_end, write_idx)


# A run of two tiny models that trains in about a second on the tiny synthetic MNIST.


# Tests that need more than this process and tiny data it makes: the real MNIST, a server or
# trainer process, Chromium, or runs that draw their pictures (a renderer process each, about
# 1.5 s of a tiny run). They are marked slow by their folder, the fixtures they use or their
# ``pictures`` mark, so `python -m pytest -m "not slow"` (the fast tier) needs nothing remembered.
SLOW_FOLDERS = ("browser", "integration")
SLOW_FIXTURES = {"mnist_dir", "server_factory", "browser", "page", "cli_processes"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        folder = Path(str(item.fspath)).parent.name
        if (folder in SLOW_FOLDERS or SLOW_FIXTURES & set(getattr(item, "fixturenames", ()))
                or item.get_closest_marker("pictures")):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def tiny_mnist(tmp_path) -> Path:
    return make_mnist_dir(tmp_path / "tiny-mnist")


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The real MNIST: $MNIST_DATA_DIR or ../shared/mnist."""
    path = Path(os.environ.get("MNIST_DATA_DIR", ROOT.parent / "shared" / "mnist"))
    need((path / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file(), f"MNIST not found in {path}")
    return path


@pytest.fixture(autouse=True)
def torch_threads(request):
    """One torch thread for a test's training (in this process and in the servers and trainers it
    starts), two for one on the real digits. Its tiny models train about 20 % faster on one thread
    than on two on a 2-core CPU, and the other core is left to the browser and the server; the
    real digits' larger models are 1.4-1.5x faster on two."""
    import torch

    threads = 2 if {"mnist_sample", "mnist_dir"} & set(request.fixturenames) else 1
    before, env = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)
    yield
    torch.set_num_threads(before)
    if env is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = env


@pytest.fixture(scope="session")
def mnist_sample(mnist_dir, tmp_path_factory) -> Path:
    """Real MNIST digits, fewer of them: the first 20,000 training and 2,000 test images of the
    official files. A run on it holds out 2,000 for validation, so each epoch's evaluations read
    4,000 images instead of 15,000: most of a short run's time on a 2-core CPU."""
    from mnist_monitor.data import read_idx

    root = tmp_path_factory.mktemp("mnist-sample")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name, count in (("train-images-idx3-ubyte", 20_000), ("train-labels-idx1-ubyte", 20_000),
                        ("t10k-images-idx3-ubyte", 2_000), ("t10k-labels-idx1-ubyte", 2_000)):
        write_idx(raw / name, read_idx(mnist_dir / "MNIST" / "raw" / name)[:count])
    return root


# Threads an app starts: its sweep driver, and one a run (in this process or watching a Ray task).
APP_THREADS = ("sweeps", "training-worker", "ray-")


@pytest.fixture(autouse=True)
def no_threads_left():
    """A test ends what its apps started. A sweep driver left behind goes on reading and starting
    runs for the rest of the session, and a test that counts reads then counts its reads too."""
    before = set(threading.enumerate())
    yield
    left = [t for t in set(threading.enumerate()) - before if t.name.startswith(APP_THREADS)]
    for thread in left:
        thread.join(10)  # a run that has just ended is still writing its last files
    alive = sorted(t.name for t in left if t.is_alive())
    assert not alive, f"the test left these threads running: {alive} (close its apps: the make_app fixture)"


def close_app(app) -> None:
    app.extensions["sweep_driver"].close()  # first: runs a shutdown stops are not a sweep's results
    assert app.extensions["training"].shutdown(60)  # the active run stops (a run just ending: no race)


@pytest.fixture
def make_app():
    """``create_app`` for a test that builds its own apps (a restart, a Ray pool, a token); each one
    is closed when the test ends, as the server does on exit."""
    from server import create_app

    apps = []

    def make(config: dict):
        apps.append(create_app(config))
        return apps[-1]

    yield make
    for app in apps:
        close_app(app)


@pytest.fixture
def app(request, tmp_path, tiny_mnist, make_app):
    """The app on a runs folder of its own and tiny MNIST. Its runs draw no pictures (the renderer
    process takes most of a tiny run's time) unless the test is marked ``pictures``."""
    pictures = request.node.get_closest_marker("pictures") is not None
    return make_app({"RUNS_DIR": str(tmp_path / "runs"), "DATA_DIR": str(tiny_mnist), "TESTING": True,
                     "TRAINER_OPTIONS": {"status_interval": 0.05, "pictures": pictures}})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(client, run id) of one finished QUICK run, shared by the tests of a module that only read it."""
    from server import create_app

    root = tmp_path_factory.mktemp("trained")
    app = create_app({"RUNS_DIR": str(root / "runs"), "DATA_DIR": str(make_mnist_dir(root / "mnist")),
                      "TESTING": True, "TRAINER_OPTIONS": {"pictures": False}})
    client = app.test_client()
    run_id = start_run(client)
    assert wait_run_end(client)["state"] == "finished"
    yield client, run_id
    close_app(app)


@pytest.fixture
def server_factory(tmp_path):
    servers = []

    def make(data_dir: Path, runs_dir: Path | None = None, extra_args=(), orphan: bool = False) -> ServerProcess:
        server = ServerProcess(data_dir, runs_dir or tmp_path / "runs", tmp_path / "server.log", extra_args, orphan)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.stop()


# ---------------------------------------------------------------- the browser (Debian's Chromium)

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # skipped (or failed under REQUIRE_FULL_TESTS) by the browser fixture
    sync_playwright = None


@pytest.fixture(scope="module")
def browser():
    need(sync_playwright is not None, "playwright is not installed (pip install -r requirements-dev.txt)")
    need(os.path.exists(CHROMIUM), f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
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



def pytest_sessionfinish(session, exitstatus):
    """A run some test left training is stopped and waited for before the interpreter exits: a
    thread still inside torch then is ended by the interpreter's teardown, and with Ray loaded (its
    terminate handler) that aborts the whole process after every test has passed."""
    import gc
    import threading
    import time
    import warnings

    from mnist_monitor.training.trainer import Trainer

    def trains(thread) -> bool:
        target = getattr(thread, "_target", None)
        return isinstance(getattr(target, "__self__", None), Trainer) or any(
            isinstance(arg, Trainer) for arg in getattr(thread, "_args", ()))

    left = [t for t in threading.enumerate() if t.is_alive() and trains(t)]
    if not left:
        return
    with warnings.catch_warnings():  # isinstance on some of torch's deprecated objects warns
        warnings.simplefilter("ignore")
        for obj in gc.get_objects():
            if isinstance(obj, Trainer):
                obj.stop_event.set()
    deadline = time.monotonic() + 60
    for thread in left:
        thread.join(max(0.0, deadline - time.monotonic()))
