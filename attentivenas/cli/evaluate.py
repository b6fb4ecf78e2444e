"""Evaluate one subnet of a supernet checkpoint: BN recalibration, then top-1 and loss on a split."""

from __future__ import annotations

import argparse
import json

from attentivenas.cli._stage import add_stage_arguments, start_stage

HELP = "top-1, loss, MFLOPs and params of one subnet of a supernet checkpoint"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stage_arguments(parser)
    parser.add_argument("--subnet", required=True, help="subnet JSON file")
    parser.add_argument("--split", choices=("search", "test"), default="search",
                        help="split to evaluate on (default: search; test is for final tables only)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    stage = start_stage(args)
    subnet = stage.space.load_subnet(args.subnet)
    supernet = stage.supernet(args.checkpoint)
    evaluator = stage.evaluator(args.split)
    result = evaluator.evaluate(supernet, subnet)
    if args.json:
        print(json.dumps({"split": args.split, **result.as_dict(),
                          "calibration_seconds": evaluator.calibration_seconds}))
        return 0
    print(f"split {args.split} ({result.images} images): top-1 {result.top1:.2f}%  loss {result.loss:.4f}  "
          f"MFLOPs {result.mflops:.3f}  params {result.params_m:.4f} M")
    return 0
