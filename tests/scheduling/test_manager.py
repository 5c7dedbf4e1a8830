"""The worker: runs started, queued (one after another, in order, also after a restart of the
server), cancelled, resumed, stopped and deleted, through the API; a full disk is a clear error."""
import errno
import os
import tempfile
import threading
import time

import pytest

import mnist_monitor.runstore.files
from helpers import QUICK, SLOW, start_run, wait_for, wait_run_end
from mnist_monitor.runstore import RunStore


def queue_run(client, body) -> str:
    response = client.post("/start_training", json=dict(body, queue=True))
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["state"] == "queued"
    return response.get_json()["run_id"]


def runs_by_id(client) -> dict:
    return {r["run_id"]: r for r in client.get("/runs").get_json()["runs"]}


def test_queued_runs_wait_then_start_in_order_and_one_can_be_cancelled(client, app):
    first = start_run(client, SLOW)
    assert client.post("/start_training", json=QUICK).status_code == 409  # without "queue": as before
    lrs = [0.001, 0.003, 0.01]
    queued = [queue_run(client, dict(QUICK, learning_rate=lr)) for lr in lrs]
    listed = runs_by_id(client)
    assert [listed[q]["state"] for q in queued] == ["queued"] * 3
    assert [listed[q]["models"][0]["learning_rate"] for q in queued] == lrs  # with their settings
    assert listed[queued[0]]["models"][1]["parameters"] > 0 and listed[queued[0]]["settings"]["epochs"] == 1
    assert client.post(f"/runs/{queued[1]}/cancel", json={}).get_json() == {"run_id": queued[1], "state": "cancelled"}
    assert queued[1] not in runs_by_id(client)
    answer = client.post(f"/runs/{first}/cancel", json={})
    assert answer.status_code == 409 and "stop it instead" in answer.get_json()["error"]
    assert client.post("/runs/20990101-000000-000abc/cancel", json={}).status_code == 404
    assert client.post("/start_training", json=dict(QUICK, queue="yes")).status_code == 400
    client.post("/stop_training", json={})
    manager = app.extensions["training"]
    wait_for(lambda: all(runs_by_id(client)[q]["state"] == "finished" for q in (queued[0], queued[2])),
             timeout=120, message="the queued runs to finish")
    assert runs_by_id(client)[first]["state"] == "stopped"
    ends = [client.get(f"/runs/{q}").get_json() for q in (queued[0], queued[2])]
    assert ends[0]["finished_at"] <= ends[1]["started_at"]  # one after another, in the order queued
    assert manager.wait(30)  # the last run's thread ends just after its final status is written
    assert manager.active_run_id is None and RunStore(app.config["RUNS_DIR"]).queued() == []


@pytest.mark.slow  # over 2 s on a 2-core CPU: the whole suite runs it
def test_the_queue_survives_a_restart_of_the_server(tmp_path, tiny_mnist, make_app):
    options = {"RUNS_DIR": str(tmp_path / "runs"), "DATA_DIR": str(tiny_mnist),
               "TRAINER_OPTIONS": {"status_interval": 0.05, "pictures": False}}
    app = make_app(options)
    client = app.test_client()
    first = start_run(client, SLOW)
    queued = [queue_run(client, QUICK) for _ in range(2)]
    assert app.extensions["training"].shutdown(30)  # as on SIGTERM: the active run stops, the queue waits
    refused = client.post("/start_training", json=QUICK)
    assert refused.status_code == 409 and "shutting down" in refused.get_json()["error"]
    assert runs_by_id(client)[first]["state"] == "stopped"
    assert [runs_by_id(client)[q]["state"] for q in queued] == ["queued", "queued"]
    again = make_app(options)
    restarted = again.test_client()
    wait_for(lambda: all(runs_by_id(restarted)[q]["state"] == "finished" for q in queued), timeout=120,
             message="the queue to run after the restart")
    assert again.extensions["training"].shutdown(30)


