"""Who is asking, and what they may see and do.

Without a class (``python server.py``) there is one user: whoever holds the server's token (or,
on a loopback address without one, anyone on the machine) may do everything. In a class
(``--class``) the teacher's token may do everything too; a student's token sees the student's own
runs and sweeps and changes only those. Other people's runs (the teacher's and other students')
are readable, read-only, when the teacher shares runs (a class setting); otherwise they answer
403 and are left out of every list.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, g

from mnist_monitor.classroom.roster import TEACHER_ID, Roster
from mnist_monitor.runstore import Run, RunSnapshot
from mnist_monitor.runstore.run import owner_in
from mnist_monitor.web.common import store
from mnist_monitor.web.errors import Forbidden, NotFound


@dataclass(frozen=True)
class Identity:
    role: str  # "solo" (no class: the one user), "teacher" or "student"
    id: str | None = None  # a student's id; TEACHER_ID for the teacher
    name: str | None = None


SOLO = Identity("solo")
TEACHER = Identity("teacher", TEACHER_ID, "teacher")


def roster() -> Roster | None:
    """The class, on a server started with --class; else None."""
    return current_app.extensions.get("class")


def me() -> Identity:
    """Who sent the request (set by the security check; SOLO without a class)."""
    return g.get("identity") or SOLO


def is_student() -> bool:
    return me().role == "student"


def owner_view(owner_id: str | None) -> dict | None:
    """A run's or sweep's owner as answered: {"id", "name"} in a class, null without one."""
    class_ = roster()
    if class_ is None:
        return None
    if class_.anonymous and is_student() and owner_id not in (None, me().id):
        return {"id": owner_id}  # the name left out: the teacher made the class anonymous
    return {"id": owner_id or TEACHER_ID, "name": class_.name_of(owner_id)}


def may_read(owner_id: str | None) -> bool:
    return not is_student() or owner_id == me().id or roster().share_runs


def may_act(owner_id: str | None) -> bool:
    return not is_student() or owner_id == me().id


def check_read(owner_id: str | None, what: str) -> None:
    if not may_read(owner_id):
        raise Forbidden(f"{what} is not yours, and the teacher does not share runs in this class")


def check_act(owner_id: str | None, what: str) -> None:
    check_read(owner_id, what)
    if not may_act(owner_id):
        whose = "another student's" if roster().anonymous and owner_id else f"{roster().name_of(owner_id)}'s"
        raise Forbidden(f"{what} is {whose}: only they or the teacher can change it")


def require_teacher() -> None:
    if me().role == "student":
        raise Forbidden("only the teacher can do this")


def checked_run(run_id: str, check) -> Run:
    run = store().run(run_id)
    if run is None:
        raise NotFound(f"no run {run_id!r}")
    check(owner_in(run.facts()), f"run {run_id}")
    return run


def readable_run(run_id: str) -> Run:
    """The run, if the caller may read it (404 if there is none, 403 if it is not theirs to see)."""
    return checked_run(run_id, check_read)


def own_run(run_id: str) -> Run:
    """The run, if the caller may change it (404, or 403 when it is someone else's)."""
    return checked_run(run_id, check_act)


def readable_snapshot(run_id: str) -> RunSnapshot:
    readable_run(run_id)
    snapshot = store().snapshot(run_id)
    if snapshot is None:
        raise NotFound(f"no run {run_id!r}")
    return snapshot


def new_owner() -> dict:
    """The facts that make a new run or sweep the caller's: a student's id (the teacher's: none)."""
    return {"owner": me().id} if is_student() else {}
