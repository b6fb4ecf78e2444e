"""The one subnet evaluator: extract, recalibrate BN, measure top-1 and loss on a named split.

Weight-sharing leaves BN running statistics meaningless for any single subnet, so every evaluation
(predictor data, search fitness, final table, training-time validation) resets them and rebuilds
them as a cumulative average over a fixed, seeded set of augmented training images. The
calibration and evaluation batches are drawn once and reused for every subnet: all subnets see the
same images, and many subnets in one call cost only their forward passes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from attentivenas.data import DataSplits, make_loader, subset
from attentivenas.flops import count
from attentivenas.space import Subnet
from attentivenas.supernet import Supernet

SPLITS = ("search", "test", "train")
CACHE_LIMIT_BYTES = 1 << 30


@dataclass(frozen=True)
class EvalResult:
    top1: float
    loss: float
    images: int
    mflops: float
    params_m: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def recalibrate_bn(model: nn.Module, batches: Iterable[torch.Tensor]) -> None:
    """Reset every BN layer and set its statistics to the plain average over `batches`."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None
    model.train()
    with torch.no_grad():
        for images in batches:
            model(images)
    model.eval()


@torch.no_grad()
def measure(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> tuple[float, float, int]:
    """Top-1 (percent), mean cross-entropy and image count of `model` in eval mode."""
    model.eval()
    correct, loss_sum, seen = 0, 0.0, 0
    for images, labels in batches:
        logits = model(images)
        loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
        correct += (logits.argmax(1) == labels).sum().item()
        seen += labels.numel()
    return 100.0 * correct / max(seen, 1), loss_sum / max(seen, 1), seen


class SubnetEvaluator:
    """Evaluates subnets of a supernet on one split, reusing the loaded calibration and split data."""

    def __init__(self, splits: DataSplits, split: str, settings: dict[str, Any], device: torch.device,
                 seed: int, max_images: int | None = None):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.split = split
        self.device = device
        dataset = getattr(splits, split)
        if max_images is not None and max_images < len(dataset):
            dataset = subset(dataset, max_images, seed)
        calibration = subset(splits.calibration, min(settings["calibration_images"], len(splits.calibration)),
                             seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.calibration = [images.to(device) for images, _ in
                                self._batches(calibration, settings["calibration_batch_size"], seed)]
        self.eval_loader = make_loader(dataset, settings["batch_size"], shuffle=False, seed=seed,
                                       num_workers=getattr(splits, "num_workers", 0))
        image_bytes = 4 * splits.in_channels * splits.image_size ** 2
        self.cached = None
        if len(dataset) * image_bytes <= CACHE_LIMIT_BYTES:
            self.cached = [(x.to(device), y.to(device)) for x, y in self.eval_loader]
        self.calibration_seconds = 0.0

    @staticmethod
    def _batches(dataset, batch_size: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return list(make_loader(dataset, batch_size, shuffle=False, seed=seed))

    def _eval_batches(self) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        if self.cached is not None:
            return self.cached
        return ((x.to(self.device), y.to(self.device)) for x, y in self.eval_loader)

    def evaluate(self, supernet: Supernet, subnet: Subnet) -> EvalResult:
        was_training = supernet.training
        static = supernet.extract(subnet)
        start = time.perf_counter()
        recalibrate_bn(static, self.calibration)
        self.calibration_seconds += time.perf_counter() - start
        top1, loss, seen = measure(static, self._eval_batches())
        supernet.train(was_training)
        cost = count(supernet.space, subnet)
        return EvalResult(top1=top1, loss=loss, images=seen, mflops=cost.mflops, params_m=cost.params_m)

    def evaluate_many(self, supernet: Supernet, subnets: Sequence[Subnet], progress: bool = True,
                      description: str = "evaluating subnets") -> list[EvalResult]:
        return [self.evaluate(supernet, s)
                for s in tqdm(subnets, desc=description, disable=not progress, leave=False)]
