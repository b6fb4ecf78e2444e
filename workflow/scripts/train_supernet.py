"""Snakemake jobs `warmup_supernet` and `train_supernet`: one two-stage supernet training run."""
from attentivenas.pipeline import run_stage

smk = snakemake  # noqa: F821 (injected by Snakemake's `script:` directive)
argv = ["train", "--run", smk.wildcards.get("method", "warmup"), "--out-dir", smk.params.out_dir]
if hasattr(smk.input, "init"):
    argv += ["--init-from", smk.input.init]
if hasattr(smk.input, "predictor"):
    argv += ["--predictor", smk.input.predictor]
run_stage(smk, argv)
