"""Schemathesis fuzzes every operation of GET /openapi.json against a live ``python server.py``
that trains on a tiny MNIST written here, in a throw-away runs folder: no answer is a server
error, and every answer (its code, content type and body) is one the document describes. The
operations on one run get the ids of real runs (made first, and whatever the fuzzing started)
most of the time, not only 404s. A server with a token, fuzzed without it: 401 to everything,
and nothing on disk changes."""
import collections
import hashlib
import io
import itertools
import zipfile
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)

from helpers import QUICK, ServerProcess, make_mnist_dir, wait_for

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def zip_of(entries: dict) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


# POST /runs/import takes a run's zip: random bytes, and zips empty, escaping, and nearly a run.
schemathesis.openapi.media_type("application/zip", st.one_of(st.binary(max_size=512), st.sampled_from([
    zip_of({}), zip_of({"../escape.json": b"{}"}),
    zip_of({"20261201-120000-000abc/config.json": b'{"epochs": 1}', "20261201-120000-000abc/status.json": b'{"state": "finished"}'}),
])))
EXAMPLES = 8  # each operation; the whole module takes about 1.5 minutes on a 2-core CPU
TOKEN = "fuzz-token-0123456789"


def start_server(root: Path, *extra) -> ServerProcess:
    root.mkdir()
    server = ServerProcess(make_mnist_dir(root / "mnist", train=300, test=100), root / "runs",
                           root / "server.log", extra_args=list(extra))
    return server.start()


def finished_run(server: ServerProcess, headers=None) -> str:
    """A QUICK run trained to the end: the operations on one run then have checkpoints and pictures to find."""
    code, answer = server.request("POST", "/start_training", QUICK, headers)
    assert code == 202, answer

    def over():
        code, status = server.request("GET", f"/runs/{answer['run_id']}", headers=headers)
        return code == 200 and status["state"] in ("finished", "failed")
    wait_for(over, timeout=120, interval=0.2, message="the first run to end")
    return answer["run_id"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("fuzz") / "open")
    finished_run(server)
    code, answer = server.request("POST", "/start_training", dict(QUICK, epochs=100, batch_size=1))
    assert code == 202  # a run that trains throughout: stop, resume, cancel and delete meet an active run
    code, _ = server.request("POST", "/start_training", dict(QUICK, queue=True))
    assert code == 202
    yield server
    server.stop()
    log = server.log_path.read_text()
    assert "Traceback" not in log and "unexpected error" not in log, log[-3000:]


@pytest.fixture(scope="module")
def api_schema(server):
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")
picks = itertools.count()
answers = collections.Counter()  # (path, status code) of every fuzzed call


def with_real_run(case, server) -> None:
    """Three cases in four name a run that exists (made first, or started by the fuzzing)."""
    if "run_id" not in (case.path_parameters or {}):
        return
    runs = [r["run_id"] for r in requests.get(f"{server.url}/runs", timeout=30).json()["runs"]]
    pick = next(picks)
    if runs and pick % 4:
        case.path_parameters["run_id"] = runs[pick % len(runs)]


def fuzz(case, server) -> None:
    with_real_run(case, server)
    response = case.call_and_validate(base_url=server.url, checks=CHECKS)
    answers[case.operation.path, response.status_code] += 1


@schema.exclude(method="DELETE").parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case, server):
    fuzz(case, server)


@schema.include(method="DELETE").parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_deletes_answer_as_documented(case, server):
    """Last, so that the runs it deletes were there for the other operations."""
    fuzz(case, server)


def test_the_fuzzing_reached_real_runs():
    """Not only 404s: the operations on one run answered for real runs too."""
    for path in ("/runs/{run_id}", "/runs/{run_id}/metrics", "/runs/{run_id}/config", "/runs/{run_id}/metrics.csv"):
        assert answers[path, 200] > 0, (path, sorted(answers.items()))
    assert answers["/runs/{run_id}/files/{name}", 200] > 0, answers
    assert any(answers["/runs/{run_id}/resume", code] for code in (202, 409)), answers
    assert answers["/runs/{run_id}", 200] > 0 and answers["/predict", 200] > 0, answers


