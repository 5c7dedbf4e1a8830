"""The optimizers a model can train with: one registry, name -> factory. Its keys are the choices
that the validator, ``GET /config``, the command line, the OpenAPI document and sweeps offer, so a
choice without a factory cannot exist.

Under the one-cycle schedule the learning rate rises to its peak and falls again; an optimizer
with momentum (SGD's momentum, Adam's and AdamW's beta1) has it cycled the other way, from 0.95 at
the start to 0.85 at the peak and back, as in the one-cycle paper. RMSprop trains without momentum
(PyTorch's default, the classic RMSprop), so the schedule cycles only its learning rate.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class OptimizerKind:
    label: str  # as the page and the docs name it
    advice: str  # what it does and which learning rates suit it, for a learner choosing one
    build: Callable[..., torch.optim.Optimizer]  # (parameters, learning rate) -> optimizer
    cycles_momentum: bool  # under the one-cycle schedule: momentum or beta1 cycled against the learning rate


REGISTRY: dict[str, OptimizerKind] = {
    "adam": OptimizerKind(
        "Adam", "gives each weight a step size of its own from its recent gradients; a good first choice "
        "(the default learning rate, 0.004, is tuned for it)",
        lambda params, lr: torch.optim.Adam(params, lr=lr), cycles_momentum=True),
    "adamw": OptimizerKind(
        "AdamW (weight decay 0.01)", "Adam that also shrinks every weight a little at each step (weight "
        "decay), which can generalize better; the same learning rates as Adam",
        lambda params, lr: torch.optim.AdamW(params, lr=lr, weight_decay=0.01), cycles_momentum=True),
    "sgd": OptimizerKind(
        "SGD (Nesterov momentum 0.9)", "one step size for every weight, with momentum; the classic choice, "
        "which wants a higher learning rate than Adam (try about 0.05)",
        lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True), cycles_momentum=True),
    "rmsprop": OptimizerKind(
        "RMSprop (no momentum)", "step sizes of their own per weight, like Adam, without momentum; wants a "
        "lower learning rate than Adam (try about 0.001: it can diverge at 0.01)",
        lambda params, lr: torch.optim.RMSprop(params, lr=lr), cycles_momentum=False),
}
OPTIMIZERS = tuple(REGISTRY)
OPTIMIZER_LABELS = {name: kind.label for name, kind in REGISTRY.items()}
OPTIMIZER_ADVICE = {name: kind.advice for name, kind in REGISTRY.items()}


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    """The optimizer ``name`` (validated: one of OPTIMIZERS) over ``params`` at learning rate ``lr``."""
    return REGISTRY[name].build(params, lr)


def cycles_momentum(name: str) -> bool:
    return REGISTRY[name].cycles_momentum
