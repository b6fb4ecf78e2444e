"""Weight-sharing overhead, channels_last and FLOPs-counter throughput, measured side by side.

(a) forward+backward of a subnet run inside the supernet / the same subnet extracted as a static
    model, for the min, A0-like, middle and max subnet of each space (goal <= 1.05). "a0" feeds the
    min subnet images at its own resolution, as the reference measures AttentiveNAS-A0 (paper space:
    192 px, batch 16); the other rows feed the space's base resolution, resized inside the network.
(b) the same supernet step in channels_last / in NCHW (below 1 means channels_last is faster).
(c) analytic FLOPs counts per second, for distinct subnets (no cache hits) and for repeated ones.
(d) with `--reference-repo` (a local clone of the public AttentiveNAS code, imported, not shipped):
    our supernet step / the reference supernet's step on the same paper-space subnets (goal <= 0.9).

The compared variants alternate within every round, so machine noise hits them alike. Each timing
is the median of `--reps` steps after warm-up; a figure is reported both as the ratio of the medians
over rounds and as the median of the per-round ratios. The output is also written to `--out`.

    python benchmarks/bench_core.py [--threads 2] [--rounds 7] [--reps 5] [--out benchmarks/results/core.txt]
                                    [--reference-repo ../AttentiveNAS]
"""

from __future__ import annotations

import argparse
import importlib
import random
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch
import yaml
from report import Report

from attentivenas.flops import _count, count
from attentivenas.space import SearchSpace, Subnet
from attentivenas.supernet import Supernet

BATCH = {"attentivenas": 16, "cifar10": 64, "fmnist": 64}