@pytest.mark.slow  # over 2 s on a 2-core CPU: the whole suite runs it
def test_resume_through_the_api(client, app):
    run_id = start_run(client, dict(QUICK, epochs=3))
    assert wait_run_end(client)["state"] == "finished"
    answer = client.post(f"/runs/{run_id}/resume", json={})
    assert answer.status_code == 400 and "finished: there is nothing to resume" in answer.get_json()["error"]
    slow = start_run(client, dict(QUICK, epochs=50, batch_size=8))
    wait_for(lambda: [(m["epoch"], m["batch"] >= 2) for m in client.get("/training_status").get_json()["models"]]
             == [(3, True)] * 2, timeout=60, message="both models inside epoch 3")
    assert client.post(f"/runs/{run_id}/resume", json={}).status_code == 409  # another run is active
    client.post("/stop_training", json={})
    assert wait_run_end(client)["state"] == "stopped"
    before = [r for r in client.get(f"/runs/{slow}/metrics").get_json()["rows"]]
    version = client.get(f"/runs/{slow}/metrics").get_json()["version"]
    assert runs_by_id(client)[slow]["resumable"] is True
    answer = client.post(f"/runs/{slow}/resume", json={})
    assert answer.status_code == 202 and answer.get_json() == {"run_id": slow, "state": "starting"}
    status = client.get("/training_status").get_json()
    assert status["run_id"] == slow and status["resumes"] == 1 and status["state"] in ("starting", "running")
    after = client.get(f"/runs/{slow}/metrics").get_json()
    assert after["version"] != version  # the replayed rows are gone: a reader starts again from row 0
    again = client.get(f"/runs/{slow}/metrics?since={len(before)}&version={version}")  # a reader that was there
    assert again.status_code == 200 and again.get_json()["rows"][0] == after["rows"][0]
    kept = [r for r in before if r in after["rows"]]
    assert len(kept) < len(before) and len(kept) == len(after["rows"][:len(kept)])
    client.post("/stop_training", json={})
    wait_run_end(client)
    early = start_run(client, SLOW)
    wait_for(lambda: client.get("/training_status").get_json()["state"] == "running", message="running")
    client.post("/stop_training", json={})
    wait_run_end(client)
    assert runs_by_id(client)[early]["resumable"] is False
    answer = client.post(f"/runs/{early}/resume", json={})
    assert answer.status_code == 400 and "no epoch-end checkpoint" in answer.get_json()["error"]
    assert client.post("/runs/20990101-000000-000abc/resume", json={}).status_code == 404


def test_a_full_disk_fails_the_run_with_the_path_and_the_server_goes_on(client, app, monkeypatch):
    real_mkstemp = tempfile.mkstemp

    def full_disk_for_checkpoints(dir=None, prefix="", suffix=""):
        fd, path = real_mkstemp(dir=dir, prefix=prefix, suffix=suffix)
        if ".pt." in prefix:  # writes of this file go to /dev/full: the kernel answers ENOSPC
            os.close(fd)
            fd = os.open("/dev/full", os.O_WRONLY)
        return fd, path

    monkeypatch.setattr(mnist_monitor.runstore.files.tempfile, "mkstemp", full_disk_for_checkpoints)
    run_id = start_run(client, QUICK)
    status = wait_run_end(client)
    run_dir = app.extensions["runs"].run(run_id).path
    assert status["state"] == "failed"
    assert status["error"] == (f"could not write {run_dir / 'model0_latest.pt'}: No space left on device; "
                               "free some space, then resume the run")
    assert not list(run_dir.glob(".*.tmp")) and not list(run_dir.glob("*.pt"))  # nothing half-written
    rows = app.extensions["runs"].run(run_id).metrics()
    assert rows and (run_dir / "metrics.jsonl").read_bytes().endswith(b"\n")
    assert client.get("/runs").status_code == 200
    monkeypatch.undo()  # space again: the next run works
    start_run(client, QUICK)
    assert wait_run_end(client)["state"] == "finished"


def test_no_space_for_a_new_run_folder_is_a_clear_507(client, app, monkeypatch):
    store = app.extensions["runs"]
    real_mkdir = os.mkdir

    def full(path, *args, **kwargs):
        if str(path).startswith(str(store.root)):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", full)
    answer = client.post("/start_training", json=QUICK)
    assert answer.status_code == 507
    assert answer.get_json()["error"].startswith(f"could not write {store.root}")
    assert "No space left on device; free some space" in answer.get_json()["error"]
    assert app.extensions["training"].active_run_id is None and store.run_ids() == []


