"""A run's metrics as CSV: a row per metrics row of the kinds that are one number a column
(training curve windows, evaluations), with the model's name beside its index."""
from __future__ import annotations

import csv
import io

from mnist_monitor.runstore import METRIC_COLUMNS, METRIC_KINDS, TABLE_KINDS, Run

COLUMNS = tuple(c for c in METRIC_COLUMNS[:2] + ("name",) + METRIC_COLUMNS[2:]  # the model's name by its index
                if c == "name" or any(c in METRIC_KINDS[kind] or c == "kind" for kind in TABLE_KINDS))


def metrics_csv(run: Run, config: dict | None) -> str:
    """The CSV text of ``run``'s metrics; ``config``: its config.json (for the models' names), if readable."""
    names = [m.get("name") if isinstance(m, dict) else None for m in (config or {}).get("models", [])]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in run.metrics():
        if row.get("kind") not in TABLE_KINDS:
            continue
        model = row.get("model")
        name = names[model] if isinstance(model, int) and 0 <= model < len(names) else None
        writer.writerow({**row, "name": name})
    return out.getvalue()
