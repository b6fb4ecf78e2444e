"""Two-stage supernet training (BigNAS, AttentiveNAS): the sandwich rule with inplace distillation.

Each step trains the max subnet on the labels (with dropout and drop-connect), then the sampler's
middle subnets and the min subnet on the max subnet's softened predictions; their gradients add up
and one clipped SGD step follows. A run is resumable to the bit on CPU: the checkpoint holds the
optimizer, scheduler, sampler and RNG states and the position in the epoch's data order, which is a
function of (seed, epoch) alone. With `data.num_workers` > 0 the order is still exact but the
augmentation drawn inside loader workers is not.

Under torchrun every rank draws the same subnets (same seeds, scores averaged over ranks), trains on
its shard of each global batch, and DistributedDataParallel averages the summed gradients once, in
the last backward pass of the step.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Sampler
from tqdm import tqdm

from attentivenas.checkpoint import load_checkpoint, restore_weights, save_checkpoint, supernet_state
from attentivenas.config import training_settings
from attentivenas.data import build_splits, make_loader
from attentivenas.errors import UserInputError
from attentivenas.evaluation import evaluator_from_config
from attentivenas.flops import mflops
from attentivenas.io import write_csv, write_json
from attentivenas.predictor import load_predictor
from attentivenas.runtime import resolve_device, seed_everything
from attentivenas.samplers import FlopsTable, build_flops_table, build_sampler, sampler_settings
from attentivenas.samplers import Sampler as SubnetSampler
from attentivenas.space import SearchSpace, Subnet
from attentivenas.supernet import Supernet

RESUME_FILE = "resume.pt"
FINAL_FILE = "supernet.pt"
METRICS_FILE = "metrics.csv"
EPOCHS_FILE = "epochs.csv"
SUMMARY_FILE = "summary.json"
FLOPS_TABLE_FILE = "flops_table.csv"
FLOPS_HISTOGRAM_FILE = "flops_histogram.csv"
METRICS_FIELDS = ["step", "epoch", "lr", "loss_max", "loss_min", "loss_mid", "mflops_mid", "images_per_s"]
EPOCHS_FIELDS = ["epoch", "top1_max", "top1_min", "loss_max", "loss_min"]


class TrainingSetupError(UserInputError):
    """A training run cannot start: unknown run, missing file or flag, settings that do not fit."""


class TrainingDivergedError(UserInputError):
    """A loss became NaN or infinite; the last good checkpoint is left as it was."""


# ---------------------------------------------------------------- the recipe

def lr_factor(iteration: int, warmup_iterations: int, total_iterations: int) -> float:
    """Multiplier of the peak LR: linear warm-up to 1, then a cosine down to 0 at `total_iterations`."""
    if iteration < warmup_iterations:
        return (iteration + 1) / warmup_iterations
    progress = (iteration - warmup_iterations) / max(total_iterations - warmup_iterations, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two SGD groups: decayed weights, and BN parameters plus all biases without weight decay."""
    no_decay = set()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            no_decay.update(id(p) for p in module.parameters(recurse=False))
    for name, parameter in model.named_parameters():
        if name.endswith("bias"):
            no_decay.add(id(parameter))
    parameters = list(model.parameters())
    return [{"params": [p for p in parameters if id(p) not in no_decay], "weight_decay": weight_decay},
            {"params": [p for p in parameters if id(p) in no_decay], "weight_decay": 0.0}]


