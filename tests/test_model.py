import pytest
import torch
from torch import nn

from model import MNISTNet, describe, map_sides


@pytest.mark.parametrize("kernels, params", [((32, 64, 64, 64), 225_162), ((16, 32, 32, 32), 90_250)])
def test_parameter_counts_match_the_reference_design(kernels, params):
    model = MNISTNet(kernels)
    assert sum(p.numel() for p in model.parameters()) == params
    assert describe(kernels)["total_parameters"] == params


@pytest.mark.parametrize("kernels", [(1, 1, 1, 1), (8, 16, 24, 40), (32, 64, 64, 64)])
def test_output_is_ten_logits_for_any_kernels(kernels):
    out = MNISTNet(kernels)(torch.randn(5, 1, 28, 28))
    assert out.shape == (5, 10)


def test_layer_order_and_output_shapes():
    info = describe([32, 64, 64, 64])
    types = [layer["type"] for layer in info["layers"]]
    assert types == ["Conv2d", "ReLU", "Conv2d", "ReLU", "MaxPool2d", "Dropout", "Conv2d", "ReLU", "Conv2d", "ReLU",
                     "MaxPool2d", "Dropout", "Flatten", "Linear", "ReLU", "Linear"]
    shapes = [layer["output_shape"] for layer in info["layers"]]
    assert shapes[0] == [32, 26, 26] and shapes[2] == [64, 24, 24] and shapes[4] == [64, 12, 12]
    assert shapes[8] == [64, 8, 8] and shapes[10] == [64, 4, 4] and shapes[12] == [1024]
    assert info["layers"][0]["weight_shape"] == [32, 1, 3, 3]
    assert info["layers"][13]["weight_shape"] == [128, 1024]
    assert info["macs_per_image"] == 32 * 9 * 26 * 26 + 64 * 32 * 9 * 24 * 24 + 64 * 64 * 9 * 100 + 64 * 64 * 9 * 64 + 1024 * 128 + 1280


def test_flatten_size_is_computed_from_the_last_kernel_count():
    assert map_sides(28) == (26, 24, 12, 10, 8, 4)
    assert MNISTNet((4, 4, 4, 7)).classifier[1].in_features == 7 * 16


def test_dropout_rates_are_the_references():
    drops = [m.p for m in MNISTNet().modules() if isinstance(m, nn.Dropout)]
    assert drops == [0.25, 0.5]


def test_output_is_raw_logits_not_log_probabilities():
    torch.manual_seed(0)
    model = MNISTNet().eval()
    with torch.no_grad():
        out = model(torch.randn(3, 1, 28, 28))
    # log_softmax output would satisfy logsumexp == 0; raw logits of a random net do not
    assert not torch.allclose(torch.logsumexp(out, dim=1), torch.zeros(3), atol=1e-3)


@pytest.mark.parametrize("kernels", [(32, 64, 64), (0, 1, 1, 1), (32, 64, 64, 64, 64)])
def test_bad_kernels_are_refused(kernels):
    with pytest.raises(ValueError):
        MNISTNet(kernels)
