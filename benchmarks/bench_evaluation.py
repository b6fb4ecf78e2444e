"""How fast subnets are evaluated, how much of it is BN recalibration, and how long predictor fits take.

Baselines measured in the same run: the same subnets evaluated without recalibration (extract and
measure only), and the predictor fit on 100 rows.

    .venv/bin/python benchmarks/bench_evaluation.py [--subnets 8] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from attentivenas.config import validate_config
from attentivenas.data import build_splits
from attentivenas.evaluation import evaluator_from_config
from attentivenas.flops import mflops
from attentivenas.predictor import build_regressor, sample_distinct
from attentivenas.runtime import set_threads
from attentivenas.space import SearchSpace
from attentivenas.supernet import Supernet


def bench_evaluation(data: str, count: int) -> None:
    config = validate_config({"space": "fmnist", "data": {"dataset": "fashion_mnist", "source": data}})
    space = SearchSpace.load("fmnist")
    splits = build_splits(config["data"], image_size=space.base_resolution)
    start = time.perf_counter()
    evaluator = evaluator_from_config(config, splits, "search", torch.device("cpu"))
    setup = time.perf_counter() - start
    torch.manual_seed(0)
    supernet = Supernet(space).eval()
    subnets = sample_distinct(space, count, seed=0)
    settings = config["evaluation"]
    print(f"data {data}: search split {len(splits.search)} images; calibration {evaluator.calibration_images} "
          f"images in batches of {settings['calibration_batch_size']}; eval batch {settings['batch_size']}; "
          f"{count} uniform fmnist subnets, mean {np.mean([mflops(space, s) for s in subnets]):.2f} MFLOPs; "
          f"{torch.get_num_threads()} threads")
    print(f"evaluator setup (draw + cache calibration and split images, once per stage): {setup:.2f} s")

    evaluator.evaluate(supernet, space.min_subnet())  # warm-up: allocator, oneDNN primitives
    evaluator.calibration_seconds = evaluator.measure_seconds = 0.0
    start = time.perf_counter()
    evaluator.evaluate_many(supernet, subnets, progress=False)
    with_recalibration = time.perf_counter() - start
    calibration, measuring = evaluator.calibration_seconds, evaluator.measure_seconds

    start = time.perf_counter()
    for subnet in subnets:
        evaluator.score(supernet.extract(subnet).eval())
    without_recalibration = time.perf_counter() - start

    print(f"with BN recalibration:    {60 * count / with_recalibration:7.1f} subnets/min "
          f"({with_recalibration / count:.3f} s each)")
    print(f"  BN recalibration        {100 * calibration / with_recalibration:5.1f} % of the time")
    print(f"  top-1 on search split   {100 * measuring / with_recalibration:5.1f} %")
    print(f"  extraction, FLOPs, rest {100 * (1 - (calibration + measuring) / with_recalibration):5.1f} %")
    print(f"without recalibration:    {60 * count / without_recalibration:7.1f} subnets/min "
          f"({without_recalibration / count:.3f} s each)")
    print(f"ratio (with / without recalibration): {with_recalibration / without_recalibration:.2f}x")


def bench_predictor_fit(sizes: list[int]) -> None:
    space = SearchSpace.load("fmnist")
    rng = np.random.default_rng(0)
    times = {}
    for rows in sizes:
        subnets = sample_distinct(space, rows, seed=rows)
        features = np.array([space.encode(s) for s in subnets])
        top1 = np.array([mflops(space, s) for s in subnets]) + rng.normal(0, 0.5, rows)
        regressor = build_regressor("random_forest", {}, seed=0)
        start = time.perf_counter()
        regressor.fit(features, top1)
        times[rows] = time.perf_counter() - start
    print("predictor fit (random_forest, 100 trees, depth 15, on all rows):")
    for rows, seconds in times.items():
        print(f"  {rows:5d} rows: {seconds:6.3f} s  ({seconds / times[sizes[0]]:.2f}x the {sizes[0]}-row fit)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/fashion-mnist/fmnist-10k-2k.npz")
    parser.add_argument("--subnets", type=int, default=8)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()
    set_threads(args.threads)
    bench_evaluation(args.data, args.subnets)
    bench_predictor_fit([100, 500, 1000])


if __name__ == "__main__":
    main()
