"""Samplers of the sandwich rule's middle subnets: uniform (BigNAS) and attentive (AttentiveNAS).

The attentive sampler draws a FLOPs bin from a prior, draws k candidates inside that bin from the
per-bin marginal frequencies of a table of uniformly sampled subnets, and trains the best (`bestup`)
or the worst (`worstup`) by an estimator. Samplers draw only from their own `random.Random`, so every
DDP rank, seeded alike, draws the same subnets, and `state_dict` makes a resumed run draw what an
uninterrupted one would have.

The loss estimator scores candidates on the first `sampler.score_images` images of the minibatch: its
ranking agrees with the whole minibatch's closely enough (benchmarks/bench_training.py measures the
Kendall tau) at a fraction of the forwards, which the samplers count for the run's image budget.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import math
import random
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from attentivenas.errors import UserInputError
from attentivenas.flops import mflops
from attentivenas.io import read_csv, write_csv
from attentivenas.predictor import AccuracyPredictor
from attentivenas.space import SearchSpace, Subnet
from attentivenas.specs import TrainingJob
from attentivenas.supernet import Supernet

SAMPLERS = ("uniform", "attentive")
MODES = ("bestup", "worstup")
ESTIMATORS = ("loss", "predictor")
PRIORS = ("empirical", "uniform")


class FlopsTableError(UserInputError):
    """A FLOPs table file is missing, malformed or was made for another space."""


def _column(gene) -> str:
    return gene.field if gene.index is None else f"{gene.field}_{gene.index}"


class FlopsTable:
    """Uniformly sampled subnets binned by analytic FLOPs: the attentive sampler's prior and marginals.

    Bin `b` holds the subnets with `b * bin_width <= mflops < (b + 1) * bin_width`.
    """

    def __init__(self, space: SearchSpace, subnets: Sequence[Subnet], bin_width: float | None = None):
        if not subnets:
            raise FlopsTableError("a FLOPs table needs at least one subnet (config key 'sampler.table_size')")
        self.space = space
        self.bin_width = float(bin_width or space.flops_bin_width)
        self.subnets = tuple(subnets)
        self.mflops = np.array([mflops(space, s) for s in self.subnets])
        self.bins = np.floor(self.mflops / self.bin_width).astype(np.int64)
        self.counts = Counter(int(b) for b in self.bins)
        self._cumulative = self._marginals()

    @classmethod
    def build(cls, space: SearchSpace, size: int, rng: random.Random,
              bin_width: float | None = None) -> FlopsTable:
        return cls(space, [space.sample_uniform(rng) for _ in range(size)], bin_width)

    def _marginals(self) -> dict[int, list[tuple[tuple, list[int]]]]:
        """Per bin and gene: the gene's choices with their cumulative counts."""
        genes_by_bin: dict[int, list[list]] = {}
        for subnet, b in zip(self.subnets, self.bins, strict=True):
            genes_by_bin.setdefault(int(b), []).append(self.space.to_genes(subnet))
        cumulative = {}
        for b, rows in genes_by_bin.items():
            per_gene = []
            for gene, values in zip(self.space.genes, zip(*rows, strict=True), strict=True):
                counted = Counter(values)
                choices = tuple(c for c in gene.choices if counted[c])
                per_gene.append((choices, list(itertools.accumulate(counted[c] for c in choices))))
            cumulative[b] = per_gene
        return cumulative

    @property
    def occupied_bins(self) -> list[int]:
        return sorted(self.counts)

    def marginal(self, bin_index: int) -> list[dict[Any, float]]:
        """Per gene, the frequency of each choice among the table's subnets in `bin_index`."""
        result = []
        for choices, cumulative in self._cumulative[bin_index]:
            counts = np.diff([0, *cumulative])
            result.append({c: float(n) / cumulative[-1] for c, n in zip(choices, counts, strict=True)})
        return result

    def prior(self, kind: str) -> tuple[list[int], list[float]]:
        """Occupied bins and their probabilities: the table's FLOPs distribution, or uniform over bins."""
        if kind not in PRIORS:
            raise FlopsTableError(f"config key 'sampler.prior' = {kind!r}; allowed: {', '.join(PRIORS)}")
        bins = self.occupied_bins
        if kind == "uniform":
            return bins, [1.0 / len(bins)] * len(bins)
        total = sum(self.counts.values())
        return bins, [self.counts[b] / total for b in bins]

    def bin_of(self, subnet: Subnet) -> int:
        return math.floor(mflops(self.space, subnet) / self.bin_width)

    def draw(self, bin_index: int, rng: random.Random) -> Subnet:
        """One subnet with each gene drawn from the bin's marginal frequencies (FLOPs not checked)."""
        values = [choices[bisect.bisect_right(cumulative, rng.random() * cumulative[-1])]
                  for choices, cumulative in self._cumulative[bin_index]]
        return self.space.from_genes(values)

    def histogram(self, prior: str = "empirical") -> list[dict[str, float]]:
        """Every bin from the lightest to the heaviest table subnet, empty ones included."""
        bins, probabilities = self.prior(prior)
        probability = dict(zip(bins, probabilities, strict=True))
        return [{"bin_low": round(b * self.bin_width, 6), "bin_high": round((b + 1) * self.bin_width, 6),
                 "count": self.counts.get(b, 0), "prior": probability.get(b, 0.0)}
                for b in range(bins[0], bins[-1] + 1)]

    def save(self, path: str | Path) -> None:
        """CSV of the table's subnets (one column per gene) and their MFLOPs."""
        columns = [_column(g) for g in self.space.genes]
        rows = [{**dict(zip(columns, self.space.to_genes(s), strict=True)), "mflops": f"{m:.6f}"}
                for s, m in zip(self.subnets, self.mflops, strict=True)]
        write_csv(path, rows, fieldnames=[*columns, "mflops"])

    def save_histogram(self, path: str | Path, prior: str = "empirical") -> None:
        write_csv(path, self.histogram(prior), fieldnames=["bin_low", "bin_high", "count", "prior"])

    @classmethod
    def load(cls, path: str | Path, space: SearchSpace, bin_width: float | None = None) -> FlopsTable:
        path = Path(path)
        if not path.is_file():
            raise FlopsTableError(f"FLOPs table {path} does not exist")
        rows = read_csv(path)
        columns = [_column(g) for g in space.genes]
        if not rows or set(rows[0]) != {*columns, "mflops"}:
            raise FlopsTableError(f"FLOPs table {path} does not have the columns of space {space.name!r} "
                                  f"({', '.join(columns)}, mflops); delete it to rebuild it")
        subnets = [space.validate(space.from_genes([float(row[c]) for c in columns]).to_dict())
                   for row in rows]
        table = cls(space, subnets, bin_width)
        stored = np.array([float(row["mflops"]) for row in rows])
        if not np.allclose(stored, table.mflops, rtol=0, atol=1e-5):
            raise FlopsTableError(f"FLOPs table {path} disagrees with the FLOPs counter for space "
                                  f"{space.name!r}; delete it to rebuild it")
        return table


