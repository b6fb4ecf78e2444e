"""Draw subnets uniformly (distinct, seeded by the config's seed) and evaluate each on a split.

The table is the accuracy predictor's training data (on the warm-up supernet) and, run on each method's
supernet with the same seed, the paired per-FLOPs-bin accuracy samples of the report's box plots.
"""

from __future__ import annotations

import argparse
import logging

from attentivenas.cli._stage import add_stage_arguments, start_stage
from attentivenas.errors import UserInputError
from attentivenas.io import write_csv
from attentivenas.predictor import sample_distinct, sample_rows

HELP = "evaluate uniformly sampled subnets into a CSV (predictor data, accuracy box plots)"

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stage_arguments(parser, stage="sample_predictor_subnets")
    parser.add_argument("--count", type=int, help="number of subnets (default: config predictor.num_subnets)")
    parser.add_argument("--out", required=True, help="CSV to write")
    parser.add_argument("--split", choices=("search", "test"), default="search",
                        help="split the subnets are evaluated on (default: search)")


def run(args: argparse.Namespace) -> int:
    stage = start_stage(args, "sample_predictor_subnets")
    job, space = stage.job, stage.space
    count = job.predictor.num_subnets if args.count is None else args.count
    if count < 1:
        raise UserInputError(f"--count must be at least 1, got {count}")
    subnets = sample_distinct(space, count, job.seed)
    supernet = stage.supernet(args.checkpoint)
    evaluator = stage.evaluator(args.split)
    results = evaluator.evaluate_many(supernet, subnets, description=f"evaluating subnets on {args.split}")
    write_csv(args.out, sample_rows(space, subnets, results))
    logger.info(f"{len(subnets)} subnets evaluated on the {args.split} split -> {args.out} (BN recalibration "
                f"{evaluator.calibration_seconds:.1f} s, measuring {evaluator.measure_seconds:.1f} s)")
    return 0