def run_stopped_in_epoch_2(client, app, epochs: int) -> str:
    """A run of the app's worker stopped two steps into epoch 2 (after its first checkpoint); its id."""
    options = app.extensions["training"].trainer_options

    def stop_in_epoch_2(trainer, m):
        if m.index == 0 and m.step == m.batches + 2:
            trainer.stop_event.set()

    options["on_step"] = stop_in_epoch_2
    try:
        run_id = start_run(client, dict(QUICK, epochs=epochs))
        assert wait_run_end(client)["state"] == "stopped"
    finally:
        del options["on_step"]
    return run_id


@pytest.mark.slow  # over 2 s on a 2-core CPU: the whole suite runs it
def test_when_idle_the_status_shows_the_run_trained_last_and_its_duration_leaves_out_the_pause(client, app):
    older = run_stopped_in_epoch_2(client, app, epochs=3)
    start_run(client, QUICK)
    assert wait_run_end(client)["state"] == "finished"
    time.sleep(0.6)  # a pause before the resume, which its duration must not count
    assert client.post(f"/runs/{older}/resume", json={}).status_code == 202
    wait_for(lambda: client.get(f"/runs/{older}").get_json()["state"] == "finished", message="the resumed run")
    status = client.get("/training_status").get_json()
    assert status["run_id"] == older and status["state"] == "finished"  # not the newer run
    summary = runs_by_id(client)[older]
    assert summary["duration_seconds"] < status["finished_at"] - status["started_at"] - 0.5


def test_a_queue_left_waiting_goes_on_at_the_next_start(client, app):
    from mnist_monitor.config import parse_train_config
    from mnist_monitor.scheduling.manager import enqueue

    store = app.extensions["runs"]
    run = store.create()  # queued behind the server's back: nothing would start it
    run_id = run.run_id
    enqueue(run, parse_train_config(QUICK))
    answer = client.post("/start_training", json=QUICK)
    assert answer.status_code == 409 and run_id in answer.get_json()["error"]  # the queued run went first
    assert wait_run_end(client)["run_id"] == run_id


def test_a_run_id_in_the_future_does_not_make_start_wait(client, app):
    store = app.extensions["runs"]
    future = time.gmtime(time.time() + 20 * 60)
    future_id = time.strftime("%Y%m%d-%H%M%S", future) + "-500abc"
    (store.root / future_id).mkdir()
    answer = {}
    thread = threading.Thread(target=lambda: answer.update(r=client.post("/start_training", json=QUICK)))
    thread.start()
    thread.join(10)  # before the fix this hung until the clock passed the future id
    assert not thread.is_alive(), "POST /start_training waited for the clock"
    run_id = answer["r"].get_json()["run_id"]
    assert run_id > future_id and store.run_ids()[0] == run_id
    wait_run_end(client)


def test_a_new_run_is_never_shown_idle_or_interrupted_while_it_starts(client, monkeypatch):
    from mnist_monitor.training import trainer as train

    seen = []
    real_prepare = train.Trainer.prepare

    def watched_prepare(self):
        seen.append(client.get("/training_status").get_json()["state"])  # folder made, no status.json yet
        real_prepare(self)
        seen.append(client.get("/training_status").get_json()["state"])  # status.json written, no thread yet

    monkeypatch.setattr(train.Trainer, "prepare", watched_prepare)
    start_run(client)
    assert seen[:2] == ["starting", "starting"]
    wait_run_end(client)


def test_a_start_that_fails_after_making_its_folder_leaves_no_folder(client, app, monkeypatch):
    from mnist_monitor.runstore import Attempt

    def full_disk(self, facts):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Attempt, "write_facts", full_disk)
    answer = client.post("/start_training", json=QUICK)
    assert answer.status_code == 507 and "No space left on device" in answer.get_json()["error"]
    assert app.extensions["runs"].run_ids() == [] and app.extensions["training"].active_run_id is None


def test_two_meta_updates_at_once_both_count_and_one_after_a_delete_is_404(client, app, monkeypatch):
    from helpers import fake_run
    from mnist_monitor.runstore import Run

    run_id = fake_run(app.extensions["runs"])
    real_meta = Run.meta

    def slow_meta(self):  # a reader that takes its time between reading and writing
        meta = real_meta(self)
        time.sleep(0.3)
        return meta

    monkeypatch.setattr(Run, "meta", slow_meta)
    other = threading.Thread(target=lambda: app.test_client().post(f"/runs/{run_id}/meta", json={"starred": True}))
    other.start()
    assert client.post(f"/runs/{run_id}/meta", json={"note": "both count"}).status_code == 200
    other.join()
    monkeypatch.undo()
    assert app.extensions["runs"].run(run_id).meta() == {"starred": True, "note": "both count", "handed_in_at": None}
    store = app.extensions["runs"]
    run = store.run(run_id)
    assert client.delete(f"/runs/{run_id}").status_code == 200
    with pytest.raises(FileNotFoundError):
        run.set_meta(note="too late")  # the route answers 404 for this (it checks the id first)
    assert not run.path.exists()


