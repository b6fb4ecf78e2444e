"""Fit the accuracy predictor on a sample-subnets table and report its rank quality on held-out subnets.

Writes predictor.npz (with the scikit-learn version), metrics.json (Kendall tau, Spearman rho, RMSE,
overall and within equal-count FLOPs bins), predictions.csv (held-out rows) and predicted_vs_true.png.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from attentivenas.cli._config import add_config_arguments, read_job
from attentivenas.io import write_csv, write_json
from attentivenas.layout import PredictorFiles
from attentivenas.predictor import fit_predictor, read_sample_table, save_predictor
from attentivenas.reporting import predictor_rank_figure, save_figure
from attentivenas.runtime import set_threads
from attentivenas.space import SearchSpace

HELP = "fit the accuracy predictor on sampled subnets; report Kendall tau / Spearman rho"

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, "fit_predictor")
    parser.add_argument("--data", required=True, help="CSV written by sample-subnets")
    parser.add_argument("--out-dir", required=True, help="directory for predictor.npz, metrics.json, ...")
    parser.add_argument("--threads", type=int, help="CPU threads (default: all)")


def _number(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.3f}"


def run(args: argparse.Namespace) -> int:
    job = read_job(args, "fit_predictor")
    set_threads(args.threads)
    space = SearchSpace.load(job.space)
    table = read_sample_table(args.data, space)
    fit = fit_predictor(space, table, job.predictor, job.seed)
    files = PredictorFiles(Path(args.out_dir))
    save_predictor(files.predictor, fit.predictor)
    write_json(files.metrics, fit.metrics)
    write_csv(files.predictions, fit.predictions, fieldnames=["mflops", "true", "predicted"])
    figure = predictor_rank_figure(fit.predictions, f"{job.predictor.model} predictor, space {space.name}")
    save_figure(figure, files.plot_stem, [files.plot.suffix[1:]])
    metrics = fit.metrics
    logger.info(f"{metrics['model']}: fitted on {metrics['n_fit']}, held out {metrics['n_heldout']}: "
                f"Kendall tau {_number(metrics['kendall_tau'])}, Spearman rho {_number(metrics['spearman_rho'])}, "
                f"RMSE {_number(metrics['rmse'])}; mean within FLOPs bins: "
                f"tau {_number(metrics['mean_bin_kendall_tau'])}, rho {_number(metrics['mean_bin_spearman_rho'])} "
                f"-> {files.dir}")
    return 0
