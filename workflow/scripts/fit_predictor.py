"""Snakemake job `fit_predictor`: the accuracy predictor and its rank-correlation metrics."""
from attentivenas.pipeline import run_stage

smk = snakemake  # noqa: F821 (injected by Snakemake's `script:` directive)
run_stage(smk, ["fit-predictor", "--data", smk.input.subnets, "--out-dir", smk.params.out_dir])
