"""Make the paper table, the figures or one ablation plot from an existing results folder."""

from __future__ import annotations

import argparse

from attentivenas import reporting
from attentivenas.config import load_config
from attentivenas.errors import UserInputError
from attentivenas.runtime import set_threads

HELP = "paper table, figures and ablation plots from existing results (no training)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=["table", "figures", "ablation"])
    parser.add_argument("--config", required=True, help="experiment config YAML")
    parser.add_argument("--results-dir", default=None, help="results folder (default: config key results_dir)")
    parser.add_argument("--ablation", choices=reporting.ABLATIONS, help="which ablation plot (with `ablation`)")
    parser.add_argument("--threads", type=int, default=None)


def run(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    config = load_config(args.config)
    results_dir = args.results_dir or config["results_dir"]
    if args.what == "table":
        results = reporting.write_pareto_table(config, results_dir)
        for r in results:
            print(f"{r.label}: hypervolume {r.hypervolume:.4f}, {len(r.models)} models, "
                  f"{r.subnet_images_trained:,.0f} subnet-images trained")
    elif args.what == "figures":
        reporting.write_figures(config, results_dir)
    else:
        if args.ablation is None:
            raise UserInputError(f"`report ablation` needs --ablation {{{','.join(reporting.ABLATIONS)}}}")
        reporting.write_ablation(config, results_dir, args.ablation)
    return 0
