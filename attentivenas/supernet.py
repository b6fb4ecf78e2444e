"""The weight-sharing supernet: one set of max-size weights that runs any subnet of its space.

A subnet uses the leading channels of every weight tensor, the centre crop of each 5x5 depthwise
kernel and the leading entries of each BN layer. Module names mirror `StaticSubnet`, so extracting a
subnet is slicing every tensor of the static model's state_dict out of the supernet's.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.distributed.nn.functional import all_reduce as distributed_all_reduce
from torchvision.ops import stochastic_depth

from attentivenas.space import SearchSpace, Subnet, expanded_channels, se_channels
from attentivenas.static import (
    RESOLUTION_MODES,
    MemoryFormatMixin,
    StaticSubnet,
    adapt_resolution,
    shortcut_pool,
)


class _SharedSlice(torch.autograd.Function):
    """A block of a shared parameter, copied into `memory_format`, whose backward adds the gradient
    straight into that block of the parameter's `.grad`: no full-size gradient per use."""

    @staticmethod
    def forward(ctx, param: torch.Tensor, index: tuple[slice, ...],
                memory_format: torch.memory_format) -> torch.Tensor:
        ctx.param, ctx.index = param, index
        return param[index].contiguous(memory_format=memory_format)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[None, None, None]:
        param = ctx.param
        if param.grad is None:
            param.grad = torch.zeros_like(param)
        param.grad[ctx.index].add_(grad)
        return None, None, None


def shared_slice(param: torch.Tensor, index: tuple[slice, ...]) -> torch.Tensor:
    """`param[index]` for a subnet's forward, contiguous so that every path runs the same kernels.

    Training adds the gradient of a conv or linear weight into the parameter's slice in place, except
    under torch.distributed, where DDP must see every gradient through autograd to average it. A 1-D
    parameter (BN affine, bias) is a plain view: its leading slice is contiguous, and autograd's
    full-size gradient of so small a tensor costs less than a custom backward's Python call.
    """
    if param.dim() == 1:
        return param[index]
    channels_last = param.dim() == 4 and param.is_contiguous(memory_format=torch.channels_last)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    if not (torch.is_grad_enabled() and param.requires_grad) or _distributed():
        return param[index].contiguous(memory_format=memory_format)
    return _SharedSlice.apply(param, index, memory_format)


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


class DynamicConv2d(nn.Conv2d):
    """A conv whose active part is the leading channels and the centre kernel crop."""

    def __init__(self, max_in: int, max_out: int, max_kernel: int, stride: int = 1,
                 depthwise: bool = False, bias: bool = False):
        super().__init__(max_in, max_out, max_kernel, stride, max_kernel // 2,
                         groups=max_in if depthwise else 1, bias=bias)
        self.depthwise = depthwise

    def forward(self, x: torch.Tensor, out_channels: int | None = None,
                kernel_size: int | None = None) -> torch.Tensor:
        c_in = x.shape[1]
        kernel = kernel_size or self.kernel_size[0]
        out_channels = c_in if self.depthwise else out_channels or self.out_channels
        weight, bias = self.weight, self.bias
        max_out, max_in, max_kernel = weight.shape[:3]
        if out_channels != max_out or (c_in != max_in and not self.depthwise) or kernel != max_kernel:
            crop = (max_kernel - kernel) // 2
            weight = shared_slice(weight, (slice(0, out_channels), slice(0, max_in if self.depthwise else c_in),
                                           slice(crop, crop + kernel), slice(crop, crop + kernel)))
        if bias is not None and out_channels != max_out:
            bias = shared_slice(bias, (slice(0, out_channels),))
        return F.conv2d(x, weight, bias, self.stride, kernel // 2, 1, c_in if self.depthwise else 1)


def synchronized_batch_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                            running_mean: torch.Tensor, running_var: torch.Tensor, momentum: float,
                            eps: float) -> torch.Tensor:
    """Training-mode BN whose statistics cover every process's batch (equal local batches, as DDP
    training has); gradients flow through the all-reduce, as in torch's SyncBatchNorm."""
    world = dist.get_world_size()
    moments = torch.cat([x.mean((0, 2, 3)), x.square().mean((0, 2, 3))])
    mean, mean_square = (distributed_all_reduce(moments) / world).chunk(2)
    var = mean_square - mean.square()
    if momentum:
        count = x.numel() // x.shape[1] * world
        with torch.no_grad():
            running_mean.lerp_(mean, momentum)
            running_var.lerp_(var * count / max(count - 1, 1), momentum)
    shape = (1, -1, 1, 1)
    return (x - mean.view(shape)) * torch.rsqrt(var + eps).view(shape) * weight.view(shape) + bias.view(shape)


