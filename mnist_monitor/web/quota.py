"""A student's limits, checked before their new run, resume, sweep or prediction: 409 (429 for
predictions) saying the limit, what they use, and what to do. The teacher, and a server without
a class, have none. The limits themselves are the class's (``classroom.rules``)."""
from __future__ import annotations

from flask import current_app

from mnist_monitor.classroom.ratelimit import PerMinute
from mnist_monitor.config import TRAIN_POOL, TrainConfig
from mnist_monitor.runstore import ACTIVE_STATES, QUEUED_STATE
from mnist_monitor.scheduling.manager import Refused
from mnist_monitor.web.access import is_student, me, roster
from mnist_monitor.web.common import store
from mnist_monitor.web.errors import TooManyRequests


def my_limits() -> dict | None:
    return roster().limits_of(me().id) if is_student() else None


def my_runs() -> tuple[list[str], int, int]:
    """(the caller's run ids, how many of them train, how many are queued)."""
    mine = [s for s in store().snapshots() if s.owner == me().id]
    return ([s.run_id for s in mine], sum(s.state in ACTIVE_STATES for s in mine),
            sum(s.state == QUEUED_STATE for s in mine))


def check_disk(limits: dict, run_ids: list[str]) -> None:
    if limits["disk_mb"] is None:
        return
    used = store().runs_bytes(run_ids) / 1e6
    if used >= limits["disk_mb"]:
        raise Refused(f"your runs take {used:,.0f} MB, your limit is {limits['disk_mb']:,} MB: delete some of them "
                      "(the run table) or ask your teacher for more")


def check_new_run(config: TrainConfig | None, queue: bool, trials: int = 1) -> None:
    """Refused if a new run (or a sweep of ``trials``, or a resume: no config) would pass a limit."""
    limits = my_limits()
    if limits is None:
        return
    run_ids, active, queued = my_runs()
    if trials > 1 and limits["sweep_trials"] is not None and trials > limits["sweep_trials"]:
        raise Refused(f"a sweep of {trials} trials: your limit is {limits['sweep_trials']} trials a sweep")
    images = config and (config.train_samples or TRAIN_POOL) * config.epochs
    if images and limits["image_epochs"] is not None and images > limits["image_epochs"]:
        raise Refused(f"{images:,} training images x epochs: your limit is {limits['image_epochs']:,} a run "
                      "(fewer epochs or training images)")
    if not queue and limits["active_runs"] is not None and active >= limits["active_runs"]:
        raise Refused(f"you have {active} run{'s' * (active != 1)} training, your limit is {limits['active_runs']}: "
                      + ("queue this one (it starts when yours ends)" if config else "resume it when yours ends"))
    if queue and limits["queued_runs"] is not None and queued >= limits["queued_runs"]:
        raise Refused(f"you have {queued} run{'s' * (queued != 1)} queued, your limit is {limits['queued_runs']}: "
                      "wait for one to start, or cancel one")
    check_disk(limits, run_ids)


def check_prediction() -> None:
    limits = my_limits()
    if limits is None:
        return
    counter = current_app.extensions.setdefault("predictions", PerMinute())
    wait = counter.take(me().id, limits["predictions_per_minute"])
    if wait:
        error = TooManyRequests(f"you read {limits['predictions_per_minute']} digits in the last minute, your limit: "
                                f"try again in {wait} s")
        error.retry_after = wait
        raise error
