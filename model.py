"""MNISTNet: the CNN the monitor trains, and a plain description of its layers."""
from __future__ import annotations

import torch
from torch import nn

IMAGE_SIZE = 28  # MNIST images are 28x28, one channel
NUM_CLASSES = 10
HIDDEN_UNITS = 128


class MNISTNet(nn.Module):
    """4 conv 3x3 (no padding) + 2 max-pool + dropout + 2 linear layers.

    conv k1 -> ReLU -> conv k2 -> ReLU -> pool 2 -> dropout 0.25
    -> conv k3 -> ReLU -> conv k4 -> ReLU -> pool 2 -> dropout 0.5
    -> flatten (k4 * 4 * 4) -> linear 128 -> ReLU -> linear 10 (logits).

    The output is raw logits: pair it with ``nn.CrossEntropyLoss`` (which applies
    log-softmax itself), and ``softmax`` it for probabilities.
    """

    def __init__(self, kernels: tuple[int, int, int, int] | list[int] = (32, 64, 64, 64)):
        super().__init__()
        kernels = tuple(int(k) for k in kernels)
        if len(kernels) != 4 or any(k < 1 for k in kernels):
            raise ValueError(f"kernels must be 4 positive integers, got {kernels!r}")
        self.kernels = kernels
        k1, k2, k3, k4 = kernels
        self.features = nn.Sequential(
            nn.Conv2d(1, k1, 3), nn.ReLU(),
            nn.Conv2d(k1, k2, 3), nn.ReLU(),
            nn.MaxPool2d(2), nn.Dropout(0.25),
            nn.Conv2d(k2, k3, 3), nn.ReLU(),
            nn.Conv2d(k3, k4, 3), nn.ReLU(),
            nn.MaxPool2d(2), nn.Dropout(0.5),
        )
        side = map_sides()[-1]
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(k4 * side * side, HIDDEN_UNITS), nn.ReLU(),
            nn.Linear(HIDDEN_UNITS, NUM_CLASSES),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def map_sides(size: int = IMAGE_SIZE) -> tuple[int, int, int, int, int, int]:
    """The side of each feature map, in the order data flows: conv 1, conv 2, pooling 1, conv 3,
    conv 4, pooling 2 (28 -> 26, 24, 12, 10, 8, 4): each unpadded 3x3 conv takes 2, each pooling halves."""
    conv1 = size - 2
    conv2 = conv1 - 2
    pool1 = conv2 // 2
    conv3 = pool1 - 2
    conv4 = conv3 - 2
    return conv1, conv2, pool1, conv3, conv4, conv4 // 2


def describe(kernels) -> dict:
    """Layers with weight and output shapes, parameter counts and multiply-accumulates per image.

    Computed by running one image through the model on the meta device: shapes only, no
    arithmetic and no random initialization (so a request never draws from the generator that a
    training run in the same process uses).
    """
    with torch.device("meta"):
        model = MNISTNet(kernels).eval()
        x = torch.zeros(1, 1, IMAGE_SIZE, IMAGE_SIZE)
    layers = []
    total_macs = 0
    with torch.no_grad():
        for layer in list(model.features) + list(model.classifier):
            x = layer(x)
            weight = getattr(layer, "weight", None)
            params = sum(p.numel() for p in layer.parameters())
            macs = 0
            if isinstance(layer, nn.Conv2d):
                macs = weight.numel() * x.shape[2] * x.shape[3]
            elif isinstance(layer, nn.Linear):
                macs = weight.numel()
            total_macs += macs
            layers.append({
                "type": type(layer).__name__,
                "weight_shape": list(weight.shape) if weight is not None else None,
                "output_shape": list(x.shape[1:]),
                "parameters": params,
                "macs": macs,
            })
    return {
        "kernels": list(model.kernels),
        "layers": layers,
        "total_parameters": sum(p.numel() for p in model.parameters()),
        "macs_per_image": total_macs,
    }
