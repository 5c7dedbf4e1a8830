"""What a run writes besides training itself: curve windows as metrics rows, the status with its
time left, epoch-end figures, checkpoints and pictures. All of it through the run's ``Attempt``."""
from __future__ import annotations

import logging
import math
import os
import platform
import socket
import threading
import time

import numpy as np
import torch

from mnist_monitor import metrics as metric_kinds
from mnist_monitor.config import TrainConfig
from mnist_monitor.data import MNISTTensors
from mnist_monitor.runstore import (QUEUED_STATE, Attempt, MetricsWriter, ModelStatus, RunStatus, StatusWriter,
                                    metrics_row)
from mnist_monitor.training.checkpoints import Resumption, save_checkpoints
from mnist_monitor.training.renderer import ERROR_COUNT, SAMPLE_COUNT, CurvePoints, EpochImage, RenderClient
from mnist_monitor.training.steps import Evaluation, ModelRun
from mnist_monitor.training.time_left import CLOSING_SECONDS_PER_MODEL
from model import describe

log = logging.getLogger("train")

HOST_NAME = socket.gethostname()  # where a run trains, in its status
FLUSH_INTERVAL = 0.5  # seconds between appends of new metrics lines (and at every epoch end)
STATUS_INTERVAL = 1.0  # seconds between status.json writes: at most one fsync a second


class TrainingError(RuntimeError):
    """Training cannot go on (a loss that is not finite, say); the message is for the user."""


def evaluations(models: list[ModelRun]) -> list[tuple[int, float]]:
    """Per model, the epoch-end evaluations done and their seconds (what the time left needs)."""
    return [(m.evals, m.eval_seconds) for m in models]


def planned_models(config: TrainConfig) -> list[ModelStatus]:
    """The models of a run as configured, before any is built (queued, or starting)."""
    return [ModelStatus(name=mc.name, kernels=list(mc.kernels), optimizer=mc.optimizer,
                        learning_rate=mc.learning_rate, batch_size=mc.batch_size,
                        parameters=describe(mc.kernels)["total_parameters"], epoch=0, epochs=config.epochs,
                        batch=0, batches=0, color=mc.color) for mc in config.models]


def planned_status(config: TrainConfig, run_id: str) -> RunStatus:
    """The status of a run that waits in the queue: its models as configured, nothing trained."""
    return RunStatus(state=QUEUED_STATE, run_id=run_id, lr_schedule=config.lr_schedule, updated_at=time.time(),
                     models=planned_models(config))


