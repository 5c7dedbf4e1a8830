"""One model's training: the textbook step, evaluation, and the state a model carries through a run
(optimizer, schedule, data order, curve-window accumulators, what a resume needs)."""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from mnist_monitor.config import SEED_SCHEME, ModelConfig, TrainConfig
from mnist_monitor.data import MNISTTensors
from mnist_monitor.runstore import ModelStatus
from mnist_monitor.training.checkpoints import to_cpu
from mnist_monitor.training.hardware import autocast
from mnist_monitor.training.layer_probe import LayerProbe
from mnist_monitor.training.optimizers import cycles_momentum, make_optimizer
from model import MNISTNet

EVAL_BATCH = 2000  # images per evaluation forward pass (no_grad: no activations kept)
POINTS_PER_EPOCH = 25  # training-curve points per epoch and model (each a window mean), at most
MIN_WINDOW_IMAGES = 128  # fewer points in small epochs: a window of a few images is mostly noise


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
            samples=self.samples, eta_seconds=eta_seconds, color=mc.color,
            samples_per_sec=round(self.samples / self.compute_seconds, 1) if self.compute_seconds > 0 else None)


def model_seeds(seed: int, index: int, scheme: int = SEED_SCHEME) -> tuple[int, int]:
    """(weights seed, data-order seed) of model ``index`` of a run seeded ``seed``.

    Scheme 2 draws both from numpy's SeedSequence keyed by (seed, index): no two (run seed, model
    index) pairs share a stream. Scheme 1, of runs written before, used seed + index and
    seed * 1000 + index, so run seed 1's first model started from run seed 0's second model's
    weights; those runs keep it when resumed or repeated, so their numbers reproduce."""
    if scheme == 1:
        return seed + index, seed * 1000 + index
    weights, order = np.random.SeedSequence(seed, spawn_key=(index,)).generate_state(2, dtype=np.uint64)
    return int(weights), int(order)


def build_model_run(index: int, mc: ModelConfig, config: TrainConfig, n_train: int,
                    device: torch.device) -> ModelRun:
    """Model, optimizer, schedule and data order of one model, seeded from the run's seed."""
    weights_seed, order_seed = model_seeds(config.seed, index, config.seed_scheme)
    torch.manual_seed(weights_seed)  # the weights, and (from the last model built) the dropout masks
    model = MNISTNet(mc.kernels).to(device)
    if device.type in ("cpu", "cuda"):
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(mc.optimizer, model.parameters(), mc.learning_rate)
    batches = math.ceil(n_train / mc.batch_size)
    total = batches * config.epochs
    scheduler = None
    if config.lr_schedule == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=mc.learning_rate, total_steps=total,
                                                        pct_start=config.warmup,
                                                        cycle_momentum=cycles_momentum(mc.optimizer))
    gen_device = device if device.type == "cuda" else torch.device("cpu")
    generator = torch.Generator(device=gen_device).manual_seed(order_seed)
    zero = torch.zeros((), device=device)
    return ModelRun(index=index, config=mc, model=model, optimizer=optimizer, scheduler=scheduler, batches=batches,
                    total_steps=total, generator=generator, parameters=sum(p.numel() for p in model.parameters()),
                    loss_sum=zero.clone(), correct_sum=zero.clone(), probe=LayerProbe(model),
                    label_smoothing=config.label_smoothing)
