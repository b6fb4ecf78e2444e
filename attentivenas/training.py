"""Two-stage supernet training (BigNAS, AttentiveNAS): the sandwich rule with inplace distillation.

Each step trains the max subnet on the labels (with dropout and drop-connect), then the sampler's
middle subnets and the min subnet on the max subnet's softened predictions (`training.distillation`,
which can also mix in or keep only the labels); their gradients add up and one clipped SGD step
follows. The loop around the steps (progress, logs, exact resume, NaN guard) is
`attentivenas.run_loop`'s. With `data.num_workers` > 0 the data order still resumes exactly but the
augmentation drawn inside loader workers does not.

Under torchrun every rank draws the same subnets (same seeds, scores averaged over ranks), trains on
its shard of each global batch, and DistributedDataParallel averages the summed gradients once, in
the last backward pass of the step.

A step does not wait for the device: its losses stay device tensors, watched by the run loop's
divergence guard, and are read back only on the steps the loop logs. The attentive loss estimator's
choice is the one read per middle subnet.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from attentivenas.checkpoint import load_checkpoint, restore_weights, save_checkpoint, supernet_state
from attentivenas.data import build_splits, make_loader
from attentivenas.errors import UserInputError
from attentivenas.evaluation import evaluator_for
from attentivenas.flops import mflops
from attentivenas.io import write_json
from attentivenas.optim import build_optimizer, warmup_cosine
from attentivenas.precision import autocast, grad_scaler
from attentivenas.predictor import load_predictor
from attentivenas.run_loop import DivergenceGuard, EpochOrder, RunLoop, run_identity
from attentivenas.runtime import resolve_device, seed_everything, use_channels_last
from attentivenas.samplers import FlopsTable, build_flops_table, build_sampler
from attentivenas.samplers import Sampler as SubnetSampler
from attentivenas.space import SearchSpace, Subnet
from attentivenas.specs import WARMUP, TrainingJob, TrainingSpec
from attentivenas.supernet import DynamicBatchNorm2d, Supernet

FINAL_FILE = "supernet.pt"
SUMMARY_FILE = "summary.json"
FLOPS_TABLE_FILE = "flops_table.csv"
FLOPS_HISTOGRAM_FILE = "flops_histogram.csv"
METRICS_FIELDS = ["step", "epoch", "lr", "loss_max", "loss_min", "loss_mid", "mflops_mid", "images_scored"]
DIVERGENCE_ADVICE = "lower config key 'training.lr' or set 'training.grad_clip_value'"
EPOCHS_FIELDS = ["epoch", "top1_max", "top1_min", "loss_max", "loss_min"]


class TrainingSetupError(UserInputError):
    """A training run cannot start: unknown run, missing file or flag, settings that do not fit."""


# ---------------------------------------------------------------- the recipe

def set_bn_momentum(model: nn.Module, momentum: float) -> None:
    """0 keeps the running statistics unchanged: BN normalizes with batch statistics only."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = momentum