class Recorder:
    """Writes one attempt at a run: ``begin`` (facts, config, first status), ``curve_point`` after
    a window of steps, ``epoch_end`` after an evaluation, ``end`` with the final state."""

    def __init__(self, trainer, monitor: bool, status_interval: float, pictures: bool = True):
        self.trainer = trainer  # read for the status: state, models, timing
        self.monitor = monitor  # the status every ``status_interval`` seconds, not only at state changes
        self.pictures = pictures
        self.status_interval = status_interval
        self.attempt: Attempt | None = None
        self.metrics: MetricsWriter | None = None
        self.renderer: RenderClient | None = None
        self._status_writer: StatusWriter | None = None
        self._status_lock = threading.Lock()
        self._last_status = 0.0
        self.final_written = False  # nothing may replace the final status

    # ---------------------------------------------------------------- the start
    def begin(self, attempt: Attempt, resumption: Resumption | None) -> None:
        """The run's config (a queued run has it already), its facts, and a 'starting' status."""
        t = self.trainer
        self.attempt = attempt
        self._status_writer = StatusWriter(attempt.write_status)
        self.metrics = MetricsWriter(attempt.append_metrics, FLUSH_INTERVAL, self._flushed)
        if resumption:
            resumption.cut_metrics(attempt)
        if not resumption and not attempt.run.has_config():
            attempt.write_config(t.config.to_dict())
        facts = {"run_id": t.run_id, "started_at": t.started_at, **attempt.run.facts()}  # a sweep's trial has some
        if resumption:
            facts["resumed_at"] = facts.get("resumed_at", []) + [time.time()]
        facts.update(device=str(t.device), precision=t.precision, seed_scheme=t.config.seed_scheme,
                     torch_version=torch.__version__, python_version=platform.python_version())
        attempt.write_facts(facts)
        self.write_status(force=True)

    def start_pictures(self, names: list[str], kept_rows: list[dict]) -> None:
        if self.pictures:
            colors = [mc.color for mc in self.trainer.config.models]
            self.renderer = RenderClient(self.attempt.run.path, names, self.trainer.config.epochs, colors)
            if kept_rows:  # the curves so far, for curves.png
                self.renderer.send(CurvePoints(kept_rows))

    # ---------------------------------------------------------------- during training
    def curve_point(self, m: ModelRun, epoch_end: bool) -> None:
        """A curve window of ``m`` has ended: its rows (on disk at once at an epoch end)."""
        self.metrics.add(self.window_rows(m), flush=epoch_end)
        t = self.trainer
        t.time_left.observe(sum(r.samples for r in t.models), t.eval_seconds)

    def window_rows(self, m: ModelRun) -> list[dict]:
        """The window's curve point, and how each layer learned in its last step (if measured)."""
        loss, accuracy = m.read_window()
        if not math.isfinite(loss):
            epoch = m.epoch_index + 1 if m.step % m.batches else m.epoch_index
            raise TrainingError(
                f"{m.name}: the training loss became {loss} in epoch {max(epoch, 1)}; "
                f"the learning rate ({m.config.learning_rate:g}) is probably too high")
        where = {"model": m.index, "step": m.step, "epoch": round(m.step / m.batches, 4), "time": self.clock()}
        return produced_rows("window", metric_kinds.Window(m, loss, accuracy), where)

    def epoch_end(self, m: ModelRun, val: Evaluation, test: Evaluation, seconds: float, data: MNISTTensors) -> None:
        """Validation and test figures (on disk first), then checkpoints and the epoch's pictures."""
        t = self.trainer
        epoch = m.step // m.batches
        best = m.evaluated(epoch, seconds, val.accuracy)
        t.time_left.evaluated(evaluations(t.models))
        matrix = confusion_matrix(test.predictions, data)
        where = {"model": m.index, "step": m.step, "epoch": epoch, "time": self.clock()}
        self.metrics.add(produced_rows("epoch_end", metric_kinds.EpochEnd(m, val, test, matrix), where), flush=True)
        log.info("%s epoch %d/%d: loss %.4f, train %.2f%%, validation %.2f%%, test %.2f%%", m.name, epoch,
                 t.config.epochs, m.last["loss"], m.last["accuracy"], val.accuracy, test.accuracy)
        save_checkpoints(self.attempt, m, epoch, val.accuracy, test.accuracy, best,
                         run_steps=sum(model.step for model in t.models))
        wrong = torch.nonzero(test.predictions != data.test_y).flatten()[:ERROR_COUNT].tolist()
        self.attempt.write_confusion(m.index, {"model": m.name, "epoch": epoch, "matrix": matrix.tolist(),
                                               "errors": wrong})
        if self.renderer:
            for image in epoch_images(m, epoch, test.predictions, matrix, data):
                self.renderer.send(image)

    def stopped(self) -> None:
        """A stop: the steps since each model's last curve point are kept too."""
        self.metrics.add([row for m in self.trainer.models if m.window_steps for row in self.window_rows(m)])

    def _flushed(self, rows: list[dict]) -> None:
        """Rows that reached metrics.jsonl: into the status, and to the renderer."""
        for row in rows:
            self.trainer.models[row["model"]].record(row)
        if self.renderer:
            self.renderer.send(CurvePoints(rows))

    def clock(self) -> float:
        """Seconds of the run so far, for the metrics' "time" (a resumed run goes on without the pause)."""
        return time.time() - self.trainer.time_zero

    # ---------------------------------------------------------------- the status
    def closing_seconds(self, models: int) -> float:
        """How long the run's end waits for its last pictures (none without pictures)."""
        return CLOSING_SECONDS_PER_MODEL * models if self.pictures else 0.0

    def eta_seconds(self) -> float | None:
        """Seconds left, evaluations included; None until the pace is known (the page: "estimating")."""
        t = self.trainer
        return t.time_left.seconds() if t.time_left is not None else None

    def status(self) -> RunStatus:
        t = self.trainer
        state = t.state
        if state in ("starting", "running") and t.stop_event.is_set():
            state = "stopping"
        eta = self.eta_seconds() if state == "running" else 0.0 if state == "finished" else None
        eta = None if eta is None else round(eta, 1)
        return RunStatus(
            state=state, run_id=t.run_id, pid=os.getpid(), device=t.device.type, host=HOST_NAME, node_id=t.node_id,
            precision=t.precision,
            lr_schedule=t.config.lr_schedule, train_images=t.n_train or None, error=t.error, end_reason=t.end_reason,
            started_at=t.started_at, updated_at=time.time(), finished_at=t.finished_at, eta_seconds=eta,
            eval_seconds=round(t.eval_seconds + t.restored_eval_seconds, 3), resumes=t.resumes,
            elapsed_seconds=round((t.finished_at or time.time()) - t.time_zero, 1),
            models=[m.status(t.config.epochs, eta) for m in t.models] or t.planned_models())

    def write_status(self, force: bool = False, final: bool = False) -> None:
        """Submit the status (forced: state changes, epoch ends; those are on disk on return). Built
        and submitted under one lock, so nothing lands after the final one."""
        now = time.monotonic()
        if self._status_writer is None or not (
                force or (self.monitor and now - self._last_status >= self.status_interval)):
            return
        with self._status_lock:
            if self.final_written:
                return
            self._last_status = now
            ticket = self._status_writer.submit(self.status().to_dict())
            self.final_written = final
        if force:
            self._status_writer.wait(ticket)

    # ---------------------------------------------------------------- the end
    def end(self) -> None:
        """The final status, the last pictures, no more heartbeats. A finished run shows 'finished'
        once its last pictures are drawn; a stopped one at once (a server shutting down waits a few
        seconds at most, not for the renderer)."""
        stopped = self.trainer.state == "stopped"
        if self.renderer and not stopped:
            self.renderer.close()
        self.write_status(force=True, final=True)
        if self.renderer and stopped:
            self.renderer.close()
        self.close()

    def close(self) -> None:
        """Release what this attempt holds (also when it never ran)."""
        if self._status_writer is not None:
            self._status_writer.close()
        if self.attempt is not None:
            self.attempt.end()