class Estimator(Protocol):
    """Scores candidate subnets; higher is better."""

    name: str

    def score(self, candidates: Sequence[Subnet], images: torch.Tensor | None,
              labels: torch.Tensor | None) -> np.ndarray: ...

    def images_per_candidate(self, images: torch.Tensor | None) -> int:
        """How many images of `images` one candidate's scoring forward sees (0: no forward)."""


@contextlib.contextmanager
def frozen_bn_statistics(model: nn.Module) -> Iterator[None]:
    """BN layers normalize with batch statistics but leave their running statistics as they are."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in layers]
    for m in layers:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum in zip(layers, saved, strict=True):
            m.momentum = momentum


class LossEstimator:
    """Minus the label-smoothed cross-entropy of each candidate on the minibatch's first `score_images`.

    Forwards run without gradients and regularization, in training mode (batch statistics, as in the
    training step) with BN running statistics untouched, under the caller's autocast if any. Under DDP
    the losses are averaged over ranks before anyone chooses, so every rank trains the same subnet.
    Choosing reads the losses on the host: the one device sync per middle subnet an attentive step needs.
    """

    name = "loss"

    def __init__(self, supernet: Supernet, label_smoothing: float, score_images: int | None = None):
        if score_images is not None and score_images < 1:
            raise UserInputError(f"config key 'sampler.score_images' = {score_images}: give a positive number "
                                 "of images, or null for the whole minibatch")
        self.supernet = supernet
        self.label_smoothing = label_smoothing
        self.score_images = score_images

    def images_per_candidate(self, images: torch.Tensor | None) -> int:
        if images is None:
            return 0
        return len(images) if self.score_images is None else min(self.score_images, len(images))

    @torch.no_grad()
    def score(self, candidates: Sequence[Subnet], images: torch.Tensor | None,
              labels: torch.Tensor | None) -> np.ndarray:
        if images is None or labels is None:
            raise ValueError("the loss estimator scores candidates on the current minibatch: pass it")
        count = self.images_per_candidate(images)
        images, labels = images[:count], labels[:count]
        active, regularize = self.supernet.active_subnet, self.supernet.regularize
        losses = []
        with frozen_bn_statistics(self.supernet):
            for candidate in candidates:
                self.supernet.set_active_subnet(candidate)
                logits = self.supernet(images)
                losses.append(F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing))
        self.supernet.set_active_subnet(active, regularize)
        loss = torch.stack(losses).double()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(loss)
            loss /= torch.distributed.get_world_size()
        return -loss.cpu().numpy()


class PredictorEstimator:
    """Predicted top-1 of each candidate by the pretrained accuracy predictor (same on every rank)."""

    name = "predictor"

    def __init__(self, predictor: AccuracyPredictor, space: SearchSpace):
        self.predictor = predictor
        self.space = space

    def score(self, candidates: Sequence[Subnet], images: torch.Tensor | None = None,
              labels: torch.Tensor | None = None) -> np.ndarray:
        return self.predictor.predict(self.space, candidates)

    def images_per_candidate(self, images: torch.Tensor | None) -> int:
        return 0


class UniformSampler:
    """BigNAS: every choice drawn independently and uniformly."""

    def __init__(self, space: SearchSpace, rng: random.Random):
        self.space = space
        self.rng = rng

    def sample(self, images: torch.Tensor | None = None, labels: torch.Tensor | None = None) -> Subnet:
        return self.space.sample_uniform(self.rng)

    def describe(self) -> dict[str, Any]:
        return {"sampler": "uniform"}

    def stats(self) -> dict[str, float]:
        return {"scoring_forwards": 0, "images_scored": 0, "scoring_mflops": 0.0}

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.getstate()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.setstate(state["rng"])


class AttentiveSampler:
    """AttentiveNAS: a FLOPs bin from the prior, k candidates inside it, the best or worst by `estimator`.

    `overhead_seconds` counts the sampler's own work (bin draws, marginal draws, rejections, FLOPs
    look-ups), not the estimator's forwards, which `estimator_seconds` counts. `scoring_forwards`,
    `images_scored` and `scoring_mflops` count the estimator's candidate forwards, the images they saw
    and those forwards' analytic MFLOPs (resumed with the sampler, so an interrupted run counts the same).
    """

    def __init__(self, space: SearchSpace, rng: random.Random, table: FlopsTable, estimator: Estimator,
                 mode: str = "bestup", k: int = 3, prior: str = "empirical", max_tries: int = 100):
        if mode not in MODES:
            raise UserInputError(f"config key 'methods.<name>.mode' = {mode!r}; allowed: {', '.join(MODES)}")
        if k < 1 or max_tries < 1:
            raise UserInputError(f"attentive sampler needs k >= 1 and max_tries >= 1, got k={k}, "
                                 f"max_tries={max_tries}")
        self.space, self.rng, self.table, self.estimator = space, rng, table, estimator
        self.mode, self.k, self.prior, self.max_tries = mode, k, prior, max_tries
        self.bins, probabilities = table.prior(prior)
        self.cumulative_prior = list(itertools.accumulate(probabilities))
        self.last_bin: int | None = None
        self.last_candidates: list[Subnet] = []
        self.last_scores: np.ndarray | None = None
        self.reset_stats()

    def reset_stats(self) -> None:
        self.candidates_drawn = 0
        self.candidates_in_bin = 0
        self.tries = 0
        self.scoring_forwards = 0
        self.images_scored = 0
        self.scoring_mflops = 0.0
        self.overhead_seconds = 0.0
        self.estimator_seconds = 0.0

    def draw_bin(self) -> int:
        index = bisect.bisect_right(self.cumulative_prior, self.rng.random() * self.cumulative_prior[-1])
        return self.bins[min(index, len(self.bins) - 1)]

    def draw_candidate(self, bin_index: int) -> Subnet:
        """A subnet from the bin's marginals whose FLOPs land in the bin, or the last of `max_tries` draws."""
        for _ in range(self.max_tries):
            subnet = self.table.draw(bin_index, self.rng)
            self.tries += 1
            if self.table.bin_of(subnet) == bin_index:
                self.candidates_in_bin += 1
                break
        self.candidates_drawn += 1
        return subnet

    def draw_candidates(self) -> tuple[int, list[Subnet]]:
        bin_index = self.draw_bin()
        return bin_index, [self.draw_candidate(bin_index) for _ in range(self.k)]

    def sample(self, images: torch.Tensor | None = None, labels: torch.Tensor | None = None) -> Subnet:
        start = time.perf_counter()
        self.last_bin, self.last_candidates = self.draw_candidates()
        scored = time.perf_counter()
        self.overhead_seconds += scored - start
        scores = np.asarray(self.estimator.score(self.last_candidates, images, labels))
        self.estimator_seconds += time.perf_counter() - scored
        seen = self.estimator.images_per_candidate(images)
        self.scoring_forwards += len(self.last_candidates) if seen else 0
        self.images_scored += len(self.last_candidates) * seen
        self.scoring_mflops += seen * sum(mflops(self.space, c) for c in self.last_candidates)
        self.last_scores = scores
        choice = int(np.argmax(scores) if self.mode == "bestup" else np.argmin(scores))
        return self.last_candidates[choice]

    def describe(self) -> dict[str, Any]:
        description = {"sampler": "attentive", "mode": self.mode, "k": self.k, "estimator": self.estimator.name,
                       "prior": self.prior, "max_tries": self.max_tries, "table_size": len(self.table.subnets),
                       "bin_width": self.table.bin_width}
        if isinstance(self.estimator, LossEstimator):
            description["score_images"] = self.estimator.score_images
        return description

    def stats(self) -> dict[str, float]:
        return {"candidates_drawn": self.candidates_drawn,
                "in_bin_rate": self.candidates_in_bin / max(self.candidates_drawn, 1),
                "tries_per_candidate": self.tries / max(self.candidates_drawn, 1),
                "scoring_forwards": self.scoring_forwards, "images_scored": self.images_scored,
                "scoring_mflops": self.scoring_mflops,
                "overhead_seconds": self.overhead_seconds, "estimator_seconds": self.estimator_seconds}

    _COUNTERS = ("candidates_drawn", "candidates_in_bin", "tries", "scoring_forwards", "images_scored",
                 "scoring_mflops")

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.getstate(), "counters": {name: getattr(self, name) for name in self._COUNTERS}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.setstate(state["rng"])
        for name, value in state.get("counters", {}).items():
            setattr(self, name, value)


