"""How a command gets its config: a config file (--config), or for a pipeline stage its resolved settings
(--settings, as the Snakemake rule passes them). Kept apart from the stage set-up so that commands
importing it import nothing else of the package's models."""

from __future__ import annotations

import argparse

from attentivenas.specs import Spec, load_experiment
from attentivenas.stages import parse_settings, stage_job


def add_config_arguments(parser: argparse.ArgumentParser, stage: str | None = None) -> None:
    """--config, or for a pipeline stage --config or --settings (the stage's settings, as the pipeline passes)."""
    if stage is None:
        parser.add_argument("--config", required=True, help="experiment config YAML")
        return
    given = parser.add_mutually_exclusive_group(required=True)
    given.add_argument("--config", help="experiment config YAML")
    given.add_argument("--settings", metavar="JSON",
                       help=f"instead of --config: the resolved settings of pipeline stage `{stage}` "
                            "(attentivenas.stages), as the Snakemake rule passes them")


def read_job(args: argparse.Namespace, stage: str, method: str | None = None) -> Spec:
    """What a pipeline stage's command reads: its job's settings, given (--settings) or derived from --config;
    `method` names a training stage's run."""
    if args.settings is not None:
        return parse_settings(args.settings, stage, method)
    return stage_job(load_experiment(args.config), stage, method)
