"""``GET /class/board``: the class at a glance. For everyone, the leaderboard (each student's best
run: its test accuracy and settings; the teacher can turn it off, or make the class anonymous: then
no other student's name reaches a student) and who trains now; for the teacher, also every
student's runs training and queued, best run, hand-ins, disk use and limits."""
from __future__ import annotations

from flask import Blueprint

from mnist_monitor.runstore import ACTIVE_STATES, QUEUED_STATE, RunSnapshot
from mnist_monitor.web.access import is_student, may_read, me
from mnist_monitor.web.classroom import the_class
from mnist_monitor.web.common import conditional_json, store
from mnist_monitor.web.views import run_summary

bp = Blueprint("board", __name__)


def best_of(runs: list[RunSnapshot]) -> dict | None:
    """The run with the best test accuracy of any of its models, as a row of the run table."""
    rows = [run_summary(s) for s in runs if s.status is not None]
    scored = [r for r in rows if r["best_test_accuracy"] is not None]
    return max(scored, key=lambda r: (r["best_test_accuracy"], r["run_id"]), default=None)


def who(class_, student) -> dict:
    """A student as the caller may see them: "you", a name, or (anonymous, for a student) nothing."""
    mine = student.id == me().id
    shown = {"you": mine}
    if mine or not (class_.anonymous and is_student()):
        shown["name"] = student.name
    return shown


def leader_row(class_, student, best: dict) -> dict:
    row = {**who(class_, student), "best_test_accuracy": best["best_test_accuracy"], "settings": best["settings"],
           "models": [{k: m[k] for k in ("name", "kernels", "optimizer", "learning_rate", "batch_size",
                                         "best_test_accuracy")} for m in best["models"]]}
    if may_read(student.id):  # the run itself, to open, where runs are shared (or it is theirs)
        row["run_id"] = best["run_id"]
    return row


def teacher_row(student, runs: list[RunSnapshot], best: dict | None, limits: dict) -> dict:
    return {"id": student.id, "name": student.name,
            "training": [s.run_id for s in runs if s.state in ACTIVE_STATES],
            "queued": sum(s.state == QUEUED_STATE for s in runs),
            "best_run_id": best["run_id"] if best else None,
            "best_test_accuracy": best["best_test_accuracy"] if best else None,
            "hand_ins": sorted(({"run_id": s.run_id, "handed_in_at": s.meta["handed_in_at"],
                                 "best_test_accuracy": run_summary(s)["best_test_accuracy"]} for s in runs
                                if s.meta["handed_in_at"]), key=lambda h: -h["handed_in_at"]),
            "disk_mb": round(store().runs_bytes([s.run_id for s in runs]) / 1e6, 1), "limits": limits}


@bp.get("/class/board")
def board():
    class_ = the_class()
    students = [s for s in class_.students() if not s.removed]
    by_owner: dict[str | None, list[RunSnapshot]] = {}
    for snapshot in store().snapshots():
        by_owner.setdefault(snapshot.owner, []).append(snapshot)
    bests = {s.id: best_of(by_owner.get(s.id, [])) for s in students}
    leaders = [leader_row(class_, s, bests[s.id]) for s in students if bests[s.id]]
    leaders.sort(key=lambda r: -r["best_test_accuracy"])
    training = [{**who(class_, s), "runs": n} for s in students
                if (n := sum(r.state in ACTIVE_STATES for r in by_owner.get(s.id, [])))]
    answer = {"leaderboard_on": class_.leaderboard, "anonymous": class_.anonymous,
              "leaderboard": leaders if class_.leaderboard or not is_student() else [], "training": training}
    if not is_student():
        answer["students"] = [teacher_row(s, by_owner.get(s.id, []), bests[s.id], class_.limits_of(s.id))
                              for s in students]
    return conditional_json(answer)
