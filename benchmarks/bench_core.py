"""Weight-sharing overhead and FLOPs-counter throughput.

(a) forward+backward time of a subnet run inside the supernet divided by the same subnet extracted as
    a static model, for the min, a middle and the max subnet; median of repeated runs in one process
    (goal <= 1.05; the reference implementation measures 1.07-1.09 on its smallest model);
(b) analytic FLOPs counts per second, for distinct subnets (no cache hits) and for repeated ones.

    python benchmarks/bench_core.py [--threads 2] [--repeats 7] [--spaces fmnist attentivenas]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch

from attentivenas.flops import _count, count
from attentivenas.space import SearchSpace, Subnet
from attentivenas.supernet import Supernet

BATCH = {"attentivenas": 16, "cifar10": 64, "fmnist": 64}


def middle_subnet(space: SearchSpace) -> Subnet:
    return space.from_genes([g.choices[len(g.choices) // 2] for g in space.genes])


def step_seconds(model: torch.nn.Module, images: torch.Tensor, repeats: int) -> float:
    """Median wall time of one forward+backward, after two warm-up steps."""
    times = []
    for i in range(repeats + 2):
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        model(images).square().mean().backward()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def weight_sharing_overhead(space: SearchSpace, repeats: int) -> None:
    torch.manual_seed(0)
    supernet = Supernet(space).train()
    batch = BATCH.get(space.name, 32)
    images = torch.randn(batch, space.in_channels, space.base_resolution, space.base_resolution)
    print(f"\n[{space.name}] batch {batch}, {torch.get_num_threads()} threads, median of {repeats}")
    print(f"{'subnet':<8} {'MFLOPs':>9} {'supernet ms':>12} {'static ms':>10} {'ratio':>7}")
    for label, subnet in (("min", space.min_subnet()), ("middle", middle_subnet(space)),
                          ("max", space.max_subnet())):
        supernet.set_active_subnet(subnet)
        static = supernet.extract().train()
        # interleave the two so that machine noise hits both alike
        shared, plain = [], []
        for _ in range(3):
            shared.append(step_seconds(supernet, images, repeats))
            plain.append(step_seconds(static, images, repeats))
        shared_s, plain_s = statistics.median(shared), statistics.median(plain)
        print(f"{label:<8} {count(space, subnet).mflops:>9.2f} {1e3 * shared_s:>12.2f} "
              f"{1e3 * plain_s:>10.2f} {shared_s / plain_s:>7.3f}")


def flops_throughput(space: SearchSpace, samples: int) -> None:
    rng = random.Random(0)
    subnets = [space.sample_uniform(rng) for _ in range(samples)]
    start = time.perf_counter()
    for subnet in subnets:
        _count(space, subnet)
    distinct = samples / (time.perf_counter() - start)
    for subnet in subnets:
        count(space, subnet)
    start = time.perf_counter()
    for subnet in subnets:
        count(space, subnet)
    cached = samples / (time.perf_counter() - start)
    print(f"[{space.name}] analytic FLOPs: {distinct:,.0f} distinct subnets/s, {cached:,.0f} cached lookups/s "
          f"(ratio {cached / distinct:.1f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--spaces", nargs="+", default=["fmnist", "attentivenas"])
    parser.add_argument("--flops-samples", type=int, default=100_000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.spaces:
        flops_throughput(SearchSpace.load(name), args.flops_samples)
    for name in args.spaces:
        weight_sharing_overhead(SearchSpace.load(name), args.repeats)


if __name__ == "__main__":
    main()
