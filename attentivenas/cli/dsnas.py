"""DSNAS, the one-stage baseline: search one child at a FLOPs target, train it on, evaluate it.

Writes into --out-dir: child.json (subnet + mflops, params_m), summary.json (accuracy, compute spent,
frozen decisions, final probabilities), metrics.csv (per step) and supernet.pt (the trained weights).
Rerunning an interrupted command resumes from the last finished epoch.
"""

from __future__ import annotations

import argparse
import logging

from attentivenas.cli._config import add_config_arguments, read_job
from attentivenas.dsnas import run_dsnas
from attentivenas.runtime import set_threads

HELP = "DSNAS one-stage search of one child at a FLOPs target"

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, "dsnas_search")
    parser.add_argument("--target", required=True, type=float, metavar="MFLOPS",
                        help="FLOPs target in MFLOPs (one of dsnas.targets_mflops in the pipeline)")
    parser.add_argument("--out-dir", required=True,
                        help="directory for child.json, summary.json, metrics.csv, supernet.pt")
    parser.add_argument("--init-from", default=None, metavar="CKPT",
                        help="warm-up supernet checkpoint (required when dsnas.init is warmup)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    job = read_job(args, "dsnas_search")
    set_threads(args.threads)
    summary = run_dsnas(job, args.target, args.out_dir, init_from=args.init_from,
                        progress=not args.no_progress)
    logger.info("dsnas target %g MFLOPs: child %.3f MFLOPs, %.4f M params, top-1 %.2f%% (test), "
                "%.2f%% (search); %d steps, %d images", summary["target_mflops"], summary["mflops"],
                summary["params_m"], summary["top1_test"], summary["top1_search"], summary["steps"],
                summary["images_processed"])
    return 0
