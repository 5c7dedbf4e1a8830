"""The page itself, the API's description, the form's settings and a model's size: what the
server says about itself, no run involved."""
from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify, request

from mnist_monitor.config import form_settings, parse_kernels_text
from mnist_monitor.metrics import describe as metric_kinds
from mnist_monitor.runstore import ACTIVE_STATES, BROKEN_STATE, FINAL_STATES, QUEUED_STATE, RESUMABLE_STATES
from mnist_monitor.sweeps.driver import MAX_RUNNING_SWEEPS
from mnist_monitor.sweeps.spec import MAX_TRIALS, MODEL_LEVEL, PRUNERS, VARIED
from mnist_monitor.training.renderer import picture_settings
from mnist_monitor.web.classroom import member_or_none
from mnist_monitor.web.common import conditional_json, reject_unknown_args
from mnist_monitor.web.errors import BadRequest
from mnist_monitor.web.openapi import openapi_document
from mnist_monitor.web.runs import METRICS_PAGE_ROWS
from model import describe

bp = Blueprint("info", __name__)


@bp.get("/")
def index():
    return current_app.send_static_file("index.html")


@bp.get("/openapi.json")
def openapi():
    """This API described: every route, body, parameter, answer and error (OpenAPI 3.1)."""
    return conditional_json(openapi_document(METRICS_PAGE_ROWS))


@bp.get("/config")
def form_settings_route():
    """The form's defaults, limits and choices, the run states and picture sizes, so the page copies none."""
    settings = form_settings()
    settings["limits"]["sweep_runs"] = [1, MAX_TRIALS]  # runs one sweep trains (several comma-separated values)
    settings["limits"]["running_sweeps"] = [0, MAX_RUNNING_SWEEPS]  # sweeps running at once
    settings["sweeps"] = {  # what a sweep may vary, and how (the new-sweep form builds from it)
        "varied": {key: kind.__name__ for key, kind in VARIED.items()}, "per_model": list(MODEL_LEVEL),
        "pruners": list(PRUNERS), "max_trials": MAX_TRIALS}
    return jsonify({**settings,
                    "states": {"active": list(ACTIVE_STATES), "final": list(FINAL_STATES), "queued": QUEUED_STATE,
                               "resumable": list(RESUMABLE_STATES), "broken": BROKEN_STATE},
                    "metric_kinds": metric_kinds(), **picture_settings(),
                    "class": "class" in current_app.extensions, "member": member_or_none(),
                    "token_refused": bool(g.get("token_refused"))})


@bp.get("/model_info")
def model_info():
    reject_unknown_args({"kernels"})
    kernels = request.args.get("kernels")
    if kernels is None:
        raise BadRequest("kernels: is required, e.g. ?kernels=32,64,64,64", field="kernels")
    return jsonify(describe(parse_kernels_text(kernels)))
