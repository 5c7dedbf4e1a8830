"""Training worker: trains 1 to 4 MNISTNet models interleaved and writes the run folder.

Also a command-line trainer: ``python train.py --kernels 32,64,64,64 --epochs 1``.
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import logging
import math
import os
import platform
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from config import (DATA_DIR_ENV, DEFAULT_KEEP_RUNS, DEFAULT_KERNELS, DEFAULT_RUNS_DIR, MAX_MODELS, SHARED_KEYS,
                    ConfigError, ModelConfig, TrainConfig, default_data_dir, parse_kernels_text, parse_train_config,
                    public_config)
from checkpoints import ResumeError, Resumption, save_checkpoints, to_cpu
from data import MNISTTensors, load_mnist
from layerstats import LayerProbe
from model import MNISTNet, describe
from plots import CurvePoints, EpochImage, RenderClient
from runstore import (CONFIG_FILE, METRICS_FILE, QUEUED_STATE, RUN_INFO_FILE, STATUS_FILE, STOP_FILE, MetricsWriter,
                      ModelStatus, RunStatus, RunStore, StatusWriter, WriteError, atomic_write_json, confusion_name,
                      image_name, metrics_row, read_json)

log = logging.getLogger("train")

EVAL_BATCH = 2000  # images per evaluation forward pass (no_grad: no activations kept)
SAMPLE_COUNT = 16  # fixed test digits shown with their predictions
ERROR_COUNT = 24  # misclassified test digits shown per model
POINTS_PER_EPOCH = 25  # training-curve points per epoch and model (each a window mean), at most
MIN_WINDOW_IMAGES = 128  # fewer points in small epochs: a window of a few images is mostly noise
FLUSH_INTERVAL = 0.5  # seconds between appends of new metrics lines (and at every epoch end)
STATUS_INTERVAL = 1.0  # seconds between status.json writes: at most one fsync a second
STOP_CHECK_INTERVAL = 0.5  # seconds between looks for a stop request file (a stat call)
FORWARD_SHARE = 0.22  # evaluation (batches of 2,000, no grad) per image over a training step per image:
# measured 0.21 for [16,32,32,32] and 0.23 for [32,64,64,64] on a 2-core EPYC


class TrainingError(RuntimeError):
    """Training cannot go on (a loss that is not finite, say); the message is for the user."""


# ---------------------------------------------------------------- hardware set-up

_malloc_tuned = False


def tune_malloc() -> bool:
    """Keep glibc from returning big conv buffers to the OS after every step.

    By default glibc serves allocations over 32 MiB-ish by mmap and unmaps them on free, so each
    training step page-faults its buffers back in (high sys time). Raising the mmap and trim
    thresholds to 1 GiB keeps them in the heap: about 1.9x more images/s measured on a 2-core
    EPYC (1,580 against 830 images/s for Model 1, fp32). No-op off Linux/glibc. Returns whether it applied.
    """
    global _malloc_tuned
    if _malloc_tuned:
        return True
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        one_gib = 1 << 30
        _malloc_tuned = bool(libc.mallopt(M_MMAP_THRESHOLD, one_gib)) and bool(libc.mallopt(M_TRIM_THRESHOLD, one_gib))
    except OSError:
        return False
    return _malloc_tuned


def select_device(name: str = "auto") -> torch.device:
    """cuda, else mps, else cpu; a named device that is not available is a ConfigError."""
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name == "cuda" and not cuda:
        raise ConfigError("device", "CUDA was requested but no CUDA GPU is available")
    if name == "mps" and not mps:
        raise ConfigError("device", "MPS was requested but it is not available on this machine")
    return torch.device(name)


def cpu_has_native_bf16() -> bool:
    """True where the CPU computes bf16 natively (AVX512-BF16 or AMX), so autocast pays off."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = f.read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' -> 'bf16' where the hardware runs it natively, else 'fp32'."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    return "fp32"


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


# ---------------------------------------------------------------- evaluation

