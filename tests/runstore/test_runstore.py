"""The run folder: atomic files, validated records, one folder's files and the state readers see,
the runs folder (ids, queue, clean-up, cache), and folders written by earlier versions."""
import errno
import json
import os
import shutil
import time

import pytest

import mnist_monitor.runstore.files
import mnist_monitor.runstore.store
from helpers import FIXTURE_ID, FIXTURE_RUNS, PNG_BYTES, fake_run
from mnist_monitor.runstore import BROKEN_STATE, RecordError, Run, RunStatus, RunStore, WriteError, metrics_row, new_run_id
from mnist_monitor.runstore.files import (Unreadable, append_jsonl, atomic_write_bytes, atomic_write_json, read_json,
                            read_jsonl, to_json)


# ---------------------------------------------------------------- files

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


def test_read_json_tells_a_missing_file_from_an_unreadable_one(tmp_path):
    assert read_json(tmp_path / "missing.json") is None
    (tmp_path / "bad.json").write_bytes(b'{"state": "runn')
    with pytest.raises(Unreadable, match="bad.json is damaged, not valid JSON: unterminated string"):
        read_json(tmp_path / "bad.json")


def test_read_jsonl_skips_a_torn_last_line_and_corrupt_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    append_jsonl(path, [{"step": 1}, {"step": 2}])
    with open(path, "a") as f:
        f.write("{not json}\n")
        f.write('{"step": 3, "loss": 0.')  # a crash mid-append
    assert read_jsonl(path) == [{"step": 1}, {"step": 2}]
    assert read_jsonl(tmp_path / "missing.jsonl") == []


