"""``POST /predict``: a drawn digit or a test digit read by every model of a run."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from mnist_monitor.inference.predict import predict_request
from mnist_monitor.web.common import json_body, manager, store

bp = Blueprint("predict", __name__)


@bp.post("/predict")
def predict_digit():
    answer = predict_request(json_body(), store(), current_app.extensions["checkpoints"], manager().active_run_id,
                             current_app.config["DATA_DIR"])
    return jsonify(answer)
