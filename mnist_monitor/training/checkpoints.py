"""Epoch-end checkpoints: the weights to download and use, and what a cut-off run needs to go on
exactly (optimizer, schedule, RNG states, step); checking, loading and applying a resume."""
from __future__ import annotations

import io
from dataclasses import dataclass

import torch

from mnist_monitor.runstore import ACTIVE_STATES, BROKEN_STATE, QUEUED_STATE, RESUMABLE_STATES, Attempt, Run
from mnist_monitor.runstore import snapshot as snapshot_of


class ResumeError(ValueError):
    """A run cannot be resumed (no checkpoint to go on from); the message is for the user."""


def save_checkpoints(attempt: Attempt, m, epoch: int, val_accuracy: float, test_accuracy: float, best: bool,
                     run_steps: int) -> None:
    """Model run ``m`` after ``epoch`` as its latest checkpoint (with what a resume needs), and as
    its best one if ``best`` (weights only: the file to download and use)."""
    checkpoint = {"kernels": list(m.config.kernels), "name": m.name, "epoch": epoch,
                  "val_accuracy": val_accuracy, "test_accuracy": test_accuracy,
                  "state_dict": {k: v.detach().cpu().contiguous() for k, v in m.model.state_dict().items()}}
    attempt.write_checkpoint(m.index, "latest", torch_bytes(dict(checkpoint, resume=m.resume_state(run_steps))))
    if best:
        attempt.write_checkpoint(m.index, "best", torch_bytes(checkpoint))


def torch_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def to_cpu(obj):
    """A state dict with every tensor copied to the CPU (a checkpoint loads on any device)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


def check_can_resume(run: Run) -> None:
    """Raise ResumeError unless ``run`` was cut off: stopped, failed or interrupted (a run whose
    trainer stopped beating was interrupted)."""
    try:
        snapshot = snapshot_of(run)
    except OSError:
        snapshot = None
    if snapshot is None or snapshot.status is None and snapshot.state != BROKEN_STATE:
        raise ResumeError(f"{run.path} is not a run folder (it has no status.json and config.json)")
    state, run_id = snapshot.state, run.run_id
    if state == BROKEN_STATE:
        raise ResumeError(f"run {run_id} is broken ({snapshot.problem}): it can be deleted, not resumed")
    if state in ACTIVE_STATES:
        raise ResumeError(f"run {run_id} is being trained (its trainer is alive)")
    if state == "finished":
        raise ResumeError(f"run {run_id} finished: there is nothing to resume")
    if state == QUEUED_STATE:
        raise ResumeError(f"run {run_id} is queued: it starts by itself after the runs before it")
    if state not in RESUMABLE_STATES:
        raise ResumeError(f"run {run_id} is {state!r}: only a stopped, failed or interrupted run can be resumed")


def resume_points(run: Run, n_models: int) -> dict[int, dict]:
    """{model index: its latest epoch-end checkpoint} of a run that is to go on; a model without
    one starts from the beginning. Raises ResumeError if there is nothing to go on from."""
    points = {}
    for index in range(n_models):
        path = run.checkpoint(index, "latest")
        if path is None:
            continue
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a damaged file: say which, and why
            raise ResumeError(f"the checkpoint {path} cannot be read ({type(exc).__name__}: {exc})") from exc
        if "resume" not in checkpoint:
            raise ResumeError(f"the checkpoint {path} holds only weights (written before runs could be "
                              "resumed): start the run again instead")
        points[index] = checkpoint
    if not points:
        raise ResumeError("the run has no epoch-end checkpoint to go on from (it was cut off in its first "
                          "epoch): start it again instead")
    return points


@dataclass
class Resumption:
    """A run going on: the checkpoints it starts from, the metrics rows it keeps, its clock."""
    points: dict[int, dict]  # model index -> its latest checkpoint
    kept_rows: list[dict]  # metrics rows up to each model's checkpoint
    started_at: float | None  # when the run first started
    resumes: int  # this resume included
    elapsed: float  # seconds of the run's metrics clock so far (its "time" goes on from here)
    models: list  # the models (ModelStatus) as the status last showed them (shown while they are rebuilt)

    @classmethod
    def prepare(cls, run: Run, n_models: int) -> "Resumption":
        """Check that the run can go on and load its checkpoints; nothing is written."""
        check_can_resume(run)
        previous = run.status()
        points = resume_points(run, n_models)
        steps = {i: c["resume"]["step"] for i, c in points.items()}
        kept = [r for r in run.metrics()
                if isinstance(r.get("step"), int) and r.get("step") <= steps.get(r.get("model"), 0)]
        return cls(points, kept, previous.started_at, previous.resumes + 1,
                   max((r.get("time") or 0.0 for r in kept), default=0.0), previous.models)

    def cut_metrics(self, attempt: Attempt) -> None:
        """metrics.jsonl without the rows after each model's checkpoint: those steps are trained
        again, so the file never holds a step twice. Always rewritten, so a line torn by a crash is
        not glued to the first new one."""
        attempt.rewrite_metrics(self.kept_rows)

    def apply(self, models: list, device: torch.device) -> None:
        """The model runs as their checkpoints left them, their status figures from the kept rows.
        Dropout draws from one global RNG: its state at the checkpoint written last, from where
        the uninterrupted run went on. Exact when every model's checkpoint is from the same epoch
        end (the models reach it within a few batches of each other); a model one epoch behind
        (cut off between two models' epoch ends) draws other dropout masks than it would have."""
        for index, checkpoint in self.points.items():
            models[index].restore(checkpoint)
        last = max(self.points, key=lambda i: self.points[i]["resume"]["run_steps"])
        state = self.points[last]["resume"]
        torch.set_rng_state(state["rng"])
        if state["cuda_rng"] is not None and device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"])
        for row in self.kept_rows:
            if row.get("model") in range(len(models)):
                models[row["model"]].record(row)