def set_bn_momentum(model: nn.Module, momentum: float) -> None:
    """0 keeps the running statistics unchanged: BN normalizes with batch statistics only."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = momentum


def peak_lr(settings: dict[str, Any]) -> float:
    return settings["lr"] * settings["batch_size"] / 256


def build_optimizer(supernet: nn.Module, settings: dict[str, Any]) -> torch.optim.SGD:
    nesterov = settings["nesterov"] and settings["momentum"] > 0
    return torch.optim.SGD(parameter_groups(supernet, settings["weight_decay"]), lr=peak_lr(settings),
                           momentum=settings["momentum"], nesterov=nesterov)


def build_scheduler(optimizer: torch.optim.Optimizer, settings: dict[str, Any],
                    steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    total = settings["epochs"] * steps_per_epoch
    warmup = min(round(settings["warmup_epochs"] * steps_per_epoch), total)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: lr_factor(it, warmup, total))


# ---------------------------------------------------------------- the sandwich step

@dataclass
class StepLosses:
    loss_max: float
    loss_min: float
    loss_mid: list[float] = field(default_factory=list)
    subnets_mid: list[Subnet] = field(default_factory=list)


def _check_finite(loss: torch.Tensor, step: int, subnet: Subnet, role: str) -> float:
    value = loss.detach()
    finite = torch.isfinite(value).to(torch.float32)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    if not finite.item():
        raise TrainingDivergedError(
            f"training diverged at step {step}: the {role} subnet's loss is {value.item()} "
            f"(subnet {subnet.to_json()}); lower config key 'training.lr' or set 'training.grad_clip_value'. "
            "The last good checkpoint is kept; delete it to restart from scratch")
    return value.item()


def sandwich_gradients(model: nn.Module, supernet: Supernet, sampler: SubnetSampler, images: torch.Tensor,
                       labels: torch.Tensor, settings: dict[str, Any], step: int = 0) -> StepLosses:
    """Forward and backward every subnet of one sandwich step; gradients add up in `.grad`.

    `model` is the supernet or its DDP wrapper: with DDP, all backward passes but the last run
    under `no_sync`, so gradients are averaged over ranks once per step.
    """
    sync_later = model.no_sync if isinstance(model, DistributedDataParallel) else contextlib.nullcontext
    space = supernet.space
    middle_count = settings["num_arch_training"] - 2

    supernet.set_active_subnet(space.max_subnet(), regularize=True)
    with sync_later():
        logits = model(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=settings["label_smoothing"])
        losses = StepLosses(loss_max=_check_finite(loss, step, space.max_subnet(), "max"), loss_min=math.nan)
        loss.backward()
    teacher = F.softmax(logits.detach(), dim=1)

    for _ in range(middle_count):
        subnet = sampler.sample(images, labels)
        supernet.set_active_subnet(subnet)
        with sync_later():
            loss = F.cross_entropy(model(images), teacher)
            losses.loss_mid.append(_check_finite(loss, step, subnet, "middle"))
            losses.subnets_mid.append(subnet)
            loss.backward()

    supernet.set_active_subnet(space.min_subnet())
    loss = F.cross_entropy(model(images), teacher)
    losses.loss_min = _check_finite(loss, step, space.min_subnet(), "min")
    loss.backward()
    return losses


def sandwich_step(model: nn.Module, supernet: Supernet, sampler: SubnetSampler, images: torch.Tensor,
                  labels: torch.Tensor, settings: dict[str, Any], optimizer: torch.optim.Optimizer,
                  scheduler: torch.optim.lr_scheduler.LRScheduler, step: int = 0) -> StepLosses:
    """One training step: the sandwich's summed gradients, clipped element-wise, one SGD update."""
    optimizer.zero_grad(set_to_none=True)
    losses = sandwich_gradients(model, supernet, sampler, images, labels, settings, step)
    if settings["grad_clip_value"] is not None:
        torch.nn.utils.clip_grad_value_(supernet.parameters(), settings["grad_clip_value"])
    optimizer.step()
    scheduler.step()
    return losses


# ---------------------------------------------------------------- data order and processes

class EpochOrder(Sampler[int]):
    """This rank's share of an epoch's shuffled order, from batch `start` on.

    The permutation depends on (seed, epoch) only, so a resumed run skips the consumed batches
    without loading them. Global batch i is `batch_size * world_size` consecutive indices of the
    permutation; rank r takes its r-th slice.
    """

    def __init__(self, num_items: int, batch_size: int, world_size: int, rank: int, seed: int, epoch: int,
                 start: int, stop: int):
        self.num_items, self.batch_size, self.world_size, self.rank = num_items, batch_size, world_size, rank
        self.seed, self.epoch, self.start, self.stop = seed, epoch, start, stop

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.num_items, generator=generator)
        global_batch = self.batch_size * self.world_size
        for batch in range(self.start, self.stop):
            first = batch * global_batch + self.rank * self.batch_size
            yield from order[first: first + self.batch_size].tolist()

    def __len__(self) -> int:
        return (self.stop - self.start) * self.batch_size


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