def produced_rows(moment: str, at, where: dict) -> list[dict]:
    """The rows of every metric kind produced at ``moment`` (a kind may have none this time)."""
    return [metrics_row(kind.name, **where, **values) for kind in metric_kinds.at(moment)
            if (values := kind.produce(at)) is not None]


def confusion_matrix(predictions: torch.Tensor, data: MNISTTensors) -> np.ndarray:
    """[true digit][predicted digit] counts over the test set."""
    labels, preds = data.test_y.cpu().numpy(), predictions.cpu().numpy()
    return np.bincount(labels * 10 + preds, minlength=100).reshape(10, 10)


def epoch_images(m: ModelRun, epoch: int, predictions: torch.Tensor, matrix: np.ndarray,
                 data: MNISTTensors) -> list[EpochImage]:
    """The epoch-end pictures of one model: sample digits, misclassified digits, confusion matrix,
    the first layer's filters."""
    preds = predictions.cpu().numpy()
    labels = data.test_y.cpu().numpy()
    raw = data.test_raw.numpy()
    k = min(SAMPLE_COUNT, len(labels))
    title = f"{m.name}, epoch {epoch}"
    wrong = np.flatnonzero(preds != labels)
    shown = wrong[:ERROR_COUNT]
    return [
        EpochImage("samples", m.index, "digits",
                   (f"{title}: test digits 1-{k}", raw[:k], preds[:k], labels[:k], SAMPLE_COUNT)),
        EpochImage("errors", m.index, "digits",
                   (f"{title}: {len(wrong)} of {len(labels)} test digits misclassified (first {len(shown)})",
                    raw[shown], preds[shown], labels[shown], ERROR_COUNT)),
        EpochImage("confusion", m.index, "confusion", (f"{title}: confusion matrix (test)", matrix)),
        EpochImage("filters", m.index, "filters",
                   (f"{title}: the {m.config.kernels[0]} filters of conv 1", first_conv_weights(m.model))),
    ]


def first_conv_weights(model: torch.nn.Module) -> np.ndarray:
    """The 3x3 kernels of the first conv layer, [k1, 1, 3, 3], as numbers on the CPU."""
    conv = next(layer for layer in model.features if isinstance(layer, torch.nn.Conv2d))
    return conv.weight.detach().float().cpu().numpy()
