from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import make_mnist_dir, synthetic_digits, write_idx
from mnist_monitor import data
from mnist_monitor.data import MEAN, STD, DataError, load_mnist, read_idx


def test_read_idx_round_trips_plain_and_gzipped(tmp_path):
    images, _ = synthetic_digits(7, seed=0)
    plain = write_idx(tmp_path / "a-idx3-ubyte", images)
    gz = write_idx(tmp_path / "b-idx3-ubyte", images, compress=True)
    assert np.array_equal(read_idx(plain), images)
    assert np.array_equal(read_idx(gz), images)


@pytest.mark.parametrize("content, message", [
    (b"\x01\x00\x08\x01\x00\x00\x00\x01\x00", "magic"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x01\x00", "element type"),
    (b"\x00\x00\x08\x03\x00\x00", "header"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x05\x00\x00", "expected 5 data bytes"),
])
def test_read_idx_refuses_broken_files(tmp_path, content, message):
    path = tmp_path / "bad-idx"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_idx(path)


def test_load_mnist_splits_normalizes_and_subsets(tmp_path):
    root = make_mnist_dir(tmp_path / "m", train=600, test=200)
    d = load_mnist(root, download=False)
    assert d.train_x.shape == (540, 1, 28, 28) and d.val_x.shape == (60, 1, 28, 28)
    assert d.test_x.shape == (200, 1, 28, 28) and d.test_raw.dtype == torch.uint8
    assert d.train_x.dtype == torch.float32 and d.train_y.dtype == torch.int64
    # 255 -> (1 - mean) / std, 0 -> -mean / std
    assert d.test_x.max().item() == pytest.approx((1 - MEAN) / STD, rel=1e-5)
    # validation and training images are disjoint and the split is the same every time
    again = load_mnist(root, download=False)
    assert torch.equal(d.val_x, again.val_x)
    small = load_mnist(root, train_samples=100, download=False)
    assert small.train_x.shape[0] == 100 and torch.equal(small.val_y, d.val_y)
    assert torch.equal(small.train_x, d.train_x[:100])


def test_gzipped_files_are_found(tmp_path):
    root = make_mnist_dir(tmp_path / "gz", compress=True)
    assert load_mnist(root, download=False).test_x.shape[0] == 200


def test_missing_files_without_download_name_them(tmp_path):
    with pytest.raises(DataError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path / "empty", download=False)


def test_failed_download_says_where_to_put_the_files(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(DataError) as info:
        load_mnist(tmp_path / "nowhere")
    message = str(info.value)
    assert "network unreachable" in message
    assert str(tmp_path / "nowhere" / "MNIST" / "raw") in message and "t10k-images-idx3-ubyte" in message


def test_real_mnist_has_the_official_sizes(mnist_dir):
    d = load_mnist(mnist_dir, download=False)
    assert (d.train_x.shape[0], d.val_x.shape[0], d.test_x.shape[0]) == (55_000, 5_000, 10_000)
    assert d.train_x.mean().abs().item() < 0.02  # normalized with the training-set statistics
    assert data.VALIDATION_SIZE == 5_000


def test_workers_on_a_fresh_install_download_mnist_once_and_whole(tmp_path, monkeypatch):
    """Several workers starting on a fresh install each downloaded MNIST into the same folder; now
    one downloads (into a folder beside it, moved in whole) and the others find its files."""
    import threading
    import time

    import torchvision.datasets

    from mnist_monitor.data import ensure_mnist

    source = make_mnist_dir(tmp_path / "source")
    downloads = []

    class SlowMNIST:  # torchvision's MNIST, downloading from the tiny source set, slowly
        def __init__(self, root, train, download):
            downloads.append(train)
            raw = Path(root) / "MNIST" / "raw"
            raw.mkdir(parents=True, exist_ok=True)
            for name in (["train-images-idx3-ubyte", "train-labels-idx1-ubyte"] if train else
                         ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]):
                time.sleep(0.1)
                (raw / name).write_bytes((source / "MNIST" / "raw" / name).read_bytes())

    monkeypatch.setattr(torchvision.datasets, "MNIST", SlowMNIST)
    target = tmp_path / "data"
    found, errors = [], []

    def worker():
        try:
            found.append(ensure_mnist(target))
        except Exception as exc:  # noqa: BLE001  (recorded, the assertion below says it)
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == [] and downloads == [True, False]  # one download: the training and the test files
    assert len(found) == 3 and all(paths == found[0] for paths in found)
    assert sorted(p.name for p in (target / "MNIST" / "raw").iterdir()) == sorted(
        p.name for p in (source / "MNIST" / "raw").iterdir())
    assert [p.name for p in target.iterdir() if p.name.startswith(".mnist-download-")] == []  # no leftovers