def rng_states() -> dict[str, Any]:
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


# ---------------------------------------------------------------- the run

def check_run(config: dict[str, Any], run: str, init_from: str | Path | None = None,
              predictor_path: str | Path | None = None) -> dict[str, Any]:
    """The run's training settings, after every check that needs no data or weights."""
    sampler = sampler_settings(config, run)
    settings = training_settings(config, run)
    if settings["init"] == "warmup":
        where = "warmup" if run == "warmup" else f"methods.{run}.training"
        if init_from is None:
            raise TrainingSetupError(f"config key 'training.init' (run {run!r}, see '{where}') is 'warmup': "
                                     "give the warmed-up supernet with --init-from CKPT")
        if not Path(init_from).is_file():
            raise TrainingSetupError(f"--init-from {init_from}: no such checkpoint; train the warmup run "
                                     "first")
    if sampler.get("estimator") == "predictor":
        if predictor_path is None:
            raise TrainingSetupError(f"config key 'methods.{run}.estimator' is 'predictor': give the "
                                     "accuracy predictor file with --predictor PATH (made by fit-predictor)")
        if not Path(predictor_path).is_file():
            raise TrainingSetupError(f"--predictor {predictor_path}: no such file; fit the predictor first")
    return settings


class Trainer:
    """One supernet training run writing its files into `out_dir`; resumes from `out_dir/resume.pt`.

    `training.batch_size` is the global batch (split among DDP processes; the peak LR scales with it).
    Logged losses are rank 0's share of the batch; only rank 0 validates and writes files.
    """

    def __init__(self, config: dict[str, Any], run: str, out_dir: str | Path, *,
                 init_from: str | Path | None = None, predictor_path: str | Path | None = None,
                 progress: bool = True):
        self.settings = check_run(config, run, init_from, predictor_path)
        self.config, self.run, self.out_dir = config, run, Path(out_dir)
        self.processes, self.device = start_processes(resolve_device(config["device"]))
        self.progress = progress and self.processes.writes_files
        settings = self.settings
        if settings["batch_size"] % self.processes.world_size:
            raise TrainingSetupError(f"config key 'training.batch_size' = {settings['batch_size']} (the "
                                     f"global batch) must divide among {self.processes.world_size} processes")
        self.local_batch = settings["batch_size"] // self.processes.world_size
        self.space = SearchSpace.load(config["space"])
        self.splits = build_splits(config["data"], image_size=self.space.base_resolution)
        batches = len(self.splits.train) // settings["batch_size"]
        if batches == 0:
            raise TrainingSetupError(f"config key 'training.batch_size' = {settings['batch_size']} exceeds "
                                     f"the {len(self.splits.train)} training images")
        self.steps_per_epoch = min(batches, settings["max_steps_per_epoch"] or batches)
        self.total_steps = settings["epochs"] * self.steps_per_epoch

        seed_everything(config["seed"])
        supernet_cfg = config["supernet"]
        self.supernet = Supernet(self.space, config["resolution_mode"], dropout=supernet_cfg["dropout"],
                                 drop_connect=supernet_cfg["drop_connect"])
        if settings["init"] == "warmup":
            self._load_weights(init_from)
        self.supernet.to(self.device).train()
        set_bn_momentum(self.supernet, settings["bn_momentum"])
        self.model: nn.Module = self.supernet
        if self.processes.distributed:
            self.model = DistributedDataParallel(
                self.supernet, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True)
        self.optimizer = build_optimizer(self.supernet, settings)
        self.scheduler = build_scheduler(self.optimizer, settings, self.steps_per_epoch)
        predictor = load_predictor(predictor_path, self.space) if predictor_path else None
        self.table = self._flops_table() if sampler_settings(config, run)["sampler"] == "attentive" else None
        self.sampler = build_sampler(config, run, self.space, supernet=self.supernet, predictor=predictor,
                                     table=self.table, label_smoothing=settings["label_smoothing"])
        validates = settings["validate_images"] > 0 and self.processes.writes_files
        self.evaluator = (evaluator_from_config(config, self.splits, "search", self.device,
                                                max_images=settings["validate_images"])
                          if validates else None)
        self.step = 0
        self.epochs_done = 0
        self.metrics: list[dict[str, Any]] = []
        self.epoch_rows: list[dict[str, Any]] = []
        self.previous_seconds = 0.0
        self.resumed = self._resume()

    # -- files

    def path(self, name: str) -> Path:
        return self.out_dir / name

    def _load_weights(self, path: str | Path) -> None:
        restore_weights(self.supernet, load_checkpoint(path, self.space), path)

    def _flops_table(self) -> FlopsTable:
        """Rebuilt from the config's seed on every start (a second or two), so a resumed run gets the same."""
        table = build_flops_table(self.config, self.space)
        if self.processes.writes_files:
            table.save(self.path(FLOPS_TABLE_FILE))
            table.save_histogram(self.path(FLOPS_HISTOGRAM_FILE), self.config["sampler"]["prior"])
        return table

    def _identity(self) -> dict[str, Any]:
        """What a resume file must match to be continued by this run."""
        return {"run": self.run, "seed": self.config["seed"], "settings": self.settings,
                "sampler": self.sampler.describe(), "world_size": self.processes.world_size,
                "data": self.config["data"]}

    def _resume(self) -> bool:
        path = self.path(RESUME_FILE)
        if not path.is_file():
            return False
        state = load_checkpoint(path, self.space)
        if state.get("identity") != self._identity():
            raise TrainingSetupError(f"{path} was written by a different run or config (run, seed, data, "
                                     "training or sampler settings, process count); delete it to start over")
        self.supernet.load_state_dict(state["supernet"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.sampler.load_state_dict(state["sampler"])
        restore_rng_states(state["rng"])
        self.step, self.epochs_done = state["step"], state["epochs_done"]
        self.metrics, self.epoch_rows = state["metrics"], state["epoch_rows"]
        self.previous_seconds = state["wall_seconds"]
        return True

    def _save_resume(self, started: float) -> None:
        if not self.processes.writes_files:
            return
        state = supernet_state(self.supernet, identity=self._identity(),
                               optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(),
                               sampler=self.sampler.state_dict(),
                               rng=rng_states(), step=self.step, epochs_done=self.epochs_done,
                               metrics=self.metrics, epoch_rows=self.epoch_rows,
                               wall_seconds=self.previous_seconds + time.perf_counter() - started)
        save_checkpoint(self.path(RESUME_FILE), state)
        self._write_logs()

    def _write_logs(self) -> None:
        write_csv(self.path(METRICS_FILE), self.metrics, METRICS_FIELDS)
        write_csv(self.path(EPOCHS_FILE), self.epoch_rows, EPOCHS_FIELDS)

    # -- training

    def _loader(self, epoch: int, start: int):
        order = EpochOrder(len(self.splits.train), self.local_batch, self.processes.world_size,
                           self.processes.rank, self.config["seed"], epoch, start, self.steps_per_epoch)
        return make_loader(self.splits.train, self.local_batch, shuffle=False,
                           seed=self.config["seed"] + epoch, drop_last=True,
                           num_workers=self.config["data"]["num_workers"], sampler=order)

    def validate(self, epoch: int) -> dict[str, Any]:
        space = self.space
        maximum = self.evaluator.evaluate(self.supernet, space.max_subnet())
        minimum = self.evaluator.evaluate(self.supernet, space.min_subnet())
        return {"epoch": epoch, "top1_max": round(maximum.top1, 4), "top1_min": round(minimum.top1, 4),
                "loss_max": round(maximum.loss, 6), "loss_min": round(minimum.loss, 6)}

    def _log_row(self, epoch: int, losses: StepLosses, lr: float, images_per_s: float) -> dict[str, Any]:
        mid = losses.loss_mid
        mid_mflops = [mflops(self.space, s) for s in losses.subnets_mid]
        return {"step": self.step, "epoch": epoch, "lr": f"{lr:.6g}", "loss_max": round(losses.loss_max, 6),
                "loss_min": round(losses.loss_min, 6),
                "loss_mid": round(float(np.mean(mid)), 6) if mid else "",
                "mflops_mid": round(float(np.mean(mid_mflops)), 4) if mid else "",
                "images_per_s": round(images_per_s, 2)}

    def fit(self, on_step: Callable[[Trainer, int], None] | None = None) -> dict[str, Any]:
        """Train to the end (or on from the resume file); `on_step(trainer, step)` follows every step."""
        settings = self.settings
        started = time.perf_counter()
        bar = tqdm(total=self.total_steps, initial=self.step, desc=f"train {self.run}", unit="step",
                   disable=not self.progress, dynamic_ncols=True)
        interval_start, interval_images = time.perf_counter(), 0
        for epoch in range(self.epochs_done, settings["epochs"]):
            self.supernet.train()
            start = self.step - epoch * self.steps_per_epoch
            for images, labels in self._loader(epoch, start):
                images, labels = images.to(self.device), labels.to(self.device)
                lr = self.optimizer.param_groups[0]["lr"]
                losses = sandwich_step(self.model, self.supernet, self.sampler, images, labels, settings,
                                       self.optimizer, self.scheduler, self.step + 1)
                self.step += 1
                interval_images += settings["batch_size"]
                if self.step % settings["log_every_steps"] == 0 or self.step == self.total_steps:
                    elapsed = time.perf_counter() - interval_start
                    rate = interval_images / max(elapsed, 1e-9)
                    self.metrics.append(self._log_row(epoch, losses, lr, rate))
                    interval_start, interval_images = time.perf_counter(), 0
                    bar.set_postfix(loss_max=f"{losses.loss_max:.3f}", loss_min=f"{losses.loss_min:.3f}")
                bar.update()
                if self.step % settings["checkpoint_every_steps"] == 0:
                    self._save_resume(started)
                if on_step is not None:
                    on_step(self, self.step)
            if self.evaluator is not None:
                self.epoch_rows.append(self.validate(epoch))
                bar.write(f"epoch {epoch}: " + ", ".join(f"{k} {v}" for k, v in self.epoch_rows[-1].items()
                                                         if k != "epoch"))
            if self.processes.distributed:
                dist.barrier()
            self.epochs_done = epoch + 1
            self._save_resume(started)
        bar.close()
        return self._finish(started)

    def _finish(self, started: float) -> dict[str, Any]:
        digest = weights_digest(self.supernet)
        digests = [digest]
        if self.processes.distributed:
            digests = [None] * self.processes.world_size
            dist.all_gather_object(digests, digest)
        final = self.epoch_rows[-1] if self.epoch_rows else {}
        summary = {"run": self.run, "sampler": self.sampler.describe(), "sampler_stats": self.sampler.stats(),
                   "epochs": self.settings["epochs"], "steps": self.step,
                   "steps_per_epoch": self.steps_per_epoch,
                   "images_processed": self.step * self.settings["batch_size"],
                   "wall_seconds": round(self.previous_seconds + time.perf_counter() - started, 3),
                   "processes": self.processes.world_size, "device": str(self.device),
                   "top1_max": final.get("top1_max"), "top1_min": final.get("top1_min"),
                   "validation_split": "search", "weights_sha256": digests}
        if self.processes.writes_files:
            self._write_logs()
            write_json(self.path(SUMMARY_FILE), summary)
            save_checkpoint(self.path(FINAL_FILE),
                            supernet_state(self.supernet, run=self.run, complete=True, settings=self.settings,
                                           sampler=self.sampler.describe(), summary=summary))
        if self.processes.distributed:
            dist.barrier()
        return summary


def final_checkpoint_complete(out_dir: str | Path, space: SearchSpace) -> bool:
    path = Path(out_dir) / FINAL_FILE
    return path.is_file() and bool(load_checkpoint(path, space).get("complete"))
