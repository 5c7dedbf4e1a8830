"""Optimizers by name: every choice the config offers builds its own optimizer, under the one-cycle
schedule momentum is cycled only where the optimizer has it, and each one trains."""
import math

import pytest
import torch

from helpers import tiny_config
from mnist_monitor.config import ConfigError, form_settings, parse_train_config
from mnist_monitor.training.optimizers import OPTIMIZERS, REGISTRY, make_optimizer
from mnist_monitor.training.steps import build_model_run
from mnist_monitor.training.trainer import Trainer

CLASSES = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD,
           "rmsprop": torch.optim.RMSprop}


def test_the_choices_are_the_registry_and_each_builds_its_own_class():
    assert OPTIMIZERS == tuple(REGISTRY) == tuple(CLASSES)  # adding a name without a factory is impossible
    assert form_settings()["choices"]["optimizer"] == list(OPTIMIZERS)
    assert set(form_settings()["labels"]["optimizer"]) == set(OPTIMIZERS)
    assert set(form_settings()["advice"]["optimizer"]) == set(OPTIMIZERS)  # the form says what each one does
    for name, cls in CLASSES.items():
        optimizer = make_optimizer(name, [torch.nn.Parameter(torch.zeros(2))], 0.01)
        assert type(optimizer) is cls, name  # never a silent fallback to another optimizer
        assert optimizer.defaults["lr"] == 0.01


def test_an_unknown_optimizer_is_refused_naming_the_choices():
    with pytest.raises(ConfigError) as refused:
        parse_train_config({"optimizer": "lion"})
    assert refused.value.field == "optimizer"
    assert all(name in str(refused.value) for name in OPTIMIZERS)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_one_cycle_cycles_momentum_only_where_the_optimizer_has_it(name):
    config = parse_train_config({"optimizer": name, "epochs": 1, "models": [{"kernels": [2, 2, 2, 2]}]})
    run = build_model_run(0, config.models[0], config, n_train=640, device=torch.device("cpu"))
    group = run.optimizer.param_groups[0]
    if name == "rmsprop":  # no momentum: the schedule moves the learning rate alone
        assert group["momentum"] == 0 and not run.scheduler.cycle_momentum
    else:
        assert run.scheduler.cycle_momentum
        momentum = group["betas"][0] if "betas" in group else group["momentum"]
        assert momentum == pytest.approx(0.95)  # the cycle starts high while the learning rate is low
    first_lr = group["lr"]
    for _ in range(3):
        run.optimizer.step()
        run.scheduler.step()
    assert group["lr"] > first_lr  # warming up towards the peak


@pytest.mark.parametrize("name, lr", [("adamw", 0.01), ("rmsprop", 0.002)])  # RMSprop diverges at 0.01 here
def test_the_new_optimizers_train_a_model(tmp_path, tiny_mnist, name, lr):
    config = tiny_config(optimizer=name, learning_rate=lr, epochs=1, models=[{"kernels": [4, 8, 8, 8]}])
    status = Trainer(config, tiny_mnist, tmp_path / "run", pictures=False, layer_stats=False).run()
    model = status["models"][0]
    assert status["state"] == "finished" and model["optimizer"] == name
    assert math.isfinite(model["loss"]) and model["test_accuracy"] > 20  # chance is 10 %