def test_a_failed_append_leaves_metrics_as_they_were(tmp_path, monkeypatch):
    path = tmp_path / "metrics.jsonl"
    append_jsonl(path, [{"step": 1}, {"step": 2}])
    before = path.read_bytes()
    real_write = os.write

    def half_then_full(fd, data):
        real_write(fd, bytes(data[:len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(mnist_monitor.runstore.files.os, "write", half_then_full)
    with pytest.raises(WriteError, match=f"could not write {path}: No space left on device"):
        append_jsonl(path, [{"step": 3, "loss": 0.5}] * 50)
    assert path.read_bytes() == before


# ---------------------------------------------------------------- records

def test_metrics_rows_have_exactly_their_kinds_fields_in_contract_order():
    from mnist_monitor.runstore import METRIC_COLUMNS

    row = metrics_row("eval", time=1.0, test_accuracy=99.0, test_loss=0.1, val_accuracy=98.0, val_loss=0.2,
                      step=10, epoch=1, model=0)
    assert list(row) == [c for c in METRIC_COLUMNS if c in row] and row["kind"] == "eval"
    with pytest.raises(ValueError):
        metrics_row("train", model=0, step=1)  # a missing field is a bug in the writer, caught at once
    with pytest.raises(ValueError, match="no metric kind"):  # a kind the registry does not declare
        metrics_row("layer", model=0)


@pytest.mark.parametrize("data, problem", [
    ([1], "must be a JSON object, got list"),
    ({"models": []}, "status.state: is missing"),
    ({"state": "finished", "models": [1]}, "status.models[0]: must be a JSON object"),
    ({"state": "finished", "models": [{"name": "m"}]}, "status.models[0].kernels: is missing"),
    ({"state": "finished", "eta_seconds": "soon"}, "status.eta_seconds: 'soon' is not a float | None"),
    ({"state": "finished", "resumes": True}, "status.resumes: True is not a int"),
    ({"state": "dancing"}, "status: state 'dancing' is not one of"),
])
def test_a_status_that_breaks_the_contract_is_refused_naming_the_field(data, problem):
    with pytest.raises(RecordError, match=problem.replace("[", r"\[").replace("]", r"\]").replace("|", r"\|")):
        RunStatus.from_dict(data)


def test_a_status_read_back_is_the_typed_record_written():
    status = RunStatus.from_dict(json.loads((FIXTURE_RUNS / FIXTURE_ID / "status.json").read_text()))
    assert status.state == "stopped" and status.models[0].name == "tiny" and status.models[0].batches == 9
    assert RunStatus.from_dict(json.loads(to_json(status.to_dict()))) == status


def test_run_ids_are_utc_and_ordered_after_any_existing_one():
    before = new_run_id()
    assert before[:8] in (time.strftime("%Y%m%d", time.gmtime()), time.strftime("%Y%m%d", time.gmtime(time.time() - 5)))
    later = new_run_id(after="29991231-235959-999fff")
    assert later > "29991231-235959-999fff" and later.startswith("30000101-000000-000")


# ---------------------------------------------------------------- one folder

def test_file_lookup_stays_inside_the_run_folder(tmp_path):
    store = RunStore(tmp_path / "runs")
    run = store.run(fake_run(store, images=False))
    (run.path / "curves.png").write_bytes(b"png")
    (tmp_path / "secret.png").write_bytes(b"secret")
    os.symlink(tmp_path / "secret.png", run.path / "link.png")
    assert run.served_file("curves.png") == run.path / "curves.png"
    for name in ["../secret.png", "..", "/etc/passwd", "link.png", "status.json", "a/b.png", "..%2fsecret.png",
                 "curves.png/", ".png", "metrics.jsonl", "model9_best.pt", "heartbeat.json"]:
        assert run.served_file(name) is None, name
    for bad_id in ["..", "../runs", run.run_id + "/..", "", "20260101-000000-zzzzzz", None, 7]:
        assert store.run(bad_id) is None


def test_served_files_are_exactly_the_names_the_worker_writes():
    from mnist_monitor.config import MAX_MODELS
    from mnist_monitor.runstore.run import MAX_MODELS_SERVED, SERVED_FILES, checkpoint_name, image_name

    assert MAX_MODELS_SERVED == MAX_MODELS
    assert image_name("curves") in SERVED_FILES and checkpoint_name(MAX_MODELS - 1, "best") in SERVED_FILES
    assert image_name("samples", 0) == "samples_m0.png" and checkpoint_name(1, "latest") == "model1_latest.pt"
    assert checkpoint_name(MAX_MODELS, "best") not in SERVED_FILES and "other.png" not in SERVED_FILES
    assert len(SERVED_FILES) == 1 + MAX_MODELS * (4 + 2 + 1)  # curves; 4 pictures, 2 checkpoints, 1 confusion table


def test_a_picture_name_outside_the_contract_is_refused(tmp_path):
    run = Run(tmp_path / "run")
    run.path.mkdir()
    run.write_picture("samples", 0, PNG_BYTES)
    with pytest.raises(ValueError):
        run.write_picture("../escape", 0, PNG_BYTES)
    assert os.listdir(run.path) == ["samples_m0.png"]


@pytest.mark.parametrize("content, problem", [
    (b"[1]", "must be a JSON object, got list"),
    (b'{"state": "finished", "models": [1]}', "status.models[0]: must be a JSON object"),
    (b'{"state": "finished", "mod', "status.json is damaged, not valid JSON: unterminated string"),
    (b"", "status.json is damaged, not valid JSON: it is empty"),
])
def test_a_malformed_status_makes_the_run_broken_with_the_reason(tmp_path, content, problem):
    store = RunStore(tmp_path / "runs")
    run_id = fake_run(store)
    (store.root / run_id / "status.json").write_bytes(content)
    snapshot = store.snapshot(run_id)
    assert snapshot.state == BROKEN_STATE and problem in snapshot.problem and snapshot.status is None
    assert not snapshot.resumable and snapshot.config["models"]  # what can be read is kept


def test_a_config_the_trainer_would_refuse_makes_the_run_broken(tmp_path):
    from mnist_monitor.config import parse_train_config

    store = RunStore(tmp_path / "runs", check_config=parse_train_config)
    run_id = fake_run(store)
    (store.root / run_id / "config.json").write_text('{"epochs": "three"}')
    snapshot = store.snapshot(run_id)
    assert snapshot.state == BROKEN_STATE and snapshot.problem.startswith("config.json: epochs: must be an integer")
    assert RunStore(store.root).snapshot(run_id).state == "finished"  # a reader that does not check


def test_a_missing_config_or_status_is_broken_but_a_folder_being_made_is_not(tmp_path):
    store = RunStore(tmp_path / "runs")
    no_config = fake_run(store)
    (store.root / no_config / "config.json").unlink()
    assert store.snapshot(no_config).problem == "config.json is missing"
    being_made = store.create().run_id
    assert store.snapshot(being_made).state == "starting"
    old = store.create()
    os.utime(old.path, (time.time() - 120, time.time() - 120))
    assert (store.snapshot(old.run_id).state, store.snapshot(old.run_id).problem) == (BROKEN_STATE, "status.json is missing")


def test_readers_see_interrupted_when_the_heartbeat_stops_and_stopping_when_asked(tmp_path):
    store = RunStore(tmp_path / "runs")
    live = fake_run(store, state="running", beat="this", eta_seconds=30.0)
    dead = fake_run(store, state="running", beat="dead", eta_seconds=30.0)
    assert store.snapshot(live).state == "running" and store.snapshot(live).status.eta_seconds == 30.0
    interrupted = store.snapshot(dead)
    assert interrupted.state == "interrupted" and interrupted.status.error and interrupted.status.eta_seconds is None
    assert [m.eta_seconds for m in interrupted.status.models] == [None]
    assert json.loads((store.root / dead / "status.json").read_text())["state"] == "running"  # readers never write
    store.run(live).request_stop()
    assert store.snapshot(live).state == "stopping"


def test_a_folder_from_before_heartbeats_is_alive_only_while_its_status_is_fresh_and_its_process_lives(tmp_path):
    store = RunStore(tmp_path / "runs")
    fresh = fake_run(store, state="running", pid=os.getpid())
    stale = fake_run(store, state="running", pid=os.getpid(), updated_at=time.time() - 60)
    gone = fake_run(store, state="running", pid=2**22 + 12345)
    assert [store.snapshot(r).state for r in (fresh, stale, gone)] == ["running", "interrupted", "interrupted"]


# ---------------------------------------------------------------- the runs folder

def test_runs_created_in_the_same_second_still_sort_newest_first(tmp_path):
    store = RunStore(tmp_path / "runs")
    created = [store.create().run_id for _ in range(20)]
    assert store.run_ids() == created[::-1]


def test_cleanup_keeps_the_newest_the_protected_the_starred_the_queued_and_the_training(tmp_path):
    store = RunStore(tmp_path / "runs", keep=2)
    starred, queued, training = fake_run(store), fake_run(store, state="queued"), fake_run(store, "running", beat="this")
    protected, old = fake_run(store), fake_run(store)
    store.run(starred).set_meta(starred=True)
    newest = [fake_run(store) for _ in range(2)]
    removed = store.cleanup(protect={protected})
    assert removed == [old]
    assert set(store.run_ids()) == {starred, queued, training, protected, *newest}


def test_the_parsed_folder_is_reused_until_it_changes(tmp_path, monkeypatch):
    store = RunStore(tmp_path / "runs")
    ids = [fake_run(store, images=False) for _ in range(70)]
    assert all(store.snapshot(run_id).state == "finished" for run_id in ids)
    reads = []
    real = mnist_monitor.runstore.store.read_parts
    monkeypatch.setattr(mnist_monitor.runstore.store, "read_parts", lambda run, check=None: reads.append(run.run_id) or real(run, check))
    assert all(store.snapshot(run_id) for run_id in ids) and reads == []  # every one from the cache
    store.run(ids[0]).set_meta(note="changed")
    assert store.snapshot(ids[0]).meta["note"] == "changed" and reads == [ids[0]]


@pytest.mark.slow  # over 2 s on a 2-core CPU: the whole suite runs it
def test_a_listing_of_thousands_of_runs_rereads_only_what_changed(tmp_path, monkeypatch):
    """The parsed folders are an index with no capacity (an LRU of 4,096 re-read every folder of a
    larger runs folder at every poll); a deleted run leaves it at the next listing."""
    store = RunStore(tmp_path / "runs")
    template = store.root / fake_run(store, images=False)
    for i in range(4200):  # copies without fsync: fast enough for a unit test
        folder = store.root / f"20250101-{i // 1000:06d}-{i % 1000:03d}abc"
        folder.mkdir()
        for name in ("config.json", "status.json"):
            (folder / name).write_bytes((template / name).read_bytes())
    assert len(store.snapshots()) == 4201
    reads = []
    real = mnist_monitor.runstore.store.read_parts
    monkeypatch.setattr(mnist_monitor.runstore.store, "read_parts", lambda run, check=None: reads.append(run.run_id) or real(run, check))
    assert len(store.snapshots()) == 4201 and reads == []
    store.run("20250101-000000-000abc").delete()
    assert len(store.snapshots()) == 4200 and "20250101-000000-000abc" not in store._parsed and reads == []


def test_temp_files_of_cut_off_writes_are_removed_at_start(tmp_path, make_app):
    store = RunStore(tmp_path / "runs")
    run_id = fake_run(store, images=False)
    stale = store.root / run_id / ".status.json.abc123.tmp"
    fresh = store.root / run_id / ".status.json.def456.tmp"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"being written")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    make_app({"RUNS_DIR": str(tmp_path / "runs")})
    assert not stale.exists() and fresh.exists()


def test_keep_runs_applies_at_start_up(tmp_path, make_app):
    store = RunStore(tmp_path / "runs")
    ids = [fake_run(store, images=False) for _ in range(4)]
    make_app({"RUNS_DIR": str(tmp_path / "runs"), "KEEP_RUNS": 2})
    assert store.run_ids() == sorted(ids, reverse=True)[:2]


# ---------------------------------------------------------------- folders written by the version before

def test_a_folder_written_before_heartbeats_lists_and_opens_as_it_was(tmp_path):
    from mnist_monitor.config import parse_train_config

    shutil.copytree(FIXTURE_RUNS / FIXTURE_ID, tmp_path / "runs" / FIXTURE_ID)
    store = RunStore(tmp_path / "runs", check_config=parse_train_config)  # as the server reads it
    snapshot = store.snapshot(FIXTURE_ID)
    assert snapshot.state == "stopped" and snapshot.resumable and snapshot.problem is None
    assert snapshot.status.models[0].test_accuracy == 40.5 and snapshot.status.resumes == 0
    assert set(snapshot.images(0)) == {"samples", "errors", "confusion", "filters"} and snapshot.curves()
    assert snapshot.config["seed_scheme"] == 1  # written before the scheme was recorded: the old one
    assert len(store.run(FIXTURE_ID).metrics()) == len((FIXTURE_RUNS / FIXTURE_ID / "metrics.jsonl").read_text().splitlines())


def test_json_files_that_are_symbolic_links_are_not_followed(tmp_path):
    store = RunStore(tmp_path / "runs")
    secret = tmp_path / "secret.json"
    secret.write_text('{"starred": true, "note": "the server can read this", "models": []}')
    linked_config, linked_meta = fake_run(store), fake_run(store)
    (store.root / linked_config / "config.json").unlink()
    os.symlink(secret, store.root / linked_config / "config.json")
    os.symlink(secret, store.root / linked_meta / "meta.json")
    snapshot = store.snapshot(linked_config)
    assert snapshot.state == BROKEN_STATE and "symbolic link" in snapshot.problem and snapshot.config is None
    assert store.snapshot(linked_meta).meta == {"starred": False, "note": "", "handed_in_at": None}


def test_ids_and_names_are_matched_whole_in_ascii():
    store_ids = ["20261201-120000-000abc\n", "２0261201-120000-000abc", "20261201-120000-000abcd"]
    from mnist_monitor.runstore.records import RUN_ID_PATTERN

    assert RUN_ID_PATTERN.fullmatch("20261201-120000-000abc")
    assert not any(RUN_ID_PATTERN.fullmatch(run_id) for run_id in store_ids)


def test_activity_finds_live_and_queued_runs_and_skips_finished_ones_it_has_read(tmp_path, monkeypatch):
    """GET /training_status asks at every poll: finished runs already read cost two stats, no snapshot."""
    store = RunStore(tmp_path / "runs")
    finished = [fake_run(store, images=False) for _ in range(5)]
    queued = fake_run(store, "queued", images=False)
    live = fake_run(store, "running", images=False, beat="this")
    dead = fake_run(store, "running", images=False, beat="dead")
    assert store.activity() == ([live], 1)
    looked = []
    real = mnist_monitor.runstore.store.snapshot

    def counted(run, parts=None):  # a thread some other test left running may read its own runs meanwhile
        if run.path.parent == store.root:
            looked.append(run.run_id)
        return real(run, parts)

    monkeypatch.setattr(mnist_monitor.runstore.store, "snapshot", counted)
    assert store.activity() == ([live], 1)
    assert set(looked) == {queued, live, dead} and not set(looked) & set(finished)
    store.run(finished[0]).write_status({"state": "queued", "run_id": finished[0], "models": []})
    assert store.activity() == ([live], 2)  # a changed folder is read again


def test_the_folders_lock_is_taken_on_a_file_opened_for_writing(tmp_path):
    """An flock on the folder opened read-only: over NFS an exclusive lock needs a file open for
    writing (NFS v4 maps flock to byte-range locks, which refuse a write lock on a read-only file)."""
    import os

    run = RunStore(tmp_path / "runs").create()
    with run.locked():
        held = [fd for fd in os.listdir("/proc/self/fd")
                if os.path.realpath(f"/proc/self/fd/{fd}").startswith(str(run.path))]
        assert len(held) == 1
        flags = int(next(line.split()[1] for line in open(f"/proc/self/fdinfo/{held[0]}")
                         if line.startswith("flags:")), 8)
        assert flags & os.O_ACCMODE == os.O_RDWR
        assert os.path.realpath(f"/proc/self/fd/{held[0]}") == str(run.path / ".lock")
    run.delete()
    with pytest.raises(FileNotFoundError):
        with run.locked():
            pass
