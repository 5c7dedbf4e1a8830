"""Training worker: trains 1 to 4 MNISTNet models interleaved and writes the run folder.

Also a command-line trainer: ``python train.py --kernels 32,64,64,64 --epochs 1``.
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import io
import logging
import math
import os
import platform
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from config import ConfigError, TrainConfig, parse_train_config
from data import MNISTTensors, load_mnist
from model import MNISTNet, describe
from runstore import RunStore, append_jsonl, atomic_write_bytes, atomic_write_json

log = logging.getLogger("train")

EVAL_BATCH = 2000  # images per evaluation forward pass (no_grad: no activations kept)
SAMPLE_COUNT = 16  # fixed test digits shown with their predictions
ERROR_COUNT = 24  # misclassified test digits shown per model
POINTS_PER_EPOCH = 25  # training-curve points per epoch and model (each a window mean)
FLUSH_INTERVAL = 0.5  # seconds between appends of new metrics lines (and at every epoch end)
PLOTS_SCRIPT = Path(__file__).resolve().with_name("plots.py")


class TrainingError(RuntimeError):
    """Training cannot go on (a loss that is not finite, say); the message is for the user."""


# ---------------------------------------------------------------- hardware set-up

_malloc_tuned = False


def tune_malloc() -> bool:
    """Keep glibc from returning big conv buffers to the OS after every step.

    By default glibc serves allocations over 32 MiB-ish by mmap and unmaps them on free, so each
    training step page-faults its buffers back in (high sys time). Raising the mmap and trim
    thresholds to 1 GiB keeps them in the heap: about 1.9x more images/s on the 2-core CI CPU
    (see ENGINEERING.md). No-op off Linux/glibc. Returns whether it applied.
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


# ---------------------------------------------------------------- one model's training state

@dataclass
class ModelRun:
    index: int
    name: str
    kernels: tuple
    batch_size: int
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    batches: int  # per epoch
    total_steps: int
    generator: torch.Generator
    parameters: int
    step: int = 0
    order: torch.Tensor | None = None
    # window accumulators, on the device: read (synced) only when a curve point is logged
    loss_sum: torch.Tensor | None = None
    correct_sum: torch.Tensor | None = None
    window_samples: int = 0
    window_steps: int = 0
    samples: int = 0
    compute_seconds: float = 0.0
    last: dict = field(default_factory=dict)  # last logged figures
    best_val: float = -1.0

    @property
    def epoch_index(self) -> int:  # 0-based epoch the next step belongs to
        return self.step // self.batches

    @property
    def progress(self) -> float:
        return self.step / self.total_steps

    @property
    def done(self) -> bool:
        return self.step >= self.total_steps


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True)


# ---------------------------------------------------------------- rendering off the hot path

class RenderClient:
    """Sends curve points and epoch-end images to the renderer process (``plots.py --serve``).

    Rendering runs in its own process at low priority, so training never waits for matplotlib
    nor shares the GIL with it. If the renderer dies, training goes on without images.
    """

    def __init__(self, run_dir: Path, names: list[str], epochs: int, interval: float):
        import json
        import subprocess

        self.process = subprocess.Popen(
            [sys.executable, str(PLOTS_SCRIPT), "--serve", str(run_dir), json.dumps(names), str(epochs), str(interval)],
            stdin=subprocess.PIPE)
        self.broken = False

    def _send(self, message) -> None:
        import pickle

        if self.broken:
            return
        try:
            pickle.dump(message, self.process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            self.broken = True
            log.error("the renderer process ended (exit code %s); training goes on without new images",
                      self.process.poll())

    def add_points(self, train_rows: list[dict], eval_rows: list[dict]) -> None:
        self._send(("points", train_rows, eval_rows))

    def add_image(self, file_name: str, kind: str, *args) -> None:
        self._send(("image", file_name, kind, args))

    def close(self, timeout: float = 60.0) -> None:
        """Let the renderer draw what is pending (final curves included) and wait for it."""
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout)
        except Exception:
            self.process.kill()
            self.process.wait()


