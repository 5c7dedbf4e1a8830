"""``train``: each model's training curve, a point per window of steps (a window's mean)."""
from __future__ import annotations

from mnist_monitor.metrics.kind import Field, MetricKind, Window


def produce(window: Window) -> dict:
    m = window.model
    return {"loss": window.loss, "accuracy": window.accuracy, "lr": m.optimizer.param_groups[0]["lr"],
            "samples_per_sec": m.samples / m.compute_seconds if m.compute_seconds else None}


KIND = MetricKind(
    name="train", title="Training curve", order=10, moment="window", produce=produce,
    fields=(Field("loss", "", "training loss, the window's mean (with label smoothing, if set)"),
            Field("accuracy", "%", "training accuracy, the window's mean, measured with dropout on"),
            Field("lr", "", "the learning rate at the window's last step"),
            Field("samples_per_sec", "images/s", "training images per second of compute")),
    charts=(
        {"id": "loss", "title": "Training loss", "form": "lines", "fields": ["loss"], "smooth": True,
         "scale": "loss", "format": "precision4", "tick": "round2p"},
        {"id": "accuracy", "title": "Training accuracy (%), measured with dropout on", "form": "lines",
         "fields": ["accuracy"],
         "smooth": True, "scale": "percent", "format": "fixed2", "tick": "round1"},
        {"id": "lr", "title": "Learning rate", "form": "lines", "fields": ["lr"], "overlap": True,
         "format": "exponential2", "tick": "exponential1"},
        {"id": "speed", "title": "Images per second", "form": "lines", "fields": ["samples_per_sec"],
         "smooth": True, "detail": True, "format": "integer", "tick": "integer"},
    ))
