"""Is a run being trained? Heartbeats decide, once: a trainer beats from a thread of its own, a
run whose beats stop is interrupted, a reused PID is seen at once, and a trainer that wakes up
after its run was resumed elsewhere writes nothing."""
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from mnist_monitor.runstore import liveness
from helpers import dead_pid, tiny_config, wait_for
from mnist_monitor.runstore import Run, snapshot, trained_now
from mnist_monitor.runstore.files import read_json
from mnist_monitor.runstore.liveness import Beat, Claim, is_alive, process_start
from mnist_monitor.training.trainer import Trainer

NOW = 1_800_000_000.0


def beat(**changes) -> Beat:
    values = dict(attempt=1, owner="a", beat_at=NOW, host=liveness.HOST, pid=os.getpid(),
                  pid_start=process_start(os.getpid()))
    return Beat(**{**values, **changes})


CLAIM = Claim(1, "a", NOW - 100)


def test_a_fresh_beat_of_the_claim_is_alive_and_an_old_one_is_not():
    assert is_alive(CLAIM, beat(), now=NOW + liveness.HEARTBEAT_LIMIT_S - 0.1)
    assert not is_alive(CLAIM, beat(), now=NOW + liveness.HEARTBEAT_LIMIT_S + 0.1)
    assert not is_alive(CLAIM, None, now=NOW)  # claimed long ago, never beat
    assert is_alive(Claim(1, "a", NOW), None, now=NOW + 1)  # just claimed: its first beat is on its way
    assert not is_alive(CLAIM, beat(owner="b"), now=NOW)  # a beat of another claim does not count


def test_on_this_host_a_gone_or_reused_pid_is_dead_at_once_but_not_on_another_host():
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as other:
        try:
            reused = beat(pid=other.pid)  # the PID now belongs to another program, started later
            assert not is_alive(CLAIM, reused, now=NOW)
            assert is_alive(CLAIM, beat(pid=other.pid, pid_start=process_start(other.pid)), now=NOW)
        finally:
            other.kill()
    assert not is_alive(CLAIM, beat(pid=dead_pid()), now=NOW)
    elsewhere = beat(pid=dead_pid(), host="another-machine/boot")  # a PID means nothing there
    assert is_alive(CLAIM, elsewhere, now=NOW + 1) and not is_alive(CLAIM, elsewhere, now=NOW + 60)
    # A container on this machine with a PID namespace of its own: the same host name and boot,
    # but its PIDs are not this process's (the PID check took its live trainer for a dead one).
    name, boot, _ = liveness.HOST.split("/", 2)
    container = beat(pid=dead_pid(), host=f"{name}/{boot}/pid:[4026532000]")
    assert liveness.HOST.endswith(os.readlink("/proc/self/ns/pid"))
    assert is_alive(CLAIM, container, now=NOW + 1) and not is_alive(CLAIM, container, now=NOW + 60)


@pytest.fixture
def quick_beats(monkeypatch):
    """Beats every 0.1 s, dead after 0.6 s: the same rules, ten times faster."""
    monkeypatch.setattr(liveness, "HEARTBEAT_INTERVAL_S", 0.1)
    monkeypatch.setattr(liveness, "HEARTBEAT_LIMIT_S", 0.6)


@pytest.mark.slow  # over 2 s on a 2-core CPU: the whole suite runs it
def test_a_long_step_does_not_stop_the_heartbeat(tmp_path, tiny_mnist, quick_beats):
    samples = []

    def long_step(trainer, m):
        if m.step == 3 and m.index == 0:  # a step twice as long as the limit
            until = time.monotonic() + 1.2
            while time.monotonic() < until:
                samples.append(trained_now(trainer.folder))
                time.sleep(0.05)

    status = Trainer(tiny_config(epochs=1), tiny_mnist, tmp_path / "run", monitor=False, on_step=long_step).run()
    assert status["state"] == "finished" and len(samples) > 15 and all(samples)
    run = Run(tmp_path / "run")
    time.sleep(0.7)
    assert not trained_now(run) and snapshot(run).state == "finished"  # no beats after the end; finished is final


def test_a_trainer_whose_run_was_resumed_elsewhere_stops_without_writing(tmp_path, tiny_mnist, quick_beats):
    run_dir = tmp_path / "run"
    trainer = Trainer(tiny_config(epochs=50, batch_size=8), tiny_mnist, run_dir, monitor=False)
    thread = threading.Thread(target=trainer.run)
    thread.start()
    wait_for(lambda: (read_json(run_dir / "status.json") or {}).get("state") == "running", message="running")
    (run_dir / "claim.json").write_text(json.dumps({"attempt": 2, "owner": "elsewhere", "claimed_at": time.time()}))
    written = (run_dir / "status.json").stat().st_mtime_ns
    thread.join(30)
    assert not thread.is_alive()
    assert (run_dir / "status.json").stat().st_mtime_ns == written  # nothing written over the new attempt
    assert read_json(run_dir / "heartbeat.json")["owner"] != "elsewhere"  # its beats stopped, the new trainer's start
    assert read_json(run_dir / "claim.json")["owner"] == "elsewhere"


def test_a_stop_request_is_removed_when_the_run_ends_and_when_it_is_resumed(tmp_path, tiny_mnist, monkeypatch):
    from mnist_monitor.training import trainer as train

    monkeypatch.setattr(train, "STOP_CHECK_INTERVAL", 0.0)  # looked for at every step
    run_dir = tmp_path / "run"
    config = tiny_config(epochs=2)

    def ask_to_stop(trainer, m):
        if m.index == 0 and m.step == m.batches + 2:  # as the page does for a run of another process
            Run(run_dir).request_stop()

    assert Trainer(config, tiny_mnist, run_dir, on_step=ask_to_stop, monitor=False).run()["state"] == "stopped"
    assert not (run_dir / "stop.request").exists()
    Run(run_dir).request_stop()  # a request that came too late, after the end
    resumed = Trainer(config, tiny_mnist, run_dir, resume=True, monitor=False).run()
    assert resumed["state"] == "finished" and resumed["resumes"] == 1
