"""The sweeps' routes: make a sweep, list them, one sweep's summary, stop one, add trials to one. Thin: the spec is
validated by ``sweeps.spec``, sweeps are driven by ``sweeps.driver`` and read by ``sweeps.folder``."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from mnist_monitor.sweeps.driver import SweepDriver
from mnist_monitor.sweeps.folder import SweepError, SweepStore
from mnist_monitor.config import ConfigError, reject_unknown
from mnist_monitor.sweeps.spec import MAX_TRIALS, parse_sweep
from mnist_monitor.web.access import check_act, check_read, may_read, new_owner, owner_view
from mnist_monitor.web.common import conditional_json, json_body, no_fields_body, store
from mnist_monitor.web.errors import NotFound
from mnist_monitor.web.quota import check_new_run

bp = Blueprint("sweeps", __name__)


def sweeps() -> SweepStore:
    return current_app.extensions["sweeps"]


def driver() -> SweepDriver:
    return current_app.extensions["sweep_driver"]


def summary_of(sweep_id: str, act: bool = False) -> dict:
    """The sweep's summary (404 if there is none or it cannot be read; 403 if the caller may not
    read it, or with ``act`` change it)."""
    sweep = sweeps().get(sweep_id)
    if sweep is None:
        raise NotFound(f"no sweep {sweep_id!r}")
    try:
        summary = sweeps().summary(sweep, store())
    except (SweepError, OSError, ValueError) as exc:  # a folder damaged by hand, say
        raise NotFound(f"sweep {sweep_id!r} cannot be read: {exc}"[:300]) from None
    (check_act if act else check_read)(summary["owner"], f"sweep {sweep_id}")
    return shown(summary)


def shown(summary: dict) -> dict:
    return {**summary, "owner": owner_view(summary["owner"])}


@bp.post("/sweeps")
def create_sweep():
    """Make a sweep (a grid of every combination, or a search) and queue its first trials."""
    spec = parse_sweep(json_body())
    check_new_run(spec.config_for({}), queue=True, trials=spec.trials)  # a student's limits
    sweep = driver().create(spec, new_owner().get("owner"))
    return jsonify(summary_of(sweep.sweep_id)), 202


@bp.get("/sweeps")
def list_sweeps():
    return conditional_json({"sweeps": [shown(s) for s in sweeps().listing(store()) if may_read(s["owner"])]})


@bp.get("/sweeps/<sweep_id>")
def get_sweep(sweep_id):
    return conditional_json(summary_of(sweep_id))


@bp.post("/sweeps/<sweep_id>/stop")
def stop_sweep(sweep_id):
    """Stop a sweep: its queued trials are cancelled, the training ones stopped."""
    no_fields_body()
    summary_of(sweep_id, act=True)  # 404, 403 first
    driver().stop(sweep_id)
    return jsonify(summary_of(sweep_id))


@bp.post("/sweeps/<sweep_id>/trials")
def add_trials(sweep_id):
    """Add trials to a search (finished, stopped or running): the same study goes on."""
    summary = summary_of(sweep_id, act=True)  # 404, 403 first
    body = json_body()
    reject_unknown(body, ("trials",))
    more = body.get("trials")
    if isinstance(more, bool) or not isinstance(more, int) or not 1 <= more <= MAX_TRIALS:
        raise ConfigError("trials", f"must be an integer from 1 to {MAX_TRIALS}: how many trials to add, "
                                    f"got {more!r}"[:200])
    spec = sweeps().get(sweep_id).spec()
    if spec.kind == "search":  # a grid is refused below, with why
        check_new_run(spec.config_for({}), queue=True, trials=spec.trials + more)  # a student's limits
    driver().add_trials(summary["sweep_id"], more)
    return jsonify(summary_of(sweep_id)), 202
