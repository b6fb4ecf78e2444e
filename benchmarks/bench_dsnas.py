"""Cost of one DSNAS step against one two-stage sandwich step, on the same batches.

DSNAS runs one sampled subnet per step (forward + backward with gates, an SGD step, an Adam step on
the logits); the sandwich rule (attentivenas.training.sandwich_step, uniform sampler as in BigNAS)
runs the max, two middle and the min subnet with inplace distillation. Both start from the same
weights and see the same preloaded batches, in alternating rounds so that load from other processes
hits both alike; the median over rounds of the mean step time is reported.

    python benchmarks/bench_dsnas.py [--threads 2] [--batch-size 128] [--steps 10] [--rounds 5]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import torch

from attentivenas.config import validate_config
from attentivenas.data import build_splits, make_loader
from attentivenas.dsnas import DSNAS
from attentivenas.optim import build_optimizer
from attentivenas.runtime import seed_everything, set_threads
from attentivenas.samplers import build_sampler
from attentivenas.space import SearchSpace
from attentivenas.specs import ExperimentSpec
from attentivenas.stages import stage_job
from attentivenas.supernet import Supernet
from attentivenas.training import build_scheduler, sandwich_step

DATA = "data/fashion-mnist/fmnist-10k-2k.npz"


def timed_round(step: Callable[[torch.Tensor, torch.Tensor], object],
                batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    start = time.perf_counter()
    for images, labels in batches:
        step(images, labels)
    return (time.perf_counter() - start) / len(batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--target", type=float, default=2.5, help="DSNAS FLOPs target (MFLOPs)")
    args = parser.parse_args()
    set_threads(args.threads)
    seed_everything(0)

    experiment = ExperimentSpec.from_dict(validate_config({
        "space": "fmnist", "data": {"dataset": "fashion_mnist", "source": DATA},
        "training": {"batch_size": args.batch_size}, "dsnas": {"batch_size": args.batch_size},
        "methods": {"bignas": {"sampler": "uniform"}}}))
    space = SearchSpace.load(experiment.space)
    splits = build_splits(experiment.data, image_size=space.base_resolution)
    loader = make_loader(splits.train, args.batch_size, shuffle=True, seed=0, drop_last=True)
    batches = [batch for batch, _ in zip(loader, range(args.steps), strict=False)]
    total_steps = (args.rounds + 1) * args.steps

    dsnas_supernet = Supernet(space)
    sandwich_supernet = copy.deepcopy(dsnas_supernet)
    dsnas = DSNAS(dsnas_supernet, experiment.dsnas, args.target, total_steps, warmup_steps=0, seed=0)

    job = stage_job(experiment, "train_supernet", "bignas")
    settings = job.training
    sampler = build_sampler(job, space, supernet=sandwich_supernet)
    optimizer = build_optimizer(sandwich_supernet, settings)
    scheduler = build_scheduler(optimizer, settings, total_steps)
    sandwich_supernet.train()

    def sandwich(images: torch.Tensor, labels: torch.Tensor) -> object:
        return sandwich_step(sandwich_supernet, sandwich_supernet, sampler, images, labels, settings,
                             optimizer, scheduler)

    steps = {"dsnas": dsnas.step, "sandwich": sandwich}
    for step in steps.values():  # warm-up round, not timed
        timed_round(step, batches)
    seconds: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            seconds[name].append(timed_round(step, batches))

    median = {name: statistics.median(values) for name, values in seconds.items()}
    forwards = {"dsnas": 1, "sandwich": settings.num_arch_training}
    print(f"fmnist space, batch {args.batch_size}, {args.threads} threads, {args.rounds} rounds x "
          f"{args.steps} steps (median of round means)")
    for name, value in median.items():
        spread = f"{min(seconds[name]) * 1e3:.1f}-{max(seconds[name]) * 1e3:.1f}"
        print(f"  {name:<9} {value * 1e3:8.1f} ms/step  (rounds {spread} ms)  "
              f"{forwards[name]} subnet(s)/step, {args.batch_size * forwards[name] / value:8.0f} forward images/s")
    print(f"  ratio dsnas / sandwich = {median['dsnas'] / median['sandwich']:.3f}")


if __name__ == "__main__":
    main()