def build_scheduler(optimizer: torch.optim.Optimizer, recipe: TrainingSpec,
                    steps_per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler:
    total = recipe.epochs * steps_per_epoch
    return warmup_cosine(optimizer, total, round(recipe.warmup_epochs * steps_per_epoch), recipe.warmup_start_factor)


# ---------------------------------------------------------------- the sandwich step

@dataclass
class StepLosses:
    """One step's losses as 0-d device tensors: reading them (`float(...)`) waits for the device."""

    loss_max: torch.Tensor
    loss_min: torch.Tensor
    loss_mid: list[torch.Tensor] = field(default_factory=list)
    subnets_mid: list[Subnet] = field(default_factory=list)


def distillation_weight(recipe: TrainingSpec, step: int) -> float:
    """The share of the distillation loss in a student's loss at (1-based) `step` of a run.

    0 with `training.distillation: none`; otherwise `training.distillation_weight`, reached linearly
    over the run's first `training.distillation_ramp_steps` steps.
    """
    if recipe.distillation == "none":
        return 0.0
    ramp = recipe.distillation_ramp_steps
    return recipe.distillation_weight * (min(step / ramp, 1.0) if ramp > 0 else 1.0)


def student_loss(logits: torch.Tensor, labels: torch.Tensor, teacher: torch.Tensor, weight: float,
                 label_smoothing: float) -> torch.Tensor:
    """A middle or min subnet's loss: the labels' cross-entropy and the teacher's, mixed by `weight`."""
    distilled = F.cross_entropy(logits, teacher) if weight > 0 else None
    if weight >= 1:
        return distilled
    supervised = F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
    return supervised if distilled is None else (1 - weight) * supervised + weight * distilled


def sandwich_gradients(model: nn.Module, supernet: Supernet, sampler: SubnetSampler, images: torch.Tensor,
                       labels: torch.Tensor, recipe: TrainingSpec, step: int = 0, *,
                       scaler: torch.amp.GradScaler | None = None,
                       guard: DivergenceGuard | None = None) -> StepLosses:
    """Forward and backward every subnet of one sandwich step; gradients add up in `.grad`.

    `model` is the supernet or its DDP wrapper: with DDP, all backward passes but the last run
    under `no_sync`, so gradients are averaged over ranks once per step. Forwards (the attentive
    estimator's too) run under the autocast of 'training.precision'; `scaler` scales each loss
    before its backward pass. Without a `guard`, the step's losses are checked before returning.
    """
    sync_later = model.no_sync if isinstance(model, DistributedDataParallel) else contextlib.nullcontext
    cast = functools.partial(autocast, images.device, recipe.precision)
    scale = scaler.scale if scaler is not None else (lambda loss: loss)
    own_guard = guard is None
    guard = DivergenceGuard(DIVERGENCE_ADVICE) if own_guard else guard
    space = supernet.space
    middle_count = recipe.num_arch_training - 2
    weight = distillation_weight(recipe, step)
    smoothing = recipe.label_smoothing

    supernet.set_active_subnet(space.max_subnet(), regularize=True)
    with sync_later():
        with cast():
            logits = model(images)
            loss = F.cross_entropy(logits, labels, label_smoothing=smoothing)
        guard.watch(loss, step, space.max_subnet(), "max")
        losses = StepLosses(loss_max=loss.detach(), loss_min=loss.new_tensor(math.nan))
        scale(loss).backward()
    teacher = F.softmax(logits.detach().float(), dim=1)

    for _ in range(middle_count):
        with cast():
            subnet = sampler.sample(images, labels)
        supernet.set_active_subnet(subnet)
        with sync_later():
            with cast():
                loss = student_loss(model(images), labels, teacher, weight, smoothing)
            guard.watch(loss, step, subnet, "middle")
            losses.loss_mid.append(loss.detach())
            losses.subnets_mid.append(subnet)
            scale(recipe.middle_loss_weight * loss).backward()

    supernet.set_active_subnet(space.min_subnet())
    with cast():
        loss = student_loss(model(images), labels, teacher, weight, smoothing)
    guard.watch(loss, step, space.min_subnet(), "min")
    losses.loss_min = loss.detach()
    scale(loss).backward()
    if own_guard:
        guard.check()
    return losses


def sandwich_step(model: nn.Module, supernet: Supernet, sampler: SubnetSampler, images: torch.Tensor,
                  labels: torch.Tensor, recipe: TrainingSpec, optimizer: torch.optim.Optimizer,
                  scheduler: torch.optim.lr_scheduler.LRScheduler, step: int = 0, *,
                  scaler: torch.amp.GradScaler | None = None,
                  guard: DivergenceGuard | None = None) -> StepLosses:
    """One training step: the sandwich's summed gradients, clipped element-wise, one SGD update.

    With an fp16 `scaler`, gradients are unscaled before clipping and a step with inf/NaN gradients
    is skipped (the scale shrinks); the losses themselves are still watched by the guard.
    """
    optimizer.zero_grad(set_to_none=True)
    losses = sandwich_gradients(model, supernet, sampler, images, labels, recipe, step, scaler=scaler,
                                guard=guard)
    if scaler is not None:
        scaler.unscale_(optimizer)
    if recipe.grad_clip_value is not None:
        torch.nn.utils.clip_grad_value_(supernet.parameters(), recipe.grad_clip_value)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    scheduler.step()
    return losses


# ---------------------------------------------------------------- data order and processes

@dataclass(frozen=True)
class Processes:
    """This process's place among the torchrun ranks (rank 0 of 1 when not under torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def writes_files(self) -> bool:
        return self.rank == 0


def under_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def start_processes(device: torch.device) -> tuple[Processes, torch.device]:
    """Join the torchrun process group (gloo on CPU, nccl on CUDA) and pick this rank's device."""
    if not under_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        return Processes(), device
    processes = Processes(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]),
                          int(os.environ.get("LOCAL_RANK", 0)))
    if device.type == "cuda":
        device = torch.device("cuda", processes.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return processes, device


def stop_processes() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def weights_digest(module: nn.Module) -> str:
    """SHA-256 of every parameter and buffer: equal digests mean bit-identical weights."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


# ---------------------------------------------------------------- the run

def check_run(job: TrainingJob, init_from: str | Path | None = None,
              predictor_path: str | Path | None = None) -> None:
    """Every check of a run's files and flags that needs no data or weights."""
    run = job.run
    if job.training.from_warmup:
        where = "warmup" if run == WARMUP else f"methods.{run}.training"
        if init_from is None:
            raise TrainingSetupError(f"config key 'training.init' (run {run!r}, see '{where}') is 'warmup': "
                                     "give the warmed-up supernet with --init-from CKPT")
        if not Path(init_from).is_file():
            raise TrainingSetupError(f"--init-from {init_from}: no such checkpoint; train the warmup run "
                                     "first")
    if job.method.uses_predictor:
        if predictor_path is None:
            raise TrainingSetupError(f"config key 'methods.{run}.estimator' is 'predictor': give the "
                                     "accuracy predictor file with --predictor PATH (made by fit-predictor)")
        if not Path(predictor_path).is_file():
            raise TrainingSetupError(f"--predictor {predictor_path}: no such file; fit the predictor first")


class Trainer:
    """One supernet training run writing its files into `out_dir`; resumes from `out_dir/resume.pt`.

    `training.batch_size` is the global batch (split among DDP processes; the peak LR scales with it).
    Logged losses are rank 0's share of the batch; only rank 0 validates and writes files.
    """

    def __init__(self, job: TrainingJob, out_dir: str | Path, *, init_from: str | Path | None = None,
                 predictor_path: str | Path | None = None, progress: bool = True):
        check_run(job, init_from, predictor_path)
        self.job, self.run, self.out_dir = job, job.run, Path(out_dir)
        self.recipe = recipe = job.training
        self.processes, self.device = start_processes(resolve_device(job.device))
        if recipe.batch_size % self.processes.world_size:
            raise TrainingSetupError(f"config key 'training.batch_size' = {recipe.batch_size} (the "
                                     f"global batch) must divide among {self.processes.world_size} processes")
        self.local_batch = recipe.batch_size // self.processes.world_size
        self.space = SearchSpace.load(job.space)
        self.splits = build_splits(job.data, image_size=self.space.base_resolution)
        batches = len(self.splits.train) // recipe.batch_size
        if batches == 0:
            raise TrainingSetupError(f"config key 'training.batch_size' = {recipe.batch_size} exceeds "
                                     f"the {len(self.splits.train)} training images")
        self.steps_per_epoch = min(batches, recipe.max_steps_per_epoch or batches)
        self.total_steps = recipe.epochs * self.steps_per_epoch

        seed_everything(job.seed)
        self.supernet = Supernet(self.space, job.resolution_mode, dropout=job.supernet.dropout,
                                 drop_connect=job.supernet.drop_connect)
        if recipe.from_warmup:
            self._load_weights(init_from)
        self.supernet.to(self.device).train().use_channels_last(use_channels_last(job.memory_format))
        set_bn_momentum(self.supernet, recipe.bn_momentum)
        if recipe.sync_batchnorm and self.processes.distributed:
            for module in self.supernet.modules():
                if isinstance(module, DynamicBatchNorm2d):
                    module.synchronized = True
        self.model: nn.Module = self.supernet
        if self.processes.distributed:
            self.model = DistributedDataParallel(
                self.supernet, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True)
        fused = self.device.type == "cuda" and recipe.precision == "fp16"
        self.optimizer = build_optimizer(self.supernet, recipe, fused=fused or None)
        self.scheduler = build_scheduler(self.optimizer, recipe, self.steps_per_epoch)
        self.scaler = grad_scaler(self.device, recipe.precision)
        predictor = load_predictor(predictor_path, self.space) if predictor_path else None
        self.table = self._flops_table() if job.method.attentive else None
        self.sampler = build_sampler(job, self.space, supernet=self.supernet, predictor=predictor, table=self.table)
        validates = recipe.validate_images > 0 and self.processes.writes_files
        self.evaluator = (evaluator_for(job, self.splits, "search", self.device, max_images=recipe.validate_images)
                          if validates else None)
        self.loop = RunLoop(self.out_dir, self.supernet, self._identity(init_from, predictor_path),
                            epochs=recipe.epochs, steps_per_epoch=self.steps_per_epoch,
                            checkpoint_every=recipe.checkpoint_every_steps,
                            log_every=recipe.log_every_steps, metric_fields=METRICS_FIELDS,
                            epoch_fields=EPOCHS_FIELDS, description=f"train {job.run}",
                            progress=progress, writes_files=self.processes.writes_files,
                            guard=DivergenceGuard(DIVERGENCE_ADVICE))
        self.resumed = self.loop.resume(self)

    @property
    def step(self) -> int:
        return self.loop.step

    # -- files

    def path(self, name: str) -> Path:
        return self.out_dir / name

    def _load_weights(self, path: str | Path) -> None:
        restore_weights(self.supernet, load_checkpoint(path, self.space), path)

    def _flops_table(self) -> FlopsTable:
        """Rebuilt from the config's seed on every start (a second or two), so a resumed run gets the same."""
        table = build_flops_table(self.job, self.space)
        if self.processes.writes_files:
            table.save(self.path(FLOPS_TABLE_FILE))
            table.save_histogram(self.path(FLOPS_HISTOGRAM_FILE), self.job.sampler.prior)
        return table

    def _identity(self, init_from: str | Path | None, predictor_path: str | Path | None) -> dict[str, Any]:
        """Everything that determines this run's result (`run_identity`); display labels are left out."""
        job = self.job
        return run_identity({"run": self.run, "training": self.recipe.to_dict(), "method": job.method.to_dict(),
                             "sampler": self.sampler.describe(),
                             "sampler_defaults": None if job.sampler is None else job.sampler.to_dict(),
                             "seed": job.seed, "space": self.space.to_dict(),
                             "resolution_mode": job.resolution_mode, "supernet": job.supernet.to_dict(),
                             "data": job.data, "evaluation": job.evaluation.to_dict(),
                             "processes": self.processes.world_size, "device": self.device.type},
                            {"init_from": init_from if self.recipe.from_warmup else None,
                             "predictor": predictor_path})

    # -- the task the run loop steps

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(), "sampler": self.sampler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.sampler.load_state_dict(state["sampler"])

    def batches(self, epoch: int, start: int):
        self.supernet.train()
        order = EpochOrder(len(self.splits.train), self.local_batch, self.processes.world_size,
                           self.processes.rank, self.job.seed, epoch, start, self.steps_per_epoch)
        return make_loader(self.splits.train, self.local_batch, shuffle=False,
                           seed=self.job.seed + epoch, drop_last=True,
                           num_workers=self.job.data["num_workers"], sampler=order,
                           pin_memory=self.device.type == "cuda")

    def train_step(self, batch: tuple[torch.Tensor, torch.Tensor], step: int) -> dict[str, Any]:
        """The step's row only on a step the loop logs: reading the losses back waits for the device."""
        images, labels = (tensor.to(self.device, non_blocking=True) for tensor in batch)
        lr = self.optimizer.param_groups[0]["lr"]
        losses = sandwich_step(self.model, self.supernet, self.sampler, images, labels, self.recipe,
                               self.optimizer, self.scheduler, step, scaler=self.scaler, guard=self.loop.guard)
        if not self.loop.logs(step):
            return {}
        mid = [float(loss) for loss in losses.loss_mid]
        mid_mflops = [mflops(self.space, s) for s in losses.subnets_mid]
        return {"lr": f"{lr:.6g}", "loss_max": round(float(losses.loss_max), 6),
                "loss_min": round(float(losses.loss_min), 6),
                "loss_mid": round(float(np.mean(mid)), 6) if mid else "",
                "mflops_mid": round(float(np.mean(mid_mflops)), 4) if mid else "",
                "images_scored": self.sampler.stats()["images_scored"]}

    def end_epoch(self, epoch: int) -> dict[str, Any] | None:
        return None if self.evaluator is None else self.validate(epoch)

    def validate(self, epoch: int) -> dict[str, Any]:
        space = self.space
        maximum = self.evaluator.evaluate(self.supernet, space.max_subnet())
        minimum = self.evaluator.evaluate(self.supernet, space.min_subnet())
        return {"epoch": epoch, "top1_max": round(maximum.top1, 4), "top1_min": round(minimum.top1, 4),
                "loss_max": round(maximum.loss, 6), "loss_min": round(minimum.loss, 6)}

    # -- the run

    def fit(self, on_step: Callable[[Trainer, int], None] | None = None) -> dict[str, Any]:
        """Train to the end (or on from the resume file); `on_step(trainer, step)` follows every step."""
        self.loop.run(self, None if on_step is None else lambda step: on_step(self, step))
        return self._finish()

    def _finish(self) -> dict[str, Any]:
        digest = weights_digest(self.supernet)
        digests = [digest]
        if self.processes.distributed:
            digests = [None] * self.processes.world_size
            dist.all_gather_object(digests, digest)
        final = self.loop.epoch_rows[-1] if self.loop.epoch_rows else {}
        images = self.step * self.recipe.batch_size
        stats = self.sampler.stats()
        counts = {key: value for key, value in stats.items() if not key.endswith("_seconds")}
        sampler_seconds = {f"sampler_{key}": value for key, value in stats.items() if key.endswith("_seconds")}
        summary = {"run": self.run, "sampler": self.sampler.describe(), "sampler_stats": counts,
                   "epochs": self.recipe.epochs, "steps": self.step,
                   "steps_per_epoch": self.steps_per_epoch, "images_processed": images,
                   "subnet_images_trained": self.step * self.recipe.subnet_images_per_step,
                   "processes": self.processes.world_size, "device": str(self.device),
                   "top1_max": final.get("top1_max"), "top1_min": final.get("top1_min"),
                   "validation_split": "search", "weights_sha256": digests}
        seconds = self.loop.wall_seconds
        if self.processes.writes_files:
            write_json(self.path(SUMMARY_FILE), summary)
            save_checkpoint(self.path(FINAL_FILE),
                            supernet_state(self.supernet, run=self.run, complete=True, settings=self.recipe.to_dict(),
                                           sampler=self.sampler.describe(), summary=summary))
        self.loop.finish({"wall_seconds": round(seconds, 3), "images_per_s": round(images / max(seconds, 1e-9), 2),
                          **sampler_seconds})
        if self.processes.distributed:
            dist.barrier()
        return summary


def final_checkpoint_complete(out_dir: str | Path, space: SearchSpace) -> bool:
    path = Path(out_dir) / FINAL_FILE
    return path.is_file() and bool(load_checkpoint(path, space).get("complete"))
