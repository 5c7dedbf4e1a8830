"""A class on one server, over HTTP: joining, who may see and do what on whose runs and sweeps
(a table generated from the OpenAPI document, so an operation added later is covered), the lists
each member gets, the status a student follows, a restart and a damaged class file."""
import re

import pytest

from helpers import fake_run, wait_for

TEACHER = "teacher-token-0123456789"
CODE = "TEST-CODE"
SAMPLE = {"name": "curves.png"}  # a file every fake run has


@pytest.fixture
def make_class(tmp_path, tiny_mnist, make_app):
    def make(runs="runs", **config):
        app = make_app({"RUNS_DIR": str(tmp_path / runs), "DATA_DIR": str(tiny_mnist), "TESTING": True,
                        "CLASS": True, "TOKEN": TEACHER, "CLASS_CODE": CODE, **config})
        return app, app.test_client()
    return make


@pytest.fixture
def klass(make_class):
    app, client = make_class()
    return app, client


def join(client, name, code=CODE, **kw):
    return client.post("/class/join", json={"code": code, "name": name}, **kw)


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def student(client, name):
    """(id, headers) of a new student."""
    answer = join(client, name)
    assert answer.status_code == 201, answer.get_json()
    client.delete_cookie("mnist_monitor_token_80")  # requests say who they are in their header
    return answer.get_json()["id"], bearer(answer.get_json()["token"])


def sweep_of(app, owner):
    from mnist_monitor.sweeps.spec import parse_sweep

    spec = parse_sweep({"base": {"epochs": 1, "models": [{"kernels": [2, 2, 2, 2]}]}, "grid": {"batch_size": [8, 16]}})
    return app.extensions["sweeps"].create(spec, owner).sweep_id


# ---------------------------------------------------------------- joining

def test_only_the_page_its_files_the_settings_and_joining_answer_without_a_token(klass):
    _, client = klass
    assert client.get("/").status_code == 200 and client.get("/static/app.js").status_code == 200
    assert client.get("/config").get_json()["class"] is True
    for path in ("/runs", "/training_status", "/sweeps", "/openapi.json", "/class/me", "/class"):
        answer = client.get(path)
        assert answer.status_code == 401 and "join with the class code" in answer.get_json()["error"], path
    assert client.get("/runs?token=wrong").status_code == 401


def test_joining_gives_a_token_and_a_cookie_and_refuses_a_wrong_code_a_taken_name_and_a_bad_one(klass):
    _, client = klass
    answer = join(client, "Ana")
    assert answer.status_code == 201 and set(answer.get_json()) == {"id", "name", "token"}
    token = answer.get_json()["token"]
    cookie = answer.headers["Set-Cookie"]
    assert f"mnist_monitor_token_80={token}" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    me = client.get("/class/me").get_json()
    assert me == {"role": "student", "id": answer.get_json()["id"], "name": "Ana", "joining_open": True,
                  "share_runs": True, "hand_ins_open": True, "leaderboard": True, "anonymous": False,
                  "limits": me["limits"]}
    assert me["limits"]["active_runs"] == 1 and me["limits"]["queued_runs"] == 3  # the defaults
    assert join(client, "ana").status_code == 409
    assert join(client, "Ben", code="WRONG-CODE").status_code == 403
    assert join(client, "Ben", code="test code").status_code == 201  # spaces, dashes and case do not matter
    bad = join(client, "<script>")
    assert bad.status_code == 400 and bad.get_json()["field"] == "name"
    assert client.post("/class/join", json={"code": CODE, "name": "Cleo", "role": "teacher"}).status_code == 400


def test_wrong_codes_are_limited_per_address_and_overall_but_a_right_code_never_is(klass):
    _, client = klass
    for _ in range(10):
        assert join(client, "Eve", code="GUESS").status_code == 403
    limited = join(client, "Eve", code="GUESS")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    assert join(client, "Ana").status_code == 201  # the class behind the same address still joins
    for i in range(50):  # from 50 other addresses: 60 wrong codes in the minute in all
        assert join(client, "Eve", code="GUESS", environ_base={"REMOTE_ADDR": f"10.0.0.{i}"}).status_code == 403
    assert join(client, "Eve", code="GUESS", environ_base={"REMOTE_ADDR": "10.0.1.1"}).status_code == 429
    assert join(client, "Ben", environ_base={"REMOTE_ADDR": "10.0.1.1"}).status_code == 201


