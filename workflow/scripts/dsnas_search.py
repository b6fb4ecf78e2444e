"""Snakemake job `dsnas_search`: one DSNAS run (search and train together) at one FLOPs target."""
from attentivenas.pipeline import run_stage

smk = snakemake  # noqa: F821 (injected by Snakemake's `script:` directive)
argv = ["dsnas", "--target", smk.wildcards.target, "--out-dir", smk.params.out_dir]
if hasattr(smk.input, "init"):
    argv += ["--init-from", smk.input.init]
run_stage(smk, argv)
