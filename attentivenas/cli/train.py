"""Train a supernet with the sandwich rule: the `warmup` run (uniform sampling) or one of config `methods`.

Writes into --out-dir: supernet.pt (last, once complete), resume.pt (rerun the same command to resume),
metrics.csv (per step), epochs.csv (max/min subnet top-1 on the search split), summary.json, and for
attentive runs flops_table.csv and flops_histogram.csv (the FLOPs prior). With config key
`training.processes` > 1 it re-launches itself under torchrun, one DDP process each.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys

from attentivenas.cli._config import add_config_arguments, read_job
from attentivenas.runtime import set_threads
from attentivenas.space import SearchSpace
from attentivenas.stages import training_stage
from attentivenas.training import Trainer, check_run, final_checkpoint_complete, stop_processes, under_torchrun

HELP = "train a supernet (warmup or a config method) with the sandwich rule"

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, "warmup_supernet` or `train_supernet")
    parser.add_argument("--run", required=True, help="'warmup' or a key of config 'methods'")
    parser.add_argument("--out-dir", required=True, help="folder for the checkpoints, logs and summary")
    parser.add_argument("--init-from", help="checkpoint to start from, for runs with training.init: warmup")
    parser.add_argument("--predictor", help="accuracy predictor file, for methods with estimator: predictor")
    parser.add_argument("--threads", type=int, help="CPU threads in all (split among DDP processes)")


def relaunch_command(args: argparse.Namespace, processes: int) -> list[str]:
    # `--` keeps torchrun's parser off our flags (it reads `--run` as an abbreviation of its `--run-path`)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
               str(processes), "-m", "--", "attentivenas", "train"]
    command += ["--config", args.config] if args.config is not None else ["--settings", args.settings]
    command += ["--run", args.run, "--out-dir", args.out_dir]
    for flag, value in (("--init-from", args.init_from), ("--predictor", args.predictor),
                        ("--threads", args.threads)):
        if value is not None:
            command += [flag, str(value)]
    return command + ["--verbose"] * getattr(args, "verbose", 0) + ["--quiet"] * getattr(args, "quiet", 0)


def run(args: argparse.Namespace) -> int:
    job = read_job(args, training_stage(args.run), args.run)
    check_run(job, args.init_from, args.predictor)
    if final_checkpoint_complete(args.out_dir, SearchSpace.load(job.space)):
        logger.info("%s: supernet.pt is complete; nothing to do (delete it to retrain)", args.out_dir)
        return 0
    processes = job.training.processes
    if processes > 1 and not under_torchrun():
        return subprocess.run(relaunch_command(args, processes), check=False).returncode
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    set_threads(max(1, args.threads // world_size) if args.threads else None)
    try:
        summary = Trainer(job, args.out_dir, init_from=args.init_from, predictor_path=args.predictor).fit()
    finally:
        stop_processes()
    if int(os.environ.get("RANK", 0)) == 0:
        logger.info(f"{args.run}: {summary['steps']} steps, search-split top-1 "
                    f"max {summary['top1_max']}, min {summary['top1_min']}; files in {args.out_dir}")
    return 0
