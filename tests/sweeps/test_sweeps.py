"""Sweeps: the spec's validation, a grid and a search trained on tiny data through the API, the
pruner's verdicts, stopping, the driver's lock, and a sweep that goes on after a restart."""
import json
import os

import pytest

from helpers import SLOW, wait_for
from mnist_monitor.config import ConfigError
from mnist_monitor.sweeps.spec import MAX_TRIALS, apply_values, parse_sweep

BASE = {"epochs": 1, "batch_size": 32, "precision": "fp32", "models": [{"kernels": [4, 8, 8, 8]}]}
TWO_MODELS = {"epochs": 1, "models": [{"kernels": [4, 8, 8, 8]}, {"kernels": [2, 4, 4, 4]}]}


# ---------------------------------------------------------------- the spec

def test_a_grid_is_every_combination_in_order():
    spec = parse_sweep({"base": BASE, "grid": {"learning_rate": [0.001, 0.01], "batch_size": [16, 32]}})
    assert spec.kind == "grid" and spec.trials == 4 and spec.prune == "none"
    assert spec.grid == [{"learning_rate": 0.001, "batch_size": 16}, {"learning_rate": 0.001, "batch_size": 32},
                         {"learning_rate": 0.01, "batch_size": 16}, {"learning_rate": 0.01, "batch_size": 32}]
    assert parse_sweep(spec.to_dict()) == spec  # sweep.json makes the same sweep again


def test_every_optimizer_can_be_a_grids_value_or_a_searchs_choice():
    from mnist_monitor.config import parse_train_config
    from mnist_monitor.training.optimizers import OPTIMIZERS

    grid = parse_sweep({"base": BASE, "grid": {"optimizer": list(OPTIMIZERS)}})
    assert [combo["optimizer"] for combo in grid.grid] == ["adam", "adamw", "sgd", "rmsprop"]
    trained = [parse_train_config(apply_values(BASE, combo)).models[0].optimizer for combo in grid.grid]
    assert trained == list(OPTIMIZERS)
    search = parse_sweep({"base": BASE, "search": {"optimizer": ["adamw", "rmsprop"]}, "trials": 4})
    assert search.space["optimizer"] == ["adamw", "rmsprop"]


def test_a_varied_setting_applies_to_every_model_even_one_that_sets_its_own():
    base = {"models": [{"kernels": [4, 8, 8, 8], "learning_rate": 0.5}, {"kernels": [2, 4, 4, 4]}]}
    body = apply_values(base, {"learning_rate": 0.002, "batch_size": 16})
    assert [m["learning_rate"] for m in body["models"]] == [0.002, 0.002]
    assert [m["batch_size"] for m in body["models"]] == [16, 16]
    assert base["models"][0]["learning_rate"] == 0.5  # the base is not changed


def test_a_sweep_without_a_base_is_refused_with_what_the_defaults_would_train():
    with pytest.raises(ConfigError) as caught:
        parse_sweep({"search": {"learning_rate": {"low": 0.001, "high": 0.1}}, "trials": 2})
    assert caught.value.field == "base" and "55,000 images" in str(caught.value)


def test_one_model_s_own_setting_can_vary_alone():
    spec = parse_sweep({"base": TWO_MODELS, "grid": {"models[1].learning_rate": [0.001, 0.01]}})
    bodies = [spec.body_for(values) for values in spec.grid]
    assert [b["models"][1]["learning_rate"] for b in bodies] == [0.001, 0.01]
    assert all("learning_rate" not in b["models"][0] and "learning_rate" not in b for b in bodies)
    search = parse_sweep({"base": {}, "search": {"models[0].batch_size": {"low": 16, "high": 64}}, "trials": 3})
    assert search.space["models[0].batch_size"].low == 16


@pytest.mark.parametrize("space, model", [({"models[1].learning_rate": [0.001, 0.01]}, 1),
                                          ({"models[1].learning_rate": [0.001, 0.01], "models[1].batch_size": [8, 16]}, 1),
                                          ({"models[0].learning_rate": [0.001, 0.01], "models[1].batch_size": [8, 16]}, None),
                                          ({"learning_rate": [0.001, 0.01]}, None)])