def test_the_teacher_closes_joining_renames_removes_and_resets_a_link_and_a_student_cannot(klass):
    app, client = klass
    ana, ana_h = student(client, "Ana")
    ben, ben_h = student(client, "Ben")
    teacher = bearer(TEACHER)
    for method, path, body in (("GET", "/class", None), ("PATCH", "/class", {"joining_open": False}),
                               ("PATCH", f"/class/students/{ben}", {"name": "X"}),
                               ("DELETE", f"/class/students/{ben}", None),
                               ("POST", f"/class/students/{ben}/link", {})):
        answer = client.open(path, method=method, json=body, headers=ana_h)
        assert answer.status_code == 403 and "only the teacher" in answer.get_json()["error"], (method, path)
    view = client.get("/class", headers=teacher).get_json()
    assert view["code"] == CODE and [s["name"] for s in view["students"]] == ["Ana", "Ben"]
    assert "token" not in str(view) and "hash" not in str(view)
    assert client.patch(f"/class/students/{ana}", json={"name": "ben"}, headers=teacher).status_code == 409
    assert client.patch(f"/class/students/{ana}", json={"name": "Anna"}, headers=teacher).get_json()["name"] == "Anna"
    assert client.get("/runs", headers=ana_h).headers["X-Class-Member"] == f"{ana} Anna"  # her page sees the rename
    client.patch(f"/class/students/{ana}", json={"name": "Ana María"}, headers=teacher)
    assert client.get("/runs", headers=ana_h).headers["X-Class-Member"] == f"{ana} Ana%20Mar%C3%ADa"
    assert client.get("/runs", headers=teacher).headers["X-Class-Member"] == "teacher teacher"
    new = client.post(f"/class/students/{ana}/link", json={}, headers=teacher).get_json()["token"]
    assert client.get("/class/me", headers=ana_h).status_code == 401  # the lost link stops working
    assert client.get("/class/me", headers=bearer(new)).get_json()["name"] == "Ana María"
    assert client.delete(f"/class/students/{ben}", headers=teacher).get_json()["removed"] is True
    assert client.get("/class/me", headers=ben_h).status_code == 401
    closed = client.patch("/class", json={"joining_open": False}, headers=teacher)
    assert closed.get_json()["joining_open"] is False
    refused = join(client, "Cleo")
    assert refused.status_code == 403 and "closed" in refused.get_json()["error"]
    assert client.patch("/class", json={"joining_open": "no"}, headers=teacher).status_code == 400


def test_a_personal_link_signs_a_browser_in_only_when_asked(klass):
    _, client = klass
    _, ana_h = student(client, "Ana")
    _, ben_h = student(client, "Ben")
    ben_token = ben_h["Authorization"].split()[1]
    page = client.get(f"/?token={ben_token}")
    assert page.status_code == 200 and "Set-Cookie" not in page.headers  # the page asks "continue as Ben?" first
    signed = client.post("/class/signin", json={}, headers=ben_h)
    assert signed.get_json()["name"] == "Ben" and f"_80={ben_token}" in signed.headers["Set-Cookie"]
    assert client.get("/class/me").get_json()["name"] == "Ben"
    client.post("/class/signout", json={})
    assert client.get("/class/me").status_code == 401


def test_without_a_class_the_class_routes_are_404_and_runs_have_no_owner(client):
    assert client.get("/class/me").status_code == 404
    assert client.post("/class/join", json={"code": CODE, "name": "Ana"}).status_code == 404
    assert client.get("/config").get_json()["class"] is False
    assert client.get("/training_status").get_json()["owner"] is None


# ---------------------------------------------------------------- who may see and do what

def owned_things(app, client):
    """Ana's and Ben's runs and sweeps, and the teacher's: (ana headers, ids)."""
    store = app.extensions["runs"]
    ana, ana_h = student(client, "Ana")
    ben, ben_h = student(client, "Ben")
    return ana_h, ben_h, {
        "ben_run": fake_run(store, owner=ben), "teacher_run": fake_run(store),
        "ana_run": fake_run(store, owner=ana), "ben_sweep": sweep_of(app, ben), "ana_sweep": sweep_of(app, ana)}


def operations_on_one(client):
    """(method, path template, access) of every documented operation with a run or sweep id."""
    document = client.get("/openapi.json", headers=bearer(TEACHER)).get_json()
    found = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if "{run_id}" in path or "{sweep_id}" in path:
                found.append((method.upper(), path, operation["x-class-access"]))
    assert len(found) >= 12 and {a for *_, a in found} == {"read", "act"}
    return found


