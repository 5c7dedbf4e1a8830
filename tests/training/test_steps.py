"""One model's training (the step, curve windows, evaluation, seeds) and the hardware set-up."""
import pytest
import torch

from mnist_monitor.training import hardware
from mnist_monitor.training.hardware import resolve_precision
from mnist_monitor.training.steps import ModelRun, build_model_run, model_seeds


def test_precision_auto_follows_the_hardware(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", torch.device("cpu")) == "bf16"
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"
    assert resolve_precision("fp32", torch.device("cuda")) == "fp32"


@pytest.mark.parametrize("batches, images", [(33, 2064), (215, 55000), (9, 540), (64, 8192)])
def test_curve_windows_split_each_epoch_evenly_so_the_last_point_is_no_leftover(batches, images):
    run = ModelRun.__new__(ModelRun)
    run.batches = batches
    ends = []
    for step in range(1, 2 * batches + 1):
        run.step = step
        if run.window_ends(images):
            ends.append(step)
    sizes = [b - a for a, b in zip([0] + ends, ends)]
    assert batches in ends and 2 * batches in ends  # a window closes every epoch
    assert max(sizes) - min(sizes) <= 1, sizes  # equal windows, the last one too
    assert min(sizes) * images / batches >= 0.75 * 128 or min(sizes) == batches  # no window of a few images


def test_every_run_seed_and_model_index_gets_streams_of_its_own():
    pairs = {(seed, index): model_seeds(seed, index) for seed in range(300) for index in range(4)}
    streams = [s for weights_and_order in pairs.values() for s in weights_and_order]
    assert len(set(streams)) == len(streams) == 2 * 300 * 4  # no two pairs, and no two uses, share a seed
    assert model_seeds(1, 0) != model_seeds(0, 1)  # the pair the old scheme confused
    assert model_seeds(1, 0, scheme=1) == (1, 1000) and model_seeds(0, 1, scheme=1) == (1, 1)


def weights_of(seed: int, index: int, scheme: int) -> torch.Tensor:
    from helpers import tiny_config

    config = tiny_config(seed=seed, seed_scheme=scheme, models=[{"kernels": [2, 4, 4, 4]}, {"kernels": [2, 4, 4, 4]}])
    run = build_model_run(index, config.models[index], config, 540, torch.device("cpu"))
    return torch.cat([p.detach().flatten() for p in run.model.parameters()])


def test_run_seed_1s_first_model_no_longer_starts_where_run_seed_0s_second_did():
    assert not torch.equal(weights_of(1, 0, scheme=2), weights_of(0, 1, scheme=2))
    assert torch.equal(weights_of(1, 0, scheme=1), weights_of(0, 1, scheme=1))  # runs written before: as they were
    assert torch.equal(weights_of(3, 1, scheme=2), weights_of(3, 1, scheme=2))  # and a seed still reproduces
