"""What a student may use: the limits the teacher sets for the class (and for one student), and
the checks a student's new run, resume, sweep or prediction must pass. The teacher has none."""
from __future__ import annotations

# limit -> (default, lowest, highest); None: no limit
LIMITS = {
    "active_runs": (1, 1, 64),  # runs training at once (a sweep's trials count)
    "queued_runs": (3, 0, 256),  # runs waiting in the queue (a sweep's trials count)
    "sweep_trials": (8, 1, 64),  # trials of one sweep
    "image_epochs": (None, 1, 10**9),  # training images x epochs of one run
    "disk_mb": (2048, 1, 10**7),  # the student's runs on disk, in MB
    "predictions_per_minute": (30, 1, 10**4),  # drawings and test digits read
}
DEFAULT_LIMITS = {key: spec[0] for key, spec in LIMITS.items()}


class LimitError(ValueError):
    """A limit the teacher set that is not one (``field`` names it)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def check_limits(changes, field: str = "limits", none_allowed: bool = True) -> dict:
    """``changes`` as limits: known keys, whole numbers in range (or null: no limit)."""
    if not isinstance(changes, dict):
        raise LimitError(field, f"{field}: must be an object of limits ({', '.join(LIMITS)})")
    for key, value in changes.items():
        if key not in LIMITS:
            raise LimitError(f"{field}.{key}", f"{field}: unknown limit {key!r} (known: {', '.join(LIMITS)})")
        _, low, high = LIMITS[key]
        if value is None and none_allowed:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise LimitError(f"{field}.{key}", f"{field}.{key}: must be a whole number from {low} to {high}"
                             + (" or null (no limit)" if none_allowed else ""))
    return dict(changes)