def call(client, method, path, headers, run_id, sweep_id):
    url = path.replace("{run_id}", run_id).replace("{sweep_id}", sweep_id).replace("{name}", SAMPLE["name"])
    body = None if method in ("GET", "DELETE") else {}
    return client.open(url, method=method, json=body, headers=headers)


@pytest.mark.parametrize("shared", [True, False])
def test_every_operation_on_a_run_or_a_sweep_keeps_to_its_owner(klass, shared):
    """A student on another's run or sweep: 403, or for a read, 200 read-only when the teacher
    shares runs; the owner and the teacher are never refused (the table is the OpenAPI document's)."""
    app, client = klass
    ana_h, ben_h, ids = owned_things(app, client)
    client.patch("/class", json={"share_runs": shared}, headers=bearer(TEACHER))
    table = operations_on_one(client)
    for method, path, access in table:
        for other in ("ben_run", "teacher_run"):
            answer = call(client, method, path, ana_h, ids[other], ids["ben_sweep"])
            if access == "read" and shared:
                assert answer.status_code == 200, (method, path, other, answer.get_json())
            else:
                assert answer.status_code == 403, (method, path, other, answer.status_code)
                assert "not yours" in answer.get_json()["error"] or "only they or the teacher" in answer.get_json()["error"]
        mine = call(client, method, path, ana_h, ids["ana_run"], ids["ana_sweep"])
        assert mine.status_code != 403, (method, path, mine.get_json())
    for method, path, access in table:
        if method != "DELETE":  # the teacher may do anything: deleting last would leave nothing to act on
            answer = call(client, method, path, bearer(TEACHER), ids["ben_run"], ids["ben_sweep"])
            assert answer.status_code not in (401, 403), (method, path, answer.get_json())
    predict = client.post("/predict", json={"test_index": 0, "run_id": ids["ben_run"]}, headers=ana_h)
    assert (predict.status_code == 403) != shared  # (a fake run has no checkpoint: 409 when it may be read)
    ben_id = client.get("/class/me", headers=ben_h).get_json()["id"]
    for body in ({"test_index": 0}, {"test_index": 0, "run_id": None}):  # no run named: the student's own newest
        answer = client.post("/predict", json=body, headers=ben_h)
        named = re.search(r"run (\S+) has no checkpoint", answer.get_json()["error"]).group(1)
        assert answer.status_code == 409 and app.extensions["runs"].snapshot(named).owner == ben_id


def test_lists_hold_a_students_own_runs_and_others_only_when_shared(klass):
    app, client = klass
    ana_h, ben_h, ids = owned_things(app, client)
    listed = lambda h: {r["run_id"]: r["owner"]["name"] for r in client.get("/runs", headers=h).get_json()["runs"]}
    assert listed(ana_h) == {ids["ana_run"]: "Ana", ids["ben_run"]: "Ben", ids["teacher_run"]: "teacher"}
    client.patch("/class", json={"share_runs": False}, headers=bearer(TEACHER))
    assert listed(ana_h) == {ids["ana_run"]: "Ana"}
    assert len(listed(bearer(TEACHER))) == 3
    sweeps = lambda h: [s["sweep_id"] for s in client.get("/sweeps", headers=h).get_json()["sweeps"]]
    assert sweeps(ana_h) == [ids["ana_sweep"]] and set(sweeps(bearer(TEACHER))) == {ids["ana_sweep"], ids["ben_sweep"]}
    assert client.get(f"/sweeps/{ids['ana_sweep']}", headers=ana_h).get_json()["owner"]["name"] == "Ana"


def test_a_student_follows_only_their_own_runs_and_stops_only_those(klass):
    app, client = klass
    store = app.extensions["runs"]
    ana, ana_h = student(client, "Ana")
    ben, ben_h = student(client, "Ben")
    idle = client.get("/training_status", headers=ana_h).get_json()
    ben_live = fake_run(store, state="running", beat="this", owner=ben)
    assert idle["state"] == "idle"
    status = client.get("/training_status", headers=ana_h).get_json()
    assert status["run_id"] is None and status["active_runs"] == []  # Ben's run is not followed by Ana's page
    ana_old = fake_run(store, owner=ana)
    teacher_live = fake_run(store, state="running", beat="this")
    assert client.get("/training_status", headers=ana_h).get_json()["run_id"] == ana_old
    ana_live = fake_run(store, state="running", beat="this", owner=ana)
    status = client.get("/training_status", headers=ana_h).get_json()
    assert status["run_id"] == ana_live and status["active_runs"] == [ana_live]
    assert status["owner"] == {"id": ana, "name": "Ana"}
    for body in ({"test_index": 0}, {"test_index": 0, "run_id": None}):  # no run named: Ben's own newest, not Ana's
        assert ben_live in client.post("/predict", json=body, headers=ben_h).get_json()["error"]
    teacher_view = client.get("/training_status", headers=bearer(TEACHER)).get_json()
    assert set(teacher_view["active_runs"]) == {ben_live, teacher_live, ana_live}
    stopped = client.post("/stop_training", json={}, headers=ana_h).get_json()
    assert stopped["run_ids"] == [ana_live]
    assert [store.run(r).path.joinpath("stop.request").exists() for r in (ana_live, ben_live, teacher_live)] == \
        [True, False, False]
    assert client.post("/stop_training", json={}, headers=ben_h).get_json()["run_ids"] == [ben_live]
    assert client.get(f"/training_status?run={ben_live}", headers=ana_h).get_json()["run_id"] == ben_live  # shared
    client.patch("/class", json={"share_runs": False}, headers=bearer(TEACHER))
    assert client.get(f"/training_status?run={ben_live}", headers=ana_h).status_code == 403


