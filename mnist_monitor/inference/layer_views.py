"""What each layer of a model computes for one digit: feature maps as tiled gray-scale pictures."""
from __future__ import annotations

import base64
import io
import math

import numpy as np
import torch
from PIL import Image
from torch import nn

MAX_TILES = 64  # feature maps shown per layer; the rest are counted, not drawn
TILE_PIXELS = 40  # display pixels a map side is drawn at, about (at least 2 per map pixel)
DENSE_SCALE = (4, 24)  # a dense activation as a 4 px wide, 24 px tall bar
DATA_URL_PREFIX = "data:image/png;base64,"


def png_data_url(pixels: np.ndarray) -> str:
    """A uint8 gray-scale picture as a PNG data URL."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", optimize=False, compress_level=1)  # speed over bytes
    return DATA_URL_PREFIX + base64.b64encode(buffer.getvalue()).decode()


def activation_pixels(values: np.ndarray) -> np.ndarray:
    """0 black, the layer's largest activation white (one scale per layer, so maps compare)."""
    top = float(values.max())
    return np.zeros(values.shape, np.uint8) if top <= 0 else np.clip(values / top * 255, 0, 255).astype(np.uint8)


def tile_maps(maps: np.ndarray) -> tuple[np.ndarray, int]:
    """[C, H, W] -> one picture of at most MAX_TILES maps in a near-square grid; and how many are shown."""
    shown = min(len(maps), MAX_TILES)
    side = maps.shape[1]
    scale = max(2, round(TILE_PIXELS / side))
    columns = math.ceil(math.sqrt(shown))
    rows = math.ceil(shown / columns)
    cell = side * scale + 2  # 2 px gap
    picture = np.full((rows * cell, columns * cell), 60, np.uint8)  # dark gray gaps
    gray = activation_pixels(maps[:shown])
    for i in range(shown):
        r, c = divmod(i, columns)
        tile = np.kron(gray[i], np.ones((scale, scale), np.uint8))
        picture[r * cell:r * cell + side * scale, c * cell:c * cell + side * scale] = tile
    return picture, shown


def dense_strip(values: np.ndarray) -> np.ndarray:
    gray = activation_pixels(values[None, :])
    return np.kron(gray, np.ones((DENSE_SCALE[1], DENSE_SCALE[0]), np.uint8))


@torch.no_grad()
def layer_views(model: nn.Module, image: torch.Tensor) -> list[dict]:
    """The conv layers (after their ReLU), each pooling, and the 128 dense units for ``image``
    [1, 1, 28, 28]: [{"name", "shape", "shown", "image"}], in the order the data flows."""
    views = []
    x = image
    conv = pool = 0
    layers = list(model.features) + list(model.classifier)
    for i, layer in enumerate(layers):
        x = layer(x)
        following = layers[i + 1] if i + 1 < len(layers) else None
        if isinstance(layer, nn.Conv2d) or isinstance(layer, nn.Linear) and following is not None:
            continue  # shown after its ReLU
        if isinstance(layer, nn.ReLU) and x.dim() == 4:
            conv += 1
            name = f"conv {conv} (after ReLU)"
        elif isinstance(layer, nn.MaxPool2d):
            pool += 1
            name = f"after pooling {pool}"
        elif isinstance(layer, nn.ReLU):
            name = "dense layer (after ReLU)"
        else:
            continue
        values = x[0].float().cpu().numpy()
        if values.ndim == 3:
            picture, shown = tile_maps(values)
        else:
            picture, shown = dense_strip(values), values.shape[0]
        views.append({"name": name, "shape": list(values.shape), "shown": shown, "image": png_data_url(picture)})
    return views
