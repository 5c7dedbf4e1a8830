"""``classes``: each model's test accuracy on each digit, 0 to 9, at each epoch end: which digits
lag and how that changes. Read off the test confusion matrix the epoch end already makes (no
extra evaluation pass)."""
from __future__ import annotations

from mnist_monitor.metrics.kind import EpochEnd, Field, MetricKind


def class_accuracy(matrix) -> list[float | None]:
    """Per true digit, the percentage of its test images predicted as it (None for a digit the test
    set does not hold); ``matrix[true][predicted]`` holds counts."""
    out = []
    for digit in range(10):
        row = [int(v) for v in matrix[digit]]
        total = sum(row)
        out.append(round(100.0 * row[digit] / total, 2) if total else None)
    return out


def produce(end: EpochEnd) -> dict:
    return {"class_accuracy": class_accuracy(end.matrix)}


KIND = MetricKind(
    name="classes", title="Test accuracy per digit", order=40, moment="epoch_end", produce=produce, panel="classes",
    fields=(Field("class_accuracy", "%", "test accuracy on the images of each digit, 0 to 9", "per_digit"),),
    charts=(
        {"id": "classes", "title": "Which digits lag: test accuracy per digit (%), each epoch", "form": "heat_strip",
         "fields": ["class_accuracy"], "format": "short1", "columns": [str(d) for d in range(10)],
         "explain": "Each model's test accuracy on each digit, 0 to 9, at every epoch end (the latest at the "
                    "bottom): the redder a cell, the further that digit is below the model's mean for the epoch. "
                    "Read off each epoch's test confusion matrix.",
         "waiting": "per-digit accuracy appears at the first epoch end.",
         "missing": "this run was trained before per-digit accuracy was recorded, so there is none to show."},
    ))
