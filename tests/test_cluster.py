"""The command line of several runs at once, without starting Ray (the Ray tests themselves are in
integration/test_ray.py)."""
import sys

import pytest

import server
from cluster import ClusterError, import_ray


def test_without_ray_installed_workers_is_a_one_line_error_that_says_what_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without Ray gives: ImportError
    with pytest.raises(ClusterError, match=r"pip install -r requirements-ray.txt"):
        import_ray()
    code = server.main(["--workers", "2", "--runs-dir", str(tmp_path / "runs"), "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: --workers and --ray-address need Ray")


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
