import json
import os

import pytest

from runstore import (RunStore, append_jsonl, atomic_write_bytes, atomic_write_json, read_json, read_jsonl,
                      to_json)


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "status.json"
    atomic_write_json(path, {"a": 1})
    atomic_write_json(path, {"a": 2, "nan": float("nan")})
    assert read_json(path) == {"a": 2, "nan": None}
    assert os.listdir(tmp_path) == ["status.json"]


def test_atomic_write_failure_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "x.png"
    atomic_write_bytes(path, b"old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["x.png"]


def test_to_json_is_strict_json():
    assert json.loads(to_json({"x": [float("inf"), 1.5]})) == {"x": [None, 1.5]}


def test_read_jsonl_skips_a_torn_last_line_and_corrupt_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    append_jsonl(path, [{"step": 1}, {"step": 2}])
    with open(path, "a") as f:
        f.write("{not json}\n")
        f.write('{"step": 3, "loss": 0.')  # a crash mid-append
    assert read_jsonl(path) == [{"step": 1}, {"step": 2}]
    assert read_jsonl(tmp_path / "missing.jsonl") == []


def make_run(store, state="finished", pid=None):
    run_id, run_dir = store.create()
    atomic_write_json(run_dir / "status.json", {"state": state, "pid": pid, "updated_at": 1.0})
    return run_id, run_dir


def test_file_lookup_stays_inside_the_run_folder(tmp_path):
    store = RunStore(tmp_path / "runs")
    run_id, run_dir = make_run(store)
    (run_dir / "curves.png").write_bytes(b"png")
    (tmp_path / "secret.png").write_bytes(b"secret")
    os.symlink(tmp_path / "secret.png", run_dir / "link.png")
    assert store.file(run_id, "curves.png") == run_dir / "curves.png"
    for name in ["../secret.png", "..", "/etc/passwd", "link.png", "status.json", "a/b.png", "..%2fsecret.png",
                 "curves.png/", ".png", "metrics.jsonl"]:
        assert store.file(run_id, name) is None, name
    for bad_id in ["..", "../runs", run_id + "/..", "", "20260101-000000-zzzzzz"]:
        assert store.file(bad_id, "curves.png") is None


def test_cleanup_keeps_the_newest_and_the_protected(tmp_path):
    store = RunStore(tmp_path / "runs", keep=2)
    ids = []
    for i in range(5):
        run_id = f"2026010{i}-000000-00000{i}"
        (store.root / run_id).mkdir()
        atomic_write_json(store.root / run_id / "status.json", {"state": "finished"})
        ids.append(run_id)
    removed = store.cleanup(protect={ids[0]})
    assert sorted(removed) == ids[1:3]
    assert store.run_ids() == [ids[4], ids[3], ids[0]]


def test_runs_left_running_by_a_dead_process_become_interrupted(tmp_path):
    store = RunStore(tmp_path / "runs")
    dead, _ = make_run(store, "running", pid=2**22 + 12345)
    live, _ = make_run(store, "running", pid=os.getppid())  # another live process trains it
    done, _ = make_run(store, "finished")
    assert store.mark_interrupted() == [dead]
    assert store.status(dead)["state"] == "interrupted" and store.status(dead)["error"]
    assert store.status(live)["state"] == "running" and store.status(done)["state"] == "finished"


def test_runs_created_in_the_same_second_still_sort_newest_first(tmp_path):
    store = RunStore(tmp_path / "runs")
    created = [store.create()[0] for _ in range(20)]
    assert store.run_ids() == created[::-1]


def test_metrics_rows_have_exactly_their_kinds_fields_in_contract_order():
    from runstore import METRIC_COLUMNS, metrics_row

    row = metrics_row("eval", time=1.0, test_accuracy=99.0, test_loss=0.1, val_accuracy=98.0, val_loss=0.2,
                      step=10, epoch=1, model=0)
    assert list(row) == [c for c in METRIC_COLUMNS if c in row] and row["kind"] == "eval"
    with pytest.raises(ValueError):
        metrics_row("train", model=0, step=1)  # a missing field is a bug in the writer, caught at once
    with pytest.raises(KeyError):
        metrics_row("layer", model=0)


def test_served_files_are_exactly_the_names_the_worker_writes():
    from config import MAX_MODELS
    from runstore import SERVED_FILES, checkpoint_name, image_name

    assert image_name("curves") in SERVED_FILES and checkpoint_name(MAX_MODELS - 1, "best") in SERVED_FILES
    assert image_name("samples", 0) == "samples_m0.png" and checkpoint_name(1, "latest") == "model1_latest.pt"
    assert checkpoint_name(MAX_MODELS, "best") not in SERVED_FILES and "other.png" not in SERVED_FILES
    assert len(SERVED_FILES) == 1 + MAX_MODELS * (4 + 2 + 1)  # curves; 4 pictures, 2 checkpoints, 1 confusion table
