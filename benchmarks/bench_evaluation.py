"""Subnets evaluated per minute on a config's settings, against the plain evaluation, side by side.

"evaluator" is `SubnetEvaluator.evaluate` as every stage runs it (channels_last per the config's
`memory_format`, BN folded into the convs for the holdout forward); "plain" extracts the same subnet
in NCHW and recalibrates and measures it without folding. Both use the evaluator's calibration and
holdout batches, alternating subnet by subnet within each round, so the top-1 they report can be
compared one to one (the largest difference is printed) and machine noise hits both alike. Also
printed: the evaluator's split of time between BN recalibration and the holdout forward, and the
predictor fit times.

    python benchmarks/bench_evaluation.py [--config config/config.yaml] [--subnets 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from report import Report

from attentivenas.config import validate_config
from attentivenas.data import build_splits
from attentivenas.evaluation import evaluator_for, measure, recalibrate_bn
from attentivenas.flops import mflops
from attentivenas.predictor import build_regressor, sample_distinct
from attentivenas.space import SearchSpace
from attentivenas.specs import ExperimentSpec
from attentivenas.supernet import Supernet

REPO = Path(__file__).resolve().parents[1]


def bench_evaluation(config_path: Path, count: int, rounds: int, report: Report) -> None:
    config = validate_config(yaml.safe_load(config_path.read_text()), source=str(config_path))
    config["data"]["source"] = str(REPO / config["data"]["source"])
    experiment = ExperimentSpec.from_dict(config)
    space = SearchSpace.load(experiment.space)
    splits = build_splits(experiment.data, image_size=space.base_resolution)
    evaluator = evaluator_for(experiment, splits, "search", torch.device("cpu"))
    torch.manual_seed(0)
    supernet = Supernet(space).eval()
    subnets = sample_distinct(space, count, seed=0)
    settings = experiment.evaluation
    plain_eval = [(x.contiguous(), y) for x, y in evaluator.eval_batches()]
    plain_calibration = [x.contiguous() for x in evaluator.calibration_batches()]
    report.line(f"config {config_path.relative_to(REPO)}: memory_format {experiment.memory_format}; "
                f"search split {len(splits.search)} images in batches of {settings.batch_size}; "
                f"calibration {evaluator.calibration_images} images in batches of "
                f"{settings.calibration_batch_size}; {count} uniform {space.name} subnets, mean "
                f"{np.mean([mflops(space, s) for s in subnets]):.2f} MFLOPs; {rounds} rounds")

    def plain(subnet):
        static = supernet.extract(subnet)
        recalibrate_bn(static, plain_calibration)
        return measure(static, plain_eval)[0]

    evaluator.evaluate(supernet, space.min_subnet())  # warm-up: allocator, oneDNN primitives
    plain(space.min_subnet())
    evaluator.calibration_seconds = evaluator.measure_seconds = 0.0
    times = {"evaluator": [], "plain": []}
    top1_gap = 0.0
    for _ in range(rounds):
        spent = {"evaluator": 0.0, "plain": 0.0}
        for subnet in subnets:
            start = time.perf_counter()
            top1 = evaluator.evaluate(supernet, subnet).top1
            spent["evaluator"] += time.perf_counter() - start
            start = time.perf_counter()
            top1_plain = plain(subnet)
            spent["plain"] += time.perf_counter() - start
            top1_gap = max(top1_gap, abs(top1 - top1_plain))
        for name, seconds in spent.items():
            times[name].append(seconds)
    rate = {name: 60 * count / statistics.median(values) for name, values in times.items()}
    pairs = statistics.median(a / b for a, b in zip(times["evaluator"], times["plain"], strict=True))
    total = sum(times["evaluator"])
    report.line(f"evaluator: {rate['evaluator']:7.1f} subnets/min (median of rounds); "
                f"BN recalibration {100 * evaluator.calibration_seconds / total:.0f} %, "
                f"holdout forward {100 * evaluator.measure_seconds / total:.0f} %, extraction and rest "
                f"{100 * (1 - (evaluator.calibration_seconds + evaluator.measure_seconds) / total):.0f} %")
    report.line(f"plain:     {rate['plain']:7.1f} subnets/min")
    report.line(f"time evaluator / plain: {rate['plain'] / rate['evaluator']:.3f} (ratio of medians), "
                f"{pairs:.3f} (median of per-round ratios); largest top-1 difference {top1_gap:.2f} points")


def bench_predictor_fit(sizes: list[int], report: Report) -> None:
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
    report.line("predictor fit (random_forest, 100 trees, depth 15, on all rows):")
    for rows, seconds in times.items():
        report.line(f"  {rows:5d} rows: {seconds:6.3f} s  ({seconds / times[sizes[0]]:.2f}x the {sizes[0]}-row fit)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    parser.add_argument("--subnets", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="also write the output to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report = Report(__file__)
    bench_evaluation(args.config.resolve(), args.subnets, args.rounds, report)
    bench_predictor_fit([100, 500, 1000], report)
    report.save(args.out)


if __name__ == "__main__":
    main()
