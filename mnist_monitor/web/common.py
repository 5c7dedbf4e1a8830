"""What every route module shares: the app's run store and training manager, the request body
and query parameters read with a clear 400, conditional JSON answers. (A run is looked up through
``web.access``, which also says whether the caller may see or change it.)"""
from __future__ import annotations

from flask import Response, current_app, jsonify, request

from mnist_monitor.config import int_text, reject_unknown
from mnist_monitor.runstore import RunStore
from mnist_monitor.scheduling.manager import TrainingManager
from mnist_monitor.web.errors import BadRequest


def manager() -> TrainingManager:
    return current_app.extensions["training"]


def store() -> RunStore:
    return current_app.extensions["runs"]


def json_body() -> dict:
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # brackets nested deeper than the parser goes: not a body anyone means
        raise BadRequest("body: JSON nested too deeply", field="body") from None
    if data is None:
        raise BadRequest("body: must be valid JSON", field="body")
    if not isinstance(data, dict):
        raise BadRequest("body: must be a JSON object", field="body")
    return data


def no_fields_body() -> None:
    """A route that takes no fields: a body is optional, but one that is sent must be a JSON object."""
    if request.content_length:
        json_body()


def conditional_json(payload) -> Response:
    response = jsonify(payload)
    response.headers["Cache-Control"] = "no-cache"
    response.add_etag()
    return response.make_conditional(request)


def reject_unknown_args(allowed) -> None:
    reject_unknown(request.args, allowed, what="parameter")


def int_arg(name: str, default: int, low: int = 0, high: int | None = None) -> int:
    text = request.args.get(name)
    if text is None:
        return default
    value = int_text(text)
    if value is None or (high is not None and value > high) or value < low:
        bounds = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise BadRequest(f"{name}: must be a whole number {bounds}, got {text[:20]!r}", field=name)
    return value