@pytest.mark.slow  # over 2 s on a 2-core CPU: the whole suite runs it
def test_a_delete_waits_for_a_resume_in_another_process_and_then_refuses(client, app, tiny_mnist, monkeypatch):
    from mnist_monitor.training import checkpoints
    from mnist_monitor.training import trainer as train

    run_id = run_stopped_in_epoch_2(client, app, epochs=2)
    real_prepare = checkpoints.Resumption.prepare
    checking = threading.Event()

    def slow_prepare(run, n_models):  # python train.py --resume, caught between its check and its claim
        checking.set()
        time.sleep(0.5)
        return real_prepare(run, n_models)

    monkeypatch.setattr(checkpoints.Resumption, "prepare", staticmethod(slow_prepare))
    config = app.extensions["runs"].run(run_id).config()
    from mnist_monitor.config import parse_train_config

    trainer = train.Trainer(parse_train_config(config), tiny_mnist, app.extensions["runs"].run(run_id).path,
                            resume=True, pictures=False)
    resumed = threading.Thread(target=trainer.run)
    resumed.start()
    assert checking.wait(10)
    answer = client.delete(f"/runs/{run_id}")
    resumed.join(60)
    assert answer.status_code == 409 and "training" in answer.get_json()["error"]
    assert trainer.status()["state"] == "finished" and app.extensions["runs"].run(run_id) is not None


def test_the_queue_has_a_limit(client, app, monkeypatch):
    from mnist_monitor.scheduling import manager as worker

    monkeypatch.setattr(worker, "MAX_QUEUED", 2)
    start_run(client, SLOW)
    queued = [queue_run(client, QUICK) for _ in range(2)]
    full = client.post("/start_training", json=dict(QUICK, queue=True))
    assert full.status_code == 409 and "queue is full (2 runs" in full.get_json()["error"]
    assert len(app.extensions["runs"].run_ids()) == 3  # nothing made for the refused run
    assert client.post(f"/runs/{queued[0]}/cancel", json={}).status_code == 200
    assert client.post("/start_training", json=dict(QUICK, queue=True)).status_code == 202  # room again
    client.post("/stop_training", json={})


@pytest.mark.parametrize("requeue, stop_wanted", [(True, False), (False, True), (False, False)])
def test_a_resume_no_ray_worker_began_leaves_the_run_exactly_as_it_was(tmp_path, requeue, stop_wanted):
    """A resumed run whose status still said 'starting' (an earlier attempt cut off before its
    trainer claimed it), handed to Ray and never begun: at a shutdown it was written 'queued', and
    the next start trained it from scratch in the folder that holds its checkpoints."""
    import types

    from mnist_monitor.runstore import RunStatus
    from mnist_monitor.scheduling.executors import Slots

    run = RunStore(tmp_path / "runs").create()
    status = RunStatus(state="starting", run_id=run.run_id, updated_at=1.0)
    run.write_status(status)
    before = (run.path / "status.json").read_bytes()
    slot = types.SimpleNamespace(run=run, run_id=run.run_id, resume=True, requeue=requeue, stop_wanted=stop_wanted,
                                 error="Ray cancelled the task", lost=False)
    slots = Slots(RunStore(tmp_path / "runs"), tmp_path, {}, None, on_free=lambda: None, trainer_class=None)
    slots._end_unbegun(slot, status)
    assert (run.path / "status.json").read_bytes() == before
    slot.resume = False  # a new run handed to Ray and never begun still goes back in line or ends
    slots._end_unbegun(slot, status)
    assert run.status().state == ("queued" if requeue else "stopped" if stop_wanted else "failed")


