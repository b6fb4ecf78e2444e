"""The one analytic FLOPs and params counter, used by the samplers, the search and the tables.

FLOPs follow the papers: multiply-accumulates of conv and linear layers only (BN, activations,
pooling, SE scaling, residual adds and the input resize are free, as in the reference's counter; so a
strided block of equal widths, whose shortcut only pools, adds nothing for it). Params are the parameters of the
extracted static subnet, BN affine parameters included. Pure integer arithmetic on the subnet, cached,
so the sampler can call it millions of times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache, lru_cache

from attentivenas.space import SearchSpace, Subnet, expanded_channels, se_channels


@dataclass(frozen=True)
class Cost:
    mflops: float
    params_m: float


def _conv(c_in: int, c_out: int, size: int, kernel: int, groups: int = 1) -> int:
    return c_in * c_out * size * size * kernel * kernel // groups


def _bn(channels: int) -> int:
    return 2 * channels


@cache
def _spatial_sizes(resolution: int, stem_stride: int, strides: tuple[int, ...]) -> tuple[int, ...]:
    sizes = [math.ceil(resolution / stem_stride)]
    for s in strides:
        sizes.append(math.ceil(sizes[-1] / s))
    return tuple(sizes)


def _count(space: SearchSpace, subnet: Subnet) -> tuple[int, int]:
    strides = tuple(s.stride for s in space.stages)
    sizes = _spatial_sizes(subnet.resolution, space.stem_stride, strides)
    size = sizes[0]
    c_in = subnet.width[0]
    macs = _conv(space.in_channels, c_in, size, space.stem_kernel)
    params = space.in_channels * c_in * space.stem_kernel ** 2 + _bn(c_in)
    for i, stage in enumerate(space.stages):
        c_out = subnet.width[i + 1]
        kernel = subnet.kernel_size[i]
        for block in range(subnet.depth[i]):
            out_size = sizes[i + 1] if block == 0 else size
            if stage.has_expand_conv:
                mid = expanded_channels(c_in, subnet.expand_ratio[i])
                macs += _conv(c_in, mid, size, 1)
                params += c_in * mid + _bn(mid)
            else:
                mid = c_in
            macs += _conv(mid, mid, out_size, kernel, groups=mid)
            params += mid * kernel * kernel + _bn(mid)
            if stage.se:
                squeeze = se_channels(mid)
                macs += 2 * mid * squeeze
                params += 2 * mid * squeeze + squeeze + mid
            macs += _conv(mid, c_out, out_size, 1)
            params += mid * c_out + _bn(c_out)
            if c_in != c_out:
                macs += _conv(c_in, c_out, out_size, 1)
                params += c_in * c_out
            c_in, size = c_out, out_size
    last = space.head_expand * c_in
    head = subnet.width[-1]
    macs += _conv(c_in, last, size, 1) + last * head + head * space.num_classes
    params += c_in * last + _bn(last) + last * head + head * space.num_classes + space.num_classes
    return macs, params


@lru_cache(maxsize=1 << 20)
def _cached(space: SearchSpace, subnet: Subnet) -> Cost:
    macs, params = _count(space, subnet)
    return Cost(mflops=macs / 1e6, params_m=params / 1e6)


def count(space: SearchSpace, subnet: Subnet) -> Cost:
    """MFLOPs (multiply-adds) and millions of params of `subnet` in `space`."""
    return _cached(space, subnet)


def mflops(space: SearchSpace, subnet: Subnet) -> float:
    return count(space, subnet).mflops


def flops_range(space: SearchSpace) -> tuple[float, float]:
    """MFLOPs of the smallest and the largest subnet of the space."""
    return mflops(space, space.min_subnet()), mflops(space, space.max_subnet())
