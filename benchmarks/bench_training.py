"""Training throughput: uniform (BigNAS) vs attentive BestUp-k with the loss estimator, same supernet.

The two samplers train the same supernet in alternating blocks of steps, so a busy machine slows
both alike; the ratio is attentive / uniform images per second. The attentive sampler's own work
(bin draw, marginal draws, rejections, FLOPs look-ups; not the candidates' forwards) is reported as
a share of the attentive step time, both as counted inside the training steps and measured alone.

    .venv/bin/python benchmarks/bench_training.py [--steps 8 --rounds 3 --batch-size 128 --threads 2]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

import torch

from attentivenas.config import validate_config
from attentivenas.data import build_splits, make_loader
from attentivenas.optim import build_optimizer
from attentivenas.runtime import seed_everything, set_threads
from attentivenas.samplers import AttentiveSampler, build_flops_table, build_sampler
from attentivenas.space import SearchSpace
from attentivenas.supernet import Supernet
from attentivenas.training import build_scheduler, sandwich_step, set_bn_momentum

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="fmnist")
    parser.add_argument("--data", default=str(REPO / "data" / "fashion-mnist" / "fmnist-10k-2k.npz"))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=8, help="steps per sampler per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    set_threads(args.threads)

    config = validate_config({
        "seed": 0, "space": args.space,
        "data": {"dataset": "fashion_mnist", "source": args.data},
        "training": {"batch_size": args.batch_size, "epochs": 1, "warmup_epochs": 0},
        "methods": {"uniform": {"sampler": "uniform"},
                    "bestup": {"sampler": "attentive", "mode": "bestup", "k": args.k, "estimator": "loss"}}})
    settings = config["training"]
    space = SearchSpace.load(args.space)
    splits = build_splits(config["data"], image_size=space.base_resolution)
    seed_everything(0)
    supernet = Supernet(space).train()
    set_bn_momentum(supernet, settings["bn_momentum"])
    optimizer = build_optimizer(supernet, settings)
    scheduler = build_scheduler(optimizer, settings, steps_per_epoch=10 * args.steps * args.rounds)
    started = time.perf_counter()
    table = build_flops_table(config, space)
    table_seconds = time.perf_counter() - started
    samplers = {"uniform": build_sampler(config, "uniform", space),
                "bestup": build_sampler(config, "bestup", space, supernet=supernet, table=table)}
    batches = iter(make_loader(splits.train, args.batch_size, shuffle=True, seed=0, drop_last=True))

    def next_batch():
        nonlocal batches
        try:
            return next(batches)
        except StopIteration:
            batches = iter(make_loader(splits.train, args.batch_size, shuffle=True, seed=1, drop_last=True))
            return next(batches)

    def train(name: str, steps: int) -> float:
        seconds = 0.0
        for _ in range(steps):
            images, labels = next_batch()
            start = time.perf_counter()
            sandwich_step(supernet, supernet, samplers[name], images, labels, settings, optimizer, scheduler)
            seconds += time.perf_counter() - start
        return seconds

    for name in samplers:  # warm-up: first-call costs (kernels, thread pools, caches)
        train(name, 2)
    attentive: AttentiveSampler = samplers["bestup"]
    attentive.reset_stats()
    seconds = {name: [] for name in samplers}
    for _ in range(args.rounds):
        for name in samplers:
            seconds[name].append(train(name, args.steps))
    steps = args.steps * args.rounds
    rate = {name: steps * args.batch_size / sum(s) for name, s in seconds.items()}
    step_time = {name: sum(s) / steps for name, s in seconds.items()}

    middle = settings["num_arch_training"] - 2
    calls = 2000
    lone = AttentiveSampler(space, random.Random(1), table, estimator=None, k=args.k)
    start = time.perf_counter()
    for _ in range(calls):
        lone.draw_candidates()
    draw_seconds = (time.perf_counter() - start) / calls
    stats = attentive.stats()

    print(f"space {args.space}, batch {args.batch_size}, {settings['num_arch_training']} subnets per step "
          f"({middle} from the sampler), {steps} timed steps per sampler in {args.rounds} alternating rounds, "
          f"{torch.get_num_threads()} threads")
    for name in samplers:
        spread = statistics.pstdev([args.steps * args.batch_size / s for s in seconds[name]])
        print(f"  {name:<8} {rate[name]:8.1f} images/s  ({1000 * step_time[name]:7.1f} ms/step, "
              f"round-to-round sd {spread:.1f} images/s)")
    print(f"  ratio attentive bestup-{args.k} (loss) / uniform: {rate['bestup'] / rate['uniform']:.3f} "
          f"(the estimator's {middle * args.k} extra forwards per step)")
    print("attentive sampler overhead (bin draw, marginal draws, rejection, FLOPs look-ups):")
    print(f"  FLOPs table of {len(table.subnets)} subnets built once in {table_seconds:.2f} s")
    print(f"  in training: {1000 * stats['overhead_seconds'] / steps:.3f} ms/step = "
          f"{100 * stats['overhead_seconds'] / sum(seconds['bestup']):.3f}% of the attentive step "
          f"(estimator forwards {100 * stats['estimator_seconds'] / sum(seconds['bestup']):.1f}%); "
          f"in-bin rate {stats['in_bin_rate']:.3f}, {stats['tries_per_candidate']:.2f} tries per candidate")
    share = 100 * middle * draw_seconds / step_time["bestup"]
    print(f"  alone: {1000 * draw_seconds:.3f} ms per {args.k} candidates, x{middle} per step = {share:.3f}% "
          f"of the attentive step (goal <= 2%: {'met' if share <= 2 else 'NOT met'})")


if __name__ == "__main__":
    main()
