"""Runs carried out and in over HTTP: a stopped run exported, imported into a fresh server with the
same metrics, and resumed there to the end; what the routes refuse (a training run, another type,
a bad zip, the same run twice) and that a refusal writes nothing; every run's metrics in one CSV;
a class's hand-ins as one zip for the teacher only."""
import csv
import io
import zipfile

import pytest

from helpers import QUICK, SLOW, fake_run, start_run, wait_for, wait_run_end

ZIP = {"Content-Type": "application/zip"}


def rows(client, run_id):
    return client.get(f"/runs/{run_id}/metrics").get_json()["rows"]


@pytest.mark.slow  # a run trained, stopped, and resumed elsewhere
def test_a_stopped_run_exported_and_imported_into_a_fresh_server_has_its_metrics_and_resumes(tmp_path, tiny_mnist,
                                                                                             make_app):
    options = lambda name: {"RUNS_DIR": str(tmp_path / name), "DATA_DIR": str(tiny_mnist),  # noqa: E731
                            "TRAINER_OPTIONS": {"status_interval": 0.05, "pictures": False}}
    here = make_app(options("here")).test_client()
    run_id = start_run(here, dict(SLOW, epochs=4))
    wait_for(lambda: any(r["kind"] == "eval" for r in rows(here, run_id)), timeout=60, message="a first epoch")
    busy = here.get(f"/runs/{run_id}/export.zip")
    assert busy.status_code == 409 and "a run is exported once it has ended" in busy.get_json()["error"]
    here.post("/stop_training", json={})
    assert wait_run_end(here)["state"] == "stopped"
    exported = here.get(f"/runs/{run_id}/export.zip")
    assert exported.status_code == 200 and exported.mimetype == "application/zip"
    assert f'filename={run_id}.zip' in exported.headers["Content-Disposition"]
    assert f"{run_id}/model0_latest.pt" in zipfile.ZipFile(io.BytesIO(exported.data)).namelist()
    there = make_app(options("there")).test_client()
    as_json = there.post("/runs/import", data=exported.data, headers={"Content-Type": "application/json"})
    assert as_json.status_code == 415  # only a zip, which no HTML form can send
    imported = there.post("/runs/import", data=exported.data, headers=ZIP)
    assert imported.status_code == 201 and imported.get_json() == {"run_id": run_id}
    assert rows(there, run_id) == rows(here, run_id)
    again = there.post("/runs/import", data=exported.data, headers=ZIP)
    assert again.status_code == 409 and f"already here, as run {run_id}" in again.get_json()["error"]
    listed = {r["run_id"]: r for r in there.get("/runs").get_json()["runs"]}
    assert listed[run_id]["state"] == "stopped" and listed[run_id]["resumable"] is True
    assert there.post(f"/runs/{run_id}/resume", json={}).status_code == 202
    assert wait_run_end(there)["state"] == "finished"
    assert [r["epoch"] for r in rows(there, run_id) if r["kind"] == "eval" and r["model"] == 0] == [1.0, 2.0, 3.0, 4.0]


def test_a_bad_zip_is_400_naming_its_problem_and_every_runs_metrics_come_as_one_csv(client, app):
    store = app.extensions["runs"]
    before = sorted(p.name for p in store.root.iterdir())
    crafted = io.BytesIO()
    with zipfile.ZipFile(crafted, "w") as z:
        z.writestr("../../escape.json", "{}")
    answer = client.post("/runs/import", data=crafted.getvalue(), headers=ZIP)
    assert answer.status_code == 400 and answer.get_json()["field"] == "body"
    assert "a path out of the run's folder" in answer.get_json()["error"]
    assert client.post("/runs/import", data=b"not a zip", headers=ZIP).status_code == 400
    assert sorted(p.name for p in store.root.iterdir()) == before  # nothing written
    a = start_run(client, QUICK)
    wait_run_end(client)
    b = start_run(client, dict(QUICK, models=[{"kernels": [2, 2, 2, 2], "learning_rate": 0.02, "name": "small"}]))
    wait_run_end(client)
    every = client.get("/runs.csv")
    assert 'filename="metrics-of-all-runs.csv"' in every.headers["Content-Disposition"]
    table = list(csv.DictReader(io.StringIO(every.get_data(as_text=True))))
    assert {r["run_id"] for r in table} == {a, b}
    assert {(r["device"], r["precision"]) for r in table} == {("cpu", "fp32")}  # as it ran, not "auto"
    small = [r for r in table if r["run_id"] == b]
    assert small and all((r["name"], r["kernels"], r["learning_rate"]) == ("small", "2-2-2-2", "0.02") for r in small)
    assert [r for r in table if r["run_id"] == a and r["kind"] == "eval"][0]["epochs"] == str(QUICK.get("epochs", 3))
    picked = client.get(f"/runs.csv?runs={a}").get_data(as_text=True)
    assert {r["run_id"] for r in csv.DictReader(io.StringIO(picked))} == {a}
    assert client.get("/runs.csv?runs=20990101-000000-000abc").status_code == 404
    assert client.get("/runs.csv?runs=").status_code == 400


def test_the_teacher_downloads_every_hand_in_as_one_zip_of_run_zips(tmp_path, tiny_mnist, make_app):
    teacher = {"Authorization": "Bearer teacher-token-0123456789"}
    app = make_app({"RUNS_DIR": str(tmp_path / "runs"), "DATA_DIR": str(tiny_mnist), "TESTING": True, "CLASS": True,
                    "TOKEN": "teacher-token-0123456789", "CLASS_CODE": "TEST-CODE"})
    client = app.test_client()
    ana = client.post("/class/join", json={"code": "TEST-CODE", "name": "Ana Lee"}).get_json()
    client.delete_cookie("mnist_monitor_token_80")
    ana_h = {"Authorization": f"Bearer {ana['token']}"}
    runs = app.extensions["runs"]
    handed, kept = fake_run(runs, owner=ana["id"], images=False), fake_run(runs, owner=ana["id"], images=False)
    assert client.post(f"/runs/{handed}/hand_in", json={}, headers=ana_h).status_code == 200
    assert client.get("/class/hand_ins.zip", headers=ana_h).status_code == 403
    answer = client.get("/class/hand_ins.zip", headers=teacher)
    assert answer.status_code == 200 and answer.mimetype == "application/zip"
    outer = zipfile.ZipFile(io.BytesIO(answer.data))
    assert outer.namelist() == [f"Ana_Lee-{handed}.zip"]
    inner = zipfile.ZipFile(io.BytesIO(outer.read(f"Ana_Lee-{handed}.zip")))
    assert f"{handed}/status.json" in inner.namelist() and kept not in " ".join(outer.namelist())
    mine = client.post("/runs/import", data=client.get(f"/runs/{handed}/export.zip", headers=ana_h).data,
                       headers={**ana_h, **ZIP})
    assert mine.status_code == 409  # the same run: already here
