"""MNIST from IDX files into tensors: read once, normalized once, split once."""
from __future__ import annotations

import fcntl
import gzip
import logging
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

MEAN, STD = 0.1307, 0.3081  # MNIST training-set pixel mean and std (pixels in [0, 1])
VALIDATION_SIZE = 5_000
SPLIT_SEED = 12345  # fixed: the same 5,000 images are held out in every run
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
DOWNLOAD_LOCK = ".mnist-download.lock"  # in the data folder: held by the one process that downloads
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataError(RuntimeError):
    """MNIST could not be found, downloaded or read."""


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a numpy array, checking its header and size."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    type_code, ndim = raw[2], raw[3]
    if type_code not in IDX_DTYPES:
        raise DataError(f"{path}: unknown IDX element type 0x{type_code:02x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(IDX_DTYPES[type_code])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(f"{path}: expected {expected} data bytes for shape {shape}, found {len(raw) - header}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def raw_dir(data_dir: str | os.PathLike) -> Path:
    return Path(data_dir) / "MNIST" / "raw"


def _find(data_dir, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        path = raw_dir(data_dir) / name
        if path.is_file():
            return path
    return None


def ensure_mnist(data_dir: str | os.PathLike, download: bool = True) -> dict[str, Path]:
    """Paths of the four MNIST files; downloads them with torchvision if any is missing."""
    paths = {key: _find(data_dir, stem) for key, stem in FILES.items()}
    if all(paths.values()):
        return paths
    where = raw_dir(data_dir)
    missing = ", ".join(FILES[k] for k, p in paths.items() if p is None)
    if download:
        try:
            download_mnist(data_dir)
        except Exception as exc:  # network errors come in many types
            raise DataError(
                f"MNIST is missing from {where} ({missing}) and downloading it failed: {exc}. "
                f"Put the four files (train-images-idx3-ubyte, train-labels-idx1-ubyte, "
                f"t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, optionally .gz) in {where}, "
                f"or point --data-dir / MNIST_DATA_DIR at the folder that holds MNIST/raw/."
            ) from exc
        return ensure_mnist(data_dir, download=False)
    raise DataError(f"MNIST is missing from {where}: {missing}")


def download_mnist(data_dir: str | os.PathLike) -> None:
    """Download MNIST into ``data_dir`` with torchvision, one process at a time (several workers
    starting on a fresh install would each download it into the same folder): the first takes the
    folder's download lock, the others wait and then find the files. The files are downloaded into
    a temporary folder beside them and moved in whole, so no reader sees half a file."""
    from torchvision.datasets import MNIST

    Path(data_dir).mkdir(parents=True, exist_ok=True)
    # opened for writing: an exclusive lock on a network file system needs a file open for writing
    with open(Path(data_dir) / DOWNLOAD_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if all(_find(data_dir, stem) for stem in FILES.values()):
            return  # another process downloaded it while this one waited
        log.info("MNIST not found in %s; downloading it there with torchvision", raw_dir(data_dir))
        with tempfile.TemporaryDirectory(dir=data_dir, prefix=".mnist-download-") as tmp:
            for train in (True, False):
                MNIST(root=tmp, train=train, download=True)
            raw_dir(data_dir).mkdir(parents=True, exist_ok=True)
            for stem in FILES.values():
                found = _find(tmp, stem)
                if found is not None:
                    os.replace(found, raw_dir(data_dir) / found.name)


@dataclass(frozen=True)
class MNISTTensors:
    """Normalized images [N, 1, 28, 28] float32 and labels [N] int64 for each split."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    test_raw: torch.Tensor  # uint8 [N, 28, 28]: test digits as stored, for drawing samples

    def to(self, device: torch.device) -> "MNISTTensors":
        move = lambda t: t.to(device, non_blocking=True)  # noqa: E731
        return MNISTTensors(*(move(t) for t in (self.train_x, self.train_y, self.val_x, self.val_y,
                                                self.test_x, self.test_y)), test_raw=self.test_raw)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """Pixels in [0, 255] (uint8 or float), [N, 28, 28] or one [28, 28] -> float32 [N, 1, 28, 28],
    scaled to [0, 1] then standardized, as the models are trained on."""
    images = images.float().reshape(-1, *images.shape[-2:])
    return ((images / 255.0 - MEAN) / STD).unsqueeze(1)


def pixels(normalized: torch.Tensor) -> np.ndarray:
    """The first image of a normalized batch back as uint8 pixels [28, 28] (what the models saw)."""
    return (np.clip(normalized[0, 0].numpy() * STD + MEAN, 0, 1) * 255).astype(np.uint8)


def load_mnist(data_dir: str | os.PathLike, train_samples: int | None = None,
               download: bool = True) -> MNISTTensors:
    """Read MNIST, hold out ``VALIDATION_SIZE`` training images (fixed seed), optionally keep
    only ``train_samples`` of the rest (a fixed random subset)."""
    paths = ensure_mnist(data_dir, download=download)
    arrays = {key: read_idx(path) for key, path in paths.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != (images.shape[0],):
            raise DataError(f"MNIST {split} files have unexpected shapes {images.shape} / {labels.shape}")
    train_images = torch.from_numpy(arrays["train_images"].copy())
    train_labels = torch.from_numpy(arrays["train_labels"].astype(np.int64))
    n = train_images.shape[0]
    if n < 2:
        raise DataError(f"MNIST training set has {n} images; need at least 2")
    # 5,000 of the official 60,000; a small test set keeps a tenth for validation instead.
    validation_size = min(VALIDATION_SIZE, max(1, n // 10))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED))
    val_idx, train_idx = order[:validation_size], order[validation_size:]
    if train_samples is not None:
        train_idx = train_idx[:train_samples]
    test_raw = torch.from_numpy(arrays["test_images"].copy())
    return MNISTTensors(
        train_x=normalize(train_images[train_idx]),
        train_y=train_labels[train_idx],
        val_x=normalize(train_images[val_idx]),
        val_y=train_labels[val_idx],
        test_x=normalize(test_raw),
        test_y=torch.from_numpy(arrays["test_labels"].astype(np.int64)),
        test_raw=test_raw,
    )
