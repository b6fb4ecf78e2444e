"""Make the paper table, the figures or one ablation plot from an existing results folder."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from attentivenas import reporting
from attentivenas.cli._config import add_config_arguments
from attentivenas.errors import UserInputError
from attentivenas.layout import ABLATIONS
from attentivenas.runtime import set_threads
from attentivenas.specs import ReportJob, load_experiment
from attentivenas.stages import parse_settings, stage_job

HELP = "paper table, figures and ablation plots from existing results (no training)"
STAGES = {"table": "paper_table", "figures": "figures", "ablation": "ablation_plot"}

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=list(STAGES),
                        help="the paper table, all figures, or one ablation plot (see --ablation)")
    add_config_arguments(parser, "paper_table`, `figures` or `ablation_plot")
    parser.add_argument("--results-dir", default=None,
                        help="results folder (default: config key results_dir; required with --settings)")
    parser.add_argument("--ablation", choices=ABLATIONS, help="which ablation plot (with `ablation`)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")


def run(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    stage = STAGES[args.what]
    if args.settings is not None:
        if args.results_dir is None:
            raise UserInputError("`report --settings` needs --results-dir DIR")
        job, results_dir = parse_settings(args.settings, stage), args.results_dir
    else:
        experiment = load_experiment(args.config)
        job, results_dir = stage_job(experiment, stage), args.results_dir or experiment.results_dir
    if not Path(results_dir).is_dir():
        raise UserInputError(f"results directory {results_dir} does not exist: run the pipeline first "
                             "(snakemake --cores all), or give --results-dir")
    try:
        _report(args, job, results_dir)
    except FileNotFoundError as err:
        raise UserInputError(f"results directory {results_dir} lacks {err.filename}: run the pipeline stage "
                             "that writes it first (snakemake --cores all), or give --results-dir") from None
    return 0


def _report(args: argparse.Namespace, job: ReportJob, results_dir: str) -> None:
    if args.what == "table":
        results = reporting.write_pareto_table(job, results_dir)
        for r in results:
            logger.info("%s: hypervolume %.4f, %d models, %s subnet-images trained", r.label, r.hypervolume,
                        len(r.models), f"{r.subnet_images_trained:,.0f}")
    elif args.what == "figures":
        reporting.write_figures(job, results_dir)
    else:
        if args.ablation is None:
            raise UserInputError(f"`report ablation` needs --ablation {{{','.join(ABLATIONS)}}}")
        reporting.write_ablation(job, results_dir, args.ablation)
