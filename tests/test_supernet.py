import copy
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import attentivenas.supernet as supernet_module
from attentivenas.space import SearchSpace
from attentivenas.static import StaticSubnet, adapt_resolution, shortcut_pool
from attentivenas.supernet import DynamicBlock, Supernet, slice_like


def _randomize_bn(model: nn.Module) -> None:
    """Non-trivial BN statistics and affine parameters, so that slicing mistakes change outputs."""
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.rand(n, generator=generator) - 0.5)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.rand(n, generator=generator) - 0.5)


@pytest.mark.parametrize("name,batch", [("fmnist", 4), ("cifar10", 2), ("attentivenas", 1)])
@pytest.mark.parametrize("mode", ["resize", "crop"])
def test_extracted_subnet_equals_supernet(name, batch, mode):
    space = SearchSpace.load(name)
    torch.manual_seed(0)
    supernet = Supernet(space, resolution_mode=mode).eval()
    _randomize_bn(supernet)
    rng = random.Random(5)
    x = torch.randn(batch, space.in_channels, space.base_resolution, space.base_resolution)
    for subnet in [space.min_subnet(), space.max_subnet(), space.sample_uniform(rng), space.sample_uniform(rng)]:
        supernet.set_active_subnet(subnet)
        with torch.no_grad():
            expected = supernet(x)
            static = supernet.extract()
            got = static(x)
        assert isinstance(static, StaticSubnet)
        assert not any(type(m).__module__.startswith("attentivenas.supernet") for m in static.modules())
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def _first_block_shortcuts(static: StaticSubnet) -> list[str]:
    kinds = []
    for stage in static.stages:
        shortcut = stage[0].shortcut
        kinds.append(("pool" if shortcut.stride > 1 else "") + ("conv" if shortcut.conv is not None else "")
                     or "identity")
    return kinds


# Subnets whose stages' first blocks take every shortcut kind of the reference: identity (stride 1, equal
# widths), pool only (stride 2, equal widths), pool + conv, conv only; resolutions 20 and 28 of fmnist pool
# an odd-sized map in mb3.
SHORTCUT_CASES = [
    ("fmnist", {"resolution": 20, "width": [8, 8, 16, 32, 48, 128]}, ["pool", "poolconv", "poolconv", "conv"]),
    ("fmnist", {"resolution": 28, "width": [16, 16, 16, 40, 64, 192]}, ["pool", "pool", "poolconv", "conv"]),
    ("fmnist", {"resolution": 32, "width": [16, 8, 24, 32, 48, 128]}, ["poolconv", "poolconv", "poolconv", "conv"]),
    ("attentivenas", {"resolution": 192, "width": [24, 24, 24, 32, 64, 112, 216, 216, 1792]},
     ["identity", "pool", "poolconv", "poolconv", "conv", "poolconv", "identity"]),
    ("attentivenas", {"resolution": 192, "width": [16, 24, 32, 32, 72, 128, 192, 224, 1792]},
     ["conv", "poolconv", "pool", "poolconv", "conv", "poolconv", "conv"]),
]


@pytest.mark.parametrize("name,choices,kinds", SHORTCUT_CASES)
def test_shortcuts_follow_the_reference_and_extraction_stays_exact(name, choices, kinds, one_thread):
    space = SearchSpace.load(name)
    torch.manual_seed(0)
    supernet = Supernet(space).eval()
    _randomize_bn(supernet)
    subnet = space.validate({**space.min_subnet().to_dict(), **choices})
    supernet.set_active_subnet(subnet)
    x = torch.randn(2, space.in_channels, space.base_resolution, space.base_resolution)
    with torch.no_grad():
        expected = supernet(x)
        static = supernet.extract()
        got = static(x)
    assert _first_block_shortcuts(static) == kinds
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_shortcut_pool_pads_odd_maps_as_the_reference():
    """Kernel 2, stride 2; an odd map gets one zero pad on each side, counted in the average."""
    x = torch.arange(25.0).reshape(1, 1, 5, 5)
    pooled = shortcut_pool(x, 2)
    assert pooled.shape[-2:] == (3, 3)
    assert pooled[0, 0, 0, 0] == x[0, 0, 0, 0] / 4
    assert pooled[0, 0, 1, 1] == x[0, 0, 1:3, 1:3].mean()
    even = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert torch.equal(shortcut_pool(even, 2), torch.nn.functional.avg_pool2d(even, 2))


