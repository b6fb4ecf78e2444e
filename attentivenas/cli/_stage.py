"""What the stage commands share: the config read and checked, threads and seeds applied, the space,
device, supernet, data and evaluators loaded the same way everywhere."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from functools import cached_property

import torch

from attentivenas.checkpoint import load_supernet
from attentivenas.cli._config import add_config_arguments, read_job
from attentivenas.data import DataSplits, build_splits
from attentivenas.evaluation import SubnetEvaluator, evaluator_for
from attentivenas.runtime import resolve_device, seed_everything, set_threads
from attentivenas.space import SearchSpace
from attentivenas.specs import NetworkJob, load_experiment
from attentivenas.supernet import Supernet


@dataclass
class Stage:
    job: NetworkJob
    space: SearchSpace
    device: torch.device

    def supernet(self, checkpoint: str) -> Supernet:
        return load_supernet(checkpoint, self.space, self.device, self.job.resolution_mode)

    @cached_property
    def splits(self) -> DataSplits:
        return build_splits(self.job.data, image_size=self.space.base_resolution)

    def evaluator(self, split: str) -> SubnetEvaluator:
        return evaluator_for(self.job, self.splits, split, self.device)


def add_stage_arguments(parser: argparse.ArgumentParser, checkpoint: bool = True, stage: str | None = None) -> None:
    add_config_arguments(parser, stage)
    if checkpoint:
        parser.add_argument("--checkpoint", required=True, help="supernet checkpoint")
    parser.add_argument("--threads", type=int, help="CPU threads (default: all)")


def start_stage(args: argparse.Namespace, stage: str | None = None) -> Stage:
    """The shared set-up; with `stage`, the command reads only that stage's settings, else the whole config."""
    job = load_experiment(args.config) if stage is None else read_job(args, stage)
    set_threads(args.threads)
    seed_everything(job.seed)
    return Stage(job, SearchSpace.load(job.space), resolve_device(job.device))
