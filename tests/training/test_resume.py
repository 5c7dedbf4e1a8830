"""Resume: a run cut off (stopped, failed, killed) goes on from its last epoch-end checkpoints,
with its metrics continuous and its result the one an uninterrupted run gets."""
import json
import shutil

import pytest

from mnist_monitor.training import trainer as train
from mnist_monitor.training.checkpoints import ResumeError
from mnist_monitor.runstore.files import read_json, read_jsonl

METRICS_FILE = "metrics.jsonl"
from mnist_monitor.config import parse_train_config
from helpers import FIXTURE_ID, FIXTURE_RUNS as FIXTURE, steps_and_epochs, tiny_config
from mnist_monitor.runstore import Run, RunStore


def train_run(run_dir, data_dir, config, **options):
    trainer = train.Trainer(config, data_dir, run_dir, status_interval=0.05, pictures=False, **options)
    return trainer, trainer.run()


def stop_at(model_index: int, step: int):
    def on_step(trainer, m):
        if m.index == model_index and m.step == step:
            trainer.stop_event.set()
    return on_step


@pytest.mark.slow  # over 2 s on a 2-core CPU: the whole suite runs it
@pytest.mark.parametrize("batch_sizes", [(64,), (64, 32), (32, 64)])  # which model ends an epoch last differs
def test_a_run_stopped_in_epoch_2_resumes_to_the_uninterrupted_result(tmp_path, tiny_mnist, batch_sizes):
    models = len(batch_sizes)
    config = tiny_config(epochs=3, models=[{"kernels": [4, 8, 8, 8], "batch_size": b} for b in batch_sizes])
    _, whole = train_run(tmp_path / "whole", tiny_mnist, config)
    batches = whole["models"][0]["batches"]
    _, cut = train_run(tmp_path / "cut", tiny_mnist, config, on_step=stop_at(0, batches + batches // 2))
    assert cut["state"] == "stopped" and cut["models"][0]["epoch"] == 2
    trainer, resumed = train_run(tmp_path / "cut", tiny_mnist, config, resume=True)
    assert resumed["state"] == "finished" and resumed["resumes"] == 1 and resumed["run_id"] == "cut"
    assert resumed["started_at"] == cut["started_at"]  # the same run, started when it first started
    rows, reference = read_jsonl(tmp_path / "cut" / METRICS_FILE), read_jsonl(tmp_path / "whole" / METRICS_FILE)
    for model in range(models):
        steps, evals = steps_and_epochs(rows, model)
        assert steps == sorted(set(steps)), "a step is in metrics.jsonl twice"
        assert evals == [1, 2, 3]  # each epoch evaluated once
        assert (steps, evals) == steps_and_epochs(reference, model)
        ours = [r["loss"] for r in rows if r["kind"] == "train" and r["model"] == model]
        theirs = [r["loss"] for r in reference if r["kind"] == "train" and r["model"] == model]
        assert ours == pytest.approx(theirs, rel=1e-4)  # the same steps on the same data and RNG
        assert resumed["models"][model]["test_accuracy"] == pytest.approx(whole["models"][model]["test_accuracy"], abs=0.3)
    times = [r["time"] for r in rows]
    assert max(b - a for a, b in zip(times, times[1:])) < 30  # no gap for the pause
    assert len(read_json(tmp_path / "cut" / "run.json")["resumed_at"]) == 1


def test_a_failed_run_resumes_and_a_run_without_checkpoint_cannot(tmp_path, tiny_mnist):
    config = tiny_config(epochs=2)

    def explode_in_epoch_2(trainer, m):
        if m.index == 0 and m.step == m.batches + 2:
            raise RuntimeError("simulated crash")

    _, failed = train_run(tmp_path / "a", tiny_mnist, config, on_step=explode_in_epoch_2)
    assert failed["state"] == "failed"
    with open(tmp_path / "a" / METRICS_FILE, "ab") as f:
        f.write(b'{"kind":"train","mod')  # a line cut off by a crash: not glued to the first new one
    _, resumed = train_run(tmp_path / "a", tiny_mnist, config, resume=True)
    assert resumed["state"] == "finished" and resumed["error"] is None
    lines = (tmp_path / "a" / METRICS_FILE).read_bytes().splitlines()
    assert all(json.loads(line) for line in lines)  # every line whole
    steps, evals = steps_and_epochs(read_jsonl(tmp_path / "a" / METRICS_FILE), 0)
    assert evals == [1, 2] and steps == sorted(set(steps)) and steps[-1] == 2 * resumed["models"][0]["batches"]
    with pytest.raises(ResumeError, match="finished: there is nothing to resume"):
        train.Trainer(config, tiny_mnist, tmp_path / "a", resume=True).prepare()
    _, early = train_run(tmp_path / "b", tiny_mnist, config, on_step=stop_at(0, 2))
    assert early["state"] == "stopped"
    with pytest.raises(ResumeError, match="no epoch-end checkpoint"):
        train.Trainer(config, tiny_mnist, tmp_path / "b", resume=True).prepare()
    assert read_json(tmp_path / "b" / "status.json")["state"] == "stopped"  # a refused resume changes nothing


# ---------------------------------------------------------------- a run folder written by the version before


def losses(rows) -> list[tuple]:
    return [(r["kind"], r["model"], r["step"], r.get("loss", r.get("val_loss"))) for r in rows
            if r["kind"] in ("train", "eval")]


def test_a_run_stopped_by_the_version_before_resumes_to_its_uninterrupted_result(tmp_path, tiny_mnist):
    shutil.copytree(FIXTURE / FIXTURE_ID, tmp_path / FIXTURE_ID)
    run = Run(tmp_path / FIXTURE_ID)
    status = train.Trainer(parse_train_config(run.config()), tiny_mnist, run.path, resume=True, pictures=False).run()
    assert status["state"] == "finished" and status["resumes"] == 1
    ours, theirs = losses(run.metrics()), losses(read_jsonl(FIXTURE / "uninterrupted-metrics.jsonl"))
    assert [r[:3] for r in ours] == [r[:3] for r in theirs]
    assert [r[3] for r in ours] == pytest.approx([r[3] for r in theirs], rel=1e-4)


def test_its_config_posted_back_repeats_it_with_the_seed_scheme_it_was_written_with(tmp_path, tiny_mnist):
    shutil.copytree(FIXTURE / FIXTURE_ID, tmp_path / "runs" / FIXTURE_ID)
    store = RunStore(tmp_path / "runs")
    body = store.run(FIXTURE_ID).config()
    assert body["seed_scheme"] == 1
    for scheme, same in ((1, True), (2, False)):
        again = store.create()
        train.Trainer(parse_train_config(dict(body, seed_scheme=scheme)), tiny_mnist, again.path, pictures=False).run()
        got, reference = losses(again.metrics()), losses(read_jsonl(FIXTURE / "uninterrupted-metrics.jsonl"))
        # the same rows, and losses equal up to float rounding (CPUs with other vector units round otherwise)
        close = ([r[:3] for r in got] == [r[:3] for r in reference]
                 and [r[3] for r in got] == pytest.approx([r[3] for r in reference], rel=1e-4))
        assert close is same, scheme
        assert again.facts()["seed_scheme"] == scheme
