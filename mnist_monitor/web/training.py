"""Routes that start and stop training, and the status the page polls every 3 s."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from mnist_monitor.config import parse_train_config
from mnist_monitor.runstore import BROKEN_STATE, QUEUED_STATE, RunSnapshot
from mnist_monitor.runstore.run import owner_in
from mnist_monitor.scheduling.manager import Refused
from mnist_monitor.web.access import is_student, may_act, me, new_owner, readable_run
from mnist_monitor.web.common import conditional_json, json_body, manager, no_fields_body, reject_unknown_args, store
from mnist_monitor.web.errors import BadRequest
from mnist_monitor.web.quota import check_new_run, my_runs
from mnist_monitor.web.views import empty_view, status_view

bp = Blueprint("training", __name__)


def shown_when_idle(own) -> RunSnapshot | None:
    """With nothing training here: of the run this server trained last (a resumed run is not the
    newest) and the newest run (perhaps one that python train.py trains), the one updated last.
    ``own(snapshot)``: whether a run may be followed by the caller (a student follows only theirs)."""
    newest = next((s for run_id in store().run_ids() if (s := store().snapshot(run_id)) and own(s)), None)
    last = store().snapshot(manager().last_run_id) if manager().last_run_id else None
    candidates = [s for s in (last, newest) if s is not None and own(s) and s.state != QUEUED_STATE]
    if candidates:
        return max(candidates, key=lambda s: ((s.status.updated_at if s.status else None) or 0, s.run_id))
    return newest


def followed_runs() -> tuple[list[str], int]:
    """(the runs training now, newest start first, and the number queued) that the caller follows:
    every run, or, for a student, their own."""
    active = manager().active_run_ids
    live, queued = store().activity()
    runs = active[::-1] + [s for s in live if s not in active]  # and those another process trains into this folder
    if not is_student():
        return runs, queued
    own_ids, _, own_queued = my_runs()
    return [r for r in runs if r in own_ids], own_queued


@bp.get("/training_status")
def training_status():
    """The run the page follows (``?run=<id>``), else the run started last among those training
    here (for a student: among their own), else the one shown when idle; with the active runs' ids
    and the number queued."""
    reject_unknown_args({"run"})
    followed = request.args.get("run")
    if followed is not None:
        readable_run(followed)
    active, queued = followed_runs()
    here = [r for r in active if r in manager().active_run_ids]  # (a run another process trains is shown when idle)
    run_id = followed or (here[0] if here else None)
    snapshot = store().snapshot(run_id) if run_id else shown_when_idle(lambda s: may_act(s.owner))
    if snapshot is None:
        view = empty_view("starting", run_id) if run_id else empty_view()
    elif snapshot.status is None and snapshot.state != BROKEN_STATE:  # its folder is made, its status not yet
        view = empty_view("starting", snapshot.run_id)
    else:
        view = status_view(snapshot)
    view.update(active_runs=active, queued=queued, workers=manager().capacity,
                workers_busy=len(manager().active_run_ids), workers_unavailable=manager().workers_unavailable)
    return conditional_json(view)


@bp.post("/start_training")
def start_training():
    body = dict(json_body())
    queue = body.pop("queue", False)
    if not isinstance(queue, bool):
        raise BadRequest("queue: must be true or false", field="queue")
    config = parse_train_config(body)
    check_new_run(config, queue)  # a student's limits
    try:
        run_id, state = manager().start(config, queue=queue, facts=new_owner())
    except Refused:
        if is_student() and not queue:  # the message names the runs that train: in a class, others' runs
            raise Refused("every worker is busy with the class's runs: queue this run (the workers take turns "
                          "across the class)") from None
        raise
    return jsonify({"run_id": run_id, "state": state}), 202


@bp.post("/stop_training")
def stop_training():
    """Stop every active run (one, without --workers); a student's: every one of their own."""
    no_fields_body()
    if not is_student():
        stopped = manager().stop_all()
    else:
        try:
            stopped = manager().stop_all(among=owns)
        except Refused:
            raise Refused("none of your runs is training") from None
    return jsonify({"run_id": stopped[0], "run_ids": stopped, "state": "stopping"}), 200


def owns(run_id: str) -> bool:
    run = store().run(run_id)
    return run is not None and owner_in(run.facts()) == me().id
