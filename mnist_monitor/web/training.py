"""Routes that start and stop training, and the status the page polls every 3 s."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from mnist_monitor.config import parse_train_config
from mnist_monitor.runstore import BROKEN_STATE, QUEUED_STATE, RunSnapshot
from mnist_monitor.web.common import (conditional_json, json_body, manager, no_fields_body, reject_unknown_args,
                                      require_run, store)
from mnist_monitor.web.errors import BadRequest
from mnist_monitor.web.views import empty_view, status_view

bp = Blueprint("training", __name__)


def shown_when_idle() -> RunSnapshot | None:
    """With nothing training here: of the run this server trained last (a resumed run is not the
    newest) and the newest run (perhaps one that python train.py trains), the one updated last."""
    newest = next(iter(store().run_ids()), None)
    candidates = [s for run_id in {manager().last_run_id, newest} - {None}
                  if (s := store().snapshot(run_id)) is not None and s.state != QUEUED_STATE]
    if candidates:
        return max(candidates, key=lambda s: ((s.status.updated_at if s.status else None) or 0, s.run_id))
    return store().snapshot(newest) if newest else None


@bp.get("/training_status")
def training_status():
    """The run the page follows (``?run=<id>``), else the run started last among those training
    here, else the one shown when idle; with every active run's id and the number queued."""
    reject_unknown_args({"run"})
    followed = request.args.get("run")
    if followed is not None:
        require_run(followed)
    active = manager().active_run_ids
    run_id = followed or (active[-1] if active else None)
    snapshot = store().snapshot(run_id) if run_id else shown_when_idle()
    if snapshot is None:
        view = empty_view("starting", run_id) if run_id else empty_view()
    elif snapshot.status is None and snapshot.state != BROKEN_STATE:  # its folder is made, its status not yet
        view = empty_view("starting", snapshot.run_id)
    else:
        view = status_view(snapshot)
    live, queued = store().activity()
    elsewhere = [s for s in live if s not in active]  # trained by another process into this folder
    view.update(active_runs=active[::-1] + elsewhere, queued=queued, workers=manager().capacity,
                workers_unavailable=manager().workers_unavailable)
    return conditional_json(view)


@bp.post("/start_training")
def start_training():
    body = dict(json_body())
    queue = body.pop("queue", False)
    if not isinstance(queue, bool):
        raise BadRequest("queue: must be true or false", field="queue")
    run_id, state = manager().start(parse_train_config(body), queue=queue)
    return jsonify({"run_id": run_id, "state": state}), 202


@bp.post("/stop_training")
def stop_training():
    """Stop every active run (one, without --workers)."""
    no_fields_body()
    stopped = manager().stop_all()
    return jsonify({"run_id": stopped[0], "run_ids": stopped, "state": "stopping"}), 200
