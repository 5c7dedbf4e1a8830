"""Matplotlib rendering of the run's PNGs, with the object API (thread-safe, no pyplot state)."""
from __future__ import annotations

import io
import json
import logging
import math
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

from mnist_monitor.palette import RIGHT, WRONG, color

log = logging.getLogger(__name__)
PROJECT_DIR = Path(__file__).resolve().parents[2]  # where the package is found (config.py imports torch)
SAMPLE_COUNT = 16  # fixed test digits shown with their predictions
ERROR_COUNT = 24  # misclassified test digits shown per model


def _figure(**kwargs) -> Figure:
    # matplotlib is imported at the first drawing, in the renderer process: a server or trainer that
    # imports this module for its client starts about 2 s sooner on a 2-core CPU.
    from matplotlib.figure import Figure
    return Figure(**kwargs)


def _png(fig: Figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def render_curves(names: list[str], train: list[dict], evals: list[dict], epochs: int | None = None,
                  colors: list[int] | None = None) -> bytes:
    """curves.png: see ``curves_figure``."""
    return _png(curves_figure(names, train, evals, epochs, colors))


def curves_figure(names: list[str], train: list[dict], evals: list[dict], epochs: int | None = None,
                  colors: list[int] | None = None) -> Figure:
    """Training loss and accuracy per logged window (x = epochs, fractional), plus validation
    and test accuracy at each epoch end, all models overlaid; drawn as the page first shows them
    (the loss on a linear scale, which its axis says), each panel with its legend.

    ``train`` rows: {model, epoch, loss, accuracy}; ``evals`` rows: {model, epoch,
    val_accuracy, test_accuracy}; accuracies in percent. ``colors``: each model's palette index
    (default: by position).
    """
    colors = colors or list(range(len(names)))
    fig = _figure(figsize=(12, 4.2), dpi=90)
    fig.subplots_adjust(left=0.09, right=0.99, bottom=0.25, top=0.92, wspace=0.28)  # fixed: no layout engine
    ax_loss, ax_acc, ax_eval = fig.subplots(1, 3)
    for i, name in enumerate(names):
        rows = [r for r in train if r["model"] == i]
        if rows:
            x = [r["epoch"] for r in rows]
            ax_loss.plot(x, [r["loss"] for r in rows], color=color(colors[i]), label=name, lw=1.2)
            ax_acc.plot(x, [r["accuracy"] for r in rows], color=color(colors[i]), label=name, lw=1.2)
        ev = [r for r in evals if r["model"] == i]
        if ev:
            x = [r["epoch"] for r in ev]
            ax_eval.plot(x, [r["val_accuracy"] for r in ev], color=color(colors[i]), marker="o", ms=4,
                         label=f"{name} validation")
            ax_eval.plot(x, [r["test_accuracy"] for r in ev], color=color(colors[i]), marker="s", ms=4,
                         ls="--", label=f"{name} test")
    ax_loss.set(title="Training loss", xlabel="epoch", ylabel="cross-entropy (linear scale)")
    ax_acc.set(title="Training accuracy (%)", xlabel="epoch", ylabel="%")
    ax_eval.set(title="Validation / test accuracy (%)", xlabel="epoch", ylabel="%")
    accuracies = [r["accuracy"] for r in train] + [r[k] for r in evals for k in ("val_accuracy", "test_accuracy")]
    if accuracies:  # zoom on the interesting range once models are past chance
        low = max(0.0, min(90.0, np.percentile(accuracies, 5) - 2))
        ax_acc.set_ylim(low, 100.5)
        ax_eval.set_ylim(low, 100.5)
    for ax in (ax_loss, ax_acc, ax_eval):
        if epochs:  # room after the last epoch: its markers are drawn whole
            ax.set_xlim(0, epochs + max(0.05, 0.025 * epochs))
        ax.grid(alpha=0.3)
        if not ax.get_lines():
            ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes, color="gray")
    if ax_loss.get_lines():
        ax_loss.legend(fontsize=8, loc="upper right")
        ax_acc.legend(fontsize=8, loc="lower right")
    handles, labels = ax_eval.get_legend_handles_labels()
    if handles:  # below the charts, where it covers no line
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize=8, frameon=False)
    return fig


