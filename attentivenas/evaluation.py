"""The one subnet evaluator: extract, recalibrate BN, measure top-1 and loss on a named split.

Weight-sharing leaves BN running statistics meaningless for any single subnet, so every evaluation
(predictor data, search fitness, final table, export, training-time validation) resets them and
rebuilds them as a cumulative average (the reference's momentum=None: every batch weighs the same)
over a fixed, seeded set of augmented training images. The calibration and evaluation batches are
drawn once and reused for every subnet: all subnets see the same images, and many subnets in one
call cost only their forward passes. Recalibration is the cost of an evaluation, so its time is
recorded separately (`calibration_seconds`, next to `measure_seconds` and `images_processed`).
Measuring runs a copy with BN folded into the convs (the same function, one pass fewer per layer);
with `channels_last` the models and the held batches are NHWC.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import default_collate

from attentivenas.data import DataSplits, make_loader, subset
from attentivenas.flops import count
from attentivenas.progress import progress_bar
from attentivenas.runtime import use_channels_last
from attentivenas.space import Subnet
from attentivenas.specs import EvaluationSpec, NetworkJob
from attentivenas.static import StaticSubnet, fold_batchnorm
from attentivenas.supernet import Supernet

LOG = logging.getLogger(__name__)

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
    with torch.inference_mode():
        for images in batches:
            model(images)
    model.eval()


@torch.inference_mode()
def measure(model: nn.Module,
            batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> tuple[float, float, int]:
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
    """Evaluates subnets of a supernet on one split, reusing the loaded calibration and split data.

    Calibration batch i is augmented under its own seed, so the images are the same whether they are
    held in memory (small data) or drawn again for every subnet (data above `CACHE_LIMIT_BYTES`).
    """

    def __init__(self, splits: DataSplits, split: str, settings: EvaluationSpec, device: torch.device,
                 seed: int, max_images: int | None = None, num_workers: int = 0, channels_last: bool = False):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.split = split
        self.device = torch.device(device)
        self.channels_last = channels_last
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.seed = seed
        dataset = getattr(splits, split)
        if max_images is not None and max_images < len(dataset):
            dataset = subset(dataset, max_images, seed)
        self.calibration_set = subset(splits.calibration, settings.calibration_images, seed)
        self.calibration_batch_size = settings.calibration_batch_size
        self.eval_loader = make_loader(dataset, settings.batch_size, shuffle=False, seed=seed,
                                       num_workers=num_workers)
        image_bytes = 4 * splits.in_channels * splits.image_size ** 2
        self.cached_calibration = None
        if len(self.calibration_set) * image_bytes <= CACHE_LIMIT_BYTES:
            self.cached_calibration = list(self._draw_calibration())
        self.cached = None
        if len(dataset) * image_bytes <= CACHE_LIMIT_BYTES:
            self.cached = [(self._images(x), y.to(self.device)) for x, y in self.eval_loader]
        self.calibration_seconds = 0.0
        self.measure_seconds = 0.0
        self.images_processed = 0

    @property
    def calibration_images(self) -> int:
        return len(self.calibration_set)

    def _calibration_batch(self, index: int) -> torch.Tensor:
        start = index * self.calibration_batch_size
        stop = min(start + self.calibration_batch_size, len(self.calibration_set))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(hash((self.seed, index)))
            images = default_collate([self.calibration_set[i][0] for i in range(start, stop)])
        return self._images(images)

    def _images(self, images: torch.Tensor) -> torch.Tensor:
        return images.to(self.device, memory_format=self.memory_format)

    def _draw_calibration(self) -> Iterator[torch.Tensor]:
        batches = -(-len(self.calibration_set) // self.calibration_batch_size)
        return (self._calibration_batch(i) for i in range(batches))

    def calibration_batches(self) -> Iterable[torch.Tensor]:
        """The augmented training images BN statistics are rebuilt from, identical for every subnet."""
        return self.cached_calibration if self.cached_calibration is not None else self._draw_calibration()

    def eval_batches(self) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        if self.cached is not None:
            return self.cached
        return ((self._images(x), y.to(self.device)) for x, y in self.eval_loader)

    def calibrate(self, supernet: Supernet, subnet: Subnet) -> StaticSubnet:
        """The subnet extracted from `supernet` with recalibrated BN statistics, in eval mode."""
        static = supernet.extract(subnet).use_channels_last(self.channels_last)
        start = time.perf_counter()
        recalibrate_bn(static, self.calibration_batches())
        self.calibration_seconds += time.perf_counter() - start
        self.images_processed += self.calibration_images
        return static

    def score(self, model: nn.Module) -> tuple[float, float, int]:
        """Top-1, loss and image count of a ready (recalibrated) model on this evaluator's split."""
        start = time.perf_counter()
        if isinstance(model, StaticSubnet):
            model = fold_batchnorm(model)
        scores = measure(model, self.eval_batches())
        self.measure_seconds += time.perf_counter() - start
        self.images_processed += scores[2]
        return scores

    def evaluate(self, supernet: Supernet, subnet: Subnet) -> EvalResult:
        top1, loss, seen = self.score(self.calibrate(supernet, subnet))
        cost = count(supernet.space, subnet)
        return EvalResult(top1=top1, loss=loss, images=seen, mflops=cost.mflops, params_m=cost.params_m)

    def evaluate_many(self, supernet: Supernet, subnets: Sequence[Subnet], progress: bool = True,
                      description: str = "evaluating subnets") -> list[EvalResult]:
        return [self.evaluate(supernet, s)
                for s in progress_bar(subnets, desc=description, disable=not progress, leave=False)]


def evaluator_for(job: NetworkJob, splits: DataSplits, split: str, device: torch.device,
                  max_images: int | None = None) -> SubnetEvaluator:
    """The evaluator a job uses: its `evaluation` settings, seed, data workers and memory format.

    More calibration images than the training split holds is capped at the split, and the cap logged.
    """
    requested, available = job.evaluation.calibration_images, len(splits.calibration)
    if requested > available:
        LOG.warning("config key 'evaluation.calibration_images' = %d exceeds the %d training images of "
                    "data.source %s: BatchNorm calibration uses all %d", requested, available,
                    job.data["source"], available)
    return SubnetEvaluator(splits, split, job.evaluation, device, job.seed, max_images=max_images,
                           num_workers=job.data["num_workers"], channels_last=use_channels_last(job.memory_format))
