"""The run skeleton shared by supernet training and DSNAS: steps over epochs, progress, metrics log,
resume checkpoints that continue to the bit, and the NaN/inf guard.

A run is resumable to the bit on CPU because the resume file holds everything the next step reads:
the task's own state (weights, optimizers, schedulers, samplers), the RNG states, the metric rows and
the position in the epoch, whose data order is a function of (seed, epoch) alone. The resume file is
keyed by the run's identity (everything that determines its result); a finished run deletes it.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from attentivenas.checkpoint import load_checkpoint, save_checkpoint, supernet_state
from attentivenas.errors import UserInputError
from attentivenas.io import write_csv, write_json
from attentivenas.progress import progress_bar
from attentivenas.space import Subnet
from attentivenas.supernet import Supernet

logger = logging.getLogger(__name__)

RESUME_FILE = "resume.pt"
METRICS_FILE = "metrics.csv"
EPOCHS_FILE = "epochs.csv"
TIMINGS_FILE = "timings.json"


class RunSetupError(UserInputError):
    """A run cannot start: its resume file belongs to another run or config."""


class RunDivergedError(UserInputError):
    """A loss became NaN or infinite; the last good checkpoint is left as it was."""


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@cache
def code_version() -> str:
    """SHA-256 of the package's sources and data files and of the torch version that runs them."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256(torch.__version__.encode())
    for path in sorted(p for p in package.rglob("*") if p.suffix in (".py", ".yaml") and p.is_file()):
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def run_identity(settings: dict[str, Any], inputs: dict[str, str | Path | None]) -> dict[str, Any]:
    """Everything that determines a run's result: its resolved settings, the SHA-256 of each input file
    (None when not given) and the code version. A resume file is continued only under an equal identity."""
    return {**settings, **{f"input {name}": None if path is None else file_sha256(path)
                           for name, path in inputs.items()}, "code_version": code_version()}


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _diverged(step: int, subnet: Subnet, role: str, value: float, advice: str) -> RunDivergedError:
    return RunDivergedError(
        f"training diverged at step {step}: the {role} subnet's loss is {value} "
        f"(subnet {subnet.to_json()}); {advice}. "
        "The last good checkpoint is kept; delete it to restart from scratch")


def check_finite(loss: torch.Tensor | float, step: int, subnet: Subnet, role: str, advice: str) -> float:
    """The loss as a float, or RunDivergedError naming the step and subnet (on every rank alike under DDP)."""
    value = torch.as_tensor(loss).detach()
    finite = torch.isfinite(value).to(torch.float32)
    if _distributed():
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    if not finite.item():
        raise _diverged(step, subnet, role, value.item(), advice)
    return value.item()


class DivergenceGuard:
    """`check_finite` without a device sync per loss: watches losses, checks them all at once.

    `check` reads every loss watched since the previous check in one device-to-host copy (one
    all-reduce under DDP, where every rank checks at the same steps) and raises for the first
    non-finite one, naming its step and subnet. The run loop checks on logged steps and before
    anything is written or validated, so a diverged run leaves its last good checkpoint as it was.
    """

    def __init__(self, advice: str):
        self.advice = advice
        self.watched: list[tuple[int, Subnet, str, torch.Tensor]] = []

    def watch(self, loss: torch.Tensor, step: int, subnet: Subnet, role: str) -> None:
        self.watched.append((step, subnet, role, loss.detach()))

    def check(self) -> None:
        if not self.watched:
            return
        watched, self.watched = self.watched, []
        values = torch.stack([loss.float() for *_, loss in watched])
        finite = torch.isfinite(values).to(torch.float32)
        if _distributed():
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        finite, values = finite.cpu(), values.cpu()
        if bool(finite.all()):
            return
        first = int(torch.nonzero(finite == 0)[0])
        step, subnet, role, _ = watched[first]
        raise _diverged(step, subnet, role, values[first].item(), self.advice)


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


