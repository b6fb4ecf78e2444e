"""What the stage commands share: the config read and checked, threads and seeds applied, the space,
device, supernet, data and evaluators loaded the same way everywhere."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch

from attentivenas.checkpoint import load_supernet
from attentivenas.config import load_config
from attentivenas.data import DataSplits, build_splits
from attentivenas.evaluation import SubnetEvaluator, evaluator_from_config
from attentivenas.runtime import resolve_device, seed_everything, set_threads
from attentivenas.space import SearchSpace
from attentivenas.stages import parse_settings, stage_settings
from attentivenas.supernet import Supernet


@dataclass
class Stage:
    config: dict[str, Any]
    space: SearchSpace
    device: torch.device

    def supernet(self, checkpoint: str) -> Supernet:
        return load_supernet(checkpoint, self.space, self.device, self.config["resolution_mode"])

    @cached_property
    def splits(self) -> DataSplits:
        return build_splits(self.config["data"], image_size=self.space.base_resolution)

    def evaluator(self, split: str) -> SubnetEvaluator:
        return evaluator_from_config(self.config, self.splits, split, self.device)


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


def add_stage_arguments(parser: argparse.ArgumentParser, checkpoint: bool = True, stage: str | None = None) -> None:
    add_config_arguments(parser, stage)
    if checkpoint:
        parser.add_argument("--checkpoint", required=True, help="supernet checkpoint")
    parser.add_argument("--threads", type=int, help="CPU threads (default: all)")


def stage_config(args: argparse.Namespace, stage: str, method: str | None = None) -> dict[str, Any]:
    """What a pipeline stage's command reads: its settings, given (--settings) or derived from --config."""
    if args.settings is not None:
        return parse_settings(args.settings, stage)
    return stage_settings(load_config(args.config), stage, method)


def start_stage(args: argparse.Namespace, stage: str | None = None) -> Stage:
    """The shared set-up; with `stage`, the command reads only that stage's settings."""
    config = load_config(args.config) if stage is None else stage_config(args, stage)
    set_threads(args.threads)
    seed_everything(config["seed"])
    return Stage(config, SearchSpace.load(config["space"]), resolve_device(config["device"]))
