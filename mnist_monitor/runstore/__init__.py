"""The run folder: the contract between whoever trains a run and whoever reads it, owned here.

- ``records``: states, the status record (validated when read), metrics rows, run ids;
- ``files``: atomic writes and tolerant reads of small files;
- ``liveness``: claims and heartbeats, and the one decision whether a run is being trained;
- ``run``: one folder, the only code that knows its file names (``Run``, the trainer's ``Attempt``);
- ``snapshot``: the run as readers see it, its state decided once (``RunSnapshot``);
- ``store``: the runs folder (list, create, queue, clean-up, cached reads);
- ``writers``: the trainer's buffered metrics and status writers.
"""
from mnist_monitor.runstore.files import WriteError, to_json
from mnist_monitor.runstore.liveness import HEARTBEAT_INTERVAL_S, HEARTBEAT_LIMIT_S
from mnist_monitor.runstore.records import (ACTIVE_STATES, BROKEN_STATE, FINAL_STATES, IDLE_STATE, METRIC_COLUMNS,
                                            METRIC_KINDS, MODEL_STATUS_FIELDS, PRUNED_STATE, QUEUED_STATE,
                                            RESUMABLE_STATES, RUN_ID_PATTERN, RUN_STATUS_FIELDS, TABLE_KINDS,
                                            WRITTEN_STATES, ModelStatus, RecordError, RunStatus, metrics_row,
                                            new_run_id)
from mnist_monitor.runstore.run import NOTE_MAX, SERVED_FILES, Attempt, Run, Superseded
from mnist_monitor.runstore.snapshot import RunSnapshot, delete_unless_training, snapshot, trained_now
from mnist_monitor.runstore.store import RunStore
from mnist_monitor.runstore.writers import MetricsWriter, StatusWriter

__all__ = ["ACTIVE_STATES", "BROKEN_STATE", "FINAL_STATES", "IDLE_STATE", "METRIC_COLUMNS", "METRIC_KINDS",
           "MODEL_STATUS_FIELDS", "PRUNED_STATE", "QUEUED_STATE", "RESUMABLE_STATES", "RUN_ID_PATTERN", "RUN_STATUS_FIELDS",
           "SERVED_FILES", "TABLE_KINDS", "WRITTEN_STATES",
           "HEARTBEAT_INTERVAL_S", "HEARTBEAT_LIMIT_S", "NOTE_MAX", "Attempt", "MetricsWriter", "ModelStatus",
           "RecordError", "Run", "RunSnapshot", "RunStatus", "RunStore", "StatusWriter", "Superseded",
           "WriteError", "delete_unless_training", "metrics_row", "new_run_id", "snapshot", "to_json", "trained_now"]