def test_a_trial_is_scored_on_the_one_model_whose_settings_vary(space, model):
    from mnist_monitor.sweeps.reporter import TrialReporter

    spec = parse_sweep({"base": TWO_MODELS, "grid": space})
    assert spec.objective_model == model
    reporter = TrialReporter.__new__(TrialReporter)  # its epoch bookkeeping, without a study
    reporter.models, reporter.epochs, reporter.scored_model, reporter._values = 2, 2, spec.objective_model, {}
    reported = []
    reporter.report = lambda epoch, value, verdict: reported.append((epoch, value, verdict))
    reporter.epoch_end(1, 0, 99.0)  # the model the sweep leaves alone is better: it must not decide
    assert reported == []  # until every model ended the epoch
    reporter.epoch_end(1, 1, 50.0)
    assert reported == [(1, 50.0 if model == 1 else 99.0, True)]


@pytest.mark.parametrize("body, field", [
    ({"grid": {"models[2].learning_rate": [0.01]}}, "grid.models[2].learning_rate"),  # the default base has 2
    ({"grid": {"models[0].kernels": [[4, 8, 8, 8]]}}, "grid.models[0].kernels"),
    ({"grid": {"learning_rate": [0.001]}, "search": {"seed": [1]}}, "grid"),
    ({"base": BASE}, "grid"),
    ({"base": {}, "search": {"seed": [0, 1]}}, "trials"),
    ({"grid": {"lr": [0.1]}}, "grid.lr"),
    ({"grid": {"learning_rate": []}}, "grid.learning_rate"),
    ({"grid": {"learning_rate": [0.01, 11]}}, "grid.learning_rate[1]"),
    ({"grid": {"learning_rate": [0.01, 0.01]}}, "grid.learning_rate[1]"),
    ({"grid": {"optimizer": ["adam", "lion"]}}, "grid.optimizer[1]"),
    ({"grid": {"kernels": [[4, 8, 8, 8]]}}, "grid.kernels"),  # the default base has two models
    ({"grid": {"seed": list(range(9)), "learning_rate": [0.1 * (i + 1) for i in range(8)]}}, "grid"),  # 72 runs
    ({"grid": {"learning_rate": [0.01]}, "trials": 3}, "trials"),
    ({"search": {"learning_rate": {"low": 0.3, "high": 0.1}}, "trials": 4}, "search.learning_rate.low"),
    ({"search": {"learning_rate": {"low": 0, "high": 0.1, "log": True}}, "trials": 4}, "search.learning_rate.low"),
    ({"search": {"learning_rate": {"low": 0.1, "high": 20}}, "trials": 4}, "search.learning_rate.high"),
    ({"search": {"batch_size": {"low": 8.5, "high": 64}}, "trials": 4}, "search.batch_size.low"),
    ({"search": {"optimizer": {"low": 1, "high": 2}}, "trials": 4}, "search.optimizer"),
    ({"search": {"seed": [0, 1]}, "trials": 0}, "trials"),
    ({"search": {"seed": [0, 1]}, "trials": MAX_TRIALS + 1}, "trials"),
    ({"search": {"seed": [0, 1]}}, "trials"),
    ({"grid": {"seed": [0, 1]}, "base": None}, "base"),
    ({"search": {"seed": [0, 1]}, "trials": 2, "prune": "hyperband"}, "prune"),
    ({"search": {"epochs": [1, 2]}, "trials": 2, "prune": "successive_halving"}, "prune"),  # epochs: its resource
    ({"grid": {"learning_rate": [0.1], "models[1].learning_rate": [0.01]}}, "grid.models[1].learning_rate"),  # which wins?
    ({"base": {"epochs": 0}, "grid": {"seed": [1]}}, "base.epochs"),
    ({"base": {**BASE, "queue": True}, "grid": {"seed": [1]}}, "base.queue"),
    ({"base": {**BASE, "models": [{"kernels": [256, 256, 256, 256]}]}, "grid": {"batch_size": [32, 4096]}},
     "grid.batch_size[1]"),  # the memory limit, as the start form says it
])
def test_a_bad_spec_names_its_field(body, field):
    body = body if "base" in body else {"base": TWO_MODELS, **body}
    with pytest.raises(ConfigError) as caught:
        parse_sweep(body)
    assert caught.value.field == field, str(caught.value)


