"""``POST /predict``: a drawn digit or a test digit read by every model of a run."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from mnist_monitor.inference.predict import NothingToAnswer, predict_request
from mnist_monitor.runstore import QUEUED_STATE
from mnist_monitor.web.access import is_student, may_act, readable_run
from mnist_monitor.web.common import json_body, manager, store
from mnist_monitor.web.quota import check_prediction

bp = Blueprint("predict", __name__)


@bp.post("/predict")
def predict_digit():
    """With the run named (one the caller may read), else the active or newest run (a student's own)."""
    body = json_body()
    check_prediction()  # a student's limit a minute
    if isinstance(body.get("run_id"), str):
        readable_run(body["run_id"])
    elif body.get("run_id") is None and is_student():
        own = next((s.run_id for s in store().snapshots() if may_act(s.owner) and s.state != QUEUED_STATE), None)
        body = {**body, "run_id": own} if own else body
        if own is None:
            raise NothingToAnswer("you have no run yet: train a model first")
    answer = predict_request(body, store(), current_app.extensions["checkpoints"], manager().active_run_id,
                             current_app.config["DATA_DIR"])
    return jsonify(answer)