@dataclass(frozen=True)
class Evaluation:
    loss: float  # mean cross-entropy
    accuracy: float  # percent
    predictions: torch.Tensor  # predicted digit of every image, on the device


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device,
             precision: str, stop_event: threading.Event | None = None) -> Evaluation | None:
    """Loss, accuracy and predictions over a split, in batches of EVAL_BATCH; None if stopped."""
    model.eval()
    loss_sum = torch.zeros((), device=device)
    predictions = []
    try:
        for start in range(0, images.shape[0], EVAL_BATCH):
            if stop_event is not None and stop_event.is_set():
                return None
            x, y = images[start:start + EVAL_BATCH], labels[start:start + EVAL_BATCH]
            with autocast(device, precision):
                logits = model(x)
            loss_sum += nn.functional.cross_entropy(logits.float(), y, reduction="sum")
            predictions.append(logits.argmax(1))
    finally:
        model.train()
    predictions = torch.cat(predictions)
    accuracy = 100.0 * (predictions == labels).sum().item() / labels.shape[0]
    return Evaluation(loss_sum.item() / labels.shape[0], accuracy, predictions)


# ---------------------------------------------------------------- one model's training state

@dataclass
class ModelRun:
    index: int
    config: ModelConfig
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    batches: int  # per epoch
    total_steps: int
    generator: torch.Generator  # the order of the training images
    parameters: int
    loss_sum: torch.Tensor  # window accumulators, on the device: read (synced) only at a curve point
    correct_sum: torch.Tensor
    probe: LayerProbe  # how each layer learns, measured at the step that closes a window
    label_smoothing: float = 0.0
    step: int = 0
    order: torch.Tensor | None = None
    window_samples: int = 0
    window_steps: int = 0
    samples: int = 0
    compute_seconds: float = 0.0
    last: dict = field(default_factory=dict)  # figures already in metrics.jsonl, shown in the status
    best_val: float = -1.0  # validation accuracy of the best checkpoint
    best_epoch: int = 0  # the epoch of the best checkpoint
    eval_seconds: float = 0.0  # wall time of this model's evaluations
    evals: int = 0

    def record(self, row: dict) -> None:
        """Show in the status a metrics row that reached metrics.jsonl (and nothing before that)."""
        if row["kind"] == "train":
            self.last.update(loss=row["loss"], accuracy=row["accuracy"])
        elif row["kind"] == "eval":
            self.last.update(val_accuracy=row["val_accuracy"], test_accuracy=row["test_accuracy"])
            if row["epoch"] == self.best_epoch:  # the test accuracy of the checkpoint offered as best
                self.last["best_test_accuracy"] = row["test_accuracy"]

    def evaluated(self, epoch: int, seconds: float, val_accuracy: float) -> bool:
        """Count an epoch-end evaluation; True if it is the best so far (on validation)."""
        self.eval_seconds += seconds
        self.evals += 1
        best = val_accuracy > self.best_val
        if best:
            self.best_val, self.best_epoch = val_accuracy, epoch
        return best

    def seconds_left(self, epochs: int, n_train: int, n_eval: int, overhead: float) -> float:
        """Seconds of the steps (at the measured pace, times the loop's ``overhead``) and of the
        evaluations (as long as the last ones; estimated before the first) this model has left."""
        per_image = self.compute_seconds / self.samples
        per_eval = self.eval_seconds / self.evals if self.evals else n_eval * per_image * FORWARD_SHARE * overhead
        return (max(0, epochs * n_train - self.samples) * per_image * overhead
                + (epochs - self.step // self.batches) * per_eval)

    @property
    def name(self) -> str:
        return self.config.name

    def window_ends(self, n_train: int, step: int | None = None) -> bool:
        """Whether step number ``step`` (default: the one just taken) closes a curve window: an
        epoch is cut into equal windows (±1 batch), the last one ending with the epoch, so no
        point is a tiny leftover."""
        points = max(1, min(POINTS_PER_EPOCH, self.batches, n_train // MIN_WINDOW_IMAGES))
        within = (self.step if step is None else step) % self.batches or self.batches
        return within * points // self.batches > (within - 1) * points // self.batches

    @property
    def epoch_index(self) -> int:  # 0-based epoch the next step belongs to
        return self.step // self.batches

    @property
    def progress(self) -> float:
        return self.step / self.total_steps

    @property
    def done(self) -> bool:
        return self.step >= self.total_steps

    def train_step(self, data: MNISTTensors, device: torch.device, precision: str, probe: bool = False) -> None:
        """One batch, in the textbook order; loss and accuracy stay on the device. ``probe``: also
        measure how each layer learns in this step (at the end of a curve window)."""
        within = self.step % self.batches
        if within == 0:
            self.order = torch.randperm(data.train_x.shape[0], generator=self.generator,
                                        device=self.generator.device).to(device)
            self.model.train()
        idx = self.order[within * self.config.batch_size:(within + 1) * self.config.batch_size]
        x, y = data.train_x.index_select(0, idx), data.train_y.index_select(0, idx)
        started = time.perf_counter()
        if probe:
            self.probe.arm()
        with autocast(device, precision):
            logits = self.model(x)
            loss = nn.functional.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        if probe:
            self.probe.disarm()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if probe:
            self.probe.measure()
        if self.scheduler is not None:
            self.scheduler.step()
        with torch.no_grad():  # no host sync per batch
            self.loss_sum += loss.detach().float() * y.shape[0]
            self.correct_sum += (logits.argmax(1) == y).sum()
        self.compute_seconds += time.perf_counter() - started
        self.window_samples += y.shape[0]
        self.window_steps += 1
        self.samples += y.shape[0]
        self.step += 1

    def resume_state(self, run_steps: int) -> dict:
        """What continues this model exactly from now (an epoch end): optimizer, schedule, the
        data-order generator, the global RNG (dropout), step and counters; tensors on the CPU.
        ``run_steps``: the steps of all models so far, which orders the checkpoints in time."""
        return {"step": self.step, "run_steps": run_steps, "samples": self.samples, "compute_seconds": self.compute_seconds,
                "eval_seconds": self.eval_seconds, "evals": self.evals, "best_val": self.best_val,
                "best_epoch": self.best_epoch, "optimizer": to_cpu(self.optimizer.state_dict()),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "generator": self.generator.get_state(), "rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state() if self.generator.device.type == "cuda" else None}

    def restore(self, checkpoint: dict) -> None:
        """Continue from a checkpoint that ``resume_state`` went into (the RNG is set by the caller)."""
        state = checkpoint["resume"]
        self.model.load_state_dict(checkpoint["state_dict"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        for key in ("step", "samples", "compute_seconds", "eval_seconds", "evals", "best_val", "best_epoch"):
            setattr(self, key, state[key])

    def read_window(self) -> tuple[float, float]:
        """The window's mean loss and accuracy (%) (one host sync); starts a new window."""
        started = time.perf_counter()
        loss = (self.loss_sum / self.window_samples).item()
        accuracy = 100.0 * self.correct_sum.item() / self.window_samples
        self.compute_seconds += time.perf_counter() - started  # the sync waits for queued GPU work
        self.loss_sum.zero_()
        self.correct_sum.zero_()
        self.window_samples = self.window_steps = 0
        return loss, accuracy

    def status(self, epochs: int, eta_seconds: float | None) -> ModelStatus:
        mc = self.config
        return ModelStatus(
            name=mc.name, kernels=list(mc.kernels), optimizer=mc.optimizer, learning_rate=mc.learning_rate,
            batch_size=mc.batch_size, parameters=self.parameters, epoch=min(self.epoch_index + 1, epochs),
            epochs=epochs, batch=self.batches if self.done else self.step - self.epoch_index * self.batches,
            batches=self.batches, loss=self.last.get("loss"), accuracy=self.last.get("accuracy"),
            val_accuracy=self.last.get("val_accuracy"), test_accuracy=self.last.get("test_accuracy"),
            best_test_accuracy=self.last.get("best_test_accuracy"), progress=round(100.0 * self.progress, 2),
            samples=self.samples, eta_seconds=eta_seconds,
            samples_per_sec=round(self.samples / self.compute_seconds, 1) if self.compute_seconds > 0 else None)


def planned_models(config: TrainConfig) -> list[ModelStatus]:
    """The models of a run as configured, before any is built (queued, or starting)."""
    return [ModelStatus(name=mc.name, kernels=list(mc.kernels), optimizer=mc.optimizer,
                        learning_rate=mc.learning_rate, batch_size=mc.batch_size,
                        parameters=describe(mc.kernels)["total_parameters"], epoch=0, epochs=config.epochs,
                        batch=0, batches=0) for mc in config.models]


def planned_status(config: TrainConfig, run_id: str) -> dict:
    """The status of a run that waits in the queue: its models as configured, nothing trained."""
    return RunStatus(state=QUEUED_STATE, run_id=run_id, lr_schedule=config.lr_schedule, updated_at=time.time(),
                     models=planned_models(config)).to_dict()


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True)


def build_model_run(index: int, mc: ModelConfig, config: TrainConfig, n_train: int,
                    device: torch.device) -> ModelRun:
    """Model, optimizer, schedule and data order of one model, seeded from the run's seed."""
    torch.manual_seed(config.seed + index)
    model = MNISTNet(mc.kernels).to(device)
    if device.type in ("cpu", "cuda"):
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(mc.optimizer, model.parameters(), mc.learning_rate)
    batches = math.ceil(n_train / mc.batch_size)
    total = batches * config.epochs
    scheduler = None
    if config.lr_schedule == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=mc.learning_rate, total_steps=total,
                                                        pct_start=config.warmup)
    gen_device = device if device.type == "cuda" else torch.device("cpu")
    generator = torch.Generator(device=gen_device).manual_seed(config.seed * 1000 + index)
    zero = torch.zeros((), device=device)
    return ModelRun(index=index, config=mc, model=model, optimizer=optimizer, scheduler=scheduler, batches=batches,
                    total_steps=total, generator=generator, parameters=sum(p.numel() for p in model.parameters()),
                    loss_sum=zero.clone(), correct_sum=zero.clone(), probe=LayerProbe(model),
                    label_smoothing=config.label_smoothing)


def set_up_device(device: torch.device) -> None:
    if device.type == "cpu":
        tune_malloc()
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True


# ---------------------------------------------------------------- the trainer

class Trainer:
    """Trains the models of ``config`` interleaved batch by batch and writes ``run_dir``.

    Use: ``Trainer(config, data_dir, run_dir).run()``; set ``stop_event`` to stop within one
    batch. ``on_step(trainer, model_run)`` is called after every training step (tests and
    benchmarks hook in there); ``layer_stats=False`` skips the per-layer statistics (benchmarks). ``monitor=False`` (for benchmarks) turns off the renderer (no PNGs)
    and the periodic status writes; status at state changes and epoch ends, metrics and
    checkpoints are still written.
    """

    def __init__(self, config: TrainConfig, data_dir, run_dir, stop_event: threading.Event | None = None,
                 monitor: bool = True, status_interval: float = STATUS_INTERVAL,
                 progress_bar: bool = False, on_step=None, layer_stats: bool = True, resume: bool = False):
        self.config = config
        self.data_dir = data_dir
        self.run_dir = Path(run_dir)
        self.run_id = self.run_dir.name
        self.stop_event = stop_event or threading.Event()
        self.monitor = monitor
        self.status_interval = status_interval
        self.progress_bar = progress_bar
        self.on_step = on_step
        self.layer_stats = layer_stats  # measure how each layer learns at each curve point
        self.device = select_device(config.device)
        self.precision = resolve_precision(config.precision, self.device)
        self.state = "starting"
        self.error: str | None = None
        self.started_at = time.time()
        self.finished_at: float | None = None
        self.models: list[ModelRun] = []
        self.n_train = 0
        self.eval_seconds = 0.0  # wall time spent evaluating (benchmarks exclude it)
        self.renderer: RenderClient | None = None
        self._n_eval = 0  # validation + test images evaluated at each epoch end
        self._loop_started = 0.0
        self._last_status = 0.0
        self._status_lock = threading.Lock()
        self._status_final = False  # the final status is written: nothing may replace it
        self._status_writer = StatusWriter(self.run_dir / STATUS_FILE)
        self.resume = resume  # go on from the run folder's epoch-end checkpoints
        self.resumes = 0
        self._resumption: Resumption | None = None
        self._time_zero = self.started_at  # metrics "time" counts from here (moved on a resume: no gap)
        self._restored = (0.0, 0.0)  # compute and evaluation seconds of the sessions before a resume
        self._prepared = False
        self._planned_models: list[ModelStatus] | None = None  # shown while the models are being built

    def prepare(self) -> None:
        """Create the run folder with config.json (a queued run has it already) and run.json, and
        write a 'starting' status.json, once. A resume first cuts metrics.jsonl back to the
        checkpoints it goes on from, so a reader never sees a step twice."""
        if self._prepared:
            return
        self._prepared = True
        if self.resume:  # checked before anything is written: a refused resume changes nothing
            self._resumption = r = Resumption.prepare(self.run_dir, len(self.config.models))
            self.started_at, self.resumes = r.started_at or self.started_at, r.resumes
            self._time_zero = time.time() - r.elapsed
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not (self.run_dir / CONFIG_FILE).exists():
            atomic_write_json(self.run_dir / CONFIG_FILE, self.config.to_dict())
        info = read_json(self.run_dir / RUN_INFO_FILE) or {"run_id": self.run_id, "started_at": self.started_at}
        if self.resume:
            info["resumed_at"] = info.get("resumed_at", []) + [time.time()]
        info.update(device=str(self.device), precision=self.precision, torch_version=torch.__version__,
                    python_version=platform.python_version())
        atomic_write_json(self.run_dir / RUN_INFO_FILE, info)
        self.write_status(force=True)

    @property
    def ended(self) -> bool:
        """Whether the final status is written (what is left: closing the status writer)."""
        return self._status_final

    def close(self) -> None:
        """Release a trainer that will not run (its preparation failed)."""
        self._status_writer.close()

    # -- status
    def eta_seconds(self) -> float | None:
        """Seconds left, evaluations included. The models share the device, so their times add
        up; the loop's wall time per second of compute (Python, monitoring) scales them."""
        compute = sum(m.compute_seconds for m in self.models) - self._restored[0]  # this session's
        if not self.models or compute <= 0 or any(m.samples == 0 for m in self.models):
            return None
        overhead = max(1.0, (time.perf_counter() - self._loop_started - self.eval_seconds) / compute)
        return sum(m.seconds_left(self.config.epochs, self.n_train, self._n_eval, overhead) for m in self.models)

    def status(self) -> dict:
        eta = self.eta_seconds() if self.state == "running" and not self.stop_event.is_set() else None
        if self.state == "finished":
            eta = 0.0
        eta = None if eta is None else round(eta, 1)
        state = self.state
        if state in ("starting", "running") and self.stop_event.is_set():
            state = "stopping"
        return RunStatus(
            state=state, run_id=self.run_id, pid=os.getpid(), device=self.device.type, precision=self.precision,
            lr_schedule=self.config.lr_schedule, train_images=self.n_train or None, error=self.error,
            started_at=self.started_at,
            updated_at=time.time(), finished_at=self.finished_at, eta_seconds=eta,
            eval_seconds=round(self.eval_seconds + self._restored[1], 3), resumes=self.resumes,
            elapsed_seconds=round((self.finished_at or time.time()) - self._time_zero, 1),
            models=[m.status(self.config.epochs, eta) for m in self.models] or self._planned()).to_dict()

    def _planned(self) -> list:
        """The models shown before they are built: as configured, or as a resumed run left them."""
        if self._planned_models is None:
            self._planned_models = (self._resumption and self._resumption.models) or planned_models(self.config)
        return self._planned_models

    def write_status(self, force: bool = False, final: bool = False) -> None:
        """Submit the status (forced: state changes, epoch ends; those are on disk on return).
        Built and submitted under one lock, so a stop request's write never lands after the final one."""
        now = time.monotonic()
        if not (force or (self.monitor and now - self._last_status >= self.status_interval)):
            return
        with self._status_lock:
            if self._status_final:
                return
            self._last_status = now
            ticket = self._status_writer.submit(self.status())
            self._status_final = final
        if force:
            self._status_writer.wait(ticket)

    # -- training
    def run(self) -> dict:
        """Train to the end, a stop, or an error; returns the final status. Never raises for a
        training failure: the run ends 'failed' with the message in status and log."""
        bar = None
        try:
            set_up_device(self.device)
            self.prepare()
            data = load_mnist(self.data_dir, self.config.train_samples).to(self.device)
            self.n_train = data.train_x.shape[0]
            self._n_eval = data.val_x.shape[0] + data.test_x.shape[0]
            self.models = [build_model_run(i, mc, self.config, self.n_train, self.device)
                           for i, mc in enumerate(self.config.models)]
            if self._resumption:
                self._resumption.apply(self.models, self.device)
                self._restored = (sum(m.compute_seconds for m in self.models), sum(m.eval_seconds for m in self.models))
            if self.monitor:
                self.renderer = RenderClient(self.run_dir, [m.name for m in self.models], self.config.epochs)
                if self._resumption and self._resumption.kept_rows:  # the curves so far, for curves.png
                    self.renderer.send(CurvePoints(self._resumption.kept_rows))
            self.state = "running"
            self.write_status(force=True)
            log.info("run %s: %d model(s) on %s, precision %s, %d training images, %d epochs", self.run_id,
                     len(self.models), self.device, self.precision, self.n_train, self.config.epochs)
            if self.progress_bar:
                from tqdm import tqdm
                bar = tqdm(total=sum(m.total_steps for m in self.models), unit="batch", desc=self.run_id)
            self._loop(data, bar)
            self.state = "stopped" if self.stop_event.is_set() else "finished"
        except Exception as exc:  # any failure ends the run as 'failed' with a readable message
            self.state = "failed"
            known = (TrainingError, ConfigError, ResumeError, WriteError)
            self.error = str(exc) if isinstance(exc, known) else f"{type(exc).__name__}: {exc}"
            log.exception("run %s failed", self.run_id)
        finally:
            if bar is not None:
                bar.close()
            # A finished run shows 'finished' once its last pictures are drawn; a stopped one at
            # once (a server shutting down waits a few seconds at most, not for the renderer).
            stopped = self.state == "stopped"
            if self.renderer and not stopped:
                self.renderer.close()
            self.finished_at = time.time()
            self.write_status(force=True, final=True)
            if self.renderer and stopped:
                self.renderer.close()
            self._status_writer.close()
        log.info("run %s %s", self.run_id, self.state)
        return self.status()

    def _flushed(self, rows: list[dict]) -> None:
        """Rows that reached metrics.jsonl: into the status, and to the renderer."""
        for row in rows:
            self.models[row["model"]].record(row)
        if self.renderer:
            self.renderer.send(CurvePoints(rows))

    def _loop(self, data: MNISTTensors, bar) -> None:
        metrics = MetricsWriter(self.run_dir / METRICS_FILE, FLUSH_INTERVAL, self._flushed)
        self._loop_started = next_stop_check = time.perf_counter()
        try:
            while not self.stop_event.is_set():
                unfinished = [m for m in self.models if not m.done]
                if not unfinished:
                    break
                m = min(unfinished, key=lambda r: (r.progress, r.index))  # keeps the curves side by side
                probe = self.layer_stats and m.window_ends(self.n_train, m.step + 1)
                m.train_step(data, self.device, self.precision, probe=probe)
                if self.on_step is not None:
                    self.on_step(self, m)
                if bar is not None:
                    bar.update(1)
                epoch_end = m.step % m.batches == 0
                if m.window_ends(self.n_train):
                    metrics.add(self._log_window(m), flush=epoch_end)
                    if epoch_end:
                        self._end_epoch(m, data, metrics)
                    self.write_status(force=epoch_end)
                if time.perf_counter() >= next_stop_check:
                    next_stop_check = time.perf_counter() + STOP_CHECK_INTERVAL
                    if (self.run_dir / STOP_FILE).exists():  # python train.py, stopped from the page
                        self.stop_event.set()
            if self.stop_event.is_set():  # the steps since the last curve point are kept too
                metrics.add([row for m in self.models if m.window_steps for row in self._log_window(m)])
        finally:
            metrics.flush()  # a failing run keeps every line it computed
        if self.stop_event.is_set():
            self.state = "stopping"
            self.write_status(force=True)

    def _log_window(self, m: ModelRun) -> list[dict]:
        """The window's curve point, and how each layer learned in its last step (if measured)."""
        loss, accuracy = m.read_window()
        if not math.isfinite(loss):
            epoch = m.epoch_index + 1 if m.step % m.batches else m.epoch_index
            raise TrainingError(
                f"{m.name}: the training loss became {loss} in epoch {max(epoch, 1)}; "
                f"the learning rate ({m.config.learning_rate:g}) is probably too high")
        where = {"model": m.index, "step": m.step, "epoch": round(m.step / m.batches, 4),
                 "time": time.time() - self._time_zero}
        rows = [metrics_row("train", **where, loss=loss, accuracy=accuracy, lr=m.optimizer.param_groups[0]["lr"],
                            samples_per_sec=m.samples / m.compute_seconds if m.compute_seconds else None)]
        layers = m.probe.read()
        if layers is not None:
            rows.append(metrics_row("layers", **where, **layers))
        return rows

    def _end_epoch(self, m: ModelRun, data: MNISTTensors, metrics: MetricsWriter) -> None:
        """Validation and test figures (on disk first), then checkpoints and the epoch's images.
        Nothing is recorded if a stop comes during the evaluation (no half-evaluated epoch)."""
        started = time.perf_counter()
        epoch = m.step // m.batches
        val = evaluate(m.model, data.val_x, data.val_y, self.device, self.precision, self.stop_event)
        test = val and evaluate(m.model, data.test_x, data.test_y, self.device, self.precision, self.stop_event)
        seconds = time.perf_counter() - started
        self.eval_seconds += seconds
        if val is None or test is None:
            return
        best = m.evaluated(epoch, seconds, val.accuracy)
        metrics.add([metrics_row("eval", model=m.index, step=m.step, epoch=epoch, val_loss=val.loss,
                                 val_accuracy=val.accuracy, test_loss=test.loss, test_accuracy=test.accuracy,
                                 time=time.time() - self._time_zero)], flush=True)
        log.info("%s epoch %d/%d: loss %.4f, train %.2f%%, validation %.2f%%, test %.2f%%", m.name, epoch,
                 self.config.epochs, m.last["loss"], m.last["accuracy"], val.accuracy, test.accuracy)
        save_checkpoints(self.run_dir, m, epoch, val.accuracy, test.accuracy, best,
                         run_steps=sum(model.step for model in self.models))
        matrix = save_confusion(self.run_dir, m, epoch, test.predictions, data)
        if self.renderer:
            for image in epoch_images(m, epoch, test.predictions, matrix, data):
                self.renderer.send(image)


def save_confusion(run_dir: Path, m: ModelRun, epoch: int, predictions: torch.Tensor, data: MNISTTensors) -> np.ndarray:
    """The test confusion matrix of model ``m`` as JSON beside its picture, with the test digits
    that its "misclassified" picture shows (the first ERROR_COUNT wrong ones, in test order)."""
    matrix = confusion_matrix(predictions, data)
    wrong = torch.nonzero(predictions != data.test_y).flatten()[:ERROR_COUNT].tolist()
    atomic_write_json(run_dir / confusion_name(m.index),
                      {"model": m.name, "epoch": epoch, "matrix": matrix.tolist(), "errors": wrong})
    return matrix


def confusion_matrix(predictions: torch.Tensor, data: MNISTTensors) -> np.ndarray:
    """[true digit][predicted digit] counts over the test set."""
    labels, preds = data.test_y.cpu().numpy(), predictions.cpu().numpy()
    return np.bincount(labels * 10 + preds, minlength=100).reshape(10, 10)


def epoch_images(m: ModelRun, epoch: int, predictions: torch.Tensor, matrix: np.ndarray,
                 data: MNISTTensors) -> list[EpochImage]:
    """The epoch-end pictures of one model: sample digits, misclassified digits, confusion matrix."""
    preds = predictions.cpu().numpy()
    labels = data.test_y.cpu().numpy()
    raw = data.test_raw.numpy()
    k = min(SAMPLE_COUNT, len(labels))
    title = f"{m.name}, epoch {epoch}"
    wrong = np.flatnonzero(preds != labels)
    shown = wrong[:ERROR_COUNT]
    return [
        EpochImage(image_name("samples", m.index), "digits",
                   (f"{title}: test digits 1-{k}", raw[:k], preds[:k], labels[:k], SAMPLE_COUNT)),
        EpochImage(image_name("errors", m.index), "digits",
                   (f"{title}: {len(wrong)} of {len(labels)} test digits misclassified (first {len(shown)})",
                    raw[shown], preds[shown], labels[shown], ERROR_COUNT)),
        EpochImage(image_name("confusion", m.index), "confusion", (f"{title}: confusion matrix (test)", matrix)),
        EpochImage(image_name("filters", m.index), "filters",
                   (f"{title}: the {m.config.kernels[0]} filters of conv 1", first_conv_weights(m.model))),
    ]


def first_conv_weights(model: nn.Module) -> np.ndarray:
    """The 3x3 kernels of the first conv layer, [k1, 1, 3, 3], as numbers on the CPU."""
    conv = next(layer for layer in model.features if isinstance(layer, nn.Conv2d))
    return conv.weight.detach().float().cpu().numpy()


# ---------------------------------------------------------------- command line

FLAG_HELP = {  # run-wide settings; defaults, choices and limits come from config.py
    "epochs": "passes over the training images",
    "optimizer": "optimizer of every model",
    "learning_rate": "learning rate, the peak of the one-cycle schedule",
    "batch_size": "images per training step",
    "lr_schedule": "learning-rate schedule",
    "warmup": "share of the one-cycle schedule spent warming up to the peak learning rate",
    "label_smoothing": "label smoothing of the training loss",
    "precision": "auto uses bf16 where the hardware runs it natively",
    "train_samples": "train on only this many images",
    "seed": "seed of weights, data order and dropout",
    "device": "where to train",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train MNISTNet models and write a run folder "
                                            "(the same one the web monitor shows).")
    p.add_argument("--kernels", action="append", metavar="K1,K2,K3,K4",
                   help="conv output channels of one model; repeat for up to %d models (default: %s)"
                        % (MAX_MODELS, " and ".join(",".join(map(str, k)) for k in DEFAULT_KERNELS)))
    settings = public_config()
    for key in SHARED_KEYS:
        default = settings["defaults"].get(key)
        choices = settings["choices"].get(key)
        kind = type(default) if default is not None else int
        limits = settings["limits"].get(key)
        where = f"{limits[0]} to {limits[1]}; " if limits and not choices else ""
        shown = "all" if default is None else default
        p.add_argument("--" + key.replace("_", "-"), dest=key, type=kind, choices=choices,
                       help=f"{FLAG_HELP[key]} ({where}default {shown})")
    p.add_argument("--data-dir", default=default_data_dir(),
                   help=f"folder that holds MNIST/raw/ (env {DATA_DIR_ENV}; default: the project's data/)")
    p.add_argument("--runs-dir", default=str(DEFAULT_RUNS_DIR),
                   help="where run folders are written (default: the project's runs/, which the server lists)")
    p.add_argument("--keep-runs", type=int, default=DEFAULT_KEEP_RUNS,
                   help=f"keep the newest N runs (0: keep all; default {DEFAULT_KEEP_RUNS})")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="go on with a stopped, failed or interrupted run from its last epoch-end checkpoints "
                        "(its settings come from its config.json)")
    return p


def stop_on_signals(trainer: "Trainer") -> None:
    """Ctrl-C or SIGTERM: stop at the next batch; the run ends 'stopped' and can be resumed."""
    def handler(signum, frame):
        log.info("%s: stopping at the next batch; go on later with: python train.py --resume %s",
                 signal.Signals(signum).name, trainer.run_dir)
        trainer.stop_event.set()
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # a second Ctrl-C ends the process at once

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def make_trainer(args, request: dict) -> tuple["Trainer", RunStore]:
    """The trainer of a new run (settings from the flags) or of a resumed one (from its folder)."""
    store = RunStore(args.runs_dir, keep=args.keep_runs)
    if args.resume:
        if request or args.kernels:
            raise ConfigError("resume", "a resumed run keeps its settings (its config.json): drop the other "
                                        "settings flags")
        run_dir = Path(args.resume)
        config = parse_train_config(read_json(run_dir / CONFIG_FILE) or {})
        trainer = Trainer(config, args.data_dir, run_dir, progress_bar=True, resume=True)
    else:
        if args.kernels:
            request["models"] = [{"kernels": list(parse_kernels_text(k, f"--kernels {k}"))} for k in args.kernels]
        config = parse_train_config(request)
        run_dir = store.create()[1]
        trainer = Trainer(config, args.data_dir, run_dir, progress_bar=True)
    trainer.prepare()
    return trainer, store


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    request = {key: getattr(args, key) for key in SHARED_KEYS if getattr(args, key) is not None}
    try:
        trainer, store = make_trainer(args, request)
    except (ConfigError, ResumeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop_on_signals(trainer)
    config, run_id, run_dir = trainer.config, trainer.run_id, trainer.run_dir
    for m in config.models:
        info = describe(m.kernels)
        log.info("%s %s: %d parameters, %.1f MMAC per image", m.name, list(m.kernels),
                 info["total_parameters"], info["macs_per_image"] / 1e6)
    status = trainer.run()
    store.cleanup(protect={run_id})
    print(f"run folder: {run_dir}")
    for m in status["models"]:
        print(f"{m['name']}: test accuracy {m['test_accuracy']}%, {m['samples_per_sec']} images/s")
    if status["state"] == "failed":
        print(f"error: {status['error']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
