"""``layers``: how each layer of a model learns, at the curve points where it was measured."""
from __future__ import annotations

from mnist_monitor.metrics.kind import Field, MetricKind, Window


def produce(window: Window) -> dict | None:
    return window.model.probe.read()  # None where this window's last step was not measured


KIND = MetricKind(
    name="layers", title="How each layer learns", order=30, moment="window", produce=produce, panel="layers",
    fields=(Field("layers", "layer names", "the layers measured, in order", "per_layer"),
            Field("weight_norm", "", "the L2 norm of each layer's weights", "per_layer"),
            Field("grad_norm", "", "the L2 norm of each layer's gradient at the step", "per_layer"),
            Field("update_ratio", "", "the step's change of each layer's weights over their norm", "per_layer"),
            Field("dead_relu", "share", "the share of each layer's ReLU outputs that are zero (0-1)",
                  "per_layer")),
    charts=tuple({"form": "layer_lines", "names": "layers", **chart} for chart in (
        {"id": "layer-grad", "title": "Gradient norm per layer", "fields": ["grad_norm"], "scale": "log",
         "format": "precision3", "tick": "exponential0"},
        {"id": "layer-update", "title": "Update / weight ratio per step, per layer", "fields": ["update_ratio"],
         "scale": "log", "format": "exponential2", "tick": "exponential0"},
        {"id": "layer-weight", "title": "Weight norm per layer", "fields": ["weight_norm"], "format": "precision4",
         "tick": "round2p"},
        {"id": "layer-dead", "title": "ReLU outputs that are zero, per layer (%)", "fields": ["dead_relu"],
         "scale": "percent", "factor": 100, "format": "fixed1", "tick": "round1"},
    )))
