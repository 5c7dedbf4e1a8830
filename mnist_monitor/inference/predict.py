"""Predictions for a digit drawn on the page: MNIST-style preprocessing, checkpoint inference,
and the ``POST /predict`` request itself."""
from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import io
import threading
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from mnist_monitor.cache import LRU
from mnist_monitor.config import reject_unknown
from mnist_monitor.data import DataError, ensure_mnist, normalize, pixels, read_idx
from mnist_monitor.inference.layer_views import DATA_URL_PREFIX, layer_views, png_data_url
from mnist_monitor.runstore import FINAL_STATES, RunStore
from model import MNISTNet

MAX_SIDE = 4096  # pixels; larger drawings are refused before decoding (the size is read from the header)
MAX_DECODED_SIDE = 1024  # pixels; a larger drawing is shrunk to this as 8-bit RGBA before any float copy
# (4,096 a side as float32 RGBA would be 256 MB a request; the page's canvas sends 280)
LARGE_DECODES = threading.BoundedSemaphore(2)  # drawings over MAX_DECODED_SIDE decoded at once (~130 MB each)


class InvalidInput(ValueError):
    """A request the prediction cannot take; ``field`` names the input at fault."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class RunNotFound(LookupError):
    """The run asked for does not exist (or was deleted while it was read)."""


class NothingToAnswer(RuntimeError):
    """No model can answer yet: no run, no checkpoint, no test digits."""


class ImageError(ValueError):
    """The image is not a usable PNG drawing; the message says why."""


def decode_png_data_url(data_url) -> Image.Image:
    if not isinstance(data_url, str) or not data_url.startswith(DATA_URL_PREFIX):
        raise ImageError("image must be a PNG data URL starting with 'data:image/png;base64,'")
    try:
        raw = base64.b64decode(data_url[len(DATA_URL_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise ImageError("image is not valid base64") from None
    try:
        image = Image.open(io.BytesIO(raw))
        if image.format != "PNG":
            raise ImageError(f"image must be a PNG, got {image.format}")
        if max(image.size) > MAX_SIDE:
            raise ImageError(f"image is {image.size[0]}x{image.size[1]} pixels; at most {MAX_SIDE} a side")
        large = max(image.size) > MAX_DECODED_SIDE
        with LARGE_DECODES if large else contextlib.nullcontext():
            image.load()
            if large:  # box-averaged: a digit keeps its shape at this size
                image = (image if image.mode == "RGBA" else image.convert("RGBA")).reduce(
                    -(-max(image.size) // MAX_DECODED_SIDE))
    except ImageError:
        raise
    # whatever PIL refuses is the image's fault: a broken chunk (SyntaxError, EOFError), a text or
    # colour-profile chunk that decompresses too large (ValueError), a decompression bomb
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise ImageError(f"image is not a readable PNG ({exc})") from None
    return image


def grayscale(image: Image.Image) -> np.ndarray:
    """Grayscale float array in [0, 255]: a white digit on black; transparent pixels count as black."""
    rgba = np.asarray(image.convert("RGBA"), dtype=np.float32)
    gray = rgba[..., :3].mean(axis=2) * (rgba[..., 3] / 255.0)
    return gray


def mnist_preprocess(gray: np.ndarray) -> np.ndarray:
    """Like MNIST: crop to the digit, scale its longer side to 20 px (aspect kept), put it in a
    28x28 field with its centre of mass at the centre. Returns uint8-range floats [28, 28]."""
    if gray.size == 0 or gray.max() <= 0:
        raise ImageError("the drawing is empty: draw a digit in white on the black canvas")
    mask = gray > 0.1 * gray.max()
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    crop = gray[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = crop.shape
    scale = 20.0 / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    crop_image = Image.fromarray(np.clip(crop / crop.max() * 255, 0, 255).astype(np.uint8))
    small = np.asarray(crop_image.resize((new_w, new_h), Image.LANCZOS), dtype=np.float32)
    field = np.zeros((28, 28), dtype=np.float32)
    top, left = (28 - new_h) // 2, (28 - new_w) // 2
    field[top:top + new_h, left:left + new_w] = small
    total = field.sum()
    if total > 0:  # shift the centre of mass to the centre, as MNIST was made
        ys, xs = np.indices(field.shape)
        dy = int(round(13.5 - (ys * field).sum() / total))
        dx = int(round(13.5 - (xs * field).sum() / total))
        dy = max(-top, min(dy, 28 - top - new_h))
        dx = max(-left, min(dx, 28 - left - new_w))
        field = np.roll(field, (dy, dx), axis=(0, 1))
    return np.clip(field, 0, 255)


def image_to_tensor(data_url) -> torch.Tensor:
    """PNG data URL -> normalized tensor [1, 1, 28, 28], as the models were trained on."""
    return normalize(torch.from_numpy(mnist_preprocess(grayscale(decode_png_data_url(data_url)))))


def load_checkpoint(path: Path) -> tuple[MNISTNet, str]:
    """A checkpoint as an eval-mode MNISTNet and its name.

    The model is built on the meta device and takes the checkpoint's tensors as they are: no
    random initialization, so a request never draws from the generator a training run uses
    (a draw here would change that run's dropout masks, and a seed would no longer reproduce it)."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        with torch.device("meta"):
            model = MNISTNet(checkpoint["kernels"])
        model.load_state_dict(checkpoint["state_dict"], assign=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # a damaged file (cut off, overwritten): torch and pickle raise many kinds
        raise NothingToAnswer(f"the checkpoint {path.parent.name}/{path.name} cannot be read "
                              f"({type(exc).__name__}): the run's next epoch end writes it again") from None
    model.epoch = checkpoint.get("epoch")  # the epoch whose end the weights are from
    return model.eval(), checkpoint.get("name", path.stem)


class CheckpointCache:
    """The most recently used loaded models, keyed by checkpoint path and modification time
    (reloaded when the file is replaced)."""

    def __init__(self, capacity: int = 8):  # 8 = the 4 models of a run shown and of one more
        self._models = LRU(capacity)  # path -> (mtime, model, name)

    def __len__(self) -> int:
        return len(self._models)

    def __contains__(self, path: Path) -> bool:
        return path in self._models

    def load(self, path: Path) -> tuple[MNISTNet, str]:
        mtime = path.stat().st_mtime_ns
        cached = self._models.get(path)
        if cached and cached[0] == mtime:
            return cached[1], cached[2]
        model, name = load_checkpoint(path)
        self._models.put(path, (mtime, model, name))
        for gone in [p for p in self._models.keys() if not p.exists()]:  # runs deleted meanwhile
            self._models.pop(gone)
        return model, name


@torch.no_grad()
def predict(models: list[tuple[int, str, MNISTNet]], image: torch.Tensor, layers: bool = False) -> list[dict]:
    """Each model's answer: its index in the run (for its colour), name, digit, 10 probabilities;
    with ``layers``, also what each of its layers computes for the digit (``layer_views``)."""
    results = []
    for index, name, model in models:
        probabilities = torch.softmax(model(image).float(), dim=1)[0]
        result = {"index": index, "model": name, "epoch": getattr(model, "epoch", None),
                  "digit": int(probabilities.argmax()), "probabilities": [round(float(p), 6) for p in probabilities]}
        if layers:
            result["layers"] = layer_views(model, image)
        results.append(result)
    return results


@functools.lru_cache(maxsize=2)
def test_digits(data_dir: str) -> tuple[np.ndarray, np.ndarray]:
    """The MNIST test images (uint8 [N, 28, 28]) and labels, read once per data folder."""
    paths = ensure_mnist(data_dir, download=False)
    return read_idx(paths["test_images"]), read_idx(paths["test_labels"])


def digit_png_data_url(image: np.ndarray, scale: int = 4) -> str:
    """A 28x28 uint8 digit as a small PNG data URL, white on black, ``scale`` times larger."""
    return png_data_url(np.kron(image, np.ones((scale, scale), np.uint8)))


def test_digit_input(index, data_dir: str) -> tuple[torch.Tensor, dict]:
    """Test digit ``index`` as the models' input, and what the answer says about it."""
    try:
        images, labels = test_digits(str(data_dir))
    except DataError as exc:
        raise NothingToAnswer(f"the MNIST test digits are not available: {exc}") from None
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(labels):
        raise InvalidInput(f"test_index: must be a whole number from 0 to {len(labels) - 1}, got {index!r}",
                         field="test_index")
    tensor = normalize(torch.from_numpy(images[index].copy()))
    return tensor, {"test_index": index, "label": int(labels[index]), "digit_image": digit_png_data_url(images[index])}


PREDICT_KEYS = ("image", "test_index", "run_id", "layers")


def predict_request(body: dict, store: RunStore, checkpoints: CheckpointCache, active_run_id: str | None,
                    data_dir: str) -> dict:
    """``POST /predict``: a drawn digit (``image``) or an MNIST test digit (``test_index``) read by
    each model of the run (default: the active or newest run), from each model's checkpoint of
    the latest epoch end."""
    reject_unknown(body, PREDICT_KEYS)
    if ("image" in body) == ("test_index" in body):
        raise InvalidInput("image: is required (a PNG data URL), or test_index instead (not both)", field="image")
    layers = body.get("layers", False)
    if not isinstance(layers, bool):
        raise InvalidInput(f"layers: must be true or false, got {layers!r}", field="layers")
    run_id = body.get("run_id")
    if run_id is None:
        run_id = active_run_id or next(iter(store.run_ids()), None)
        if run_id is None:
            raise NothingToAnswer("no run yet: train a model first")
    elif not isinstance(run_id, str):
        raise InvalidInput("run_id: must be a string", field="run_id")
    run = store.run(run_id)
    if run is None:
        raise RunNotFound(f"no run {run_id!r}")
    extra = {}
    if "test_index" in body:
        image, extra = test_digit_input(body["test_index"], data_dir)
    else:
        try:
            image = image_to_tensor(body["image"])
        except ImageError as exc:
            raise InvalidInput(f"image: {exc}", field="image") from None
    snapshot = store.snapshot(run_id)
    if snapshot is None:  # deleted while it was read
        raise RunNotFound(f"no run {run_id!r}")
    models = []
    for i in range(len(snapshot.status.models) if snapshot.status else 0):
        path = run.checkpoint(i, "latest")
        if path is not None:
            try:
                model, name = checkpoints.load(path)
            except FileNotFoundError:  # the run was deleted while it was read
                raise RunNotFound(f"no run {run_id!r}") from None
            models.append((i, name, model))
    if not models:
        when = ("it ended before its first epoch did" if snapshot.state in FINAL_STATES
                else "one is saved at the end of each epoch")
        raise NothingToAnswer(f"run {run_id} has no checkpoint: {when}")
    if layers:  # the 28x28 input as the models see it (after the MNIST-style preparation)
        extra["input_image"] = digit_png_data_url(pixels(image))
    return {"run_id": run_id, **extra, "predictions": predict(models, image, layers)}