def test_two_processes_sharing_a_runs_folder_never_start_the_same_queued_run(tmp_path, tiny_mnist):
    """A server and train.py --sweep (or two servers) on one runs folder both started the oldest
    queued run, 3 times out of 3; now the start is a compare-and-set under the folder's lock."""
    import threading
    import time

    from mnist_monitor.config import parse_train_config
    from mnist_monitor.runstore import Run, RunStatus
    from mnist_monitor.scheduling.manager import TrainingManager, enqueue

    started = []

    class SlowToClaim:  # a trainer whose claim takes long enough for both managers to be at it at once
        def __init__(self, config, data_dir, run_dir, resume=False, device=None, **options):
            self.folder = Run(run_dir)
            self.run_id, self.stop_event, self.ended = self.folder.run_id, threading.Event(), False

        def prepare(self):
            time.sleep(0.3)
            self.folder.write_status(RunStatus(state="starting", run_id=self.run_id, updated_at=time.time()))
            started.append(self.run_id)

        def run(self):
            self.stop_event.wait(30)
            self.ended = True

        def close(self):
            pass

    store = RunStore(tmp_path / "runs")
    config = parse_train_config(QUICK)
    queued = []
    for _ in range(2):
        run = store.create()
        enqueue(run, config)
        queued.append(run.run_id)
    managers = [TrainingManager(RunStore(tmp_path / "runs"), tiny_mnist, {}, trainer_class=SlowToClaim)
                for _ in range(2)]
    threads = [threading.Thread(target=m.start_next) for m in managers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    try:
        assert sorted(started) == sorted(queued)  # each queued run started once, by one of them
    finally:
        for m in managers:
            m.shutdown(10)


def test_a_ray_trainer_that_fails_before_its_claim_ends_the_run_failed_with_its_message(tmp_path):
    """A trainer on Ray that could not claim its run (its folder not writable on that node) ended its
    task normally with a 'failed' status it could not write: the run read 'interrupted, stopped
    getting heartbeats', the real error only in Ray's worker log."""
    import threading
    import types

    from mnist_monitor.config import parse_train_config
    from mnist_monitor.scheduling import ray_pool
    from mnist_monitor.scheduling.executors import Slots

    message = "could not write runs/x/claim.json: Read-only file system"
    pool = ray_pool.RayPool.__new__(ray_pool.RayPool)  # Ray itself faked: its task returns the trainer's status
    pool.ray = types.SimpleNamespace(get=lambda ref: {"state": "failed", "error": message},
                                     cancel=lambda ref, force: None)
    pool._train = types.SimpleNamespace(options=lambda **o: types.SimpleNamespace(remote=lambda *a: "task-ref"))
    pool.placement, pool.capacity = ray_pool.Placement(threads=1, gpus=0), 1
    freed = threading.Event()
    store = RunStore(tmp_path / "runs")
    slots = Slots(store, tmp_path, {}, pool, on_free=freed.set, trainer_class=None)
    run = store.create()
    slots.launch(run, parse_train_config(QUICK))
    assert freed.wait(10)
    status = run.status()
    assert status.state == "failed" and message in status.error


def test_the_storage_probe_finds_a_node_that_cannot_write_the_runs_folder(tmp_path):
    import os
    import types

    from mnist_monitor.scheduling import ray_pool

    (tmp_path / "data").mkdir()
    runs = tmp_path / "runs"
    runs.mkdir()
    pool = ray_pool.RayPool.__new__(ray_pool.RayPool)

    def probe_as(host, writable):
        def remote(marker, data_dir):
            answer = ray_pool.probe_task(marker, data_dir)
            return dict(answer, host=host, runs_writable=answer["runs_writable"] and writable)
        return remote

    tasks = [probe_as("node-a", True), probe_as("node-b", False)]  # node-b mounts the runs folder read-only
    fake = types.SimpleNamespace(
        nodes=lambda: [{"Alive": True, "NodeID": f"{i:056x}"} for i in range(2)],
        remote=lambda **kw: lambda fn: types.SimpleNamespace(options=lambda **o: types.SimpleNamespace(
            remote=lambda *a: tasks.pop(0)(*a))),
        get=lambda refs, timeout: refs)
    pool.ray = fake
    with pytest.raises(ray_pool.ClusterError, match="node-b cannot write into"):
        pool.check_shared_storage(runs, str(tmp_path / "data"))
    assert os.listdir(runs) == []  # the marker and the write checks leave nothing behind
    assert ray_pool.can_write(runs) and not ray_pool.can_write(tmp_path / "missing")


def fake_ray_pool(get, listeners=False):
    """A RayPool with Ray itself faked: ``get(ref)`` is what waiting for a task gives."""
    import types

    from mnist_monitor.scheduling import ray_pool

    pool = ray_pool.RayPool.__new__(ray_pool.RayPool)
    pool.ray = types.SimpleNamespace(get=get, cancel=lambda ref, force: None, exceptions=types.SimpleNamespace(
        RayTaskError=TrainerRaised, TaskCancelledError=Cancelled))
    pool._train = types.SimpleNamespace(options=lambda **o: types.SimpleNamespace(remote=lambda *a: "task-ref"))
    pool.placement, pool.capacity = ray_pool.Placement(threads=1, gpus=0), 1
    if listeners:
        pool.restart_listeners = []
    return pool


class TrainerRaised(Exception):
    """Ray's RayTaskError: the trainer's own exception."""


class Cancelled(Exception):
    """Ray's TaskCancelledError."""


def test_a_run_whose_task_ray_loses_before_it_begins_goes_back_in_line_then_fails_after_three(tmp_path):
    """The local instance died under a run handed to it (LocalRayletDiedError): the run failed, and
    so did every queued run behind it. Now it waits in line; only a run lost again and again fails."""
    import threading

    from mnist_monitor.config import parse_train_config
    from mnist_monitor.scheduling.executors import LOST_TRIES, Slots

    def lost(ref):
        raise RuntimeError("LocalRayletDiedError: The task's local raylet died")

    freed = threading.Event()
    store = RunStore(tmp_path / "runs")
    slots = Slots(store, tmp_path, {}, fake_ray_pool(lost), on_free=freed.set, trainer_class=None)
    run = store.create()
    for attempt in range(1, LOST_TRIES + 1):
        freed.clear()
        with run.locked():
            slots.launch(run, parse_train_config(QUICK) if attempt == 1 else None)
        assert freed.wait(10) and slots.ids == []
        status = run.status()
        if attempt < LOST_TRIES:
            assert status.state == "queued" and status.error is None, status
    assert status.state == "failed" and "Ray lost its task 3 times" in status.error
    assert "LocalRayletDiedError" in status.error

    raised = store.create()  # the trainer's own exception is a training outcome: failed at once
    slots = Slots(store, tmp_path, {}, fake_ray_pool(lambda ref: (_ for _ in ()).throw(TrainerRaised("bad folder"))),
                  on_free=freed.set, trainer_class=None)
    freed.clear()
    slots.launch(raised, parse_train_config(QUICK))
    assert freed.wait(10)
    assert raised.status().state == "failed" and "bad folder" in raised.status().error


def test_a_restart_of_ray_ends_the_slots_of_tasks_the_old_instance_never_answered(tmp_path):
    """A lost control store leaves every wait for a task blocked for good: after the restart, the
    slots are freed (a run that never began goes back in line) and the queue goes on."""
    import threading

    from mnist_monitor.config import parse_train_config
    from mnist_monitor.scheduling.executors import Slots

    never = threading.Event()
    pool = fake_ray_pool(lambda ref: never.wait(60), listeners=True)
    freed = threading.Event()
    store = RunStore(tmp_path / "runs")
    slots = Slots(store, tmp_path, {}, pool, on_free=freed.set, trainer_class=None)
    run = store.create()
    slots.launch(run, parse_train_config(QUICK))
    assert run.status().state == "starting" and not freed.wait(0.2)
    for listener in pool.restart_listeners:
        listener("the Ray instance was restarted")
    assert freed.is_set() and slots.ids == []
    assert run.status().state == "queued"
    never.set()  # the old wait returning late changes nothing
    wait_for(lambda: not slots_threads(), timeout=10, message="the old watcher to return")
    assert run.status().state == "queued"


def slots_threads():
    import threading

    return [t for t in threading.enumerate() if t.name.startswith("ray-")]


class AwayRay:
    """A pool whose workers are unavailable (its instance is being restarted) until told otherwise."""
    capacity = 2

    def __init__(self):
        self.reason = "the local Ray instance's node died (its raylet is gone); restart 1 failed, next in 2 s"
        self.handed = []

    def available(self):
        return self.reason

    def submit(self, *args):
        self.handed.append(args)
        raise AssertionError("nothing is handed to Ray while it is unavailable")


def test_while_ray_is_unavailable_starts_are_503_queued_runs_wait_and_the_status_says_why(tmp_path, tiny_mnist,
                                                                                             make_app):
    from helpers import fake_run

    pool = AwayRay()
    app = make_app({"RUNS_DIR": str(tmp_path / "runs"), "DATA_DIR": str(tiny_mnist), "TESTING": True,
                    "RAY_POOL": pool})
    client = app.test_client()
    assert client.get("/training_status").get_json()["workers_unavailable"] == pool.reason
    answer = client.post("/start_training", json=QUICK)
    assert answer.status_code == 503 and answer.get_json()["error"] == f"Ray workers are unavailable: {pool.reason}"
    assert app.extensions["runs"].run_ids() == []  # nothing left behind
    queued = queue_run(client, QUICK)
    interrupted = fake_run(app.extensions["runs"], "interrupted")
    answer = client.post(f"/runs/{interrupted}/resume", json={})
    assert answer.status_code == 503 and "unavailable" in answer.get_json()["error"]
    assert app.extensions["training"].start_next() == [] and pool.handed == []
    assert client.get(f"/runs/{queued}").get_json()["state"] == "queued"
    assert client.get(f"/runs/{interrupted}").get_json()["state"] == "interrupted"


def test_a_run_no_ray_worker_begins_for_a_while_says_so_in_its_status(tmp_path, monkeypatch):
    """A run Ray had no room for (a busy cluster, or resources no node has free) read 'starting'
    for ever, with nothing to say why."""
    import threading

    from mnist_monitor.config import parse_train_config
    from mnist_monitor.scheduling import executors
    from mnist_monitor.scheduling.executors import Slots

    never = threading.Event()
    pool = fake_ray_pool(lambda ref: never.wait(60))
    store = RunStore(tmp_path / "runs")
    slots = Slots(store, tmp_path, {}, pool, on_free=lambda: None, trainer_class=None)
    run = store.create()
    slots.launch(run, parse_train_config(QUICK))
    slots.note_waits()
    assert run.status().waiting is None  # within the limit: nothing to say yet
    monkeypatch.setattr(executors, "WAIT_NOTE_SECONDS", 0.0)
    slots.note_waits()
    status = run.status()
    assert status.state == "starting" and status.waiting.startswith("no Ray worker has begun it in ")
    assert "Ray has no room for it now (it asks 1 CPU(s)); it starts when a worker is free" in status.waiting
    slots.stop_all()
    never.set()
    wait_for(lambda: slots.ids == [], timeout=10, message="the slot to end")


def test_a_ray_run_that_does_not_stop_when_asked_is_ended_after_the_limit(tmp_path, monkeypatch):
    """A trainer that goes on beating after a stop request (a step that never returns) trained on
    for good: the stop was only a request. Now its worker process is ended after the limit and
    the run is written 'stopped', with why."""
    import threading

    from mnist_monitor.config import parse_train_config
    from mnist_monitor.runstore import RunStatus
    from mnist_monitor.scheduling import executors
    from mnist_monitor.scheduling.executors import Slots, tend

    killed = threading.Event()

    def get(ref):
        killed.wait(60)
        raise Cancelled("the worker was ended")

    pool = fake_ray_pool(get)
    pool.ray.cancel = lambda ref, force: killed.set()
    freed = threading.Event()
    store = RunStore(tmp_path / "runs")
    slots = Slots(store, tmp_path, {}, pool, on_free=freed.set, trainer_class=None)
    run = store.create()
    slots.launch(run, parse_train_config(QUICK))
    attempt = run.start_attempt(1, "the-worker's-trainer", on_superseded=lambda: None)  # it began, and beats
    try:
        run.write_status(RunStatus(state="running", run_id=run.run_id, updated_at=time.time()))
        slots.get(run.run_id).stop()
        tend(slots)
        assert not killed.is_set()  # within the limit: only asked
        monkeypatch.setattr(executors, "STOP_LIMIT_SECONDS", 0.0)
        tend(slots)
        assert killed.is_set() and freed.wait(10)
        status = run.status()
        assert status.state == "stopped" and "did not stop within 0 s of the request" in status.error
    finally:
        attempt.heartbeat.stop()