@pytest.mark.parametrize("c_in,c_out,stride,dropped", [(16, 16, 1, True), (16, 24, 1, False), (16, 16, 2, False)])
def test_drop_connect_only_on_identity_shortcut_blocks(c_in, c_out, stride, dropped):
    torch.manual_seed(0)
    block = DynamicBlock((16,), (16, 24), 3, (4,), stride, use_se=False, has_expand_conv=True).train()
    for p in block.parameters():
        nn.init.normal_(p, std=0.1)
    x = torch.randn(8, c_in, 8, 8)
    outputs = [block(x, c_out, 3, 4, drop_prob=0.5) for _ in range(2)]
    assert torch.equal(*outputs) is not dropped


def test_extraction_slices_leading_channels_and_kernel_centre():
    source = torch.arange(4 * 3 * 5 * 5, dtype=torch.float32).reshape(4, 3, 5, 5)
    target = torch.empty(2, 1, 3, 3)
    sliced = slice_like(source, target)
    assert torch.equal(sliced, source[:2, :1, 1:4, 1:4])
    assert torch.equal(slice_like(torch.arange(10.0), torch.empty(4)), torch.arange(4.0))


def test_last_bn_of_every_block_starts_at_zero_so_blocks_are_identities():
    space = SearchSpace.load("fmnist")
    supernet = Supernet(space)
    for stage in supernet.stages:
        for block in stage:
            assert torch.count_nonzero(block.project.bn.weight) == 0
            assert torch.count_nonzero(block.depthwise.bn.weight) > 0


def test_gradients_reach_only_the_active_slices():
    space = SearchSpace.load("fmnist")
    supernet = Supernet(space).train()
    for p in supernet.parameters():
        nn.init.normal_(p, std=0.1)
    subnet = space.min_subnet()
    supernet.set_active_subnet(subnet)
    supernet(torch.randn(4, 1, 28, 28)).sum().backward()
    stem = supernet.stem.conv.weight.grad
    assert stem[: subnet.width[0]].abs().sum() > 0 and stem[subnet.width[0]:].abs().sum() == 0
    depthwise = supernet.stages[1][0].depthwise.conv.weight.grad
    assert depthwise[:, :, 0].abs().sum() == 0 and depthwise[:, :, 1:4, 1:4].abs().sum() > 0
    unused_block = supernet.stages[1][subnet.depth[1]]
    assert all(p.grad is None for p in unused_block.parameters())


def test_regularization_only_for_max_subnet_in_training():
    space = SearchSpace.load("fmnist")
    torch.manual_seed(0)
    supernet = Supernet(space, dropout=0.5, drop_connect=0.5).train()
    for p in supernet.parameters():
        nn.init.normal_(p, std=0.1)
    x = torch.randn(8, 1, 28, 28)
    supernet.set_active_subnet(space.max_subnet(), regularize=False)
    assert torch.equal(supernet(x), supernet(x))
    supernet.set_active_subnet(space.max_subnet(), regularize=True)
    assert not torch.equal(supernet(x), supernet(x))
    supernet.eval()
    assert torch.equal(supernet(x), supernet(x))


def test_resolution_adapters():
    x = torch.randn(2, 1, 28, 28)
    assert adapt_resolution(x, 28, "resize") is x
    assert adapt_resolution(x, 20, "resize").shape[-2:] == (20, 20)
    cropped = adapt_resolution(x, 20, "crop")
    assert torch.equal(cropped, x[..., 4:24, 4:24])
    padded = adapt_resolution(x, 32, "crop")
    assert padded.shape[-1] == 32 and torch.equal(padded[..., 2:30, 2:30], x) and padded[..., 0, :].abs().sum() == 0