def middle_subnet(space: SearchSpace) -> Subnet:
    return space.from_genes([g.choices[len(g.choices) // 2] for g in space.genes])


def benchmark_subnets(space: SearchSpace) -> list[tuple[str, Subnet, int]]:
    """(label, subnet, input size): "a0" is the min subnet fed at its own resolution."""
    base = space.base_resolution
    return [("min", space.min_subnet(), base), ("a0", space.min_subnet(), min(space.resolutions)),
            ("middle", middle_subnet(space), base), ("max", space.max_subnet(), base)]


def step_seconds(model: torch.nn.Module, images: torch.Tensor, reps: int) -> float:
    """Median wall time of one forward+backward, after one warm-up step."""
    times = []
    for i in range(reps + 1):
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        model(images).square().mean().backward()
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def side_by_side(variants: dict[str, tuple[torch.nn.Module, torch.Tensor]], rounds: int,
                 reps: int) -> dict[str, list[float]]:
    """Per variant, one step time per round; the variants alternate within each round."""
    times = {name: [] for name in variants}
    for _ in range(rounds):
        for name, (model, images) in variants.items():
            times[name].append(step_seconds(model, images, reps))
    return times


def image_pair(space: SearchSpace, batch: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One random batch, in NCHW and in channels_last."""
    images = torch.randn(batch, space.in_channels, size, size)
    return images, images.contiguous(memory_format=torch.channels_last)


def ratios(numerator: list[float], denominator: list[float]) -> tuple[float, float]:
    """(ratio of the medians, median of the per-round ratios)."""
    pairs = [a / b for a, b in zip(numerator, denominator, strict=True)]
    return statistics.median(numerator) / statistics.median(denominator), statistics.median(pairs)


def weight_sharing_overhead(space: SearchSpace, args: argparse.Namespace, report: Report) -> None:
    torch.manual_seed(0)
    supernet = Supernet(space).train()
    supernet_cl = Supernet(space).train().use_channels_last()
    batch = BATCH.get(space.name, 32)
    report.line(f"\n[{space.name}] batch {batch}; median of {args.reps} steps per round, {args.rounds} rounds")
    report.line(f"{'subnet':<7} {'px':>4} {'MFLOPs':>8} {'supernet ms':>12} {'static ms':>10} "
                f"{'overhead':>17} {'CL supernet ms':>15} {'CL/NCHW':>15} {'CL overhead':>17}")
    for label, subnet, size in benchmark_subnets(space):
        images, images_cl = image_pair(space, batch, size)
        supernet.set_active_subnet(subnet)
        supernet_cl.set_active_subnet(subnet)
        static = supernet.extract().train()
        static_cl = supernet_cl.extract().train()
        times = side_by_side({"supernet": (supernet, images), "static": (static, images),
                              "supernet_cl": (supernet_cl, images_cl), "static_cl": (static_cl, images_cl)},
                             args.rounds, args.reps)
        overhead = ratios(times["supernet"], times["static"])
        speedup = ratios(times["supernet_cl"], times["supernet"])
        overhead_cl = ratios(times["supernet_cl"], times["static_cl"])
        report.line(f"{label:<7} {subnet.resolution:>4} {count(space, subnet).mflops:>8.2f} "
                    f"{1e3 * statistics.median(times['supernet']):>12.2f} "
                    f"{1e3 * statistics.median(times['static']):>10.2f} {_pair(overhead):>17} "
                    f"{1e3 * statistics.median(times['supernet_cl']):>15.2f} {_pair(speedup):>15} "
                    f"{_pair(overhead_cl):>17}")


def _namespace(node):
    """The reference reads its supernet config by attribute."""
    if isinstance(node, dict):
        return SimpleNamespace(**{key: _namespace(value) for key, value in node.items()})
    return node


def reference_supernet(repo: Path, space: SearchSpace) -> torch.nn.Module:
    """The reference's dynamic supernet for the paper space, built from its own training config."""
    config = yaml.safe_load((repo / "configs" / "train_attentive_nas_models.yml").read_text())["supernet_config"]
    sys.path.insert(0, str(repo))
    module = importlib.import_module("models.attentive_nas_dynamic_model")
    return module.AttentiveNasDynamicModel(_namespace(config), n_classes=space.num_classes).train()


def against_reference(repo: Path, args: argparse.Namespace, report: Report) -> None:
    space = SearchSpace.load("attentivenas")
    torch.manual_seed(0)
    ours, ours_cl = Supernet(space).train(), Supernet(space).train().use_channels_last()
    reference = reference_supernet(repo, space)
    batch = BATCH[space.name]
    report.line(f"\n[{space.name} vs the reference supernet] batch {batch}; forward+backward of the same subnet; "
                f"median of {args.reps} steps per round, {args.rounds} rounds")
    report.line(f"{'subnet':<7} {'px':>4} {'reference ms':>13} {'ours ms':>8} {'ours/ref':>15} "
                f"{'ours CL ms':>11} {'ours CL/ref':>15}")
    for label, subnet, size in benchmark_subnets(space):
        images, images_cl = image_pair(space, batch, size)
        ours.set_active_subnet(subnet)
        ours_cl.set_active_subnet(subnet)
        reference.set_active_subnet(**subnet.to_dict())
        times = side_by_side({"reference": (reference, images), "ours": (ours, images),
                              "ours_cl": (ours_cl, images_cl)}, args.rounds, args.reps)
        ms = {name: 1e3 * statistics.median(values) for name, values in times.items()}
        report.line(f"{label:<7} {subnet.resolution:>4} {ms['reference']:>13.2f} {ms['ours']:>8.2f} "
                    f"{_pair(ratios(times['ours'], times['reference'])):>15} {ms['ours_cl']:>11.2f} "
                    f"{_pair(ratios(times['ours_cl'], times['reference'])):>15}")


def _pair(values: tuple[float, float]) -> str:
    return f"{values[0]:.3f} / {values[1]:.3f}"


def flops_throughput(space: SearchSpace, samples: int, report: Report) -> None:
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
    report.line(f"[{space.name}] analytic FLOPs: {distinct:,.0f} distinct subnets/s, "
                f"{cached:,.0f} cached look-ups/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--spaces", nargs="+", default=["fmnist", "attentivenas"])
    parser.add_argument("--flops-samples", type=int, default=100_000)
    parser.add_argument("--out", type=Path, help="also write the output to this file")
    parser.add_argument("--reference-repo", type=Path,
                        help="a clone of the public AttentiveNAS code: also time its supernet on the same subnets")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report = Report(__file__)
    report.line("columns: overhead = supernet / static (ratio of medians / median of per-round ratios); "
                "CL = channels_last")
    for name in args.spaces:
        flops_throughput(SearchSpace.load(name), args.flops_samples, report)
    for name in args.spaces:
        weight_sharing_overhead(SearchSpace.load(name), args, report)
    if args.reference_repo is not None:
        against_reference(args.reference_repo, args, report)
    report.save(args.out)


if __name__ == "__main__":
    main()
