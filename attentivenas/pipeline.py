"""Glue between the Snakefile and the package: the config read and checked, stage launching.

The Snakefile only wires files together: paths come from attentivenas.layout, each stage's settings
from attentivenas.stages, and how a stage's command is launched from here.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from attentivenas.budget import check_budget
from attentivenas.config import load_config, validate_config
from attentivenas.specs import ExperimentSpec
from attentivenas.stages import PACKAGE, space_source, stage_sources

DEFAULT_CONFIG = "config/config.yaml"


def resolve_config(config: dict[str, Any], configfiles: list[str]) -> ExperimentSpec:
    """Snakemake's config validated, with defaults, typed, its budget checked; without `--configfile`, the
    default config file.

    Nothing is written: each job receives its stage's settings as a rule parameter.
    """
    if configfiles:
        resolved = validate_config(dict(config), source=str(configfiles[-1]))
    else:
        resolved = load_config(DEFAULT_CONFIG, overrides=dict(config))
    experiment = ExperimentSpec.from_dict(resolved)
    check_budget(experiment)
    return experiment


def _workflow_path(path: str) -> str:
    """A package file (relative to the package's parent) as the workflow names it: relative when the
    working folder holds the package (a checkout), else where the imported package lies."""
    return path if Path(path).is_file() else (PACKAGE.parent / path).as_posix()


def stage_code(stage: str) -> list[str]:
    """The package source files a stage's job runs: a rule's inputs, so that editing them reruns it."""
    return [_workflow_path(path) for path in stage_sources(stage)]


def space_file(experiment: ExperimentSpec) -> str:
    """The search space's YAML file, which every stage reads."""
    source = space_source(experiment.space)
    return _workflow_path(source) if source.startswith(PACKAGE.name + "/") else source


def data_files(experiment: ExperimentSpec) -> list[str]:
    """The dataset's source when it is one file (an .npz archive); folders are left to prepare_data's digest."""
    source = Path(experiment.data["source"])
    return [str(source)] if source.is_file() else []


def method_needs(experiment: ExperimentSpec, method: str) -> dict[str, bool]:
    """Which shared files a method's training starts from: the warm-up weights, the accuracy predictor."""
    return {"warmup": experiment.recipe(method).from_warmup, "predictor": experiment.method(method).uses_predictor}


def run_stage(smk: Any, argv: list[str]) -> None:
    """Run `python -m attentivenas ARGV --settings SETTINGS` for a Snakemake job, output to the job's log."""
    command = [sys.executable, "-m", "attentivenas", *argv, "--settings", smk.params.settings,
               "--threads", str(smk.threads)]
    log = Path(smk.log[0])
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as handle:
        handle.write("$ " + shlex.join(command) + "\n")
        handle.flush()
        result = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT)
    if result.returncode:
        raise SystemExit(f"attentivenas {argv[0]} failed with exit code {result.returncode}; see {log}")
