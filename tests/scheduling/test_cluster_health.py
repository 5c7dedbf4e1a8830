"""Whether Ray can take runs, asked without waiting, and the restart of a Ray that went away, with
a probe and a restart that the tests script (Ray itself is in integration/test_ray.py and in the
server-process test that kills a local instance's agents)."""
import logging
import threading

from helpers import wait_for
from mnist_monitor.scheduling.cluster_health import LOOK_EVERY, LOOK_TIMEOUT, ClusterHealth


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def reason(health, clock):
    clock.now += LOOK_EVERY
    return health.available()


def settled(health, clock, expected, timeout=10):
    """Ask until the answer is ``expected`` (each ask after the last look may start a new one)."""
    def answer():
        clock.now += LOOK_EVERY
        return health.available() == expected
    wait_for(answer, timeout=timeout, interval=0.01, message=f"available() to be {expected!r}")


def test_a_lost_instance_is_restarted_with_a_back_off_and_a_log_line_until_it_answers(caplog):
    clock, answers, restarts = Clock(), ["the node died"], []

    def restart():
        restarts.append(len(restarts) + 1)
        if len(restarts) < 4:
            raise RuntimeError(f"port in use ({len(restarts)})")
        answers[0] = None  # the fourth start brings it back

    health = ClusterHealth(lambda: answers[0], restart, clock, backoff=(0.01, 0.02, 0.03))
    try:
        with caplog.at_level(logging.INFO, logger="cluster"):
            reasons = set()

            def back():
                clock.now += LOOK_EVERY
                reasons.add(health.available())
                return restarts == [1, 2, 3, 4] and health.available() is None
            wait_for(back, timeout=10, interval=0.001, message="the fourth restart to bring Ray back")
        assert health.restarts == 1
        tried = [r.getMessage() for r in caplog.records]
        assert [m for m in tried if m.startswith("restarting Ray")] == [
            f"restarting Ray (try {n}): the node died" for n in (1, 2, 3, 4)]
        waits = [m.rsplit("next try in ", 1)[1] for m in tried if "next try in" in m]
        assert waits == ["0.01 s", "0.02 s", "0.03 s"]  # the back-off, its last step repeated
        assert tried[0] == "Ray workers are unavailable: the node died"
        assert tried[-1] == "Ray workers are available again (restarted)"
        seen = {r for r in reasons if r}  # what /training_status said meanwhile: why, and each failed try
        assert any("restart 1 failed (RuntimeError: port in use (1)), next in 0.01 s" in r for r in seen), seen
    finally:
        health.end()


def test_a_look_that_does_not_answer_counts_as_lost_and_never_blocks_the_asker():
    clock, release, restarted, calls = Clock(), threading.Event(), threading.Event(), []

    def probe():  # a cluster whose control store is gone: the call waits for as long as it is gone
        calls.append(1)
        if len(calls) == 1:
            release.wait(60)  # this one never answers (until the test ends)
        return None

    health = ClusterHealth(probe, restarted.set, clock, backoff=(0.01,))
    try:
        assert health.available() is None  # the first look has just begun; the asker does not wait for it
        clock.now += LOOK_TIMEOUT / 2
        assert health.available() is None  # still within its time
        clock.now += LOOK_TIMEOUT
        assert health.available() == f"the Ray cluster has not answered for {LOOK_TIMEOUT:.0f} s"
        assert restarted.wait(10)
        settled(health, clock, None)
        for _ in range(3):  # the look begun before the restart, still waiting, is not counted again
            wait_for(lambda: not (health._look and health._look.is_alive()), timeout=10, message="a look to end")
            clock.now += LOOK_TIMEOUT + 1
            assert health.available() is None
        assert health.restarts == 1 and len(calls) >= 4
    finally:
        release.set()
        health.end()


def test_a_ray_this_process_did_not_start_is_only_watched_until_it_answers_again():
    clock, answers = Clock(), ["ConnectionError: the cluster went away"]
    health = ClusterHealth(lambda: answers[0], None, clock, backoff=(0.01,))
    try:
        wait_for(lambda: "look 2 failed (ConnectionError: the cluster went away)" in (reason(health, clock) or ""),
                 timeout=10, interval=0.01, message="two looks while the cluster is away")
        answers[0] = None
        settled(health, clock, None)
        assert health.restarts == 0
    finally:
        health.end()


def test_a_lost_task_makes_ray_unavailable_until_a_look_finds_the_cluster_well():
    """One killed worker: the next start waits for one look, not for a restart."""
    clock, looked, go = Clock(), threading.Event(), threading.Event()
    answers = [None]

    def probe():
        go.wait(10)
        looked.set()
        return answers[0]

    health = ClusterHealth(probe, lambda: None, clock)
    try:
        health.lost("WorkerCrashedError: the worker died")
        assert health.available() == "a Ray task was lost (WorkerCrashedError: the worker died); checking the cluster"
        go.set()
        assert looked.wait(10)
        settled(health, clock, None)
        assert health.restarts == 0  # the cluster was well: nothing restarted
    finally:
        health.end()


def test_a_probe_that_raises_is_a_reason_and_close_ends_the_restarts():
    clock, tries = Clock(), []

    def probe():
        raise ConnectionError("GCS unreachable\nat 127.0.0.1:6379")

    health = ClusterHealth(probe, lambda: tries.append(1), clock, backoff=(0.01,))
    wait_for(lambda: reason(health, clock) is not None and len(tries) >= 2, timeout=10, interval=0.01,
             message="two restart tries")
    assert health.available().startswith("ConnectionError: GCS unreachable;")  # its first line only
    health.end()
    count = len(tries)
    assert not health._recovery.is_alive()
    assert len(tries) == count  # closed: no more tries


def test_a_lost_task_then_a_look_that_does_not_answer_restarts_ray():
    """Ray's control store gone: a task is lost first (so a reason is shown already), then the
    look waits for good. The restart must still come."""
    clock, release, restarted = Clock(), threading.Event(), threading.Event()
    health = ClusterHealth(lambda: release.wait(60) and None, restarted.set, clock, backoff=(0.01,))
    try:
        health.lost("LocalRayletDiedError: the raylet died")
        clock.now += LOOK_TIMEOUT + 1
        assert health.available() == f"the Ray cluster has not answered for {LOOK_TIMEOUT:.0f} s"
        assert restarted.wait(10)
    finally:
        release.set()
        health.end()
