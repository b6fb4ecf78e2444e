"""Snakemake job `prepare_data`: check the data and record its splits."""
from attentivenas.pipeline import run_stage

smk = snakemake  # noqa: F821 (injected by Snakemake's `script:` directive)
run_stage(smk, ["prepare-data", "--out", smk.output.summary])
