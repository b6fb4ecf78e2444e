"""Snakemake jobs `sample_predictor_subnets` and `sample_method_subnets`: uniform subnets, evaluated."""
from attentivenas.pipeline import run_stage

smk = snakemake  # noqa: F821 (injected by Snakemake's `script:` directive)
run_stage(smk, ["sample-subnets", "--config", smk.params.config, "--checkpoint", smk.input.checkpoint,
                "--count", str(smk.params.subnets), "--out", smk.output.subnets])
