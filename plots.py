"""Matplotlib rendering of the run's PNGs, with the object API (thread-safe, no pyplot state)."""
from __future__ import annotations

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# One colour per model, the same in every chart and on the page (static/app.js MODEL_COLORS).
MODEL_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")
RIGHT, WRONG = "#1a7f37", "#cf222e"


def color(index: int) -> str:
    return MODEL_COLORS[index % len(MODEL_COLORS)]


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def render_curves(names: list[str], train: list[dict], evals: list[dict], epochs: int | None = None) -> bytes:
    """Training loss and accuracy per logged window (x = epochs, fractional), plus validation
    and test accuracy at each epoch end, all models overlaid.

    ``train`` rows: {model, epoch, loss, accuracy}; ``evals`` rows: {model, epoch,
    val_accuracy, test_accuracy}; accuracies in percent.
    """
    fig = Figure(figsize=(12, 3.6), layout="constrained")
    ax_loss, ax_acc, ax_eval = fig.subplots(1, 3)
    for i, name in enumerate(names):
        rows = [r for r in train if r["model"] == i]
        if rows:
            x = [r["epoch"] for r in rows]
            ax_loss.plot(x, [r["loss"] for r in rows], color=color(i), label=name, lw=1.2)
            ax_acc.plot(x, [r["accuracy"] for r in rows], color=color(i), label=name, lw=1.2)
        ev = [r for r in evals if r["model"] == i]
        if ev:
            x = [r["epoch"] for r in ev]
            ax_eval.plot(x, [r["val_accuracy"] for r in ev], color=color(i), marker="o", ms=4,
                         label=f"{name} validation")
            ax_eval.plot(x, [r["test_accuracy"] for r in ev], color=color(i), marker="s", ms=4,
                         ls="--", label=f"{name} test")
    ax_loss.set(title="Training loss", xlabel="epoch", ylabel="cross-entropy")
    ax_acc.set(title="Training accuracy (%)", xlabel="epoch", ylabel="%")
    ax_eval.set(title="Validation / test accuracy (%)", xlabel="epoch", ylabel="%")
    accuracies = [r["accuracy"] for r in train] + [r[k] for r in evals for k in ("val_accuracy", "test_accuracy")]
    if accuracies:  # zoom on the interesting range once models are past chance
        low = max(0.0, min(90.0, np.percentile(accuracies, 5) - 2))
        ax_acc.set_ylim(low, 100.5)
        ax_eval.set_ylim(low, 100.5)
    losses = [r["loss"] for r in train]
    if losses and max(losses) > 5 * np.median(losses):
        ax_loss.set_yscale("log")
    for ax in (ax_loss, ax_acc, ax_eval):
        if epochs:
            ax.set_xlim(0, epochs)
        ax.grid(alpha=0.3)
        if ax.get_lines():
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "waiting for data", ha="center", va="center", transform=ax.transAxes, color="gray")
    return _png(fig)


def render_digits(title: str, images: np.ndarray, predictions, labels, columns: int = 8) -> bytes:
    """A grid of test digits, each titled 'pred P / true T', green when right, red when wrong."""
    count = len(images)
    rows = max(1, -(-count // columns))
    fig = Figure(figsize=(columns * 0.72, rows * 0.9 + 0.35), layout="constrained")
    fig.suptitle(title, fontsize=9)
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, image, pred, label in zip(axes, images, predictions, labels):
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"pred {pred} / true {label}", fontsize=6, color=RIGHT if pred == label else WRONG)
    if count == 0:
        axes[0].text(0.5, 0.5, "none", ha="center", va="center", transform=axes[0].transAxes)
    return _png(fig)


def render_confusion(title: str, matrix: np.ndarray) -> bytes:
    """10x10 confusion matrix (rows: true digit, columns: predicted) with counts in the cells."""
    matrix = np.asarray(matrix)
    fig = Figure(figsize=(4.6, 4.2), layout="constrained")
    ax = fig.subplots()
    shown = np.log1p(matrix)  # log scale so the few errors stay visible beside the diagonal
    ax.imshow(shown, cmap="Blues")
    threshold = shown.max() / 2 if shown.size else 0
    for t in range(matrix.shape[0]):
        for p in range(matrix.shape[1]):
            if matrix[t, p]:
                ax.text(p, t, str(int(matrix[t, p])), ha="center", va="center", fontsize=6,
                        color="white" if shown[t, p] > threshold else "black")
    ax.set(title=title, xlabel="predicted", ylabel="true", xticks=range(10), yticks=range(10))
    ax.title.set_fontsize(9)
    return _png(fig)