DIGIT_COLUMNS = 8
DIGIT_TILE, DIGIT_LABEL_H, DIGIT_GAP = 28, 13, 4  # MNIST pixels: a digit, the label strip above it, the gap
DIGIT_SCALE = 2.6  # display pixels per MNIST pixel at dpi 100
TITLE_H = 0.3  # inches above the grid for its title
CONFUSION_SIZE = (4.6, 4.2)  # inches at dpi 100


def digit_grid_size(capacity: int) -> tuple[int, int]:
    """Pixel size of a digit grid with room for ``capacity`` digits (the page reserves it)."""
    rows = max(1, -(-capacity // DIGIT_COLUMNS))
    width = DIGIT_COLUMNS * (DIGIT_TILE + DIGIT_GAP) * DIGIT_SCALE
    height = rows * (DIGIT_TILE + DIGIT_LABEL_H) * DIGIT_SCALE + TITLE_H * 100
    return round(width), round(height)


def digit_grid_layout() -> dict:
    """Where the digits sit in a grid picture, in its pixels (the page maps a click to a digit)."""
    return {"columns": DIGIT_COLUMNS, "cell": [round((DIGIT_TILE + DIGIT_GAP) * DIGIT_SCALE, 2),
                                                round((DIGIT_TILE + DIGIT_LABEL_H) * DIGIT_SCALE, 2)],
            "top": round(TITLE_H * 100)}


def confusion_size() -> tuple[int, int]:
    return round(CONFUSION_SIZE[0] * 100), round(CONFUSION_SIZE[1] * 100)


def picture_settings() -> dict:
    """What the page needs to reserve the pictures' space and map a click to a digit (GET /config)."""
    return {"image_sizes": {"samples": digit_grid_size(SAMPLE_COUNT), "errors": digit_grid_size(ERROR_COUNT),
                            "confusion": confusion_size(), "filters": filters_size()},
            "digit_grid": {**digit_grid_layout(), "samples": SAMPLE_COUNT}}


def render_digits(title: str, images: np.ndarray, predictions, labels, capacity: int) -> bytes:
    """A grid of test digits with room for ``capacity`` (always the same size), each labelled
    with the prediction, in green when right, and in red with the true digit when wrong.

    Drawn as one mosaic image in one axes (not an axes per digit): about 5x cheaper to render.
    """
    count, columns = len(images), DIGIT_COLUMNS
    rows = max(1, -(-capacity // columns))
    tile, label_h = DIGIT_TILE, DIGIT_LABEL_H
    cell_h, cell_w = tile + label_h, tile + DIGIT_GAP
    mosaic = np.full((rows * cell_h, columns * cell_w), 255, dtype=np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        top, left = r * cell_h + label_h, c * cell_w + 2
        mosaic[top:top + tile, left:left + tile] = image
    width, height = digit_grid_size(capacity)
    fig = _figure(figsize=(width / 100, height / 100), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1 - TITLE_H / fig.get_figheight()))
    ax.imshow(255 - mosaic, cmap="gray_r", vmin=0, vmax=255, interpolation="nearest", aspect="auto")
    for i, (pred, label) in enumerate(zip(predictions, labels)):
        r, c = divmod(i, columns)
        text = f"{pred}" if pred == label else f"{pred}, true {label}"
        ax.text(c * cell_w + cell_w / 2, r * cell_h + label_h / 2 + 0.5, text,
                ha="center", va="center", fontsize=9, color=RIGHT if pred == label else WRONG)
    if count == 0:
        ax.text(columns * cell_w / 2, cell_h / 2, "none", ha="center", va="center")
    ax.set_axis_off()
    fig.suptitle(title, fontsize=9, y=0.995, va="top")
    return _png(fig)


def render_confusion(title: str, matrix: np.ndarray) -> bytes:
    """10x10 confusion matrix (rows: true digit, columns: predicted) with counts in the cells."""
    matrix = np.asarray(matrix)
    fig = _figure(figsize=CONFUSION_SIZE, dpi=100)
    fig.subplots_adjust(left=0.12, right=0.98, bottom=0.11, top=0.93)
    ax = fig.subplots()
    shown = np.log1p(matrix)  # log scale so the few errors stay visible beside the diagonal
    ax.imshow(shown, cmap="Blues")
    threshold = shown.max() / 2 if shown.size else 0
    for t in range(matrix.shape[0]):
        for p in range(matrix.shape[1]):
            if matrix[t, p]:
                ax.text(p, t, str(int(matrix[t, p])), ha="center", va="center", fontsize=7.5,
                        color="white" if shown[t, p] > threshold else "black")
    ax.set(title=title, xlabel="predicted", ylabel="true", xticks=range(10), yticks=range(10))
    ax.title.set_fontsize(9)
    return _png(fig)


FILTERS_SIZE = (4.6, 2.6)  # inches at dpi 100; the grid is fitted inside, so the picture's size never changes


def filters_size() -> tuple[int, int]:
    return round(FILTERS_SIZE[0] * 100), round(FILTERS_SIZE[1] * 100)


def render_filters(title: str, weights: np.ndarray) -> bytes:
    """The first conv layer's 3x3 kernels [k, 1, 3, 3] as a grid: blue positive, red negative, on one
    scale for the whole layer (so kernels that grow stand out as they sharpen)."""
    weights = np.asarray(weights, dtype=np.float32)[:, 0]
    count = len(weights)
    columns = min(16, max(4, math.ceil(math.sqrt(2 * count))))  # twice as wide as tall
    rows = -(-count // columns)
    cell = 4  # 3 pixels and a gap
    mosaic = np.full((rows * cell - 1, columns * cell - 1), np.nan, dtype=np.float32)
    for i, kernel in enumerate(weights):
        r, c = divmod(i, columns)
        mosaic[r * cell:r * cell + 3, c * cell:c * cell + 3] = kernel
    scale = float(np.nanmax(np.abs(mosaic))) or 1.0
    fig = _figure(figsize=FILTERS_SIZE, dpi=100)
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.84))
    import matplotlib
    cmap = matplotlib.colormaps["RdBu"].with_extremes(bad="white")
    ax.imshow(mosaic, cmap=cmap, vmin=-scale, vmax=scale, interpolation="nearest")
    ax.set_axis_off()
    fig.suptitle(title, fontsize=9, y=0.99, va="top")
    return _png(fig)


# ---------------------------------------------------------------- the renderer process
#
# Training must not wait for matplotlib, and in a thread matplotlib would hold the GIL that the
# training loop needs between PyTorch ops (measured: 17% fewer images/s). So the PNGs are drawn in
# a child process at low CPU priority (`python -m mnist_monitor.training.renderer --serve RUN_DIR MODELS_JSON EPOCHS`), fed
# pickled messages (the two dataclasses below) on stdin by RenderClient. End of input: draw what
# is pending and exit. The page draws the live curves itself from the metrics rows; curves.png is
# a figure of the run to keep, drawn at each epoch end and at the end.


@dataclass
class CurvePoints:
    """New metrics rows; curves.png is redrawn when they include an epoch end (an "eval" row)."""
    rows: list


@dataclass
class EpochImage:
    """An epoch-end picture of one model: ``drawer`` names a function of DRAWERS, called with ``args``."""
    kind: str  # samples, errors, confusion or filters
    model_index: int
    drawer: str
    args: tuple


DRAWERS = {"digits": render_digits, "confusion": render_confusion, "filters": render_filters}


class RenderClient:
    """Sends curve points and epoch-end images to the renderer process.

    If the renderer dies, training goes on without new images (logged once).
    """

    def __init__(self, run_dir: Path, names: list[str], epochs: int, colors: list[int] | None = None):
        models = json.dumps({"names": names, "colors": colors})
        self.process = subprocess.Popen(
            [sys.executable, "-m", __name__, "--serve", str(run_dir), models, str(epochs)],
            stdin=subprocess.PIPE, env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (
                str(PROJECT_DIR), os.environ.get("PYTHONPATH"))))})
        self.broken = False

    def send(self, message: CurvePoints | EpochImage) -> None:
        if self.broken:
            return
        try:
            pickle.dump(message, self.process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            self.broken = True
            log.error("the renderer process ended (exit code %s); training goes on without new images",
                      self.process.poll())

    def close(self, timeout: float = 60.0) -> None:
        """Let the renderer draw what is pending (final curves included) and wait for it (seconds)."""
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def read_messages(stream, inbox: queue.Queue) -> None:
    """The trainer's messages, as they come, into ``inbox``; None once its input ends."""
    while True:
        try:
            inbox.put(pickle.load(stream))
        except (EOFError, OSError, pickle.UnpicklingError):
            inbox.put(None)
            return


def next_batch(inbox: queue.Queue) -> tuple[list[dict], dict, bool]:
    """Every message waiting (at least one): the curve rows in order, the newest picture of each
    kind and model (an older one would be drawn only to be overwritten: when drawing falls behind
    training, on a slow CPU or with short epochs, the renderer catches up at once), and whether the
    input ended."""
    rows, pictures, ended = [], {}, False
    message = inbox.get()
    while True:
        if message is None:
            ended = True
        elif isinstance(message, CurvePoints):
            rows.extend(message.rows)
        elif isinstance(message, EpochImage):
            pictures[message.kind, message.model_index] = message
        try:
            message = inbox.get_nowait()
        except queue.Empty:
            return rows, pictures, ended


def serve(run_dir: str, models: dict, epochs: int, stream) -> None:
    """Draws what the trainer sends (``stream``) into ``run_dir``; ``models``: {names, colors}."""
    from mnist_monitor.runstore import Run
    from mnist_monitor.runstore.run import CURVES_IMAGE

    run = Run(run_dir)
    inbox = queue.Queue()
    threading.Thread(target=read_messages, args=(stream, inbox), daemon=True).start()
    train_rows, eval_rows, pending, ended = [], [], False, False
    while not ended:
        rows, pictures, ended = next_batch(inbox)
        train_rows.extend(r for r in rows if r["kind"] == "train")
        new_evals = [r for r in rows if r["kind"] == "eval"]
        eval_rows.extend(new_evals)
        pending = pending or bool(rows)
        if pending and (new_evals or ended):  # at each evaluation, and the last curves at the end
            run.write_picture(CURVES_IMAGE, None, render_curves(models["names"], train_rows, eval_rows, epochs,
                                                                  models.get("colors")))
            pending = False
        for message in pictures.values():
            run.write_picture(message.kind, message.model_index, DRAWERS[message.drawer](*message.args))


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] != "--serve":
        sys.exit(f"usage: python -m {__spec__.name} --serve RUN_DIR MODELS_JSON EPOCHS")
    if hasattr(os, "nice"):
        os.nice(10)  # drawing yields the CPU to training
    # Ctrl-C in a terminal reaches the whole process group: the trainer stops and closes this
    # process's input, and it draws the last curves before it ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import importlib
    for module in ("matplotlib.figure", "matplotlib.backends.backend_agg"):  # now, while the first epoch trains:
        importlib.import_module(module)  # the first pictures (and a short run's end, which waits for them) come 1 s sooner
    # the messages unpickle as CurvePoints/EpochImage of the package's module (this one runs as
    # __main__), so serve from that module too
    from mnist_monitor.training import renderer

    renderer.serve(sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4]), sys.stdin.buffer)