def test_a_run_a_student_starts_is_theirs_and_the_class_survives_a_restart(make_class):
    app, client = make_class()
    ana, ana_h = student(client, "Ana")
    answer = client.post("/start_training", headers=ana_h, json={
        "epochs": 1, "train_samples": 64, "models": [{"kernels": [2, 2, 2, 2], "batch_size": 32}], "queue": True})
    assert answer.status_code == 202
    run_id = answer.get_json()["run_id"]
    assert client.get(f"/runs/{run_id}", headers=ana_h).get_json()["owner"] == {"id": ana, "name": "Ana"}
    _, ben_h = student(client, "Ben")
    long_run = client.post("/start_training", headers=ben_h, json={
        "epochs": 50, "train_samples": 64, "models": [{"kernels": [2, 2, 2, 2], "batch_size": 1}], "queue": True})
    long_id = long_run.get_json()["run_id"]
    wait_for(lambda: client.get("/training_status", headers=ben_h).get_json()["active_runs"] == [long_id],
             message="Ben's run to train")
    seen_by_ana = client.get("/training_status", headers=ana_h).get_json()
    assert seen_by_ana["active_runs"] == [] and seen_by_ana["workers_busy"] == 1  # the one worker is Ben's
    busy = client.post("/start_training", headers=ana_h, json={"models": [{"kernels": [2, 2, 2, 2]}]})
    assert busy.status_code == 409 and long_id not in busy.get_json()["error"]  # not Ben's run named to her
    refused = client.post("/stop_training", json={}, headers=ana_h)
    assert refused.status_code == 409 and refused.get_json()["error"] == "none of your runs is training"
    assert client.post("/stop_training", json={}, headers=bearer(TEACHER)).get_json()["run_ids"] == [long_id]
    client.patch("/class", json={"share_runs": False}, headers=bearer(TEACHER))
    again, client2 = make_class()  # the same runs folder: a restart
    me = client2.get("/class/me", headers=ana_h).get_json()
    assert me["id"] == ana and me["share_runs"] is False
    assert [r["run_id"] for r in client2.get("/runs", headers=ana_h).get_json()["runs"]] == [run_id]
    assert app.extensions["training"].wait(30)


def test_a_damaged_class_file_stops_the_server_at_start_with_the_file_named(tmp_path, monkeypatch, capsys, make_class):
    import server

    make_class(runs="runs")
    make_class(runs="runs")  # a restart: the first good file is the backup now
    (tmp_path / "runs" / "class.json").write_text('{"version": 1, "code": ')
    monkeypatch.setattr("waitress.serve", lambda app, **kw: pytest.fail("the server must not start"))
    assert server.main(["--class", "--runs-dir", str(tmp_path / "runs")]) == 2
    error = capsys.readouterr().err
    assert re.search(r"class file .*class\.json cannot be read", error) and "class.json.bak" in error


def test_the_server_prints_the_teachers_link_and_the_class_code(tmp_path, monkeypatch, capsys):
    import server

    served = {}
    monkeypatch.setattr("waitress.serve", lambda app, **kw: served.update(kw, app=app))
    server.main(["--class", "--class-code", "room 12", "--runs-dir", str(tmp_path / "runs")])
    out = capsys.readouterr().out
    token = served["app"].config["TOKEN"]
    assert f"Teacher: open http://127.0.0.1:5000/?token={token}" in out and "Class code: ROOM 12" in out
    assert served["app"].test_client().get("/runs").status_code == 401  # on loopback too
    served["app"].extensions["training"].shutdown(10)
