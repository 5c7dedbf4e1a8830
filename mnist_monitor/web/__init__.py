"""Everything that knows HTTP: a blueprint per resource, listed here; one error shape; the
security checks; the OpenAPI document. Flask is imported nowhere else in the package."""
from __future__ import annotations

from flask import Flask

from mnist_monitor.web import board, carry, classroom, errors, info, predict, runs, security, sweeps, training

BLUEPRINTS = (info.bp, training.bp, runs.bp, predict.bp, sweeps.bp, classroom.bp, board.bp, carry.bp)


def init_app(app: Flask) -> None:
    """The error handlers, the security checks and every route."""
    errors.init_app(app)
    security.init_app(app)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
