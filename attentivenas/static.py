"""Standalone subnet models built from plain torch layers.

A `StaticSubnet` is what gets evaluated, exported and deployed: it needs only the space and the
subnet to be rebuilt, so a saved state_dict loads without the supernet. Its module names mirror the
supernet's, which is what makes extraction a matter of slicing tensors (see `supernet.extract`).
"""

from __future__ import annotations

import copy
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torchvision.ops import SqueezeExcitation

from attentivenas.space import SearchSpace, Subnet, expanded_channels, se_channels

RESOLUTION_MODES = ("resize", "crop")


def adapt_resolution(x: torch.Tensor, resolution: int, mode: str) -> torch.Tensor:
    """Bring a batch at the data pipeline's size to the subnet's resolution.

    `resize` is the reference's way (bicubic resize of a fixed crop); `crop` takes the centre window,
    zero-padded when the resolution exceeds the image, so no pixel is resampled.
    """
    if x.shape[-1] == resolution and x.shape[-2] == resolution:
        return x
    if mode == "resize":
        return F.interpolate(x, size=(resolution, resolution), mode="bicubic", align_corners=False)
    height, width = x.shape[-2], x.shape[-1]
    pad_h, pad_w = max(resolution - height, 0), max(resolution - width, 0)
    if pad_h or pad_w:
        x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        height, width = x.shape[-2], x.shape[-1]
    top, left = (height - resolution) // 2, (width - resolution) // 2
    return x[..., top: top + resolution, left: left + resolution]


class MemoryFormatMixin:
    """`use_channels_last` for the supernet and static subnets: 4-D weights and activations in NHWC.

    The values are the same in either format; only the strides differ, which lets the CPU and CUDA
    conv kernels skip their layout conversions. `forward` converts its input after the resolution step.
    """

    def use_channels_last(self, enabled: bool = True):
        self.channels_last = enabled
        return self.to(memory_format=torch.channels_last if enabled else torch.contiguous_format)


def conv_bn_act(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1,
                activation: bool = True) -> nn.Sequential:
    layers = OrderedDict(conv=nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
                         bn=nn.BatchNorm2d(c_out))
    if activation:
        layers["act"] = nn.SiLU()
    return nn.Sequential(layers)


def shortcut_pool(x: torch.Tensor, stride: int) -> torch.Tensor:
    """The reference's strided shortcut pool: kernel = stride, one zero pad (counted) on odd sizes.

    The padding keeps the output size equal to the strided conv's ceil(size / 2).
    """
    return F.avg_pool2d(x, stride, padding=x.shape[-1] % 2)


class Shortcut(nn.Module):
    """The reference's residual path: identity, else an average pool when strided and a 1x1 conv
    when the width changes (a strided block of equal widths pools only)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv2d(c_in, c_out, 1, bias=False) if c_in != c_out else None

    @property
    def is_identity(self) -> bool:
        return self.stride == 1 and self.conv is None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = shortcut_pool(x, self.stride)
        return x if self.conv is None else self.conv(x)


class StaticBlock(nn.Module):
    """MBConv: expand 1x1, depthwise kxk, optional SE, project 1x1, always residual."""

    def __init__(self, c_in: int, c_out: int, kernel: int, expand_ratio: float, stride: int,
                 use_se: bool, has_expand_conv: bool):
        super().__init__()
        mid = expanded_channels(c_in, expand_ratio) if has_expand_conv else c_in
        self.expand = conv_bn_act(c_in, mid, 1) if has_expand_conv else None
        self.depthwise = conv_bn_act(mid, mid, kernel, stride, groups=mid)
        self.se = (SqueezeExcitation(mid, se_channels(mid), scale_activation=nn.Hardsigmoid)
                   if use_se else None)
        self.project = conv_bn_act(mid, c_out, 1, activation=False)
        self.shortcut = Shortcut(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.expand is None else self.expand(x)
        h = self.depthwise(h)
        if self.se is not None:
            h = self.se(h)
        return self.shortcut(x) + self.project(h)


class StaticSubnet(MemoryFormatMixin, nn.Module):
    """One subnet as an ordinary network; takes images at the space's base resolution."""

    def __init__(self, space: SearchSpace, subnet: Subnet, resolution_mode: str = "resize",
                 dropout: float = 0.0):
        super().__init__()
        if resolution_mode not in RESOLUTION_MODES:
            raise ValueError(f"resolution_mode must be one of {RESOLUTION_MODES}, got {resolution_mode!r}")
        self.resolution = subnet.resolution
        self.resolution_mode = resolution_mode
        self.channels_last = False
        width = subnet.width
        self.stem = conv_bn_act(space.in_channels, width[0], space.stem_kernel, space.stem_stride)
        stages = []
        c_in = width[0]
        for i, stage in enumerate(space.stages):
            blocks = []
            for b in range(subnet.depth[i]):
                blocks.append(StaticBlock(c_in, width[i + 1], subnet.kernel_size[i], subnet.expand_ratio[i],
                                          stage.stride if b == 0 else 1, stage.se, stage.has_expand_conv))
                c_in = width[i + 1]
            stages.append(nn.ModuleList(blocks))
        self.stages = nn.ModuleList(stages)
        last = space.head_expand * c_in
        self.head_expand = conv_bn_act(c_in, last, 1)
        self.feature_mix = nn.Sequential(OrderedDict(conv=nn.Conv2d(last, width[-1], 1, bias=False),
                                                     act=nn.SiLU()))
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(width[-1], space.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = adapt_resolution(x, self.resolution, self.resolution_mode)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.stem(x)
        for stage in self.stages:
            for block in stage:
                x = block(x)
        x = self.head_expand(x)
        x = F.adaptive_avg_pool2d(x, 1)
        x = self.feature_mix(x)
        return self.classifier(self.dropout(torch.flatten(x, 1)))


def fold_batchnorm(model: StaticSubnet) -> StaticSubnet:
    """A copy of an eval-mode `model` with every BN folded into the conv before it, for inference.

    The same function up to float rounding, one pass over the activations fewer per layer.
    """
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        if isinstance(module, nn.Sequential) and isinstance(getattr(module, "bn", None), nn.BatchNorm2d):
            module.conv = fuse_conv_bn_eval(module.conv, module.bn)
            module.bn = nn.Identity()
    return folded