# ---------------------------------------------------------------- through the API

def sweep_when(client, sweep_id, condition, timeout=120, message="the sweep"):
    return wait_for(lambda: condition(s := client.get(f"/sweeps/{sweep_id}").get_json()) and s, timeout=timeout,
                    interval=0.1, message=message)


def test_a_bad_sweep_is_400_with_its_field_and_makes_nothing(client, app):
    answer = client.post("/sweeps", json={"base": BASE, "grid": {"learning_rate": [0.01, -1]}})
    assert answer.status_code == 400
    assert answer.get_json()["field"] == "grid.learning_rate[1]"
    assert "-1" in answer.get_json()["error"]
    assert client.get("/sweeps").get_json() == {"sweeps": []}
    assert client.get("/runs").get_json()["runs"] == []
    assert client.get("/sweeps/20261202-120000-000abc").status_code == 404
    assert client.post("/sweeps/20261202-120000-000abc/stop", json={}).status_code == 404


def test_a_sweep_on_a_device_this_server_lacks_is_refused_before_it_exists(client, app, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # this machine has no CUDA GPU
    answer = client.post("/sweeps", json={"base": {**BASE, "device": "cuda"}, "grid": {"learning_rate": [0.01]}})
    assert answer.status_code == 400 and answer.get_json()["field"] == "base.device"
    assert "CUDA" in answer.get_json()["error"]
    assert client.get("/sweeps").get_json() == {"sweeps": []}  # it was a 400, then a sweep listed 'running'
    assert app.extensions["sweeps"].ids() == [] and client.get("/runs").get_json()["runs"] == []


@pytest.mark.slow  # over 2 s on a 2-core CPU: the whole suite runs it
def test_a_grid_sweep_trains_each_combination_and_names_the_best(client, app):
    answer = client.post("/sweeps", json={"base": BASE, "grid": {"learning_rate": [0.0001, 0.02]}, "name": "lr"})
    assert answer.status_code == 202, answer.get_json()
    sweep_id = answer.get_json()["sweep_id"]
    assert answer.get_json()["state"] == "running" and answer.get_json()["objective"] == "best validation accuracy"
    done = sweep_when(client, sweep_id, lambda s: s["state"] != "running")
    assert done["state"] == "finished" and done["name"] == "lr" and done["varied"] == ["learning_rate"]
    assert [r["values"] for r in done["runs"]] == [{"learning_rate": 0.0001}, {"learning_rate": 0.02}]
    assert [r["state"] for r in done["runs"]] == ["finished", "finished"]
    best = max(done["runs"], key=lambda r: r["objective"])
    assert done["best_run_id"] == best["run_id"] and best["values"] == {"learning_rate": 0.02}
    runs_dir = app.config["RUNS_DIR"]
    for row in done["runs"]:  # the run's facts say which sweep and values; its config repeats the run alone
        facts = json.load(open(os.path.join(runs_dir, row["run_id"], "run.json")))
        assert facts["sweep"]["sweep_id"] == sweep_id and facts["sweep"]["values"] == row["values"]
        assert facts["device"] == "cpu"  # the trainer added its facts to the sweep's
        config = client.get(f"/runs/{row['run_id']}/config").get_json()
        assert "sweep" not in config and config["models"][0]["learning_rate"] == row["values"]["learning_rate"]
        metrics = client.get(f"/runs/{row['run_id']}/metrics?kind=eval").get_json()["rows"]
        assert row["objective"] == pytest.approx(max(r["val_accuracy"] for r in metrics), abs=1e-3)
    listed = client.get("/sweeps").get_json()["sweeps"]
    assert [s["sweep_id"] for s in listed] == [sweep_id] and listed[0]["run_states"] == {"finished": 2}
    assert client.post(f"/sweeps/{sweep_id}/stop", json={}).status_code == 409  # it has ended


@pytest.mark.slow  # over 2 s on a 2-core CPU: the whole suite runs it
def test_a_sweep_over_one_models_setting_scores_and_shows_that_model(client, app):
    base = {**TWO_MODELS, "batch_size": 32, "precision": "fp32",
            "models": [{"kernels": [4, 8, 8, 8], "learning_rate": 0.02}, {"kernels": [2, 4, 4, 4], "name": "small"}]}
    answer = client.post("/sweeps", json={"base": base, "grid": {"models[1].learning_rate": [0.00001, 0.02]}})
    assert answer.status_code == 202, answer.get_json()
    assert answer.get_json()["objective"] == ("best validation accuracy of small (models[1], the model whose "
                                              "settings vary)")
    done = sweep_when(client, answer.get_json()["sweep_id"], lambda s: s["state"] != "running")
    assert done["state"] == "finished"
    for row in done["runs"]:  # the unchanged Model 1 (the better one here) decides nothing
        evals = client.get(f"/runs/{row['run_id']}/metrics?kind=eval").get_json()["rows"]
        small = [r["val_accuracy"] for r in evals if r["model"] == 1]
        assert row["objective"] == pytest.approx(max(small), abs=1e-3)
        assert row["final_val_accuracy"] == pytest.approx(small[-1], abs=1e-2)


def test_stopping_a_sweep_cancels_its_queued_trials_and_stops_the_training_one(client, app):
    body = {"base": {**BASE, "epochs": 30}, "search": {"seed": {"low": 0, "high": 1000}}, "trials": 6}
    sweep_id = client.post("/sweeps", json=body).get_json()["sweep_id"]
    sweep_when(client, sweep_id, lambda s: s["runs"] and s["runs"][0]["state"] == "running")
    # With one worker, one trial is asked at a time: a second is queued only when a worker is free.
    assert [r["state"] for r in client.get(f"/sweeps/{sweep_id}").get_json()["runs"]] == ["running"]
    queued = client.post("/start_training", json={**BASE, "queue": True}).get_json()["run_id"]  # not the sweep's
    stopped = client.post(f"/sweeps/{sweep_id}/stop", json={})
    assert stopped.status_code == 200
    done = sweep_when(client, sweep_id, lambda s: s["runs"][0]["state"] == "stopped")
    assert done["state"] == "stopped" and len(done["runs"]) == 1
    assert client.get(f"/runs/{queued}").status_code == 200  # a run of no sweep is left alone
    assert client.post(f"/sweeps/{sweep_id}/stop", json={}).status_code == 409


@pytest.mark.slow  # over 2 s on a 2-core CPU: the whole suite runs it
def test_a_sweep_driven_by_another_process_is_not_driven_here(client, app):
    from mnist_monitor.sweeps.folder import Sweep

    sweep_id = client.post("/sweeps", json={"base": BASE, "grid": {"learning_rate": [0.01, 0.02]}}).get_json()[
        "sweep_id"]
    sweep = Sweep(os.path.join(app.config["RUNS_DIR"], "sweeps", sweep_id))
    assert not sweep.take_lease("another-driver")  # the server holds the sweep's lease while it runs
    open_files = [os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
                  if os.path.exists(f"/proc/self/fd/{fd}")]
    assert not [f for f in open_files if f.endswith("driver.lock")]  # and no file open for it (one per sweep was)
    done = sweep_when(client, sweep_id, lambda s: s["state"] != "running")
    assert done["state"] == "finished"
    wait_for(lambda: sweep.take_lease("another-driver"), message="the lease given up once the sweep ended")


def test_a_drivers_lease_lapses_when_its_process_is_gone_or_it_is_not_renewed(tmp_path):
    import json
    import time

    from helpers import dead_pid
    from mnist_monitor.runstore.liveness import HOST, process_start
    from mnist_monitor.sweeps.folder import LEASE_FILE, LEASE_SECONDS, Sweep

    sweep = Sweep(tmp_path)
    assert sweep.take_lease("a") and sweep.take_lease("a")  # taken, then renewed
    assert not sweep.take_lease("b")  # a live driver of this process holds it
    lease = json.loads((tmp_path / LEASE_FILE).read_text())
    (tmp_path / LEASE_FILE).write_text(json.dumps(dict(lease, pid=dead_pid(), pid_start=None)))
    assert sweep.take_lease("b")  # its process is gone (this host): taken at once
    elsewhere = {"owner": "c", "host": "another-host/boot", "pid": 1, "pid_start": None}
    (tmp_path / LEASE_FILE).write_text(json.dumps(dict(elsewhere, renewed_at=time.time())))
    assert not sweep.take_lease("b")  # another host's driver, renewed just now
    (tmp_path / LEASE_FILE).write_text(json.dumps(dict(elsewhere, renewed_at=time.time() - LEASE_SECONDS - 1)))
    assert sweep.take_lease("b")  # not renewed for longer than the lease: lapsed
    (tmp_path / LEASE_FILE).write_text('{"owner": "c", "renewed_')  # torn by a crash: no one holds it
    assert sweep.take_lease("b")
    sweep.release_lease("someone-else")
    assert (tmp_path / LEASE_FILE).exists()  # only its owner gives it up
    sweep.release_lease("b")
    assert not (tmp_path / LEASE_FILE).exists() and sweep.take_lease("d")
    assert json.loads((tmp_path / LEASE_FILE).read_text())["host"] == HOST
    assert process_start(os.getpid()) == json.loads((tmp_path / LEASE_FILE).read_text())["pid_start"]


@pytest.mark.slow
def test_a_search_prunes_hopeless_runs_and_ranks_the_learning_rate(client, app):
    body = {"base": {**BASE, "epochs": 2}, "trials": 8, "prune": "median",
            "search": {"learning_rate": {"low": 0.0001, "high": 3.0, "log": True}, "seed": [0, 1]}}
    sweep_id = client.post("/sweeps", json=body).get_json()["sweep_id"]
    done = sweep_when(client, sweep_id, lambda s: s["state"] != "running", timeout=300)
    assert done["state"] == "finished" and len(done["runs"]) == 8
    states = [r["state"] for r in done["runs"]]
    assert "pruned" in states and set(states) <= {"finished", "pruned", "failed"}, states
    pruned = next(r for r in done["runs"] if r["state"] == "pruned")
    status = client.get(f"/runs/{pruned['run_id']}").get_json()
    assert status["end_reason"].startswith("pruned at epoch 1: best so far ")
    assert pruned["pruned_because"] == status["end_reason"] and pruned["error"] is None
    assert pruned["intermediate"] == [[1, round(pruned["objective"], 4)]]
    assert status["resumable"] is False and pruned["epochs_reported"] == 1
    assert client.post(f"/runs/{pruned['run_id']}/resume", json={}).status_code in (400, 409)
    best = max((r for r in done["runs"] if r["state"] == "finished"), key=lambda r: r["objective"])
    assert done["best_run_id"] == best["run_id"]
    assert set(done["importance"]) == {"learning_rate", "seed"}
    assert done["importance"]["learning_rate"] > done["importance"]["seed"], done["importance"]


@pytest.mark.slow
def test_a_sweep_cut_off_by_a_restart_goes_on_and_resumes_its_trial(tmp_path, tiny_mnist, make_app):
    config = {"RUNS_DIR": str(tmp_path / "runs"), "DATA_DIR": str(tiny_mnist), "TESTING": True,
              "TRAINER_OPTIONS": {"pictures": False, "status_interval": 0.05}}
    app = make_app(config)
    client = app.test_client()
    body = {"base": {**BASE, "epochs": 3, "batch_size": 8}, "grid": {"seed": [1, 2]}}
    sweep_id = client.post("/sweeps", json=body).get_json()["sweep_id"]
    first = sweep_when(client, sweep_id, lambda s: s["runs"] and s["runs"][0]["epochs_reported"] >= 1)
    run_id = first["runs"][0]["run_id"]
    app.extensions["sweep_driver"].close()  # what a server shutdown does, in this order
    assert app.extensions["training"].shutdown(60)
    assert client.get(f"/runs/{run_id}").get_json()["state"] == "stopped"

    app = make_app(config)  # a restart: the sweep is taken over, its cut-off trial resumed
    client = app.test_client()
    try:
        done = sweep_when(client, sweep_id, lambda s: s["state"] != "running", timeout=180)
        assert done["state"] == "finished"
        assert [r["state"] for r in done["runs"]] == ["finished", "finished"]
        assert done["runs"][0]["run_id"] == run_id  # the same run went on, not a new trial
        assert client.get(f"/runs/{run_id}").get_json()["resumes"] == 1
    finally:
        app.extensions["sweep_driver"].close()
        app.extensions["training"].shutdown(60)


@pytest.mark.slow
def test_train_py_runs_a_sweep_headless_and_the_server_lists_it(tmp_path, tiny_mnist, capsys, make_app):
    import train

    spec = tmp_path / "sweep.json"
    spec.write_text(json.dumps({"base": BASE, "grid": {"learning_rate": [0.0001, 0.02]}}))
    runs = tmp_path / "runs"
    assert train.main(["--sweep", str(spec), "--runs-dir", str(runs), "--data-dir", str(tiny_mnist)]) == 0
    out = capsys.readouterr().out
    assert "finished" in out and "(best)" in out and "{'learning_rate': 0.02}" in out
    app = make_app({"RUNS_DIR": str(runs), "DATA_DIR": str(tiny_mnist), "TESTING": True})
    try:
        listed = app.test_client().get("/sweeps").get_json()["sweeps"]
        assert len(listed) == 1 and listed[0]["state"] == "finished" and listed[0]["run_states"] == {"finished": 2}
    finally:
        app.extensions["sweep_driver"].close()
        app.extensions["training"].shutdown(10)
    spec.write_text(json.dumps({"base": BASE, "grid": {"learning_rate": [0.01, 0]}}))
    assert train.main(["--sweep", str(spec), "--runs-dir", str(runs), "--data-dir", str(tiny_mnist)]) == 2
    assert "grid.learning_rate[1]" in capsys.readouterr().err


def test_a_stopped_grid_shows_its_combinations_never_run_as_cancelled(client, app):
    body = {"base": {**BASE, "epochs": 30}, "grid": {"seed": [1, 2, 3]}}
    sweep_id = client.post("/sweeps", json=body).get_json()["sweep_id"]
    running = sweep_when(client, sweep_id, lambda s: s["runs"][0]["state"] == "running")
    assert [r["state"] for r in running["runs"][1:]] == ["waiting", "waiting"]
    assert client.post(f"/sweeps/{sweep_id}/stop", json={}).status_code == 200
    done = sweep_when(client, sweep_id, lambda s: s["runs"][0]["state"] == "stopped")
    assert done["state"] == "stopped"
    assert [(r["state"], r["values"]) for r in done["runs"][1:]] == [("cancelled", {"seed": 2}), ("cancelled", {"seed": 3})]


def test_a_searchs_trial_values_do_not_depend_on_how_long_its_driver_lived(tmp_path):
    """A driver restarted after two trials asks the same third and fourth trials as one that went on;
    a sampler seeded once per process replayed the first trials' values after every restart."""
    from mnist_monitor.sweeps.driver import ask_next
    from mnist_monitor.sweeps.folder import SweepStore

    spec = parse_sweep({"base": BASE, "trials": 12,  # 4 random start-up trials: the ones that were replayed
                        "search": {"learning_rate": {"low": 0.0001, "high": 0.1, "log": True}, "seed": [0, 1, 2]}})

    def run(restart_after: int | None) -> list[tuple]:
        sweep = SweepStore(tmp_path / f"runs-{restart_after}").create(spec)
        study, asked = sweep.study(), []
        for number in range(4):
            if number == restart_after:
                study = sweep.study()  # a new process: the study read back from the journal
            trial = ask_next(sweep, study)
            values = sweep.suggest(trial)
            asked.append((round(values["learning_rate"], 8), values["seed"]))
            study.tell(trial, 50.0 + number)
        return asked

    uninterrupted, restarted = run(None), run(2)
    assert restarted == uninterrupted
    assert len(set(uninterrupted)) == 4  # no trial repeats another's values


def test_running_sweeps_are_capped_and_one_look_at_the_sweeps_lists_the_queue_once(client, app, monkeypatch):
    """The 61st sweep was accepted (202) already failed, when files ran out: sweeps beyond the cap
    are refused with 409 and nothing made; every pump listed every run once per sweep."""
    from mnist_monitor.sweeps import driver

    monkeypatch.setattr(driver, "MAX_RUNNING_SWEEPS", 2)
    busy = client.post("/start_training", json=SLOW).get_json()["run_id"]  # the worker stays busy
    made = [client.post("/sweeps", json={"base": BASE, "grid": {"learning_rate": [0.01, 0.02]}}) for _ in range(2)]
    assert [m.status_code for m in made] == [202, 202]
    refused = client.post("/sweeps", json={"base": BASE, "grid": {"learning_rate": [0.03]}})
    assert refused.status_code == 409 and "2 sweeps are running" in refused.get_json()["error"]
    assert len(app.extensions["sweeps"].ids()) == 2
    store = app.extensions["runs"]
    looks = []
    real = store.queued
    monkeypatch.setattr(store, "queued", lambda: looks.append(1) or real())
    app.extensions["sweep_driver"].pump_all()
    assert len(looks) <= 1  # one look at the queue for both sweeps (none: no trial could be asked)
    assert client.get("/config").get_json()["limits"]["running_sweeps"] == [0, 16]
    client.post(f"/runs/{busy}/stop", json={})


@pytest.mark.slow
def test_a_trial_cut_off_in_its_first_epoch_is_trained_again_with_the_same_values(tmp_path, tiny_mnist, make_app):
    """A restart in a trial's first epoch left no checkpoint: resuming it raised and the trial was
    failed, its grid combination never trained, and the sweep still ended 'finished'."""
    config = {"RUNS_DIR": str(tmp_path / "runs"), "DATA_DIR": str(tiny_mnist), "TESTING": True,
              "TRAINER_OPTIONS": {"pictures": False, "status_interval": 0.05}}
    app = make_app(config)
    client = app.test_client()
    body = {"base": {**BASE, "epochs": 1, "batch_size": 1}, "grid": {"seed": [1, 2]}}  # 540 steps an epoch
    sweep_id = client.post("/sweeps", json=body).get_json()["sweep_id"]
    first = sweep_when(client, sweep_id, lambda s: s["runs"] and s["runs"][0]["state"] == "running")
    cut_off = first["runs"][0]["run_id"]
    app.extensions["sweep_driver"].close()  # a shutdown in the first epoch: no checkpoint yet
    assert app.extensions["training"].shutdown(60)
    assert client.get(f"/runs/{cut_off}").get_json()["state"] == "stopped"

    app = make_app(config)
    client = app.test_client()
    try:
        done = sweep_when(client, sweep_id, lambda s: s["state"] != "running", timeout=180)
        assert done["state"] == "finished"
        assert [(r["state"], r["values"]) for r in done["runs"]] == [("finished", {"seed": 1}),
                                                                     ("finished", {"seed": 2})]
        again = done["runs"][0]["run_id"]
        assert again != cut_off and client.get(f"/runs/{cut_off}").status_code == 404  # it took the old one's place
        assert client.get(f"/runs/{again}/config").get_json()["seed"] == 1
    finally:
        app.extensions["sweep_driver"].close()
        app.extensions["training"].shutdown(60)


def test_a_trial_that_could_not_be_queued_for_a_passing_reason_waits_and_is_not_counted(client, app, monkeypatch):
    """The queue full for a moment (or a full disk, Ray away) when a trial was asked: the trial was
    failed and counted, so a grid's combination was never trained. Now it waits with its values,
    says why, and is queued at a later look."""
    from mnist_monitor.scheduling.manager import Refused

    manager = app.extensions["training"]
    real_start, refusals = manager.start, []

    def start(config, queue=False, facts=None):
        if facts and len(refusals) < 3:  # the first three tries of a trial: the queue is full
            refusals.append(facts["sweep"]["trial"])
            raise Refused("the queue is full (256 runs wait already)")
        return real_start(config, queue=queue, facts=facts)

    monkeypatch.setattr(manager, "start", start)
    answer = client.post("/sweeps", json={"base": BASE, "grid": {"learning_rate": [0.0001, 0.02]}})
    assert answer.status_code == 202, answer.get_json()
    sweep_id = answer.get_json()["sweep_id"]
    waiting = sweep_when(client, sweep_id, lambda s: any("waiting to be queued" in (r.get("error") or "")
                                                         for r in s["runs"]) or len(refusals) == 3)
    assert waiting["state"] == "running"
    done = sweep_when(client, sweep_id, lambda s: s["state"] != "running")
    assert refusals == [0, 0, 0]  # the same trial, tried again
    assert done["state"] == "finished"
    assert sorted(r["values"]["learning_rate"] for r in done["runs"]) == [0.0001, 0.02]
    assert [r["state"] for r in done["runs"]] == ["finished", "finished"]
    assert all(not r.get("error") for r in done["runs"])


# ---------------------------------------------------------------- adding trials

def test_adding_trials_is_refused_to_a_grid_past_64_trials_and_for_a_bad_body_and_changes_nothing(client, app):
    grid = client.post("/sweeps", json={"base": BASE, "grid": {"seed": [0]}}).get_json()["sweep_id"]
    answer = client.post(f"/sweeps/{grid}/trials", json={"trials": 2})
    assert answer.status_code == 400 and answer.get_json()["field"] == "trials"
    assert "a grid trains each combination once" in answer.get_json()["error"]
    body = {"base": {**BASE, "epochs": 30}, "search": {"seed": {"low": 0, "high": 9}}, "trials": 60}
    search = client.post("/sweeps", json=body).get_json()["sweep_id"]
    answer = client.post(f"/sweeps/{search}/trials", json={"trials": 5})
    assert answer.status_code == 400 and answer.get_json()["field"] == "trials"
    assert "the sweep has 60 trials; 5 more would make 65, and a sweep has at most 64" in answer.get_json()["error"]
    for bad in ({}, {"trials": 0}, {"trials": True}, {"trials": "2"}, {"trials": 2.0}, {"trials": 2, "more": 1}, [2]):
        answer = client.post(f"/sweeps/{search}/trials", json=bad)
        assert answer.status_code == 400, (bad, answer.get_json())
    assert client.post("/sweeps/20261202-120000-000abc/trials", json={"trials": 1}).status_code == 404
    assert client.get(f"/sweeps/{search}").get_json()["trials"] == 60
    assert json.load(open(os.path.join(app.config["RUNS_DIR"], "sweeps", search, "sweep.json")))["spec"]["trials"] == 60
    for sweep_id in (grid, search):
        client.post(f"/sweeps/{sweep_id}/stop", json={})


@pytest.mark.slow  # two rounds of two tiny trials
def test_a_finished_search_given_two_more_trials_trains_two_more_runs_of_the_same_study(client, app):
    body = {"base": BASE, "search": {"learning_rate": {"low": 0.001, "high": 0.05, "log": True}}, "trials": 2,
            "prune": "successive_halving", "name": "lr, then more"}
    sweep_id = client.post("/sweeps", json=body).get_json()["sweep_id"]
    first = sweep_when(client, sweep_id, lambda s: s["state"] != "running")
    assert first["state"] == "finished" and len(first["runs"]) == 2
    assert first["pruner"]["rungs"] == [] and first["pruner"]["text"].startswith("Successive halving: at no epoch")
    more = client.post(f"/sweeps/{sweep_id}/trials", json={"trials": 2})
    assert more.status_code == 202, more.get_json()
    assert more.get_json()["state"] == "running" and more.get_json()["trials"] == 4
    assert more.get_json()["spec"]["trials"] == 4
    done = sweep_when(client, sweep_id, lambda s: s["state"] != "running" and len(s["runs"]) == 4, timeout=180)
    assert done["state"] == "finished" and [r["trial"] for r in done["runs"]] == [0, 1, 2, 3]
    assert [r["run_id"] for r in done["runs"][:2]] == [r["run_id"] for r in first["runs"]]
    assert len({r["run_id"] for r in done["runs"]}) == 4 and all(r["state"] == "finished" for r in done["runs"])
    assert all(len(r["intermediate"]) == 1 and r["pruned_because"] is None for r in done["runs"])
    listed = client.get("/sweeps").get_json()["sweeps"][0]
    assert (listed["name"], listed["kind"], listed["trials_done"], listed["trials_pruned"]) == ("lr, then more", "search", 4, 0)
    assert listed["best_objective"] == max(r["objective"] for r in done["runs"]) == done["best_objective"]
    record = json.load(open(os.path.join(app.config["RUNS_DIR"], "sweeps", sweep_id, "sweep.json")))
    assert [a["trials"] for a in record["added"]] == [2]
