"""The fair share of the workers: round-robin across owners, each owner's runs oldest first, an
owner at their limit of active runs skipped; and how many of a sweep's trials may be in flight."""
import json
import time

from mnist_monitor.classroom.fair_share import in_flight, next_in_turn
from mnist_monitor.classroom.rules import DEFAULT_LIMITS
from mnist_monitor.runstore import RunStore

from helpers import fake_run


def test_a_students_long_queue_never_holds_back_anothers_first_run(tmp_path):
    store = RunStore(tmp_path / "runs")
    limits = {"ana": {**DEFAULT_LIMITS, "active_runs": 1}, "ben": dict(DEFAULT_LIMITS)}
    training = fake_run(store, state="running", beat="this", owner="ana")
    ana_queue = [fake_run(store, state="queued", owner="ana") for _ in range(5)]
    ben_first = fake_run(store, state="queued", owner="ben")  # queued after all of Ana's
    pick = lambda: next_in_turn(store.snapshots(), store.queued(), limits.get)
    assert pick().run_id == ben_first  # Ana trains one already: Ben's turn, whatever the order of the queue
    limits["ana"]["active_runs"] = 2
    assert pick().run_id == ben_first  # under her limit, Ana still waits behind Ben: hers trains now
    status = store.run(training).path / "status.json"
    status.write_text(json.dumps({**json.loads(status.read_text()), "state": "finished", "finished_at": time.time()}))
    assert pick().run_id == ben_first  # her run just ended, after Ben queued: Ben waited longest
    store.run(ben_first).delete()
    assert pick().run_id == ana_queue[0]  # then hers, oldest first


def test_an_owner_at_the_limit_of_active_runs_waits_and_the_teacher_takes_turns_too(tmp_path):
    store = RunStore(tmp_path / "runs")
    limits = {"ana": {**DEFAULT_LIMITS, "active_runs": 1}}
    fake_run(store, state="running", beat="this", owner="ana")
    fake_run(store, state="queued", owner="ana")
    assert next_in_turn(store.snapshots(), store.queued(), limits.get) is None  # only Ana waits, at her limit
    teachers = fake_run(store, state="queued")  # the teacher's (no owner, no limits)
    assert next_in_turn(store.snapshots(), store.queued(), limits.get).run_id == teachers


def test_a_sweep_in_flight_is_capped_by_its_owners_active_and_queued_limits():
    assert in_flight({**DEFAULT_LIMITS, "active_runs": 1, "queued_runs": 3}) == 4
    assert in_flight(None) is None and in_flight({**DEFAULT_LIMITS, "queued_runs": None}) is None
