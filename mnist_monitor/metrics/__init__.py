"""The metric kinds a run records, each declared once in a module of this folder: its fields with
their units, the code that produces its values (after a window of training steps, or at an epoch
end), and its charts, declared as data the page draws with no kind-specific code.

``KINDS`` lists them, in the order of their ``order``: every module of this folder that declares a
``KIND`` is one. The run store builds its row validation from it, the API serves and filters rows
by it, the CSV takes the kinds whose fields are one number a column, the OpenAPI document and
``GET /config`` (``metric_kinds``) describe it. A new kind is a module here, its test and its docs
line; a chart of a form the page does not draw yet adds one page module.

Nothing here imports the rest of the package: a producer reads the moment it is given (a
``Window`` or an ``EpochEnd``) by its attributes.
"""
from __future__ import annotations

import importlib
import pkgutil

from mnist_monitor.metrics.kind import PLACE, EpochEnd, Field, MetricKind, Window


def _declared() -> list[MetricKind]:
    modules = [importlib.import_module(f"{__name__}.{info.name}") for info in pkgutil.iter_modules(__path__)]
    return sorted((m.KIND for m in modules if isinstance(getattr(m, "KIND", None), MetricKind)),
                  key=lambda kind: kind.order)


KINDS: dict[str, MetricKind] = {kind.name: kind for kind in _declared()}

__all__ = ["KINDS", "PLACE", "EpochEnd", "Field", "MetricKind", "Window", "at", "describe"]


def at(moment: str) -> list[MetricKind]:
    """The kinds produced at ``moment`` ("window" or "epoch_end"), in their order."""
    return [kind for kind in KINDS.values() if kind.moment == moment]


def describe() -> list[dict]:
    """Every kind as the page and the API's readers see it (``GET /config``'s ``metric_kinds``)."""
    return [kind.to_dict() for kind in KINDS.values()]
