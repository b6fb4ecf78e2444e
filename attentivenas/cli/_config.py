"""How a command gets its config: a config file (--config), or for a pipeline stage its resolved settings
(--settings, as the Snakemake rule passes them). Kept apart from the stage set-up so that commands
importing it import nothing else of the package's models."""

from __future__ import annotations

import argparse
from typing import Any

from attentivenas.config import load_config
from attentivenas.stages import parse_settings, stage_settings


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


def stage_config(args: argparse.Namespace, stage: str, method: str | None = None) -> dict[str, Any]:
    """What a pipeline stage's command reads: its settings, given (--settings) or derived from --config."""
    if args.settings is not None:
        return parse_settings(args.settings, stage)
    return stage_settings(load_config(args.config), stage, method)
