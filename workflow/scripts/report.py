"""Snakemake jobs `paper_table`, `figures` and `ablation_plot`: made from existing results only."""
from attentivenas.pipeline import run_stage

smk = snakemake  # noqa: F821 (injected by Snakemake's `script:` directive)
what, _, ablation = smk.params.what.partition("=")
argv = ["report", what, "--results-dir", smk.params.results_dir]
if ablation:
    argv += ["--ablation", ablation]
run_stage(smk, argv)
