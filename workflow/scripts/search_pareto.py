"""Snakemake job `search_pareto`: evolutionary Pareto search in one method's supernet."""
from attentivenas.pipeline import run_stage

smk = snakemake  # noqa: F821 (injected by Snakemake's `script:` directive)
argv = ["search", "--checkpoint", smk.input.checkpoint, "--out-dir", smk.params.out_dir]
if hasattr(smk.input, "predictor"):
    argv += ["--predictor", smk.input.predictor]
run_stage(smk, argv)
