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
    build: Callable[..., torch.optim.Optimizer]  # (parameters, learning rate) -> optimizer
    cycles_momentum: bool  # under the one-cycle schedule: momentum or beta1 cycled against the learning rate


REGISTRY: dict[str, OptimizerKind] = {
    "adam": OptimizerKind("Adam", lambda params, lr: torch.optim.Adam(params, lr=lr), cycles_momentum=True),
    "adamw": OptimizerKind("AdamW (weight decay 0.01)",
                           lambda params, lr: torch.optim.AdamW(params, lr=lr, weight_decay=0.01),
                           cycles_momentum=True),
    "sgd": OptimizerKind("SGD (Nesterov momentum 0.9)",
                         lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True),
                         cycles_momentum=True),
    "rmsprop": OptimizerKind("RMSprop (no momentum)", lambda params, lr: torch.optim.RMSprop(params, lr=lr),
                             cycles_momentum=False),
}
OPTIMIZERS = tuple(REGISTRY)
OPTIMIZER_LABELS = {name: kind.label for name, kind in REGISTRY.items()}


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    """The optimizer ``name`` (validated: one of OPTIMIZERS) over ``params`` at learning rate ``lr``."""
    return REGISTRY[name].build(params, lr)


def cycles_momentum(name: str) -> bool:
    return REGISTRY[name].cycles_momentum