class RunTask(Protocol):
    """What a run does; the loop around it is `RunLoop`."""

    def batches(self, epoch: int, start: int) -> Iterable[Any]:
        """The epoch's batches from batch `start` on, in an order fixed by (seed, epoch)."""

    def train_step(self, batch: Any, step: int) -> dict[str, Any]:
        """Train on one batch as step number `step` (from 1); the step's metrics row (without step, epoch)."""

    def end_epoch(self, epoch: int) -> dict[str, Any] | None:
        """Work after an epoch (validation); its row for epochs.csv, or None."""

    def state_dict(self) -> dict[str, Any]:
        """Everything of the task a resumed run needs, except the supernet weights and the RNG states."""

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class RunLoop:
    """Steps a task through its epochs in `out_dir`; resumes from `out_dir/resume.pt` when its identity matches.

    Writes metrics.csv (a row every `log_every` steps and at the last) and, when `epoch_fields` is
    given, epochs.csv; the resume file every `checkpoint_every` steps and after every epoch. Wall-clock
    time stays out of these files: `finish` writes it to timings.json.
    """

    def __init__(self, out_dir: str | Path, supernet: Supernet, identity: dict[str, Any], *, epochs: int,
                 steps_per_epoch: int, checkpoint_every: int, log_every: int, metric_fields: list[str],
                 epoch_fields: list[str] | None = None, description: str = "run", progress: bool = True,
                 writes_files: bool = True, guard: DivergenceGuard | None = None):
        self.out_dir, self.supernet, self.identity = Path(out_dir), supernet, identity
        self.epochs, self.steps_per_epoch = epochs, steps_per_epoch
        self.total_steps = epochs * steps_per_epoch
        self.checkpoint_every, self.log_every = checkpoint_every, log_every
        self.metric_fields, self.epoch_fields = metric_fields, epoch_fields
        self.description, self.writes_files = description, writes_files
        self.guard = guard
        self.progress = progress and writes_files
        self.step = 0
        self.epochs_done = 0
        self.metrics: list[dict[str, Any]] = []
        self.epoch_rows: list[dict[str, Any]] = []
        self.previous_seconds = 0.0
        self.started = time.perf_counter()

    def path(self, name: str) -> Path:
        return self.out_dir / name

    def logs(self, step: int) -> bool:
        """Whether step `step` (from 1) gets a metrics row: only its task's row needs values read back."""
        return step % self.log_every == 0 or step == self.total_steps

    def check(self) -> None:
        """Every loss the guard watched so far is finite, or RunDivergedError for the first that is not."""
        if self.guard is not None:
            self.guard.check()

    def resume(self, task: RunTask) -> bool:
        """Continue from the resume file, if any; RunSetupError naming what changed if it is another run's."""
        path = self.path(RESUME_FILE)
        if not path.is_file():
            return False
        state = load_checkpoint(path, self.supernet.space)
        saved = state.get("identity") or {}
        if saved != self.identity:
            changed = sorted(k for k in {*saved, *self.identity} if saved.get(k) != self.identity.get(k))
            raise RunSetupError(f"{path} was written by a different run, config, input or code version "
                                f"(differs in: {', '.join(changed)}); delete it to start over, or give another "
                                "--out-dir")
        self.supernet.load_state_dict(state["supernet"])
        task.load_state_dict(state["task"])
        restore_rng_states(state["rng"])
        self.step, self.epochs_done = state["step"], state["epochs_done"]
        self.metrics, self.epoch_rows = state["metrics"], state["epoch_rows"]
        self.previous_seconds = state["wall_seconds"]
        return True

    @property
    def wall_seconds(self) -> float:
        """Seconds of stepping so far, over all interrupted attempts."""
        return self.previous_seconds + time.perf_counter() - self.started

    def save(self, task: RunTask) -> None:
        self.check()
        if not self.writes_files:
            return
        save_checkpoint(self.path(RESUME_FILE), supernet_state(
            self.supernet, identity=self.identity, task=task.state_dict(), rng=rng_states(), step=self.step,
            epochs_done=self.epochs_done, metrics=self.metrics, epoch_rows=self.epoch_rows,
            wall_seconds=self.wall_seconds))
        self.write_logs()

    def write_logs(self) -> None:
        write_csv(self.path(METRICS_FILE), self.metrics, self.metric_fields)
        if self.epoch_fields is not None:
            write_csv(self.path(EPOCHS_FILE), self.epoch_rows, self.epoch_fields)

    def run(self, task: RunTask, on_step: Callable[[int], None] | None = None) -> None:
        """Step to the end; `on_step(step)` follows every step (after its checkpoint, if any)."""
        self.started = time.perf_counter()
        bar = progress_bar(total=self.total_steps, initial=self.step, desc=self.description, unit="step",
                           disable=not self.progress, dynamic_ncols=True)
        for epoch in range(self.epochs_done, self.epochs):
            start = self.step - epoch * self.steps_per_epoch
            for batch in task.batches(epoch, start):
                row = task.train_step(batch, self.step + 1)
                self.step += 1
                if self.logs(self.step):
                    self.check()
                    self.metrics.append({"step": self.step, "epoch": epoch, **row})
                    bar.set_postfix({k: v for k, v in row.items() if isinstance(v, float)})
                bar.update()
                if self.step % self.checkpoint_every == 0:
                    self.save(task)
                if on_step is not None:
                    on_step(self.step)
            self.check()
            epoch_row = task.end_epoch(epoch)
            if epoch_row is not None:
                self.epoch_rows.append(epoch_row)
                logger.info("epoch %d: %s", epoch, ", ".join(f"{k} {v}" for k, v in epoch_row.items() if k != "epoch"))
            if _distributed():
                dist.barrier()
            self.epochs_done = epoch + 1
            self.save(task)
        bar.close()

    def finish(self, timings: dict[str, Any]) -> None:
        """After the run's final outputs are written: the logs, timings.json, and no more resume file."""
        if self.writes_files:
            self.write_logs()
            write_json(self.path(TIMINGS_FILE), timings)
            self.path(RESUME_FILE).unlink(missing_ok=True)
