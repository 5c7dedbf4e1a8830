"""A run as one zip: exported whole, imported into another runs folder as the same run (a new id
when its id is taken, 409 when it is already there), and every kind of untrusted zip refused with
400 naming the problem and nothing left behind."""
import io
import json
import os
import stat
import zipfile

import pytest
import torch

from helpers import fake_run
from mnist_monitor.export.run_zip import AlreadyHere, ImportRefused, NotExportable, export_zip, import_zip
from mnist_monitor.runstore import RunStore, metrics_row
from mnist_monitor.runstore.files import append_jsonl, atomic_write_json
from model import MNISTNet


def png() -> bytes:
    from PIL import Image
    out = io.BytesIO()
    Image.new("L", (4, 4)).save(out, format="PNG")
    return out.getvalue()


def a_run(store, state="finished", beat=None, **facts) -> str:
    """A fake run with metrics, pictures, a checkpoint of its model's real shapes, a note and the
    machinery's files."""
    run_id = fake_run(store, state, beat=beat)
    path = store.run(run_id).path
    for picture in path.glob("*.png"):
        picture.write_bytes(png())
    append_jsonl(path / "metrics.jsonl", [metrics_row("eval", model=0, epoch=1.0, step=2, val_loss=0.5, val_accuracy=90.0,
                                                      test_loss=0.6, test_accuracy=89.5, time=3.0)])
    torch.save({"kernels": [1, 1, 1, 1], "state_dict": MNISTNet([1, 1, 1, 1]).state_dict()}, path / "model0_best.pt")
    atomic_write_json(path / "meta.json", {"starred": True, "note": "mine", "handed_in_at": 1.0})
    atomic_write_json(path / "run.json", {"run_id": run_id, **facts})
    (path / "heartbeat.json").write_text("{}")
    (path / ".status.json.123.tmp").write_text("{")
    return run_id


def exported(store, run_id) -> bytes:
    out = io.BytesIO()
    export_zip(store, run_id, out)
    return out.getvalue()


def folders(store) -> list[str]:
    return sorted(os.listdir(store.root))


def test_a_run_exported_and_imported_elsewhere_is_the_same_run_made_the_importers(tmp_path):
    here, there = RunStore(tmp_path / "a"), RunStore(tmp_path / "b")
    run_id = a_run(here, owner="s-ana", sweep={"sweep_id": "20261201-120000-000abc", "trial": 3})
    data = exported(here, run_id)
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert f"{run_id}/model0_best.pt" in names and f"{run_id}/metrics.jsonl" in names
    assert not any(n.endswith(("heartbeat.json", ".tmp", ".lock")) for n in names)  # the machinery stays
    (tmp_path / "run.zip").write_bytes(data)
    new_id = import_zip(tmp_path / "run.zip", there, owner="s-ben")
    assert new_id == run_id  # its id is free here
    a, b = here.run(run_id), there.run(new_id)
    assert b.metrics() == a.metrics() and b.config() == a.config()
    assert (b.path / "model0_best.pt").read_bytes() == (a.path / "model0_best.pt").read_bytes()
    assert there.snapshot(new_id).state == "finished" and there.snapshot(new_id).owner == "s-ben"
    facts = b.facts()
    assert "sweep" not in facts and facts["imported"]["from_run_id"] == run_id  # that sweep is not here
    assert b.meta() == {**b.meta(), "starred": True, "note": "mine"} and not b.meta().get("handed_in_at")
    with pytest.raises(AlreadyHere) as again:  # the same run twice: 409 naming it
        import_zip(tmp_path / "run.zip", there)
    assert again.value.run_id == run_id
    other = a_run(there)  # another run under the exported id's name: the import takes a new id
    os.rename(there.run(new_id).path, tmp_path / "away")
    os.rename(there.run(other).path, there.root / run_id)
    moved = import_zip(tmp_path / "run.zip", there)
    assert moved != run_id and there.run(moved).metrics() == a.metrics()
    assert not [n for n in folders(there) if n.startswith(".import-")]


def test_a_run_that_has_not_ended_is_not_exported_and_one_exported_by_hand_while_active_comes_in_cut_off(tmp_path):
    store = RunStore(tmp_path / "a")
    running = a_run(store, "running", beat="this")
    with pytest.raises(NotExportable, match="is running: a run is exported once it has ended"):
        exported(store, running)
    folder = store.run(running).path
    with zipfile.ZipFile(tmp_path / "by-hand.zip", "w") as z:  # zipped by hand from the folder
        for name in ("config.json", "status.json", "metrics.jsonl", "model0_best.pt"):
            z.write(folder / name, name)
    there = RunStore(tmp_path / "b")
    run_id = import_zip(tmp_path / "by-hand.zip", there)
    assert there.snapshot(run_id).state == "interrupted" and "exported while it was running" in \
        there.snapshot(run_id).status.error