class StatusWriter:
    """Writes status.json from its own thread, so the training loop never waits for the disk
    (an fsync can take tens of milliseconds). Only the newest status is written; ``write(...,
    wait=True)`` returns once that status (or a newer one) is on disk."""

    def __init__(self, path: Path):
        self.path = path
        self._cond = threading.Condition()
        self._pending: dict | None = None
        self._submitted = self._written = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="status-writer", daemon=True)
        self._thread.start()

    def write(self, status: dict, wait: bool = False) -> None:
        with self._cond:
            self._pending = status
            self._submitted += 1
            ticket = self._submitted
            self._cond.notify_all()
            while wait and self._written < ticket and self._thread.is_alive():
                self._cond.wait(1.0)

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                if self._pending is None:
                    return
                status, ticket, self._pending = self._pending, self._submitted, None
            try:
                atomic_write_json(self.path, status)
            except OSError:
                log.exception("could not write %s", self.path)
            with self._cond:
                self._written = ticket
                self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()


# ---------------------------------------------------------------- the trainer

class Trainer:
    """Trains the models of ``config`` interleaved batch by batch and writes ``run_dir``.

    Use: ``Trainer(config, data_dir, run_dir).run()``; set ``stop_event`` to stop within one
    batch. ``monitor=False`` (for benchmarks) turns off the renderer (no PNGs) and the periodic
    status writes; status at state changes and epoch ends, metrics and checkpoints are still written.
    """

    def __init__(self, config: TrainConfig, data_dir, run_dir, stop_event: threading.Event | None = None,
                 monitor: bool = True, status_interval: float = 1.0, render_interval: float = 5.0,
                 progress_bar: bool = False):
        self.config = config
        self.data_dir = data_dir
        self.run_dir = Path(run_dir)
        self.run_id = self.run_dir.name
        self.stop_event = stop_event or threading.Event()
        self.monitor = monitor
        self.status_interval = status_interval
        self.render_interval = render_interval
        self.progress_bar = progress_bar
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
        self._last_status = 0.0
        self._status_lock = threading.Lock()
        self._status_writer: StatusWriter | None = None

    # -- set-up
    def prepare(self) -> None:
        """Create the run folder with config.json and a 'starting' status.json (once)."""
        if (self.run_dir / "config.json").exists():
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.run_dir / "config.json", {
            **self.config.to_dict(),
            "run_id": self.run_id,
            "device": str(self.device),
            "precision_used": self.precision,
            "torch_version": torch.__version__,
            "started_at": self.started_at,
        })
        self.write_status(force=True)

    def _build(self, data: MNISTTensors) -> None:
        n = self.n_train = data.train_x.shape[0]
        channels_last = self.device.type in ("cpu", "cuda")
        for i, mc in enumerate(self.config.models):
            torch.manual_seed(self.config.seed + i)
            model = MNISTNet(mc.kernels).to(self.device)
            if channels_last:
                model = model.to(memory_format=torch.channels_last)
            optimizer = make_optimizer(mc.optimizer, model.parameters(), mc.learning_rate)
            batches = math.ceil(n / mc.batch_size)
            total = batches * self.config.epochs
            scheduler = None
            if self.config.lr_schedule == "onecycle":
                scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=mc.learning_rate, total_steps=total)
            gen_device = self.device if self.device.type == "cuda" else torch.device("cpu")
            generator = torch.Generator(device=gen_device).manual_seed(self.config.seed * 1000 + i)
            zero = torch.zeros((), device=self.device)
            self.models.append(ModelRun(
                index=i, name=mc.name, kernels=mc.kernels, batch_size=mc.batch_size, model=model,
                optimizer=optimizer, scheduler=scheduler, batches=batches, total_steps=total,
                generator=generator, parameters=sum(p.numel() for p in model.parameters()),
                loss_sum=zero.clone(), correct_sum=zero.clone(),
            ))

    # -- status
    def eta_seconds(self) -> float | None:
        """Seconds of training left: the models share the device, so their times add up."""
        remaining = 0.0
        for m in self.models:
            if m.samples == 0 or m.compute_seconds <= 0:
                return None
            remaining += max(0, self.config.epochs * self.n_train - m.samples) * m.compute_seconds / m.samples
        return remaining

    def status(self) -> dict:
        eta = self.eta_seconds() if self.state == "running" and not self.stop_event.is_set() else None
        if self.state == "finished":
            eta = 0.0
        models = []
        for m in self.models:
            epoch = min(m.epoch_index + 1, self.config.epochs)
            batch = m.batches if m.done else m.step - m.epoch_index * m.batches
            mc = self.config.models[m.index]
            models.append({
                "name": m.name, "kernels": list(m.kernels), "optimizer": mc.optimizer,
                "learning_rate": mc.learning_rate, "batch_size": m.batch_size, "parameters": m.parameters,
                "epoch": epoch, "epochs": self.config.epochs, "batch": batch, "batches": m.batches,
                "loss": m.last.get("loss"), "accuracy": m.last.get("accuracy"),
                "val_accuracy": m.last.get("val_accuracy"), "test_accuracy": m.last.get("test_accuracy"),
                "best_test_accuracy": m.last.get("best_test_accuracy"),
                "progress": round(100.0 * m.progress, 2), "samples": m.samples,
                "samples_per_sec": round(m.samples / m.compute_seconds, 1) if m.compute_seconds > 0 else None,
                "eta_seconds": None if eta is None else round(eta, 1),
            })
        state = self.state
        if state in ("starting", "running") and self.stop_event.is_set():
            state = "stopping"
        return {
            "state": state, "run_id": self.run_id, "pid": os.getpid(), "device": self.device.type,
            "precision": self.precision, "lr_schedule": self.config.lr_schedule, "error": self.error,
            "started_at": self.started_at, "updated_at": time.time(), "finished_at": self.finished_at,
            "eta_seconds": None if eta is None else round(eta, 1), "eval_seconds": round(self.eval_seconds, 3),
            "models": models,
        }

    def write_status(self, force: bool = False) -> None:
        now = time.monotonic()
        if not (force or (self.monitor and now - self._last_status >= self.status_interval)):
            return
        with self._status_lock:
            self._last_status = now
            status = self.status()
            if self._status_writer is None:
                self._status_writer = StatusWriter(self.run_dir / "status.json")
        # forced writes (state changes, epoch ends) are on disk before this returns
        self._status_writer.write(status, wait=force)

    # -- training
    def _train_step(self, m: ModelRun, data: MNISTTensors) -> None:
        n = data.train_x.shape[0]
        within = m.step % m.batches
        if within == 0:
            m.order = torch.randperm(n, generator=m.generator, device=m.generator.device).to(self.device)
            m.model.train()
        idx = m.order[within * m.batch_size:(within + 1) * m.batch_size]
        x = data.train_x.index_select(0, idx)
        y = data.train_y.index_select(0, idx)
        started = time.perf_counter()
        with autocast(self.device, self.precision):
            logits = m.model(x)
            loss = nn.functional.cross_entropy(logits, y)
        m.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        m.optimizer.step()
        if m.scheduler is not None:
            m.scheduler.step()
        with torch.no_grad():  # accumulate on the device: no host sync per batch
            m.loss_sum += loss.detach().float() * y.shape[0]
            m.correct_sum += (logits.argmax(1) == y).sum()
        m.compute_seconds += time.perf_counter() - started
        m.window_samples += y.shape[0]
        m.window_steps += 1
        m.samples += y.shape[0]
        m.step += 1

    def _log_window(self, m: ModelRun) -> dict:
        """Read the window's mean loss and accuracy (one host sync) and start a new window."""
        started = time.perf_counter()
        loss = (m.loss_sum / m.window_samples).item()
        accuracy = 100.0 * m.correct_sum.item() / m.window_samples
        m.compute_seconds += time.perf_counter() - started  # the sync waits for queued GPU work
        if not math.isfinite(loss):
            epoch = m.epoch_index + 1 if m.step % m.batches else m.epoch_index
            raise TrainingError(
                f"{m.name}: the training loss became {loss} in epoch {max(epoch, 1)}; "
                f"the learning rate ({self.config.models[m.index].learning_rate:g}) is probably too high")
        m.loss_sum.zero_()
        m.correct_sum.zero_()
        m.window_samples = m.window_steps = 0
        m.last.update(loss=loss, accuracy=accuracy)
        return {"kind": "train", "model": m.index, "step": m.step, "epoch": round(m.step / m.batches, 4),
                "loss": loss, "accuracy": accuracy, "lr": m.optimizer.param_groups[0]["lr"],
                "samples_per_sec": m.samples / m.compute_seconds if m.compute_seconds else None,
                "time": time.time() - self.started_at}

    @torch.no_grad()
    def _predict(self, m: ModelRun, images: torch.Tensor, labels: torch.Tensor):
        """(mean loss, accuracy %, predictions) over a split, in large batches; None if stopped."""
        m.model.eval()
        loss_sum = torch.zeros((), device=self.device)
        predictions = []
        for start in range(0, images.shape[0], EVAL_BATCH):
            if self.stop_event.is_set():
                return None
            x, y = images[start:start + EVAL_BATCH], labels[start:start + EVAL_BATCH]
            with autocast(self.device, self.precision):
                logits = m.model(x)
            loss_sum += nn.functional.cross_entropy(logits.float(), y, reduction="sum")
            predictions.append(logits.argmax(1))
        m.model.train()
        predictions = torch.cat(predictions)
        accuracy = 100.0 * (predictions == labels).sum().item() / labels.shape[0]
        return loss_sum.item() / labels.shape[0], accuracy, predictions

    def _evaluate(self, m: ModelRun, data: MNISTTensors) -> dict | None:
        """Validation and test figures at an epoch end, checkpoints, and the epoch's images."""
        epoch = m.step // m.batches
        val = self._predict(m, data.val_x, data.val_y)
        test = self._predict(m, data.test_x, data.test_y) if val else None
        if val is None or test is None:
            return None  # stopped during evaluation: no half-evaluated epoch is recorded
        row = {"kind": "eval", "model": m.index, "step": m.step, "epoch": epoch,
               "val_loss": val[0], "val_accuracy": val[1], "test_loss": test[0], "test_accuracy": test[1],
               "time": time.time() - self.started_at}
        m.last.update(val_accuracy=val[1], test_accuracy=test[1],
                      best_test_accuracy=max(m.last.get("best_test_accuracy") or 0.0, test[1]))
        checkpoint = {"kernels": list(m.kernels), "name": m.name, "epoch": epoch, "val_accuracy": val[1],
                      "test_accuracy": test[1],
                      "state_dict": {k: v.detach().cpu().contiguous() for k, v in m.model.state_dict().items()}}
        self._save_checkpoint(checkpoint, f"model{m.index}_latest.pt")
        if val[1] > m.best_val:
            m.best_val = val[1]
            self._save_checkpoint(checkpoint, f"model{m.index}_best.pt")
        if self.renderer:
            self._queue_epoch_images(m, epoch, test[2], data)
        return row

    def _save_checkpoint(self, checkpoint: dict, name: str) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write_bytes(self.run_dir / name, buffer.getvalue())

    def _queue_epoch_images(self, m: ModelRun, epoch: int, predictions: torch.Tensor, data: MNISTTensors) -> None:
        preds = predictions.cpu().numpy()
        labels = data.test_y.cpu().numpy()
        raw = data.test_raw.numpy()
        k = min(SAMPLE_COUNT, len(labels))
        title = f"{m.name}, epoch {epoch}"
        self.renderer.add_image(f"samples_m{m.index}.png", "digits",
                                f"{title}: test digits 1-{k}", raw[:k], preds[:k], labels[:k])
        wrong = np.flatnonzero(preds != labels)
        shown = wrong[:ERROR_COUNT]
        self.renderer.add_image(f"errors_m{m.index}.png", "digits",
                                f"{title}: {len(wrong)} of {len(labels)} test digits misclassified (first {len(shown)})",
                                raw[shown], preds[shown], labels[shown])
        matrix = np.bincount(labels * 10 + preds, minlength=100).reshape(10, 10)
        self.renderer.add_image(f"confusion_m{m.index}.png", "confusion", f"{title}: confusion matrix (test)", matrix)

    def run(self) -> dict:
        """Train to the end, a stop, or an error; returns the final status. Never raises for a
        training failure: the run ends 'failed' with the message in status and log."""
        bar = None
        try:
            if self.device.type == "cpu":
                tune_malloc()
            if self.device.type == "cuda":
                torch.backends.cuda.matmul.allow_tf32 = True
                torch.backends.cudnn.allow_tf32 = True
                torch.backends.cudnn.benchmark = True
            self.prepare()
            data = load_mnist(self.data_dir, self.config.train_samples).to(self.device)
            self._build(data)
            if self.monitor:
                self.renderer = RenderClient(self.run_dir, [m.name for m in self.models], self.config.epochs,
                                             self.render_interval)
            self.state = "running"
            self.write_status(force=True)
            log.info("run %s: %d model(s) on %s, precision %s, %d training images, %d epochs",
                     self.run_id, len(self.models), self.device, self.precision, data.train_x.shape[0],
                     self.config.epochs)
            if self.progress_bar:
                from tqdm import tqdm
                bar = tqdm(total=sum(m.total_steps for m in self.models), unit="batch", desc=self.run_id)
            self._loop(data, bar)
            self.state = "stopped" if self.stop_event.is_set() else "finished"
        except Exception as exc:  # any failure ends the run as 'failed' with a readable message
            self.state = "failed"
            self.error = str(exc) if isinstance(exc, (TrainingError, ConfigError)) else f"{type(exc).__name__}: {exc}"
            log.exception("run %s failed", self.run_id)
        finally:
            if bar is not None:
                bar.close()
            if self.renderer:
                self.renderer.close()
            self.finished_at = time.time()
            self.write_status(force=True)
            self._status_writer.close()
        log.info("run %s %s", self.run_id, self.state)
        return self.status()

    def _loop(self, data: MNISTTensors, bar) -> None:
        log_every = {m.index: max(1, m.batches // POINTS_PER_EPOCH) for m in self.models}
        metrics_path = self.run_dir / "metrics.jsonl"
        unwritten: list[dict] = []  # metrics lines not yet appended
        last_flush = time.monotonic()

        def flush() -> None:
            """Append the new metrics lines and hand the new points to the renderer."""
            if unwritten:
                append_jsonl(metrics_path, unwritten)
                if self.renderer:
                    self.renderer.add_points([r for r in unwritten if r["kind"] == "train"],
                                             [r for r in unwritten if r["kind"] == "eval"])
                unwritten.clear()

        try:
            while not self.stop_event.is_set():
                unfinished = [m for m in self.models if not m.done]
                if not unfinished:
                    break
                m = min(unfinished, key=lambda r: (r.progress, r.index))  # keeps the curves side by side
                self._train_step(m, data)
                if bar is not None:
                    bar.update(1)
                epoch_end = m.step % m.batches == 0
                rows = []
                if m.window_steps >= log_every[m.index] or epoch_end:
                    rows.append(self._log_window(m))
                if epoch_end:
                    started = time.perf_counter()
                    row = self._evaluate(m, data)
                    self.eval_seconds += time.perf_counter() - started
                    if row:
                        rows.append(row)
                        log.info("%s epoch %d/%d: loss %.4f, train %.2f%%, validation %.2f%%, test %.2f%%",
                                 m.name, row["epoch"], self.config.epochs, m.last["loss"], m.last["accuracy"],
                                 row["val_accuracy"], row["test_accuracy"])
                if rows:
                    unwritten.extend(rows)
                    # batched: at 100k+ images/s (GPU) a window ends every few ms
                    if epoch_end or time.monotonic() - last_flush >= FLUSH_INTERVAL:
                        flush()
                        last_flush = time.monotonic()
                    self.write_status(force=epoch_end)
        finally:
            flush()  # a failing run keeps every line it computed
        if self.stop_event.is_set():
            self.state = "stopping"
            self.write_status(force=True)


# ---------------------------------------------------------------- command line

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train MNISTNet models and write a run folder "
                                            "(the same one the web monitor shows).")
    p.add_argument("--kernels", action="append", metavar="K1,K2,K3,K4",
                   help="conv output channels of one model; repeat for up to 4 models "
                        "(default: 32,64,64,64 and 16,32,32,32)")
    defaults = TrainConfig.__dataclass_fields__
    for flag, key, kind, choices in [("--epochs", "epochs", int, None), ("--optimizer", "optimizer", str, ["adam", "sgd"]),
                                     ("--learning-rate", "learning_rate", float, None),
                                     ("--batch-size", "batch_size", int, None),
                                     ("--lr-schedule", "lr_schedule", str, ["none", "onecycle"]),
                                     ("--precision", "precision", str, ["auto", "fp32", "bf16"]),
                                     ("--seed", "seed", int, None), ("--device", "device", str, ["auto", "cpu", "cuda", "mps"])]:
        p.add_argument(flag, dest=key, type=kind, choices=choices,
                       help=f"default {defaults[key].default} (shared by all models)")
    p.add_argument("--train-samples", type=int, help="train on only this many images (default: all 55,000)")
    p.add_argument("--data-dir", default=os.environ.get("MNIST_DATA_DIR", "data"),
                   help="folder that holds MNIST/raw/ (env MNIST_DATA_DIR; default ./data)")
    p.add_argument("--runs-dir", default="runs", help="where run folders are written (default ./runs)")
    p.add_argument("--keep-runs", type=int, default=5, help="keep the newest N runs (0: keep all)")
    return p


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    keys = ("epochs", "optimizer", "learning_rate", "batch_size", "lr_schedule", "precision", "train_samples",
            "seed", "device")
    request = {key: getattr(args, key) for key in keys if getattr(args, key) is not None}
    if args.kernels:
        request["models"] = [{"kernels": k} for k in args.kernels]
    try:
        config = parse_train_config(request)
        store = RunStore(args.runs_dir, keep=args.keep_runs)
        run_id, run_dir = store.create()
        trainer = Trainer(config, args.data_dir, run_dir, progress_bar=True)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
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
