"""``eval``: each model's validation and test figures at each epoch end."""
from __future__ import annotations

from mnist_monitor.metrics.kind import EpochEnd, Field, MetricKind


def produce(end: EpochEnd) -> dict:
    return {"val_loss": end.val.loss, "val_accuracy": end.val.accuracy, "test_loss": end.test.loss,
            "test_accuracy": end.test.accuracy}


KIND = MetricKind(
    name="eval", title="Validation and test", order=20, moment="epoch_end", produce=produce,
    fields=(Field("val_loss", "", "loss on the validation images held out of training (dropout off)"),
            Field("val_accuracy", "%", "accuracy on the validation images"),
            Field("test_loss", "", "loss on the 10,000 test images"),
            Field("test_accuracy", "%", "accuracy on the 10,000 test images")),
    charts=(
        {"id": "eval", "title": "Validation and test accuracy (%)", "form": "lines",
         "fields": ["val_accuracy", "test_accuracy"], "field_labels": {"val_accuracy": "validation",
                                                                       "test_accuracy": "test"},
         "dashed": ["test_accuracy"], "points": True, "scale": "percent", "format": "fixed2", "tick": "round1"},
    ))