def crafted(tmp_path, entries: dict, links=()) -> str:
    """A zip of ``entries`` (name -> bytes), with ``links`` (names) marked as symbolic links."""
    path = tmp_path / "crafted.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if name in links:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, data)
    return str(path)


class Code:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def good_files(store) -> dict:
    run_id = a_run(store)
    path = store.run(run_id).path
    return {name: (path / name).read_bytes() for name in ("config.json", "status.json", "metrics.jsonl", "model0_best.pt")}


@pytest.mark.parametrize("change, problem", [
    (lambda f: {**f, "../escape.json": b"{}"}, "a path out of the run's folder"),
    (lambda f: {**f, "/etc/passwd": b"x"}, "an absolute path"),
    (lambda f: {**f, "curves.png": b"/etc/passwd"}, "a link"),
    (lambda f: {**f, "metrics.jsonl": b"\n" * (300 * 2**20)}, "more than a run's metrics.jsonl can be"),
    (lambda f: {**f, "metrics.jsonl": b" " * (100 * 2**20)}, "packed 200 times or more"),
    (lambda f: {**f, "notes.txt": b"hi"}, "a file a run folder does not have"),
    (lambda f: {**f, "status.json": b"{\"state\": "}, "status.json"),
    (lambda f: {**f, "config.json": b"{\"epochs\": -1}"}, "config.json: the settings cannot be trained here"),
    (lambda f: {k: v for k, v in f.items() if k != "config.json"}, "no config.json: not a run folder"),
    (lambda f: {**f, "metrics.jsonl": b"{\"kind\": \"eval\"}\n[1, 2]\n"}, "metrics.jsonl: a line that is not a metrics row"),
    (lambda f: {**f, "model0_best.pt": torch_bytes({"kernels": [1, 1, 1, 1], "state_dict": Code()})},
     "model0_best.pt: not a checkpoint of weights"),
    (lambda f: {**f, "model0_best.pt": torch_bytes({"kernels": [8, 8, 8, 8],
                                                    "state_dict": MNISTNet([8, 8, 8, 8]).state_dict()})},
     "its weights are not the shapes of model 1's layers"),
    (lambda f: {**f, "model1_best.pt": f["model0_best.pt"]}, "a checkpoint of model 2, and the run has 1"),
    (lambda f: {**f, "curves.png": b"GIF89a not a png"}, "curves.png: not a PNG picture"),
    (lambda f: {**{f"a/{k}": v for k, v in f.items()}, "b/config.json": f["config.json"]}, "more than one folder"),
    (lambda f: {**f, "a/b/config.json": b"{}"}, "a folder inside the run's folder"),
])
def test_an_untrusted_zip_is_refused_naming_its_problem_and_leaves_nothing(tmp_path, change, problem):
    source, store = RunStore(tmp_path / "src"), RunStore(tmp_path / "runs")
    path = crafted(tmp_path, change(good_files(source)), links=("curves.png",) if problem == "a link" else ())
    before = folders(store)
    with pytest.raises(ImportRefused, match=problem.replace("(", r"\(").replace(")", r"\)")):
        import_zip(path, store)
    assert folders(store) == before  # nothing written, no temporary folder left
    assert not (tmp_path / "pwned").exists()


def torch_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def test_a_temporary_import_folder_left_by_a_killed_process_goes_at_the_next_import(tmp_path):
    store = RunStore(tmp_path / "runs")
    stale, fresh = store.root / ".import-0123456789ab", store.root / ".import-ba9876543210"
    for folder in (stale, fresh):
        folder.mkdir()
        (folder / "config.json").write_text("{}")
    os.utime(stale, (0, 0))
    (tmp_path / "x.zip").write_bytes(b"nope")
    with pytest.raises(ImportRefused):
        import_zip(tmp_path / "x.zip", store)
    assert not stale.exists() and fresh.exists()  # (another import may be writing the fresh one now)


def test_what_is_not_a_zip_is_refused(tmp_path):
    (tmp_path / "x.zip").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(ImportRefused, match="not a zip file"):
        import_zip(tmp_path / "x.zip", RunStore(tmp_path / "runs"))
    the_good = good_files(RunStore(tmp_path / "src"))
    assert json.loads(the_good["config.json"])["models"]  # (the fixture is a run)
