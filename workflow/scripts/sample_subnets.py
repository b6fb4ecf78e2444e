"""Snakemake job `sample_predictor_subnets`: uniform subnets of the warm-up supernet, evaluated."""
from attentivenas.pipeline import run_stage

smk = snakemake  # noqa: F821 (injected by Snakemake's `script:` directive)
run_stage(smk, ["sample-subnets", "--checkpoint", smk.input.checkpoint, "--out", smk.output.subnets])
