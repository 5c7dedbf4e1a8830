"""A class's fair share and limits over HTTP, with real (tiny) runs: a student's queue does not
hold back another's first run; each limit refuses with 409 (429 for predictions) saying it; a
hand-in is kept, withdrawn, and not deletable by its owner while handed in."""
import json

import pytest

from helpers import fake_run, wait_for

TEACHER = "teacher-token-0123456789"
CODE = "TEST-CODE"
TINY = {"epochs": 1, "train_samples": 64, "models": [{"kernels": [2, 2, 2, 2], "batch_size": 32}]}
LONG = {"epochs": 50, "train_samples": 64, "models": [{"kernels": [2, 2, 2, 2], "batch_size": 1}]}


@pytest.fixture
def klass(tmp_path, tiny_mnist, make_app):
    app = make_app({"RUNS_DIR": str(tmp_path / "runs"), "DATA_DIR": str(tiny_mnist), "TESTING": True,
                    "CLASS": True, "TOKEN": TEACHER, "CLASS_CODE": CODE,
                    "TRAINER_OPTIONS": {"status_interval": 0.05, "pictures": False}})
    return app, app.test_client()


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


TEACHER_H = bearer(TEACHER)


def student(client, name):
    answer = client.post("/class/join", json={"code": CODE, "name": name}).get_json()
    client.delete_cookie("mnist_monitor_token_80")
    return answer["id"], bearer(answer["token"])


def state_of(client, run_id):
    return client.get(f"/runs/{run_id}", headers=TEACHER_H).get_json()["state"]


def test_another_students_first_run_starts_before_the_second_of_a_long_queue(klass):
    app, client = klass
    ana, ana_h = student(client, "Ana")
    _, ben_h = student(client, "Ben")
    client.patch(f"/class/students/{ana}", json={"limits": {"queued_runs": 10}}, headers=TEACHER_H)
    first = client.post("/start_training", json=LONG, headers=ana_h).get_json()["run_id"]
    wait_for(lambda: state_of(client, first) == "running", message="Ana's first run to train")
    ana_queue = [client.post("/start_training", json={**TINY, "queue": True}, headers=ana_h).get_json()["run_id"]
                 for _ in range(4)]
    ben_run = client.post("/start_training", json={**TINY, "queue": True}, headers=ben_h).get_json()["run_id"]
    assert client.post(f"/runs/{first}/stop", json={}, headers=ana_h).status_code == 200
    wait_for(lambda: all(state_of(client, r) == "finished" for r in ana_queue + [ben_run]), timeout=120,
             message="every queued run to end")
    started = {r: client.get(f"/runs/{r}", headers=TEACHER_H).get_json()["started_at"] for r in ana_queue + [ben_run]}
    assert started[ben_run] < started[ana_queue[0]] < started[ana_queue[1]], started  # Ben's turn came first


def test_each_limit_refuses_a_student_saying_it_and_never_the_teacher(klass):
    app, client = klass
    ana, ana_h = student(client, "Ana")
    first = client.post("/start_training", json=LONG, headers=ana_h)
    assert first.status_code == 202
    refused = client.post("/start_training", json=TINY, headers=ana_h)  # one training: the default limit
    assert refused.status_code == 409 and "your limit is 1" in refused.get_json()["error"]
    for _ in range(3):
        assert client.post("/start_training", json={**TINY, "queue": True}, headers=ana_h).status_code == 202
    refused = client.post("/start_training", json={**TINY, "queue": True}, headers=ana_h)
    assert refused.status_code == 409 and "3 runs queued, your limit is 3" in refused.get_json()["error"]
    assert client.post("/start_training", json={**TINY, "queue": True}, headers=TEACHER_H).status_code == 202
    grid = {"base": TINY, "grid": {"learning_rate": [0.001 * (i + 1) for i in range(9)]}}
    refused = client.post("/sweeps", json=grid, headers=ana_h)
    assert refused.status_code == 409 and "your limit is 8 trials" in refused.get_json()["error"]
    client.post("/stop_training", json={}, headers=TEACHER_H)
    assert app.extensions["training"].wait(60)
    for run in client.get("/runs", headers=ana_h).get_json()["runs"]:
        if run["state"] == "queued":
            client.post(f"/runs/{run['run_id']}/cancel", json={}, headers=ana_h)
    client.patch("/class", json={"limits": {"image_epochs": 100}}, headers=TEACHER_H)
    refused = client.post("/start_training", json={**TINY, "epochs": 2}, headers=ana_h)
    assert refused.status_code == 409 and "128 training images x epochs: your limit is 100" in refused.get_json()["error"]
    client.patch(f"/class/students/{ana}", json={"limits": {"disk_mb": 1}}, headers=TEACHER_H)
    big = fake_run(app.extensions["runs"], owner=ana)
    (app.extensions["runs"].run(big).path / "model0_latest.pt").write_bytes(bytes(2_000_000))
    refused = client.post("/start_training", json={**TINY, "epochs": 1}, headers=ana_h)
    assert refused.status_code == 409 and "your limit is 1 MB" in refused.get_json()["error"]
    assert client.patch("/class", json={"limits": {"active_runs": 0}}, headers=TEACHER_H).status_code == 400
    client.patch(f"/class/students/{ana}", json={"limits": {"predictions_per_minute": 2}}, headers=TEACHER_H)
    answers = [client.post("/predict", json={"test_index": 0, "run_id": big}, headers=ana_h) for _ in range(3)]
    assert [a.status_code for a in answers] == [409, 409, 429] and int(answers[2].headers["Retry-After"]) > 0
    assert client.post("/predict", json={"test_index": 0, "run_id": big}, headers=TEACHER_H).status_code == 409


