import math
from dataclasses import replace

import pytest
import torch

from attentivenas.config import validate_config
from attentivenas.optim import build_optimizer, parameter_groups, peak_lr, warmup_cosine
from attentivenas.space import SearchSpace
from attentivenas.specs import TrainingSpec
from attentivenas.supernet import Supernet

FMNIST = SearchSpace.load("fmnist")


RECIPE = TrainingSpec.from_dict(validate_config({"space": "fmnist", "data": {
    "dataset": "fashion_mnist", "source": "data/fashion-mnist/fmnist-2k-500.npz"}})["training"])
"""The schema's training recipe, which each test's settings override."""


def _settings(**overrides):
    return replace(RECIPE, **{"lr": 0.1, "batch_size": 256, "lr_scaling": "linear", "momentum": 0.9, "nesterov": True,
                              "weight_decay": 1e-5, **overrides})


def test_weight_decay_spares_bn_parameters_and_biases():
    supernet = Supernet(FMNIST)
    decayed, spared = parameter_groups(supernet, 1e-5)
    assert decayed["weight_decay"] == 1e-5 and spared["weight_decay"] == 0.0
    names = {id(p): n for n, p in supernet.named_parameters()}
    spared_names = {names[id(p)] for p in spared["params"]}
    bn_names = {f"{m}.{p}" for m, module in supernet.named_modules() if isinstance(module, torch.nn.BatchNorm2d)
                for p in ("weight", "bias")}
    assert bn_names <= spared_names
    assert {n for n in names.values() if n.endswith("bias")} <= spared_names
    assert all(names[id(p)].endswith("weight") and p.dim() > 1 for p in decayed["params"])
    assert len(decayed["params"]) + len(spared["params"]) == len(list(supernet.parameters()))
    optimizer = build_optimizer(supernet, _settings())
    assert optimizer.defaults["nesterov"] and optimizer.defaults["lr"] == pytest.approx(0.1)


@pytest.mark.parametrize(("batch", "linear", "reference"), [(64, 0.025, 0.1), (128, 0.05, 0.1), (256, 0.1, 0.1),
                                                           (512, 0.2, 0.2), (700, 0.1 * 700 / 256, 0.2)])
def test_peak_lr_scales_with_the_batch_linearly_or_by_the_reference_rule(batch, linear, reference):
    assert peak_lr(_settings(batch_size=batch)) == pytest.approx(linear)
    assert peak_lr(_settings(batch_size=batch, lr_scaling="reference")) == pytest.approx(reference)


def _rates(scheduler, optimizer, steps):
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def test_lr_warms_up_linearly_from_the_start_factor_then_follows_a_cosine_to_zero():
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=0.05)
    rates = _rates(warmup_cosine(optimizer, total_steps=12, warmup_steps=4, start_factor=0.001), optimizer, 12)
    assert rates[:4] == pytest.approx([0.05 * (0.001 + 0.999 * i / 4) for i in range(4)])
    assert rates[4:] == pytest.approx([0.05 * 0.5 * (1 + math.cos(math.pi * i / 8)) for i in range(8)])
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)

    optimizer = torch.optim.SGD([parameter], lr=0.05)
    no_warmup = _rates(warmup_cosine(optimizer, total_steps=6, warmup_steps=0, start_factor=0.5), optimizer, 6)
    assert no_warmup == pytest.approx([0.05 * 0.5 * (1 + math.cos(math.pi * i / 6)) for i in range(6)])


@pytest.mark.parametrize("stop", [2, 4, 7])
def test_schedule_resumes_to_the_bit_in_warmup_at_the_switch_and_in_the_cosine(stop):
    def fresh():
        parameter = torch.nn.Parameter(torch.zeros(1))
        optimizer = torch.optim.SGD([parameter], lr=0.05, momentum=0.9)
        return optimizer, warmup_cosine(optimizer, total_steps=10, warmup_steps=4, start_factor=0.01)

    optimizer, scheduler = fresh()
    whole = _rates(scheduler, optimizer, 10)
    optimizer, scheduler = fresh()
    first = _rates(scheduler, optimizer, stop)
    state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
    optimizer, scheduler = fresh()
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    assert first + _rates(scheduler, optimizer, 10 - stop) == whole
