import random

import torch
from torch import nn

from attentivenas.space import SearchSpace
from attentivenas.static import StaticSubnet, fold_batchnorm


def test_folding_bn_into_convs_keeps_the_function_and_the_original():
    space = SearchSpace.load("fmnist")
    torch.manual_seed(0)
    model = StaticSubnet(space, space.sample_uniform(random.Random(3)))
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    model.eval()
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        expected = model(x)
        folded = fold_batchnorm(model)
        got = folded(x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) > 0
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        assert torch.equal(model(x), expected)


def test_channels_last_model_gives_the_same_function():
    space = SearchSpace.load("fmnist")
    torch.manual_seed(0)
    model = StaticSubnet(space, space.max_subnet()).eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        expected = model(x)
        model.use_channels_last()
        assert model.stem.conv.weight.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-6)
        model.use_channels_last(False)
        assert model.stem.conv.weight.is_contiguous()
