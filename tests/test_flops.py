import json
import random
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from attentivenas.__main__ import main
from attentivenas.flops import count, mflops
from attentivenas.space import SearchSpace
from attentivenas.supernet import Supernet

REFERENCE_RANDOM50 = Path(__file__).parent / "data" / "reference-flops-random50.json"

# The paper's published models (AttentiveNAS-A0..A6) and their published MFLOPs, given to the integer.
PAPER_MODELS = {
    "a0": (203, 192, [16, 16, 24, 32, 64, 112, 192, 216, 1792], [1, 3, 3, 3, 3, 3, 1], [3, 3, 3, 3, 3, 3, 3],
           [1, 4, 4, 4, 4, 6, 6]),
    "a1": (279, 224, [16, 16, 24, 32, 64, 112, 192, 216, 1984], [1, 3, 3, 3, 3, 3, 1], [3, 3, 3, 5, 3, 5, 3],
           [1, 4, 4, 4, 4, 6, 6]),
    "a2": (317, 224, [16, 16, 24, 32, 64, 112, 200, 224, 1984], [1, 3, 3, 3, 3, 4, 1], [3, 3, 3, 3, 3, 5, 3],
           [1, 4, 5, 4, 4, 6, 6]),
    "a3": (357, 224, [16, 16, 24, 32, 64, 112, 208, 224, 1984], [2, 3, 3, 4, 3, 5, 1], [3, 3, 3, 5, 3, 3, 3],
           [1, 4, 4, 4, 4, 6, 6]),
    "a4": (444, 256, [16, 16, 24, 32, 64, 112, 192, 216, 1984], [1, 3, 3, 4, 3, 5, 1], [3, 3, 3, 5, 3, 5, 3],
           [1, 4, 4, 5, 4, 6, 6]),
    "a5": (491, 256, [16, 16, 24, 32, 72, 112, 192, 216, 1792], [1, 3, 3, 3, 4, 6, 1], [3, 3, 3, 5, 3, 3, 3],
           [1, 4, 5, 4, 4, 6, 6]),
    "a6": (709, 288, [16, 16, 24, 32, 64, 112, 216, 224, 1984], [1, 3, 3, 4, 4, 6, 1], [3, 3, 3, 3, 3, 5, 3],
           [1, 4, 6, 5, 4, 6, 6]),
}


def _flops_command(tmp_path, capsys, subnets: list[dict]) -> list[float]:
    paths = []
    for i, subnet in enumerate(subnets):
        paths.append(tmp_path / f"subnet{i}.json")
        paths[-1].write_text(json.dumps(subnet))
    assert main(["flops", "--space", "attentivenas", "--json", *map(str, paths)]) == 0
    return [row["mflops"] for row in json.loads(capsys.readouterr().out)]


def test_flops_command_agrees_with_the_reference_on_random_subnets(tmp_path, capsys):
    """Half of these have a strided first block of equal widths, whose shortcut pools without a conv."""
    reference = json.loads(REFERENCE_RANDOM50.read_text())
    assert len(reference) == 50
    got = _flops_command(tmp_path, capsys, reference)
    for subnet, ours in zip(reference, got, strict=True):
        assert ours == pytest.approx(subnet["reference_mflops"], abs=0.05), subnet


def test_flops_command_agrees_with_the_published_paper_models(tmp_path, capsys):
    subnets = [dict(zip(("resolution", "width", "depth", "kernel_size", "expand_ratio"), spec[1:], strict=True))
               for spec in PAPER_MODELS.values()]
    got = _flops_command(tmp_path, capsys, subnets)
    assert [round(m) for m in got] == [spec[0] for spec in PAPER_MODELS.values()]


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