def test_a_hand_in_is_kept_withdrawn_and_not_deleted_by_its_owner(klass):
    app, client = klass
    ana, ana_h = student(client, "Ana")
    done, queued = fake_run(app.extensions["runs"], owner=ana), fake_run(app.extensions["runs"], "queued", owner=ana)
    refused = client.post(f"/runs/{queued}/hand_in", json={}, headers=ana_h)
    assert refused.status_code == 409 and "only a finished run" in refused.get_json()["error"]
    handed = client.post(f"/runs/{done}/hand_in", json={}, headers=ana_h).get_json()
    assert handed["handed_in_at"] > 0
    row = next(r for r in client.get("/runs", headers=ana_h).get_json()["runs"] if r["run_id"] == done)
    assert row["handed_in_at"] == handed["handed_in_at"]
    refused = client.delete(f"/runs/{done}", headers=ana_h)
    assert refused.status_code == 409 and "withdraw it first" in refused.get_json()["error"]
    app.extensions["runs"].keep = 1
    assert done not in app.extensions["runs"].cleanup()  # kept like a starred run
    assert client.delete(f"/runs/{done}/hand_in", headers=ana_h).get_json()["handed_in_at"] is None
    client.post(f"/runs/{done}/hand_in", json={}, headers=ana_h)
    client.patch("/class", json={"hand_ins_open": False}, headers=TEACHER_H)
    closed = client.delete(f"/runs/{done}/hand_in", headers=ana_h)
    assert closed.status_code == 409 and "hand-ins are closed" in closed.get_json()["error"]
    assert client.delete(f"/runs/{done}", headers=TEACHER_H).status_code == 200  # the teacher may


def test_the_board_ranks_each_students_best_and_anonymous_hides_every_name_from_students(klass):
    app, client = klass
    store = app.extensions["runs"]
    ana, ana_h = student(client, "Ana")
    ben, ben_h = student(client, "Ben")
    cleo, _ = student(client, "Cleo")
    for owner, accuracy in ((ana, 97.5), (ana, 98.9), (ben, 99.2)):
        run_id = fake_run(store, owner=owner)
        path = store.run(run_id).path / "status.json"
        status = json.loads(path.read_text())
        status["models"][0]["best_test_accuracy"] = accuracy
        path.write_text(json.dumps(status))
    ben_live = fake_run(store, state="running", beat="this", owner=ben)
    board = client.get("/class/board", headers=ana_h).get_json()
    assert [(r.get("name"), r["you"], r["best_test_accuracy"]) for r in board["leaderboard"]] == \
        [("Ben", False, 99.2), ("Ana", True, 98.9)]  # Cleo has no run yet
    assert board["training"] == [{"you": False, "name": "Ben", "runs": 1}] and "students" not in board
    teacher = client.get("/class/board", headers=TEACHER_H).get_json()
    rows = {r["name"]: r for r in teacher["students"]}
    assert rows["Ben"]["training"] == [ben_live] and rows["Ana"]["best_test_accuracy"] == 98.9
    assert rows["Cleo"]["best_run_id"] is None and rows["Ana"]["limits"]["active_runs"] == 1
    client.patch("/class", json={"anonymous": True}, headers=TEACHER_H)
    for path in ("/class/board", "/runs", "/training_status", f"/runs/{ben_live}", "/sweeps"):  # every answer
        text = client.get(path, headers=ana_h).get_data(as_text=True)
        assert "Ben" not in text and "Cleo" not in text, path
    assert [r.get("name") for r in client.get("/class/board", headers=ana_h).get_json()["leaderboard"]] == [None, "Ana"]
    refused = client.post(f"/runs/{ben_live}/stop", json={}, headers=ana_h)
    assert refused.status_code == 403 and "Ben" not in refused.get_json()["error"]
    assert "Ben" in client.get("/runs", headers=TEACHER_H).get_data(as_text=True)  # the teacher sees names
    client.patch("/class", json={"leaderboard": False}, headers=TEACHER_H)
    assert client.get("/class/board", headers=ben_h).get_json()["leaderboard"] == []
    assert len(client.get("/class/board", headers=TEACHER_H).get_json()["leaderboard"]) == 2


def test_trials_added_to_a_students_search_count_toward_their_limit(klass):
    app, client = klass
    from mnist_monitor.sweeps.spec import parse_sweep

    ana, ana_h = student(client, "Ana")
    spec = parse_sweep({"base": LONG, "search": {"seed": {"low": 0, "high": 9}}, "trials": 6})
    sweep_id = app.extensions["sweeps"].create(spec, ana).sweep_id
    refused = client.post(f"/sweeps/{sweep_id}/trials", json={"trials": 3}, headers=ana_h)
    assert refused.status_code == 409 and "a sweep of 9 trials: your limit is 8" in refused.get_json()["error"]
    added = client.post(f"/sweeps/{sweep_id}/trials", json={"trials": 2}, headers=ana_h)
    assert added.status_code == 202 and added.get_json()["trials"] == 8
    more = client.post(f"/sweeps/{sweep_id}/trials", json={"trials": 3}, headers=TEACHER_H)  # the teacher has no limits
    assert more.status_code == 202 and more.get_json()["trials"] == 11
    assert client.post(f"/sweeps/{sweep_id}/stop", json={}, headers=ana_h).status_code == 200
