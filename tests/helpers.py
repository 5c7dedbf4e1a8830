"""Helpers for tests, benchmarks and scripts: tiny IDX data sets, fake runs, polling, a server in a
subprocess. Plain functions and classes (the fixtures are in conftest.py), importable from
anywhere the tests folder is on the path: ``from helpers import ServerProcess``."""
from __future__ import annotations

import gzip
import os
import signal
import struct
import sys
import time
from pathlib import Path

import numpy as np
import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the browser tests skip (or fail under REQUIRE_FULL_TESTS) through their fixture
    expect = None

ROOT = Path(__file__).resolve().parent.parent  # the project (on sys.path through pyproject's pythonpath)


REQUIRE_FULL = os.environ.get("REQUIRE_FULL_TESTS") == "1"


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


QUICK = {"epochs": 1, "batch_size": 64, "learning_rate": 0.01, "precision": "fp32",
         "models": [{"kernels": [4, 8, 8, 8]}, {"kernels": [2, 4, 4, 4], "name": "small"}]}


SLOW = dict(QUICK, epochs=100, batch_size=1)  # long enough to be stopped


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


PNG_BYTES = PNG_SIGNATURE + b"\0" * 64  # enough of a PNG for the file routes


def fake_run(store, state="finished", models=1, images=True, beat: str | None = None, owner: str | None = None,
             **status) -> str:
    """A run folder as the worker leaves it, without training: status, config and pictures.
    ``beat``: for an active state, a heartbeat of "this" process now, or of a "dead" one;
    ``owner``: the id of the student it belongs to, in a class."""
    from mnist_monitor.runstore import ModelStatus, RunStatus
    from mnist_monitor.runstore.files import atomic_write_json
    from mnist_monitor.runstore.liveness import Claim, this_process_beat

    run = store.create()
    status = {"started_at": time.time(), "updated_at": time.time(), **status}
    record = RunStatus(state=state, run_id=run.run_id,
                       models=[ModelStatus(name=f"Model {i + 1}", kernels=[1, 1, 1, 1], optimizer="adam",
                                           learning_rate=0.01, batch_size=8, parameters=10, epoch=1, epochs=2,
                                           batch=1, batches=2, eta_seconds=12.0) for i in range(models)], **status)
    atomic_write_json(run.path / "config.json", {"models": [{"kernels": [1, 1, 1, 1]}] * models})
    atomic_write_json(run.path / "status.json", record.to_dict())
    if owner is not None:
        atomic_write_json(run.path / "run.json", {"run_id": run.run_id, "owner": owner})
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
    from mnist_monitor.config import parse_train_config

    body = {"epochs": 2, "batch_size": 64, "learning_rate": 0.01, "precision": "fp32",
            "models": [{"kernels": [4, 8, 8, 8]}, {"kernels": [2, 4, 4, 4], "batch_size": 32}]}
    body.update(overrides)
    return parse_train_config(body)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Orphan:
    """A process whose parent ends at once (so its parent is init, pid 1), with the part of
    Popen's interface the tests use; its exit code goes to init, so ``wait`` says only that it ended."""

    def __init__(self, command: list[str], log):
        import shlex
        import subprocess

        started = subprocess.run(["bash", "-c", f"{shlex.join(command)} </dev/null >&2 &\necho $!"], stdout=subprocess.PIPE,
                                 stderr=log, cwd=ROOT, text=True, check=True)
        self.pid = int(started.stdout.split()[-1])
        self.returncode = None

    def poll(self):
        import psutil

        try:
            gone = psutil.Process(self.pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            gone = True
        return self.returncode if not gone else (self.returncode or "ended")

    def wait(self, timeout=None):
        import subprocess

        import psutil

        try:
            psutil.Process(self.pid).wait(timeout)
        except psutil.NoSuchProcess:
            pass
        except psutil.TimeoutExpired:
            raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout) from None
        return "ended"

    def send_signal(self, signum) -> None:
        os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ServerProcess:
    """``python server.py`` in a subprocess on a free port, as a user runs it."""

    def __init__(self, data_dir: Path, runs_dir: Path, log_path: Path, extra_args=(), orphan: bool = False):
        self.data_dir, self.runs_dir, self.log_path = data_dir, runs_dir, log_path
        self.extra_args, self.orphan = list(extra_args), orphan
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self) -> "ServerProcess":
        import subprocess
        import urllib.request

        log = open(self.log_path, "ab")
        command = [sys.executable, str(ROOT / "server.py"), "--port", str(self.port), "--data-dir", str(self.data_dir),
                   "--runs-dir", str(self.runs_dir), *self.extra_args]
        if self.orphan:  # its parent gone at once, as under a service manager or a shell that has exited
            self.process = Orphan(command, log)
        else:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)

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


CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


POLL_WAIT_MS = 20_000  # the page polls every 3 s; leave room for several polls on a busy CI machine


# The run folders written by the version before heartbeats and seed schemes, committed: today's
# code must list, open and resume them exactly.
FIXTURE_RUNS = ROOT / "tests" / "fixtures" / "runs_v1"
FIXTURE_ID = "20261201-120000-000abc"  # one tiny model, 2 epochs, seed 1, stopped in epoch 2 by that version


def steps_and_epochs(rows, model):
    """A model's training-curve steps and its evaluations' epochs, from metrics rows."""
    train_steps = [r["step"] for r in rows if r["kind"] == "train" and r["model"] == model]
    evals = [r["epoch"] for r in rows if r["kind"] == "eval" and r["model"] == model]
    return train_steps, evals


def axe_violations(page) -> list:
    """axe-core's violations on the page as it is: (rule id, the first three elements' selectors)."""
    try:
        from axe_playwright_python.sync_playwright import Axe
    except ImportError:
        need(False, "axe-playwright-python is not installed (pip install -r requirements-dev.txt)")
    results = Axe().run(page)
    return [(v["id"], [n["target"] for n in v["nodes"]][:3]) for v in results.response["violations"]]


def show_view(page, name: str) -> None:
    """Open a view of the page by its header link, as a user does, and wait until it shows."""
    page.locator(f"a[data-nav={name}]").click()
    expect(page.locator(f"main [data-view={name}]")).to_be_visible()
