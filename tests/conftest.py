"""Shared fixtures: tiny IDX data sets, the Flask app on a temp runs folder, polling helpers."""
from __future__ import annotations

import gzip
import os
import struct
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent  # the project (on sys.path through pyproject's pythonpath)

REQUIRE_FULL = os.environ.get("REQUIRE_FULL_TESTS") == "1"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A run of two tiny models that trains in about a second on the tiny synthetic MNIST.
QUICK = {"epochs": 1, "batch_size": 64, "learning_rate": 0.01, "precision": "fp32",
         "models": [{"kernels": [4, 8, 8, 8]}, {"kernels": [2, 4, 4, 4], "name": "small"}]}
SLOW = dict(QUICK, epochs=100, batch_size=1)  # long enough to be stopped


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


def need(condition: bool, reason: str) -> None:
    """Skip when a resource is missing, but fail where CI says every test must run."""
    if not condition:
        if REQUIRE_FULL:
            pytest.fail(f"REQUIRE_FULL_TESTS=1 but {reason}")
        pytest.skip(reason)


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    codes = {np.dtype(np.uint8): 0x08}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def synthetic_digits(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Easy-to-learn fake digits: label d is a bright 7x7 block at one of 10 places, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=count).astype(np.uint8)
    images = rng.integers(0, 40, size=(count, 28, 28)).astype(np.uint8)
    for i, d in enumerate(labels):
        row, col = 2 + (d // 5) * 12, 1 + (d % 5) * 5
        images[i, row:row + 7, col:col + 7] = 255
    return images, labels


def make_mnist_dir(root: Path, train: int = 600, test: int = 200, compress: bool = False) -> Path:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    x, y = synthetic_digits(train, seed=1)
    write_idx(raw / "train-images-idx3-ubyte", x, compress)
    write_idx(raw / "train-labels-idx1-ubyte", y, compress)
    x, y = synthetic_digits(test, seed=2)
    write_idx(raw / "t10k-images-idx3-ubyte", x, compress)
    write_idx(raw / "t10k-labels-idx1-ubyte", y, compress)
    return root


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
    from data import read_idx

    root = tmp_path_factory.mktemp("mnist-sample")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name, count in (("train-images-idx3-ubyte", 20_000), ("train-labels-idx1-ubyte", 20_000),
                        ("t10k-images-idx3-ubyte", 2_000), ("t10k-labels-idx1-ubyte", 2_000)):
        write_idx(raw / name, read_idx(mnist_dir / "MNIST" / "raw" / name)[:count])
    return root


@pytest.fixture
def app(request, tmp_path, tiny_mnist):
    """The app on a runs folder of its own and tiny MNIST. Its runs draw no pictures (the renderer
    process takes most of a tiny run's time) unless the test is marked ``pictures``."""
    from server import create_app

    pictures = request.node.get_closest_marker("pictures") is not None
    app = create_app({"RUNS_DIR": str(tmp_path / "runs"), "DATA_DIR": str(tiny_mnist), "TESTING": True,
                      "TRAINER_OPTIONS": {"status_interval": 0.05, "pictures": pictures}})
    yield app
    app.extensions["sweep_driver"].close()  # first: runs a shutdown stops are not a sweep's results
    assert app.extensions["training"].shutdown(60)  # the active run stops (a run just ending: no race)


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
    app.extensions["training"].shutdown(60)


PNG_BYTES = PNG_SIGNATURE + b"\0" * 64  # enough of a PNG for the file routes


def fake_run(store, state="finished", models=1, images=True, beat: str | None = None, **status) -> str:
    """A run folder as the worker leaves it, without training: status, config and pictures.
    ``beat``: for an active state, a heartbeat of "this" process now, or of a "dead" one."""
    from runstore import ModelStatus, RunStatus
    from runstore.files import atomic_write_json
    from runstore.liveness import Claim, this_process_beat

    run = store.create()
    status = {"started_at": time.time(), "updated_at": time.time(), **status}
    record = RunStatus(state=state, run_id=run.run_id,
                       models=[ModelStatus(name=f"Model {i + 1}", kernels=[1, 1, 1, 1], optimizer="adam",
                                           learning_rate=0.01, batch_size=8, parameters=10, epoch=1, epochs=2,
                                           batch=1, batches=2, eta_seconds=12.0) for i in range(models)], **status)
    atomic_write_json(run.path / "config.json", {"models": [{"kernels": [1, 1, 1, 1]}] * models})
    atomic_write_json(run.path / "status.json", record.to_dict())
    if beat is not None:
        claim = Claim(1, "fake-owner", time.time())
        atomic_write_json(run.path / "claim.json", claim.__dict__)
        heartbeat = this_process_beat(claim).to_dict()
        if beat == "dead":
            heartbeat["pid"] = dead_pid()
        atomic_write_json(run.path / "heartbeat.json", heartbeat)
    if images:
        (run.path / "curves.png").write_bytes(PNG_BYTES)
        for i in range(models):
            for kind in ("samples", "errors", "confusion"):
                (run.path / f"{kind}_m{i}.png").write_bytes(PNG_BYTES)
    return run.run_id


def dead_pid() -> int:
    """The PID of a process that has ended."""
    import subprocess

    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.05, message: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def start_run(client, body=QUICK) -> str:
    """POST /start_training through the Flask test client; the new run's id."""
    response = client.post("/start_training", json=body)
    assert response.status_code == 202, response.get_json()
    return response.get_json()["run_id"]


def wait_run_end(client, states=("finished", "stopped", "failed")) -> dict:
    """Poll /training_status until the run is in one of ``states``; that status."""
    return wait_for(lambda: (s := client.get("/training_status").get_json())["state"] in states and s,
                    message="the run to end")


def tiny_config(**overrides):
    """A validated TrainConfig of two tiny models (2 epochs) for trainer tests."""
    from config import parse_train_config

    body = {"epochs": 2, "batch_size": 64, "learning_rate": 0.01, "precision": "fp32",
            "models": [{"kernels": [4, 8, 8, 8]}, {"kernels": [2, 4, 4, 4], "batch_size": 32}]}
    body.update(overrides)
    return parse_train_config(body)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``python server.py`` in a subprocess on a free port, as a user runs it."""

    def __init__(self, data_dir: Path, runs_dir: Path, log_path: Path, extra_args=()):
        self.data_dir, self.runs_dir, self.log_path = data_dir, runs_dir, log_path
        self.extra_args = list(extra_args)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self) -> "ServerProcess":
        import subprocess
        import urllib.request

        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "server.py"), "--port", str(self.port), "--data-dir", str(self.data_dir),
             "--runs-dir", str(self.runs_dir), *self.extra_args], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)

        def up():
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/training_status", timeout=2) as r:
                    return r.status == 200
            except urllib.error.HTTPError as e:  # it answers (401 without its token, say): it is up
                return e.code == 401
            except OSError:
                return False

        wait_for(up, timeout=60, interval=0.1, message="the server to answer")
        return self

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except Exception:
                self.process.kill()

    def request(self, method: str, path: str, body=None, headers=None):
        """(status code, parsed JSON or raw bytes)."""
        import json
        import urllib.error
        import urllib.request

        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                raw, code, kind = r.read(), r.status, r.headers.get_content_type()
        except urllib.error.HTTPError as e:
            raw, code, kind = e.read(), e.code, e.headers.get_content_type()
        return code, json.loads(raw) if kind == "application/json" else raw


@pytest.fixture
def server_factory(tmp_path):
    servers = []

    def make(data_dir: Path, runs_dir: Path | None = None, extra_args=()) -> ServerProcess:
        server = ServerProcess(data_dir, runs_dir or tmp_path / "runs", tmp_path / "server.log", extra_args)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.stop()


# ---------------------------------------------------------------- the browser (Debian's Chromium)

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # skipped (or failed under REQUIRE_FULL_TESTS) by the browser fixture
    expect = sync_playwright = None

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
POLL_WAIT_MS = 20_000  # the page polls every 3 s; leave room for several polls on a busy CI machine


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


