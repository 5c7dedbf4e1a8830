"""A fair share of the workers in a class: the queue is served round-robin across its owners.

The next free worker takes the oldest queued run of the owner who has waited longest: since the
later of their last run's end (now, while one of theirs trains) and their oldest queued run. So
a student's long queue never holds back another's first run, and the teacher's own runs take
their turn like a student's. An owner at their limit of active runs waits until one ends."""
from __future__ import annotations

import time

from mnist_monitor.runstore import ACTIVE_STATES, QUEUED_STATE, Run, RunSnapshot
from mnist_monitor.runstore.records import run_id_time


def waited_since(runs: list[RunSnapshot], now: float) -> float:
    """When this owner began to wait: the later of their last run's end and their oldest queued run."""
    queued = [run_id_time(s.run_id) or now for s in runs if s.state == QUEUED_STATE]
    ends = [now if s.state in ACTIVE_STATES else (s.status.finished_at or s.status.updated_at or 0)
            for s in runs if s.state != QUEUED_STATE and s.status is not None]
    return max([min(queued, default=now)] + ends)


def in_flight(limits: dict | None) -> int | None:
    """How many of a sweep's trials its owner may have queued or training at once (None: no cap)."""
    if limits is None or limits["active_runs"] is None or limits["queued_runs"] is None:
        return None
    return limits["active_runs"] + limits["queued_runs"]


def next_in_turn(snapshots: list[RunSnapshot], queued: list[Run], limits_of, now: float | None = None) -> Run | None:
    """Of ``queued`` (oldest first), the run to start now; None if every owner with a queued run
    is at their limit of active runs. ``limits_of(owner)``: their limits (None: no limit)."""
    now = time.time() if now is None else now
    waiting = {r.run_id for r in queued}
    by_owner: dict[str | None, list[RunSnapshot]] = {}
    for s in snapshots:
        by_owner.setdefault(s.owner, []).append(s)
    turns = []
    for owner, runs in by_owner.items():
        if not any(s.run_id in waiting for s in runs):
            continue
        limit = (limits_of(owner) or {}).get("active_runs")
        if limit is not None and sum(s.state in ACTIVE_STATES for s in runs) >= limit:
            continue  # their turn comes when one of theirs ends
        oldest = min(s.run_id for s in runs if s.run_id in waiting)
        turns.append((waited_since(runs, now), oldest))
    if not turns:
        return None
    first = min(turns)[1]
    return next(r for r in queued if r.run_id == first)
