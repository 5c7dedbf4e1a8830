"""Several runs at once on Ray (``--workers``, ``--ray-address``): a real local Ray instance,
started once for this module (on 127.0.0.1 only), and a two-node cluster on this machine. The
app is driven in this process (the Ray driver), training on tiny synthetic MNIST."""
import os
import signal
import threading
import time

import pytest

from helpers import QUICK, ROOT, make_mnist_dir, wait_for

from mnist_monitor.scheduling.ray_pool import import_ray  # noqa: E402

ray = import_ray()  # with the environment that keeps a local instance on loopback (read at import)
LONG = dict(QUICK, epochs=100, batch_size=32)  # trains until stopped, an epoch end every second or so
SHORT = dict(QUICK, epochs=3, batch_size=16)  # a few seconds, with an epoch end (a checkpoint) early on
RAY_CPUS = 4  # logical CPUs declared to Ray (it schedules by them; this machine has 2 cores)


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for the module; it declares a GPU so that GPU shares can be scheduled."""
    ray.init(address="local", num_cpus=RAY_CPUS, num_gpus=1, include_dashboard=False,
             object_store_memory=100 * 2**20, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    yield ray
    ray.shutdown()


def ray_app(make_app, tmp_path, pool):
    return make_app({"RUNS_DIR": str(tmp_path / "runs"), "DATA_DIR": str(make_mnist_dir(tmp_path / "mnist")),
                     "TESTING": True, "RAY_POOL": pool,
                     "TRAINER_OPTIONS": {"status_interval": 0.1, "pictures": False}})


@pytest.fixture
def two_workers(local_ray, tmp_path, make_app):
    from mnist_monitor.scheduling.ray_pool import RayPool

    app = ray_app(make_app, tmp_path, RayPool(workers=2, gpus_per_run=0.0))
    yield app
    assert app.extensions["training"].shutdown(30)


def status(client, run_id) -> dict:
    return client.get(f"/runs/{run_id}").get_json()


def wait_state(client, run_id, states, timeout=90) -> dict:
    found = {}

    def reached():
        found.update(status(client, run_id))
        return found.get("state") in states
    wait_for(reached, timeout=timeout, interval=0.2, message=f"run {run_id} to be {states}")
    return found


def start(client, body, queue=False):
    answer = client.post("/start_training", json=dict(body, queue=queue))
    assert answer.status_code == 202, answer.get_json()
    return answer.get_json()["run_id"]


def test_two_runs_train_at_once_and_a_third_waits_for_a_free_worker(two_workers):
    client = two_workers.test_client()
    first, second = start(client, SHORT), start(client, SHORT)
    third = start(client, SHORT, queue=True)
    refused = client.post("/start_training", json=SHORT)  # no free worker, and not queued
    assert refused.status_code == 409 and "every worker is busy" in refused.get_json()["error"]
    answer = client.get("/training_status").get_json()
    assert answer["active_runs"] == [second, first] and answer["queued"] == 1 and answer["run_id"] == second
    assert client.get(f"/training_status?run={first}").get_json()["run_id"] == first
    ends = {run_id: wait_state(client, run_id, ("finished",), timeout=120) for run_id in (first, second, third)}
    one, two, three = (ends[r] for r in (first, second, third))
    assert one["started_at"] < two["finished_at"] and two["started_at"] < one["finished_at"]  # at once
    assert three["started_at"] >= min(one["finished_at"], two["finished_at"]) - 0.5  # it waited for a worker
    assert one["host"] and one["node_id"] and one["device"] == "cpu" and one["node_id"] == three["node_id"]


def test_a_killed_worker_leaves_its_run_interrupted_and_it_resumes_to_the_end(two_workers):
    client = two_workers.test_client()
    run_id = start(client, dict(SHORT, epochs=4))
    other = start(client, LONG)  # goes on meanwhile
    run = two_workers.extensions["runs"].run(run_id)
    wait_for(lambda: run.checkpoint(0, "latest") is not None, timeout=90, message="the first epoch end")
    os.kill(run.status().pid, signal.SIGKILL)  # the Ray worker process that trains it
    killed = time.monotonic()
    cut = wait_state(client, run_id, ("interrupted",), timeout=10)
    assert time.monotonic() - killed < 10 and cut["resumable"]
    wait_for(lambda: run_id not in two_workers.extensions["training"].active_run_ids, timeout=10,
             message="Ray to report the failed task")
    assert status(client, other)["state"] == "running"
    answers = []
    both = [threading.Thread(target=lambda: answers.append(two_workers.test_client().post(
        f"/runs/{run_id}/resume", json={}).status_code)) for _ in range(2)]
    for t in both:
        t.start()
    for t in both:
        t.join(90)
    assert sorted(answers) == [202, 409]  # two resumes at once: one goes on, the other is refused
    assert status(client, run_id)["state"] in ("starting", "running")  # taken over when the answer came
    done = wait_state(client, run_id, ("finished",), timeout=120)
    assert done["resumes"] == 1 and all(m["epoch"] == 4 for m in done["models"])


def test_stop_one_stop_all_cancel_and_shutdown_with_two_workers(two_workers):
    client = two_workers.test_client()
    manager = two_workers.extensions["training"]
    first, second = start(client, LONG), start(client, LONG)
    third, fourth = start(client, LONG, queue=True), start(client, LONG, queue=True)
    store = two_workers.extensions["runs"]
    for run_id in (first, second):  # an epoch end each: a stopped run can then be resumed
        wait_for(lambda: store.run(run_id).checkpoint(0, "latest") is not None, timeout=90, message="an epoch end")
    assert client.post(f"/runs/{third}/cancel", json={}).status_code == 200
    assert client.get(f"/runs/{third}").status_code == 404  # its folder went with it
    answer = client.post(f"/runs/{first}/stop", json={})
    assert answer.status_code == 200 and answer.get_json() == {"run_id": first, "state": "stopping"}
    assert wait_state(client, first, ("stopped",))["resumable"]
    wait_state(client, fourth, ("running",))  # the freed worker took the queued run
    assert status(client, second)["state"] == "running"
    wait_for(lambda: store.run(fourth).checkpoint(0, "latest") is not None, timeout=90, message="an epoch end")
    assert client.post(f"/runs/{first}/stop", json={}).status_code == 409  # not training any more
    answer = client.post("/stop_training", json={}).get_json()
    assert sorted(answer["run_ids"]) == sorted([second, fourth]) and answer["state"] == "stopping"
    for run_id in (second, fourth):
        assert wait_state(client, run_id, ("stopped",))["resumable"]
    fifth, sixth = start(client, LONG), start(client, LONG)
    seventh = start(client, LONG, queue=True)
    for run_id in (fifth, sixth):
        wait_for(lambda: store.run(run_id).checkpoint(0, "latest") is not None, timeout=90, message="an epoch end")
    started = time.monotonic()
    assert manager.shutdown(10) and time.monotonic() - started < 10  # what a service manager allows
    for run_id in (fifth, sixth):
        assert status(client, run_id)["state"] == "stopped" and status(client, run_id)["resumable"]
    assert status(client, seventh)["state"] == "queued"


def test_four_runs_share_one_gpu_with_a_quarter_each(local_ray, tmp_path, make_app):
    from mnist_monitor.scheduling.ray_pool import RayPool

    pool = RayPool(workers=4, gpus_per_run=0.25)
    assert pool.placement.gpus == 0.25 and pool.capacity == 4
    app = ray_app(make_app, tmp_path, pool)
    client = app.test_client()
    runs = [start(client, LONG) for _ in range(4)]
    for run_id in runs:  # all four admitted by Ray at once on the one declared GPU
        wait_state(client, run_id, ("running",), timeout=120)
    assert sorted(client.get("/training_status").get_json()["active_runs"]) == sorted(runs)
    assert app.extensions["training"].shutdown(20)


def test_a_run_waiting_for_a_gpu_reads_starting_and_is_stopped_or_requeued_unstarted(local_ray, tmp_path, make_app):
    """One GPU declared, a GPU each: the second run waits in Ray. The server holds it ('starting',
    well past the heartbeat limit); stopped, it ends without training; at shutdown, it is queued again."""
    from mnist_monitor.scheduling.ray_pool import RayPool
    from mnist_monitor.runstore import HEARTBEAT_LIMIT_S

    app = ray_app(make_app, tmp_path, RayPool(workers=2, gpus_per_run=1.0))
    client = app.test_client()
    first = start(client, LONG)
    wait_state(client, first, ("running",))
    waiting = start(client, LONG)
    held_until = time.monotonic() + HEARTBEAT_LIMIT_S + 2
    while time.monotonic() < held_until:  # what the page sees meanwhile: starting, never interrupted
        assert status(client, waiting)["state"] == "starting"
        time.sleep(0.5)
    assert client.post(f"/runs/{waiting}/stop", json={}).status_code == 200
    ended = wait_state(client, waiting, ("stopped",), timeout=20)
    assert ended["error"] == "stopped before a worker began to train it" and not ended["resumable"]
    again = start(client, LONG)
    assert status(client, again)["state"] == "starting"
    assert app.extensions["training"].shutdown(10)
    assert status(client, first)["state"] == "stopped" and status(client, again)["state"] == "queued"


def test_a_resume_stopped_while_it_waits_for_a_worker_leaves_the_run_as_it_was(local_ray, tmp_path, make_app):
    from mnist_monitor.scheduling.ray_pool import RayPool

    app = ray_app(make_app, tmp_path, RayPool(workers=2, gpus_per_run=1.0))  # one GPU declared: one run at a time
    client, manager = app.test_client(), app.extensions["training"]
    first = start(client, LONG)
    wait_for(lambda: app.extensions["runs"].run(first).checkpoint(0, "latest") is not None, timeout=90,
             message="an epoch end")
    assert client.post(f"/runs/{first}/stop", json={}).status_code == 200
    before = wait_state(client, first, ("stopped",))
    second = start(client, LONG)
    wait_state(client, second, ("running",))  # it holds the GPU: a resume must wait for it
    answers = []
    resume = threading.Thread(target=lambda: answers.append(app.test_client().post(f"/runs/{first}/resume", json={})))
    resume.start()
    wait_for(lambda: manager.slots.get(first) is not None, timeout=10, message="the resume to be handed to Ray")
    assert client.post(f"/runs/{first}/stop", json={}).status_code == 200
    resume.join(30)
    assert answers[0].status_code == 400, answers[0].get_json()
    assert "stopped before a worker began to resume it" in answers[0].get_json()["error"]
    after = wait_state(client, first, ("stopped",))
    assert after["resumes"] == before["resumes"] and after["models"][0]["epoch"] == before["models"][0]["epoch"]
    assert manager.shutdown(20)


def test_the_local_ray_listens_on_loopback_only(local_ray):
    import ipaddress

    import psutil

    ray_processes = [p for p in psutil.process_iter(["name", "cmdline"])
                     if "ray" in " ".join(p.info["cmdline"] or []) and p.pid != os.getpid()]
    assert ray_processes, "no Ray process found"
    listening = [(p.info["name"], c.laddr.ip, c.laddr.port) for p in ray_processes
                 for c in _connections(p) if c.status == psutil.CONN_LISTEN]
    assert listening, "the Ray processes listen nowhere?"
    exposed = [entry for entry in listening if not loopback(ipaddress.ip_address(entry[1]))]
    assert exposed == [], exposed


def loopback(address) -> bool:
    """127.0.0.1, ::1, or 127.0.0.1 written as IPv6 (::ffff:127.0.0.1, a dual-stack socket)."""
    return address.is_loopback or bool(getattr(address, "ipv4_mapped", None) and address.ipv4_mapped.is_loopback)


def _connections(process):
    import psutil

    try:
        return process.net_connections(kind="inet")
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def test_a_run_trains_the_same_in_the_thread_and_in_a_worker(local_ray, tmp_path, make_app):
    """fp32 with the same number of threads: the same losses, step for step."""
    import torch

    from mnist_monitor.scheduling.ray_pool import RayPool

    body = dict(SHORT, epochs=1)
    pool = RayPool(workers=2, gpus_per_run=0.0)
    worker_app = ray_app(make_app, tmp_path / "ray", pool)
    run_id = start(worker_app.test_client(), body)
    wait_state(worker_app.test_client(), run_id, ("finished",))
    threads = torch.get_num_threads()
    torch.set_num_threads(pool.placement.threads)
    try:
        thread_app = make_app({"RUNS_DIR": str(tmp_path / "thread-runs"), "TESTING": True,
                               "DATA_DIR": worker_app.config["DATA_DIR"], "TRAINER_OPTIONS": {"pictures": False}})
        client = thread_app.test_client()
        other = start(client, body)
        wait_state(client, other, ("finished",))
    finally:
        torch.set_num_threads(threads)
    losses = [[r["loss"] for r in app.extensions["runs"].run(r_id).metrics() if r["kind"] == "train"]
              for app, r_id in ((worker_app, run_id), (thread_app, other))]
    assert len(losses[0]) == len(losses[1]) > 0
    assert all(abs(a - b) <= 1e-4 * abs(b) for a, b in zip(*losses)), losses


def test_a_two_node_cluster_trains_two_runs_on_two_nodes_at_once(tmp_path, make_app):
    """Last in this module: it ends the local instance and connects to a cluster of two nodes with
    one CPU each, as --ray-address does (the shared-storage check included)."""
    from ray.cluster_utils import Cluster

    from mnist_monitor.scheduling.ray_pool import ClusterError, RayPool

    ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                            "object_store_memory": 100 * 2**20})
    try:
        cluster.add_node(num_cpus=1, object_store_memory=100 * 2**20)
        cluster.wait_for_nodes()
        pool = RayPool(address=cluster.address)
        try:
            assert pool.capacity == 2 and pool.placement.threads == 1  # one run per CPU of the cluster
            app = ray_app(make_app, tmp_path, pool)
            pool.check_shared_storage(app.extensions["runs"].root, app.config["DATA_DIR"])
            with pytest.raises(ClusterError, match="no MNIST folder at"):
                pool.check_shared_storage(app.extensions["runs"].root, str(tmp_path / "nowhere"))
            client = app.test_client()
            runs = [start(client, SHORT) for _ in range(2)]
            ends = [wait_state(client, run_id, ("finished",), timeout=120) for run_id in runs]
            assert ends[0]["node_id"] != ends[1]["node_id"]
            assert ends[0]["started_at"] < ends[1]["finished_at"] and ends[1]["started_at"] < ends[0]["finished_at"]
            nodes = [n["NodeManagerAddress"] for n in ray.nodes()]
            assert set(nodes) == {"127.0.0.1"}, nodes
            # A node that goes away: its run ends interrupted within 10 s, the other goes on.
            runs = [start(client, LONG) for _ in range(2)]
            trained = [wait_state(client, run_id, ("running",), timeout=120) for run_id in runs]
            worker_node = next(n for n in cluster.list_all_nodes() if n is not cluster.head_node)
            lost = next(r for r, s in zip(runs, trained) if s["node_id"] == worker_node.node_id)
            kept = next(r for r in runs if r != lost)
            cluster.remove_node(worker_node)
            gone = time.monotonic()
            assert wait_state(client, lost, ("interrupted",), timeout=10) and time.monotonic() - gone < 10
            assert status(client, kept)["state"] == "running"
            assert app.extensions["training"].shutdown(20)
        finally:
            pool.shutdown()
    finally:
        ray.shutdown()
        cluster.shutdown()