def test_static_subnet_state_dict_reloads_without_supernet():
    space = SearchSpace.load("fmnist")
    supernet = Supernet(space).eval()
    _randomize_bn(supernet)
    subnet = space.sample_uniform(random.Random(2))
    static = supernet.extract(subnet)
    rebuilt = StaticSubnet(space, subnet).eval()
    rebuilt.load_state_dict(static.state_dict())
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), static(x))


def test_unknown_resolution_mode():
    with pytest.raises(ValueError, match="resize"):
        Supernet(SearchSpace.load("fmnist"), resolution_mode="stretch")


SYNC_BN_SCRIPT = """
import copy, torch, torch.distributed as dist
from attentivenas.supernet import DynamicBatchNorm2d
dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)
x = (torch.randn(8, 6, 3, 3) * 3 + 1).requires_grad_()
upstream = torch.randn(8, 6, 3, 3)
alone = DynamicBatchNorm2d(8, momentum=0.1)
with torch.no_grad():
    alone.weight.uniform_(0.5, 1.5)
    alone.bias.uniform_(-1, 1)
synced = copy.deepcopy(alone)
synced.synchronized = True
expected = alone(x)
(expected * upstream).sum().backward()
part = x.detach()[4 * rank: 4 * rank + 4].requires_grad_()
out = synced(part)
(out * upstream[4 * rank: 4 * rank + 4]).sum().backward()
for grad in (synced.weight.grad, synced.bias.grad):
    dist.all_reduce(grad)
close = lambda a, b: torch.allclose(a, b, atol=1e-4, rtol=1e-4)
assert close(out, expected[4 * rank: 4 * rank + 4])
assert close(part.grad, x.grad[4 * rank: 4 * rank + 4])
assert close(synced.weight.grad, alone.weight.grad) and close(synced.bias.grad, alone.bias.grad)
assert close(synced.running_mean, alone.running_mean) and close(synced.running_var, alone.running_var)
assert not close(out, torch.nn.functional.batch_norm(part, None, None, alone.weight[:6], alone.bias[:6], True))
dist.destroy_process_group()
"""


def test_synchronized_bn_over_two_processes_equals_bn_over_their_joint_batch(tmp_path):
    script = tmp_path / "sync_bn.py"
    script.write_text(SYNC_BN_SCRIPT)
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             str(script)], env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def test_in_place_slice_gradients_equal_autograd_slicing_also_accumulated_and_channels_last(monkeypatch):
    """Backward adds into the slices of `.grad`; plain autograd slicing (used under DDP) is the reference."""
    space = SearchSpace.load("fmnist")
    torch.manual_seed(0)
    in_place = Supernet(space).train()
    for p in in_place.parameters():
        nn.init.normal_(p, std=0.1)
    sliced, channels_last = copy.deepcopy(in_place), copy.deepcopy(in_place).use_channels_last()
    rng = random.Random(0)
    subnets = [space.max_subnet(), space.min_subnet(), space.sample_uniform(rng), space.sample_uniform(rng)]
    x = torch.randn(8, 1, 28, 28)

    def sandwich(model: Supernet, distributed: bool) -> list[torch.Tensor]:
        monkeypatch.setattr(supernet_module, "_distributed", lambda: distributed)
        outputs = []
        for subnet in subnets:
            model.set_active_subnet(subnet)
            outputs.append(model(x))
            outputs[-1].square().mean().backward()
        return outputs

    expected = sandwich(sliced, distributed=True)
    for model in (in_place, channels_last):
        for got, want in zip(sandwich(model, distributed=False), expected, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
        for (name, param), reference in zip(model.named_parameters(), sliced.parameters(), strict=True):
            if reference.grad is None:
                assert param.grad is None, name
            else:
                torch.testing.assert_close(param.grad, reference.grad, rtol=1e-4, atol=1e-6, msg=name)
