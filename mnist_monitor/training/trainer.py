"""The trainer: trains 1 to 4 MNISTNet models interleaved, batch by batch, and records the run
folder. It runs wherever a run trains: the server's thread, a Ray worker, or ``train.py``."""
from __future__ import annotations

import logging
import secrets
import threading
import time

import torch

from mnist_monitor.config import ConfigError, TrainConfig
from mnist_monitor.data import MNISTTensors, load_mnist
from mnist_monitor.runstore import ModelStatus, Run, Superseded, WriteError
from mnist_monitor.training.checkpoints import ResumeError, Resumption
from mnist_monitor.training.hardware import resolve_precision, select_device, set_up_device
from mnist_monitor.training.recorder import STATUS_INTERVAL, Recorder, TrainingError, evaluations, planned_models
from mnist_monitor.training.steps import ModelRun, build_model_run, evaluate
from mnist_monitor.training.time_left import TimeLeft, spoken

log = logging.getLogger("train")

STOP_CHECK_INTERVAL = 0.5  # seconds between looks for a stop request file (a stat call)


class Trainer:
    """Trains the models of ``config`` interleaved batch by batch and records ``run_dir``.

    Use: ``Trainer(config, data_dir, run_dir).run()``; set ``stop_event`` (or write the run's stop
    request) to stop within one batch. ``on_step(trainer, model_run)`` is called after every
    training step (tests and benchmarks hook in there); ``layer_stats=False`` skips the per-layer
    statistics; ``pictures=False`` draws no pictures (no renderer process); ``monitor=False``
    (benchmarks) draws none either and writes the status only at state changes and epoch ends.
    ``resume``: go on from the folder's epoch-end checkpoints. ``node_id``: the Ray node (status).
    """

    def __init__(self, config: TrainConfig, data_dir, run_dir, stop_event: threading.Event | None = None,
                 monitor: bool = True, status_interval: float = STATUS_INTERVAL, progress_bar: bool = False,
                 on_step=None, layer_stats: bool = True, resume: bool = False, device: torch.device | None = None,
                 pictures: bool = True, node_id: str | None = None):
        self.config = config
        self.node_id = node_id  # the Ray node this trainer runs on, if Ray started it
        self.data_dir = data_dir
        self.folder = Run(run_dir)
        self.run_id = self.folder.run_id
        self.stop_event = stop_event or threading.Event()
        self.progress_bar = progress_bar
        self.on_step = on_step
        self.layer_stats = layer_stats  # measure how each layer learns at each curve point
        self.device = device or select_device(config.device)
        self.precision = resolve_precision(config.precision, self.device)
        self.resume = resume
        self.recorder = Recorder(self, monitor, status_interval, pictures=monitor and pictures)
        self.state = "starting"
        self.error: str | None = None
        self.started_at = self.time_zero = time.time()  # metrics "time" counts from time_zero
        self.finished_at: float | None = None
        self.resumes = 0
        self.models: list[ModelRun] = []
        self.n_train = self.n_eval = 0  # training images; validation + test images evaluated at each epoch end
        self.eval_seconds = 0.0  # wall time spent evaluating (benchmarks exclude it)
        self.time_left: TimeLeft | None = None  # from the loop's start
        self.restored_eval_seconds = 0.0  # evaluation seconds of the attempts before a resume
        self._resumption: Resumption | None = None
        self._prepared = False
        self.reporter = None  # a sweep's TrialReporter, when the run is a trial of a sweep
        self.end_reason: str | None = None  # why the run ended early without an error (pruned)

    # ---------------------------------------------------------------- before training
    def prepare(self) -> None:
        """Claim the run folder and write its config (a queued run has it), facts and a 'starting'
        status, once. A resume is checked before anything is written (a refused resume changes
        nothing), then cuts metrics.jsonl back to the checkpoints it goes on from."""
        if self._prepared:
            return
        self._prepared = True
        if not self.resume:
            self._begin(self.folder.start_attempt(1, secrets.token_hex(8), on_superseded=self.stop_event.set))
            return
        try:  # no delete and no other resume between the check and the 'starting' status
            with self.folder.locked():
                self._resumption = r = Resumption.prepare(self.folder, len(self.config.models))
                self.started_at, self.resumes = r.started_at or self.started_at, r.resumes
                self.time_zero = time.time() - r.elapsed
                self._begin(self.folder.start_attempt(self.resumes + 1, secrets.token_hex(8),
                                                      on_superseded=self.stop_event.set))
        except FileNotFoundError:
            raise ResumeError(f"{self.folder.path} is not a run folder (it was deleted)") from None

    def _begin(self, attempt) -> None:
        try:
            self.recorder.begin(attempt, self._resumption)
        except BaseException:
            self.recorder.close()
            raise

    @property
    def ended(self) -> bool:
        """Whether the final status is written (what is left: releasing the writers)."""
        return self.recorder.final_written

    def close(self) -> None:
        """Release a trainer that will not run (its preparation failed)."""
        self.recorder.close()

    def planned_models(self) -> list[ModelStatus]:
        """The models shown before they are built: as configured, or as a resumed run left them."""
        return (self._resumption and self._resumption.models) or planned_models(self.config)

    def status(self) -> dict:
        return self.recorder.status().to_dict()

    # ---------------------------------------------------------------- training
    def run(self) -> dict:
        """Train to the end, a stop, or an error; returns the final status. Never raises for a
        training failure: the run ends 'failed' with the message in status and log."""
        superseded = False
        try:
            set_up_device(self.device)
            self.prepare()
            data = load_mnist(self.data_dir, self.config.train_samples).to(self.device)
            self.n_train, self.n_eval = data.train_x.shape[0], data.val_x.shape[0] + data.test_x.shape[0]
            self.models = [build_model_run(i, mc, self.config, self.n_train, self.device)
                           for i, mc in enumerate(self.config.models)]
            self._restore()
            self.reporter = sweep_reporter(self.folder, len(self.models), self.config.epochs)
            self.recorder.start_pictures([m.name for m in self.models],
                                         self._resumption.kept_rows if self._resumption else [])
            self.state = "running"
            self.recorder.write_status(force=True)
            log.info("run %s: %d model(s) on %s, precision %s, %d training images, %d epochs", self.run_id,
                     len(self.models), self.device, self.precision, self.n_train, self.config.epochs)
            self._train(data)
            self.state = "pruned" if self.end_reason else "stopped" if self.stop_event.is_set() else "finished"
        except Superseded as exc:
            superseded = True
            log.warning("%s", exc)
        except Exception as exc:  # any failure ends the run as 'failed' with a readable message
            self.state = "failed"
            known = (TrainingError, ConfigError, ResumeError, WriteError)
            self.error = str(exc) if isinstance(exc, known) else f"{type(exc).__name__}: {exc}"
            log.exception("run %s failed", self.run_id)
        finally:
            self.finished_at = time.time()
            if superseded:
                self.recorder.close()
            else:
                self.recorder.end()
        log.info("run %s %s", self.run_id, self.state)
        return self.status()

    def _restore(self) -> None:
        if self._resumption:
            self._resumption.apply(self.models, self.device)
            self.restored_eval_seconds = sum(m.eval_seconds for m in self.models)

    def _train(self, data: MNISTTensors) -> None:
        """The loop: the model furthest behind takes the next step (the curves stay side by side);
        a window of steps makes a curve point, an epoch's end an evaluation and a checkpoint."""
        bar = progress_bar(self.models, self.run_id) if self.progress_bar else None
        self.time_left = TimeLeft(total_images=len(self.models) * self.config.epochs * self.n_train,
                                  epochs=self.config.epochs, eval_images=self.n_eval, models=len(self.models),
                                  done_images=sum(m.samples for m in self.models), evaluations=evaluations(self.models),
                                  closing_seconds=self.recorder.closing_seconds(len(self.models)))
        next_stop_check = time.perf_counter()
        try:
            while not self.stop_event.is_set() and not self.end_reason and (m := self._next_model()) is not None:
                probe = self.layer_stats and m.window_ends(self.n_train, m.step + 1)
                m.train_step(data, self.device, self.precision, probe=probe)
                if self.on_step is not None:
                    self.on_step(self, m)
                if bar is not None:
                    bar.update(1)
                if m.window_ends(self.n_train):
                    epoch_end = m.step % m.batches == 0
                    self.recorder.curve_point(m, epoch_end)
                    if epoch_end:
                        self._end_epoch(m, data)
                    self.recorder.write_status(force=epoch_end)
                    if bar is not None:
                        bar.set_postfix_str(spoken(self.time_left.seconds()), refresh=False)
                if time.perf_counter() >= next_stop_check:
                    next_stop_check = time.perf_counter() + STOP_CHECK_INTERVAL
                    if self.folder.stop_requested():  # a stop from the page, for any process that trains
                        self.stop_event.set()
            if self.stop_event.is_set():
                self.recorder.stopped()
        finally:
            self.recorder.metrics.flush()  # a failing run keeps every line it computed
            if bar is not None:
                bar.close()
        if self.stop_event.is_set():
            self.state = "stopping"
            self.recorder.write_status(force=True)

    def _next_model(self) -> ModelRun | None:
        unfinished = [m for m in self.models if not m.done]
        return min(unfinished, key=lambda r: (r.progress, r.index)) if unfinished else None

    def _end_epoch(self, m: ModelRun, data: MNISTTensors) -> None:
        """Validation and test figures, then checkpoints and pictures. Nothing is recorded if a stop
        comes during the evaluation (no half-evaluated epoch)."""
        started = time.perf_counter()
        val = evaluate(m.model, data.val_x, data.val_y, self.device, self.precision, self.stop_event)
        test = val and evaluate(m.model, data.test_x, data.test_y, self.device, self.precision, self.stop_event)
        seconds = time.perf_counter() - started
        self.eval_seconds += seconds
        if val is not None and test is not None:
            self.recorder.epoch_end(m, val, test, seconds, data)
            self._report(m.step // m.batches, m.index, val.accuracy)

    def _report(self, epoch: int, model_index: int, val_accuracy: float) -> None:
        """A sweep's trial: each epoch's result goes to the study; the pruner's verdict is taken
        before the next epoch starts."""
        if self.reporter is None:
            return
        try:
            self.end_reason = self.reporter.epoch_end(epoch, model_index, val_accuracy)
        except Exception as exc:  # the sweep's journal is unreadable or gone: the run itself goes on
            log.warning("run %s: could not report epoch %d to its sweep (%s: %s); it trains to the end",
                        self.run_id, epoch, type(exc).__name__, exc)
            self.reporter = None



def progress_bar(models: list[ModelRun], run_id: str):
    """The command line's progress bar. tqdm's own "remaining" leaves out the evaluations and
    follows the first, slow steps: the run's estimate replaces it."""
    from tqdm import tqdm
    return tqdm(total=sum(m.total_steps - m.step for m in models), unit="batch", desc=run_id,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}, {rate_fmt}{postfix}]",
                postfix=spoken(None))


def sweep_reporter(folder: Run, models: int, epochs: int):
    """The run's TrialReporter if its facts say it is a trial of a sweep (Optuna is imported only then)."""
    facts = folder.facts()
    if not isinstance(facts.get("sweep"), dict):
        return None
    from mnist_monitor.sweeps.reporter import reporter_for
    return reporter_for(folder.path, facts, models, epochs)
