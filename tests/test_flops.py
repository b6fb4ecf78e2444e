import random

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from attentivenas.flops import count, mflops
from attentivenas.space import SearchSpace
from attentivenas.supernet import Supernet


def test_paper_calibration_point():
    space = SearchSpace.load("attentivenas")
    assert round(mflops(space, space.min_subnet()), 2) == 203.39
    assert round(mflops(space, space.max_subnet()), 1) == 1939.3


@pytest.mark.parametrize("name,samples", [("fmnist", 12), ("cifar10", 8), ("attentivenas", 4)])
def test_analytic_counter_equals_dispatch_count_on_extracted_models(name, samples):
    """FlopCounterMode counts a multiply-add as 2 FLOPs; halved it must match exactly."""
    space = SearchSpace.load(name)
    supernet = Supernet(space).eval()
    rng = random.Random(11)
    subnets = [space.min_subnet(), space.max_subnet()] + [space.sample_uniform(rng) for _ in range(samples)]
    for subnet in subnets:
        static = supernet.extract(subnet).eval()
        image = torch.zeros(1, space.in_channels, space.base_resolution, space.base_resolution)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            static(image)
        cost = count(space, subnet)
        assert counter.get_total_flops() == round(2 * cost.mflops * 1e6), subnet
        assert sum(p.numel() for p in static.parameters()) == round(cost.params_m * 1e6), subnet


def test_small_spaces_span_at_least_5x():
    for name in ("fmnist", "cifar10"):
        space = SearchSpace.load(name)
        assert mflops(space, space.max_subnet()) >= 5 * mflops(space, space.min_subnet())


def test_flops_grow_with_every_dimension():
    space = SearchSpace.load("fmnist")
    base = space.min_subnet()
    genes = space.to_genes(base)
    for i, gene in enumerate(space.genes):
        bigger = list(genes)
        bigger[i] = max(gene.choices)
        assert mflops(space, space.from_genes(bigger)) >= mflops(space, base), gene.label
