"""Errors that carry their HTTP status, and the handlers that answer every error in one shape:
``{"error": "<message>"}``, plus ``"field"`` when one input is to blame."""
from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from mnist_monitor.config import ConfigError
from mnist_monitor.inference.predict import InvalidInput, NothingToAnswer, RunNotFound
from mnist_monitor.runstore import WriteError
from mnist_monitor.scheduling.executors import WorkerUnavailable
from mnist_monitor.scheduling.manager import Refused, UnknownRun
from mnist_monitor.training.checkpoints import ResumeError

log = logging.getLogger("server")


class ApiError(Exception):
    """An error answered as JSON with ``code``; ``field`` names the input at fault, if one is."""

    code = 500

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message, self.field = message, field


# One class per status code the API answers with (named, so code reads `raise NotFound(...)`).
class BadRequest(ApiError): code = 400  # noqa: E701
class Unauthorized(ApiError): code = 401  # noqa: E701
class Forbidden(ApiError): code = 403  # noqa: E701
class NotFound(ApiError): code = 404  # noqa: E701
class Conflict(ApiError): code = 409  # noqa: E701
class UnsupportedMediaType(ApiError): code = 415  # noqa: E701
class TooManyRequests(ApiError): code = 429  # noqa: E701
class InsufficientStorage(ApiError): code = 507  # noqa: E701  (a full disk, an unwritable runs folder)


def error_body(message: str, field: str | None = None) -> dict:
    return {"error": message, "field": field} if field else {"error": message}


# The domain's errors and the answer each gets: the code that raises them knows nothing of HTTP.
DOMAIN_CODES = {
    ConfigError: 400,  # a setting the config refuses (names its field)
    ResumeError: 400,  # a run that cannot go on
    UnknownRun: 404,
    Refused: 409,  # not now: a run is active, the run is not queued, shutting down
    WriteError: 507,  # a full disk, an unwritable runs folder (names the file)
    WorkerUnavailable: 503,  # Ray did not take the run (--workers, --ray-address)
    InvalidInput: 400,  # a drawing or test digit the prediction cannot take (names its field)
    RunNotFound: 404,
    NothingToAnswer: 409,  # no run, no checkpoint or no test digits yet
}


def init_app(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(exc: ApiError):
        response = jsonify(error_body(exc.message, exc.field))
        if getattr(exc, "retry_after", None):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response, exc.code

    for kind, code in DOMAIN_CODES.items():
        app.register_error_handler(kind, lambda exc, code=code: (
            jsonify(error_body(str(exc), getattr(exc, "field", None))), code))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        message = exc.description or exc.name
        if exc.code == 413:
            message = f"request body too large (limit {request.max_content_length or app.config['MAX_CONTENT_LENGTH']} bytes)"
        response = jsonify(error_body(message))
        response.status_code = exc.code or 500
        if exc.code == 405 and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.path)
        return jsonify(error_body(f"internal error: {type(exc).__name__}")), 500