def folder_state(root: Path) -> dict[str, str]:
    """Every file under ``root`` and a hash of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def settled_state(root: Path) -> dict[str, str]:
    """The folder's files once two looks 1.5 s apart agree (a run that just ended writes its last beat)."""
    last = {}

    def same() -> bool:
        nonlocal last
        now, previous = folder_state(root), last
        last = now
        return now == previous
    wait_for(same, timeout=30, interval=1.5, message="the runs folder to settle")
    return last


@pytest.fixture(scope="module")
def locked_server(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("fuzz") / "locked", "--token", TOKEN)
    server.run_id = finished_run(server, {"Authorization": f"Bearer {TOKEN}"})
    server.before = settled_state(server.runs_dir)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def locked_schema(locked_server):
    document = requests.get(f"{locked_server.url}/openapi.json", timeout=30,
                            headers={"Authorization": f"Bearer {TOKEN}"}).json()
    return schemathesis.openapi.from_dict(document)


locked = schemathesis.pytest.from_fixture("locked_schema")


@locked.parametrize()
@settings(max_examples=4, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_without_the_token_every_operation_is_refused_and_nothing_changes(case, locked_server):
    if "run_id" in (case.path_parameters or {}):
        case.path_parameters["run_id"] = locked_server.run_id
    response = case.call(base_url=locked_server.url)
    assert response.status_code == 401, (case.method, case.formatted_path, response.text[:200])
    assert response.json()["error"].startswith("this server needs its access token")
    assert folder_state(locked_server.runs_dir) == locked_server.before


# ---------------------------------------------------------------- a class: a student's and the teacher's token

CLASS_CODE = "FUZZ-CODE"
CLASS_EXAMPLES = 3  # each operation, as a student and as the teacher


@pytest.fixture(scope="module")
def class_server(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("fuzz") / "class", "--class", "--class-code", CLASS_CODE,
                          "--token", TOKEN)
    server.teacher = {"Authorization": f"Bearer {TOKEN}"}
    server.teacher_run = finished_run(server, server.teacher)
    code, student = server.request("POST", "/class/join", {"code": CLASS_CODE, "name": "Ana"})
    assert code == 201, student
    server.student = {"Authorization": f"Bearer {student['token']}"}
    server.student_run = finished_run(server, server.student)
    yield server
    server.stop()
    log = server.log_path.read_text()
    assert "Traceback" not in log and "unexpected error" not in log, log[-3000:]


@pytest.fixture(scope="module")
def class_schema(class_server):
    document = requests.get(f"{class_server.url}/openapi.json", timeout=30, headers=class_server.teacher).json()
    return schemathesis.openapi.from_dict(document)


in_class = schemathesis.pytest.from_fixture("class_schema")
class_answers = collections.Counter()  # (who, x-class-access, status code)


def call_as(case, server, who: str, headers: dict) -> None:
    """The case as ``who``, on the teacher's run and on the student's (both, in turn, when it names a
    run); checked against the document, and a student's change to the teacher's run refused."""
    params = case.path_parameters or {}
    access = case.operation.definition.raw.get("x-class-access")
    for theirs in ((True, False) if "run_id" in params else (False,)):
        if "run_id" in params:
            params["run_id"] = server.teacher_run if theirs else server.student_run
        response = case.call_and_validate(base_url=server.url, headers=headers, checks=CHECKS)
        class_answers[who, access, response.status_code] += 1
        if who == "student" and theirs and access == "act" \
                and case.method.lower() == case.operation.method.lower():  # (not a method the route lacks: 405)
            assert response.status_code in (400, 403, 415), (case.method, case.formatted_path, response.text[:200])


@in_class.exclude(method="DELETE").parametrize()
@settings(max_examples=CLASS_EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_in_a_class_every_operation_answers_as_documented_to_a_student_and_the_teacher(case, class_server):
    call_as(case, class_server, "student", class_server.student)
    call_as(case, class_server, "teacher", class_server.teacher)


def test_the_class_fuzzing_met_refusals_and_answers():
    """A student was refused on the teacher's run and answered on their own; the teacher was never
    refused (but for a wrong class code, which anyone gets)."""
    assert class_answers["student", "act", 403] > 0 and class_answers["student", "read", 200] > 0, class_answers
    assert not any(n for (who, access, code), n in class_answers.items()
                   if who == "teacher" and code in (401, 403) and access != "open"), class_answers
