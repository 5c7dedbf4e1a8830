"""The class's routes (a server started with --class): joining with the class code, signing a
browser in with a personal link, who am I, and the teacher's operations on the class (close
joining, share runs or not, rename, remove, a new link for a student who lost theirs)."""
from __future__ import annotations

import time

from flask import Blueprint, current_app, g, jsonify, make_response, request

from mnist_monitor.classroom.ratelimit import WrongCodes
from mnist_monitor.classroom.roster import SETTINGS, Refusal, Roster, Student
from mnist_monitor.classroom.rules import LimitError
from mnist_monitor.config import reject_unknown
from mnist_monitor.web.access import me, own_run, require_teacher, roster
from mnist_monitor.web.common import json_body, no_fields_body, store
from mnist_monitor.web.errors import BadRequest, Conflict, Forbidden, NotFound, TooManyRequests
from mnist_monitor.web.security import set_token_cookie, token_cookie

bp = Blueprint("classroom", __name__)
REFUSAL_ERRORS = {"closed": Forbidden, "name": BadRequest, "taken": Conflict, "full": Conflict, "unknown": NotFound}


def the_class() -> Roster:
    class_ = roster()
    if class_ is None:
        raise NotFound("this server does not run a class: start it with python server.py --class")
    return class_


def wrong_codes() -> WrongCodes:
    """The app's count of wrong class codes (made at its first wrong code)."""
    return current_app.extensions.setdefault("wrong_codes", WrongCodes())


def refused(exc: Refusal):
    return REFUSAL_ERRORS[exc.kind](str(exc), exc.field)


def member() -> dict:
    """Who the caller is, and the class settings that say what they may see."""
    class_, who = the_class(), me()
    return {"role": who.role, "id": who.id, "name": who.name, **{key: getattr(class_, key) for key in SETTINGS},
            "limits": class_.limits_of(who.id) if who.role == "student" else None}


def student_row(student: Student, runs: dict[str, int]) -> dict:
    return {**student.public(), "runs": runs.get(student.id, 0)}


def with_token(student: Student, token: str, code: int = 200):
    """A student's new token, answered once, and set as this browser's cookie when it is theirs."""
    return jsonify({"id": student.id, "name": student.name, "token": token}), code


def member_or_none() -> dict | None:
    """Who the request is, in a class (GET /config answers it: the page of a browser that is nobody
    yet shows the join form without a 401); None without a class or a member."""
    return member() if roster() is not None and g.get("identity") is not None else None


@bp.post("/class/join")
def join():
    """Join the class with its code and a name: 201 with the student's token (also set as the
    cookie). Wrong codes are limited (a minute: 10 from one address, 60 in all); a right code never is."""
    class_ = the_class()
    body = json_body()
    reject_unknown(body, {"code", "name"})
    if not isinstance(body.get("code"), str) or not class_.matches(body["code"]):
        wait = wrong_codes().retry_after(request.remote_addr or "")
        if wait:
            error = TooManyRequests(f"too many wrong class codes: try again in {wait} s", "code")
            error.retry_after = wait
            raise error
        wrong_codes().count(request.remote_addr or "")
        raise Forbidden("code: that is not this class's code: ask your teacher for it", "code")
    try:
        student, token = class_.join(body.get("name"))
    except Refusal as exc:
        raise refused(exc) from None
    response = make_response(with_token(student, token, 201))
    set_token_cookie(response, token)
    return response


@bp.post("/class/signin")
def signin():
    """Make the token this request carries (a personal link's) this browser's identity: the cookie."""
    no_fields_body()
    response = make_response(jsonify(member()))
    set_token_cookie(response, g.token)
    return response


@bp.post("/class/signout")
def signout():
    """Forget this browser's identity (the token itself still works: it is the student's link)."""
    no_fields_body()
    response = make_response(jsonify(member()))
    response.delete_cookie(token_cookie(), httponly=True, samesite="Strict")
    return response


@bp.post("/runs/<run_id>/hand_in")
def hand_in(run_id):
    """Hand a finished run of one's own in to the teacher (kept like a starred run; its owner cannot
    delete it while it is handed in)."""
    class_, run = the_class(), own_run(run_id)
    no_fields_body()
    if not class_.hand_ins_open:
        raise Conflict("hand-ins are closed: ask your teacher")
    snapshot = store().snapshot(run_id)
    state = snapshot.state if snapshot else "deleted"
    if state != "finished":
        raise Conflict(f"run {run_id} is {state}: only a finished run can be handed in")
    meta = run.meta() if run.meta()["handed_in_at"] else run.set_meta(handed_in_at=time.time())
    return jsonify({"run_id": run_id, "handed_in_at": meta["handed_in_at"]})


@bp.delete("/runs/<run_id>/hand_in")
def withdraw(run_id):
    """Take a hand-in back (until the teacher closes hand-ins)."""
    class_, run = the_class(), own_run(run_id)
    if not class_.hand_ins_open:
        raise Conflict("hand-ins are closed: ask your teacher")
    run.set_meta(handed_in_at=None)
    return jsonify({"run_id": run_id, "handed_in_at": None})


@bp.get("/class/me")
def whoami():
    return jsonify(member())


@bp.get("/class")
def class_view():
    """The teacher's view of the class: the code, the settings, every student with their run count."""
    class_ = the_class()
    require_teacher()
    runs: dict[str, int] = {}
    for snapshot in store().snapshots():
        if snapshot.owner:
            runs[snapshot.owner] = runs.get(snapshot.owner, 0) + 1
    return jsonify({"code": class_.code, **{key: getattr(class_, key) for key in SETTINGS}, "limits": class_.limits,
                    "students": [student_row(s, runs) for s in class_.students()]})


@bp.patch("/class")
def change_class():
    """Open or close joining and hand-ins; share the runs between students or not; the class's limits."""
    class_ = the_class()
    require_teacher()
    body = json_body()
    reject_unknown(body, {*SETTINGS, "limits"})
    for key, value in body.items():
        if key != "limits" and not isinstance(value, bool):
            raise BadRequest(f"{key}: must be true or false", key)
    try:
        class_.settings(**body)
    except LimitError as exc:
        raise BadRequest(str(exc), exc.field) from None
    return class_view()


def teachers(change):
    """``change(roster)`` by the teacher (403 to a student), its Refusal answered with its code."""
    class_ = the_class()
    require_teacher()
    try:
        return change(class_)
    except Refusal as exc:
        raise refused(exc) from None


@bp.patch("/class/students/<student_id>")
def change_student(student_id):
    """Rename a student, or set their own limits (over the class's)."""
    body = teachers(lambda _: json_body())
    reject_unknown(body, {"name", "limits"})
    if "name" in body:
        teachers(lambda class_: class_.rename(student_id, body["name"]))
    if "limits" in body:
        try:
            teachers(lambda class_: class_.set_limits(student_id, body["limits"]))
        except LimitError as exc:
            raise BadRequest(str(exc), exc.field) from None
    return jsonify(teachers(lambda class_: class_.present(student_id)).public())


@bp.delete("/class/students/<student_id>")
def remove_student(student_id):
    """The student can no longer sign in; their runs stay, still theirs."""
    return jsonify(teachers(lambda class_: class_.remove(student_id)).public())


@bp.post("/class/students/<student_id>/link")
def reset_link(student_id):
    """A new personal token for a student who lost their link (the old one stops working)."""
    teachers(lambda _: no_fields_body())
    return with_token(*teachers(lambda class_: class_.reset_link(student_id)))