Sampler = UniformSampler | AttentiveSampler


def sampler_seed(seed: int, purpose: str) -> str:
    """A seed for `random.Random` per purpose (table, middle subnets), fixed by the run's seed."""
    return f"{seed}:{purpose}"


def build_flops_table(job: TrainingJob, space: SearchSpace) -> FlopsTable:
    return FlopsTable.build(space, job.sampler.table_size, random.Random(sampler_seed(job.seed, "flops-table")))


def build_sampler(job: TrainingJob, space: SearchSpace, *, supernet: Supernet | None = None,
                  predictor: AccuracyPredictor | None = None, table: FlopsTable | None = None) -> Sampler:
    """The sampler of the job's run as its method asks; the attentive one needs the supernet (scoring by
    loss, with the run's label smoothing) or the predictor."""
    method = job.method
    rng = random.Random(sampler_seed(job.seed, "middle-subnets"))
    if not method.attentive:
        return UniformSampler(space, rng)
    if method.uses_predictor:
        if predictor is None:
            raise UserInputError(f"config key 'methods.{job.run}.estimator' is 'predictor': give the accuracy "
                                 "predictor file (--predictor PATH, made by fit-predictor)")
        estimator: Estimator = PredictorEstimator(predictor, space)
    else:
        if supernet is None:
            raise ValueError("the loss estimator needs the supernet being trained")
        estimator = LossEstimator(supernet, job.training.label_smoothing, job.sampler.score_images)
    table = table or build_flops_table(job, space)
    return AttentiveSampler(space, rng, table, estimator, mode=method.mode, k=method.k, prior=job.sampler.prior,
                            max_tries=job.sampler.max_tries)
