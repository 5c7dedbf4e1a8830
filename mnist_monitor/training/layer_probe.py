"""How each layer learns: per-layer statistics of one training step, measured at each curve point.

For each layer with weights (4 conv, 2 linear): the weight norm, the gradient norm, the
update-to-weight ratio ||w_after - w_before|| / ||w_before|| of the step, and the fraction of the
layer's ReLU outputs that are exactly zero for the step's batch ("dead" units; counted on its
first DEAD_SAMPLE images). The probe is armed
only for the step that closes a curve window (25 an epoch), and its numbers stay on the device
until the window is read, so training pays for it about 25 times an epoch, never per batch.
"""
from __future__ import annotations

import torch
from torch import nn

STAT_NAMES = ("weight_norm", "grad_norm", "update_ratio", "dead_relu")
DEAD_SAMPLE = 64  # images of the batch whose ReLU outputs are counted: enough for a fraction, cheap to count


def weighted_layers(model: nn.Module) -> list[tuple[str, nn.Module, nn.Module | None]]:
    """(name, layer with weights, the ReLU right after it or None), in the order data flows."""
    modules = list(model.features) + list(model.classifier)
    found, convs = [], 0
    for i, module in enumerate(modules):
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            relu = modules[i + 1] if i + 1 < len(modules) and isinstance(modules[i + 1], nn.ReLU) else None
            if isinstance(module, nn.Conv2d):
                convs += 1
                name = f"conv {convs}"
            else:
                name = "dense" if relu is not None else "output"
            found.append((name, module, relu))
    return found


class LayerProbe:
    """Arm before a training step (``arm``), close the hooks after its forward pass (``disarm``),
    measure after the optimizer step (``measure``); ``read`` gives the numbers once."""

    def __init__(self, model: nn.Module):
        self.layers = weighted_layers(model)
        self.names = [name for name, _, _ in self.layers]
        self._before: list[torch.Tensor] = []
        self._zeros: dict[nn.Module, torch.Tensor] = {}
        self._hooks = []
        self._result: torch.Tensor | None = None

    def arm(self) -> None:
        self._before = [layer.weight.detach().clone() for _, layer, _ in self.layers]
        self._zeros = {}
        self._hooks = [relu.register_forward_hook(self._count) for _, _, relu in self.layers if relu is not None]

    def _count(self, module, inputs, output) -> None:
        sample = output.detach()[:DEAD_SAMPLE]
        self._zeros[module] = 1.0 - torch.count_nonzero(sample) / sample.numel()

    def disarm(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

    @torch.no_grad()
    def measure(self) -> None:
        rows = []
        for (_, layer, relu), before in zip(self.layers, self._before):
            weight = layer.weight.detach().float()
            grad = layer.weight.grad
            before = before.float()
            nan = torch.full((), float("nan"), device=weight.device)
            rows.append(torch.stack([
                weight.norm(), grad.float().norm() if grad is not None else nan,
                (weight - before).norm() / before.norm().clamp_min(1e-12),
                self._zeros.get(relu, nan) if relu is not None else nan]))
        self._result = torch.stack(rows)  # [layers, STAT_NAMES]
        self._before = []

    def read(self) -> dict | None:
        """{"layers": names, stat: [value per layer]} of the last measured step (one host sync), or
        None if no step was measured since the last read."""
        if self._result is None:
            return None
        values = self._result.t().tolist()
        self._result = None
        return {"layers": self.names, **{stat: [None if v != v else v for v in column]  # NaN: no such value
                                        for stat, column in zip(STAT_NAMES, values)}}
