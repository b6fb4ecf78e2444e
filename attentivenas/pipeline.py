"""Glue between the Snakefile and the package: config resolution, file layout, stage launching.

The Snakefile only wires files together; what a path is called and how a stage is launched lives
here, so that the rules, the DVC stages and the tests agree on one layout.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from attentivenas.config import merge, training_settings, validate_config

DEFAULT_CONFIG = "config/config.yaml"


def resolve_config(config: dict[str, Any], configfiles: list[str]) -> tuple[dict[str, Any], str]:
    """Validate Snakemake's config and write it, resolved, where every stage reads it.

    Without `--configfile`, the default config file is read. The resolved file is rewritten only
    when its content changes, so a dry run or a no-op run touches nothing.
    """
    source = configfiles[-1] if configfiles else DEFAULT_CONFIG
    raw = dict(config) if configfiles else merge(yaml.safe_load(Path(source).read_text()), dict(config))
    resolved = validate_config(raw, source=str(source))
    path = Path(resolved["results_dir"]) / "resolved_config.yaml"
    text = yaml.safe_dump(resolved, sort_keys=False)
    if not path.is_file() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return resolved, str(path)


def target_label(mflops: float) -> str:
    """A FLOPs target as it appears in paths and tables (e.g. 1.5 -> '1.5')."""
    return f"{mflops:g}"


def method_needs(config: dict[str, Any], method: str) -> dict[str, bool]:
    settings = config["methods"][method]
    return {"warmup": training_settings(config, method)["init"] == "warmup",
            "predictor": settings["sampler"] == "attentive" and settings["estimator"] == "predictor"}


def run_stage(smk: Any, argv: list[str]) -> None:
    """Run `python -m attentivenas ARGV` for a Snakemake job, its output going to the job's log."""
    command = [sys.executable, "-m", "attentivenas", *argv, "--threads", str(smk.threads)]
    log = Path(smk.log[0])
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as handle:
        handle.write("$ " + " ".join(command) + "\n")
        handle.flush()
        result = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT)
    if result.returncode:
        raise SystemExit(f"attentivenas {argv[0]} failed with exit code {result.returncode}; see {log}")
