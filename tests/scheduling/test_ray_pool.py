"""The command line of several runs at once, without starting Ray (the Ray tests themselves are in
integration/test_ray.py)."""
import sys

import pytest

import server
from helpers import ROOT
from mnist_monitor.scheduling.ray_pool import ClusterError, import_ray


def test_without_ray_installed_workers_is_a_one_line_error_that_says_what_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without Ray gives: ImportError
    with pytest.raises(ClusterError, match=r"pip install -r requirements-ray.txt"):
        import_ray()
    code = server.main(["--workers", "2", "--runs-dir", str(tmp_path / "runs"), "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: --workers and --ray-address need Ray")


def test_a_ray_older_than_the_floor_is_refused_with_what_to_install(monkeypatch):
    """requirements-ray.txt asks for 2.59 or later (the first release whose local instance needs
    its own token), but an older Ray already installed was used as it was."""
    import types

    from mnist_monitor.scheduling.ray_pool import MIN_RAY, version_tuple

    monkeypatch.setitem(sys.modules, "ray", types.SimpleNamespace(__version__="2.40.0"))
    with pytest.raises(ClusterError, match=r"Ray 2.40.0 is older than 2.59.*pip install -r requirements-ray.txt"):
        import_ray()
    assert version_tuple("2.60.1") >= MIN_RAY and version_tuple("2.59.0rc1") >= MIN_RAY
    assert version_tuple("2.58.9") < MIN_RAY and version_tuple("3.0.0.dev0") > MIN_RAY
    floor = next(line for line in (ROOT / "requirements-ray.txt").read_text().splitlines() if line.startswith("ray"))
    assert floor.split()[0] == f"ray>={'.'.join(map(str, MIN_RAY))}"  # the two floors agree


@pytest.mark.parametrize("args, message", [
    (["--workers", "0"], "must be at least 1"),
    (["--workers", "2", "--gpus-per-run", "0"], "greater than 0"),
    (["--gpus-per-run", "-1"], "greater than 0"),
])
def test_bad_worker_options_are_refused_by_the_command_line(args, message, capsys):
    with pytest.raises(SystemExit):
        server.build_parser().parse_args(args)
    assert message in capsys.readouterr().err


def test_gpus_per_run_alone_is_refused(tmp_path, capsys):
    code = server.main(["--gpus-per-run", "0.5", "--runs-dir", str(tmp_path / "runs")])
    assert code == 2 and "--gpus-per-run needs --workers or --ray-address" in capsys.readouterr().err


class UnreachableRay:
    """A pool whose Ray cannot be reached: every hand-over fails."""
    capacity = 2

    def available(self):
        return None  # it looks well: the hand-over itself fails

    def submit(self, *args):
        raise ConnectionError("the Ray cluster went away")


def test_a_run_ray_does_not_take_is_503_and_leaves_nothing_behind(tmp_path, tiny_mnist, make_app):
    from helpers import QUICK, fake_run

    app = make_app({"RUNS_DIR": str(tmp_path / "runs"), "DATA_DIR": str(tiny_mnist), "TESTING": True,
                    "RAY_POOL": UnreachableRay()})
    client = app.test_client()
    answer = client.post("/start_training", json=QUICK)
    assert answer.status_code == 503 and "Ray did not take run" in answer.get_json()["error"]
    assert app.extensions["runs"].run_ids() == [] and app.extensions["training"].active_run_ids == []
    queued = fake_run(app.extensions["runs"], "queued", images=False)
    (app.extensions["runs"].run(queued).path / "config.json").write_text('{"models": [{"kernels": [2, 2, 2, 2]}]}')
    assert app.extensions["training"].start_next() == []
    assert client.get(f"/runs/{queued}").get_json()["state"] == "queued"  # it waits for Ray to be back


class FakeRay:
    """Ray as a cluster of two nodes with one GPU each answers it (two GPUs in all)."""

    def __init__(self):
        self.shut = False

    def is_initialized(self):
        return True  # the test's own instance: used as it is, not started here

    def cluster_resources(self):
        return {"CPU": 8, "GPU": 2}

    def nodes(self):
        return [{"Alive": True, "NodeID": f"node-{i}", "NodeManagerAddress": f"gpu-node-{i}",
                 "Resources": {"CPU": 4, "GPU": 1}} for i in range(2)] + [
            {"Alive": False, "NodeID": "gone", "Resources": {"GPU": 8}}]  # a dead node counts for nothing

    def remote(self, **options):
        return lambda fn: fn

    def shutdown(self):
        self.shut = True


def test_a_gpu_share_no_single_node_can_hold_is_refused_naming_the_largest_node(monkeypatch):
    """--gpus-per-run 2 on two one-GPU nodes passed the check against the cluster's total: every run
    was a task Ray could never place, 'starting' forever, the queue stuck behind it."""
    from mnist_monitor.scheduling import ray_pool

    monkeypatch.setattr(ray_pool, "import_ray", FakeRay)
    with pytest.raises(ClusterError, match=r"--gpus-per-run 2: no node has that many; the largest has 1 GPU"):
        ray_pool.RayPool(address="ray-head:6379", gpus_per_run=2)
    assert ray_pool.RayPool(address="ray-head:6379", gpus_per_run=1).capacity == 2  # one run per node fits
    assert ray_pool.RayPool(address="ray-head:6379", gpus_per_run=0.5).capacity == 4