class DynamicBatchNorm2d(nn.BatchNorm2d):
    """BN over the leading channels; cumulative recalibration happens on extracted subnets.

    `synchronized` (config key training.sync_batchnorm, under DDP) normalizes training batches with
    statistics over all processes.
    """

    synchronized = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        mean, var, weight, bias = self.running_mean, self.running_var, self.weight, self.bias
        if c != self.num_features:
            index = (slice(0, c),)
            mean, var = mean[:c], var[:c]
            weight, bias = shared_slice(weight, index), shared_slice(bias, index)
        if self.synchronized and self.training and dist.is_available() and dist.is_initialized():
            return synchronized_batch_norm(x, weight, bias, mean, var, self.momentum or 0.0, self.eps)
        return F.batch_norm(x, mean, var, weight, bias, self.training or not self.track_running_stats,
                            self.momentum or 0.0, self.eps)


class DynamicLinear(nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight
        if x.shape[1] != weight.shape[1]:
            weight = shared_slice(weight, (slice(None), slice(0, x.shape[1])))
        return F.linear(x, weight, self.bias)


class DynamicConvBnAct(nn.Module):
    def __init__(self, max_in: int, max_out: int, max_kernel: int, stride: int = 1,
                 depthwise: bool = False, activation: bool = True):
        super().__init__()
        self.conv = DynamicConv2d(max_in, max_out, max_kernel, stride, depthwise)
        self.bn = DynamicBatchNorm2d(max_out)
        self.act = nn.SiLU() if activation else None

    def forward(self, x: torch.Tensor, out_channels: int | None = None,
                kernel_size: int | None = None) -> torch.Tensor:
        x = self.bn(self.conv(x, out_channels, kernel_size))
        return x if self.act is None else self.act(x)


class DynamicSqueezeExcitation(nn.Module):
    """SE whose squeeze width follows the active channels (`se_channels`)."""

    def __init__(self, max_channels: int, max_squeeze: int):
        super().__init__()
        self.fc1 = DynamicConv2d(max_channels, max_squeeze, 1, bias=True)
        self.fc2 = DynamicConv2d(max_squeeze, max_channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        scale = F.adaptive_avg_pool2d(x, 1)
        scale = F.relu(self.fc1(scale, se_channels(c)))
        return x * F.hardsigmoid(self.fc2(scale, c))


class DynamicShortcut(nn.Module):
    """The reference's rule on the active widths: identity, else pool when strided, conv when they differ."""

    def __init__(self, max_in: int, max_out: int, stride: int, needs_conv: bool):
        super().__init__()
        self.stride = stride
        self.conv = DynamicConv2d(max_in, max_out, 1) if needs_conv else None

    def is_identity(self, in_channels: int, out_channels: int) -> bool:
        return self.stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor, out_channels: int) -> torch.Tensor:
        c_in = x.shape[1]
        if self.stride > 1:
            x = shortcut_pool(x, self.stride)
        return x if c_in == out_channels else self.conv(x, out_channels)


class DynamicBlock(nn.Module):
    def __init__(self, in_choices: tuple[int, ...], out_choices: tuple[int, ...], max_kernel: int,
                 expand_ratios: tuple[float, ...], stride: int, use_se: bool, has_expand_conv: bool):
        super().__init__()
        mids = sorted({expanded_channels(c, e) if has_expand_conv else c
                       for c in in_choices for e in expand_ratios})
        max_in, max_mid, max_out = max(in_choices), mids[-1], max(out_choices)
        self.expand = DynamicConvBnAct(max_in, max_mid, 1) if has_expand_conv else None
        self.depthwise = DynamicConvBnAct(max_mid, max_mid, max_kernel, stride, depthwise=True)
        self.se = (DynamicSqueezeExcitation(max_mid, max(se_channels(m) for m in mids)) if use_se else None)
        self.project = DynamicConvBnAct(max_mid, max_out, 1, activation=False)
        needs_conv = any(c_in != c_out for c_in in in_choices for c_out in out_choices)
        self.shortcut = DynamicShortcut(max_in, max_out, stride, needs_conv)

    def forward(self, x: torch.Tensor, out_channels: int, kernel_size: int, expand_ratio: float,
                drop_prob: float = 0.0) -> torch.Tensor:
        h = x
        if self.expand is not None:
            h = self.expand(h, expanded_channels(x.shape[1], expand_ratio))
        h = self.depthwise(h, kernel_size=kernel_size)
        if self.se is not None:
            h = self.se(h)
        h = self.project(h, out_channels)
        if drop_prob > 0 and self.training and self.shortcut.is_identity(x.shape[1], out_channels):
            h = stochastic_depth(h, drop_prob, "row")
        return self.shortcut(x, out_channels) + h


class Supernet(MemoryFormatMixin, nn.Module):
    """All subnets of `space` in one module; `set_active_subnet` picks the one `forward` runs.

    Dropout before the classifier and drop-connect act only when the active subnet was set with
    `regularize=True` (the sandwich rule's max subnet) and in training mode. As in the reference,
    drop-connect acts on the identity-shortcut blocks of the last two stages, at a rate growing with
    the block's position among all the supernet's blocks.
    """

    def __init__(self, space: SearchSpace, resolution_mode: str = "resize", dropout: float = 0.2,
                 drop_connect: float = 0.2):
        super().__init__()
        if resolution_mode not in RESOLUTION_MODES:
            raise ValueError(f"resolution_mode must be one of {RESOLUTION_MODES}, got {resolution_mode!r}")
        self.space = space
        self.resolution_mode = resolution_mode
        self.channels_last = False
        self.dropout_rate = dropout
        self.drop_connect_rate = drop_connect
        self.stem = DynamicConvBnAct(space.in_channels, max(space.stem_widths), space.stem_kernel,
                                     space.stem_stride)
        stages = []
        in_choices = space.stem_widths
        for stage in space.stages:
            blocks = []
            for b in range(max(stage.depths)):
                blocks.append(DynamicBlock(in_choices, stage.widths, max(stage.kernels), stage.expand_ratios,
                                           stage.stride if b == 0 else 1, stage.se, stage.has_expand_conv))
                in_choices = stage.widths
            stages.append(nn.ModuleList(blocks))
        self.stages = nn.ModuleList(stages)
        max_last = space.head_expand * max(in_choices)
        self.head_expand = DynamicConvBnAct(max(in_choices), max_last, 1)
        self.feature_mix = nn.ModuleDict({"conv": DynamicConv2d(max_last, max(space.head_widths), 1)})
        self.classifier = DynamicLinear(max(space.head_widths), space.num_classes)
        for stage in self.stages:
            for block in stage:
                nn.init.zeros_(block.project.bn.weight)
        self.set_active_subnet(space.max_subnet())

    def set_active_subnet(self, subnet: Subnet, regularize: bool = False) -> None:
        self.active_subnet = subnet
        self.regularize = regularize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        subnet = self.active_subnet
        x = adapt_resolution(x, subnet.resolution, self.resolution_mode)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.stem(x, subnet.width[0])
        regularize = self.regularize and self.training
        total_blocks = sum(len(stage) for stage in self.stages)
        drop_from_stage = self.space.num_stages - 2
        first = 0
        for i, stage in enumerate(self.stages):
            for b, block in enumerate(stage[: subnet.depth[i]]):
                drop = (self.drop_connect_rate * (first + b) / total_blocks
                        if regularize and i >= drop_from_stage else 0.0)
                x = block(x, subnet.width[i + 1], subnet.kernel_size[i], subnet.expand_ratio[i], drop)
            first += len(stage)
        x = self.head_expand(x, self.space.head_expand * x.shape[1])
        x = F.adaptive_avg_pool2d(x, 1)
        x = F.silu(self.feature_mix["conv"](x, subnet.width[-1]))
        x = torch.flatten(x, 1)
        if regularize:
            x = F.dropout(x, self.dropout_rate, training=True)
        return self.classifier(x)

    def extract(self, subnet: Subnet | None = None) -> StaticSubnet:
        """The active (or given) subnet as a standalone model with sliced weights and BN statistics."""
        subnet = subnet or self.active_subnet
        device = next(self.parameters()).device
        static = StaticSubnet(self.space, subnet, self.resolution_mode).to(device)
        static.use_channels_last(self.channels_last)
        source = self.state_dict()
        static.load_state_dict({name: slice_like(source[name], target)
                                for name, target in static.state_dict().items()})
        return static.train(self.training)


def slice_like(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Leading entries of every dimension; the centre crop of conv kernels."""
    if source.dim() == 4 and source.shape[-1] != target.shape[-1]:
        crop = (source.shape[-1] - target.shape[-1]) // 2
        size = target.shape[-1]
        source = source[..., crop: crop + size, crop: crop + size]
    return source[tuple(slice(0, n) for n in target.shape)].clone()
