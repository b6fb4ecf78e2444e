"""What the stage commands share: the config read and checked, threads and seeds applied, the space,
device, supernet, data and evaluators loaded the same way everywhere."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch

from attentivenas.checkpoint import load_supernet
from attentivenas.cli._config import add_config_arguments, stage_config
from attentivenas.config import load_config
from attentivenas.data import DataSplits, build_splits
from attentivenas.evaluation import SubnetEvaluator, evaluator_from_config
from attentivenas.runtime import resolve_device, seed_everything, set_threads
from attentivenas.space import SearchSpace
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


def add_stage_arguments(parser: argparse.ArgumentParser, checkpoint: bool = True, stage: str | None = None) -> None:
    add_config_arguments(parser, stage)
    if checkpoint:
        parser.add_argument("--checkpoint", required=True, help="supernet checkpoint")
    parser.add_argument("--threads", type=int, help="CPU threads (default: all)")


def start_stage(args: argparse.Namespace, stage: str | None = None) -> Stage:
    """The shared set-up; with `stage`, the command reads only that stage's settings."""
    config = load_config(args.config) if stage is None else stage_config(args, stage)
    set_threads(args.threads)
    seed_everything(config["seed"])
    return Stage(config, SearchSpace.load(config["space"]), resolve_device(config["device"]))
