"""Pareto search over a trained supernet: evolution under FLOPs constraints, the front and its hypervolume.

The archive keeps the best subnet per FLOPs bucket (equal-width buckets, split again at every FLOPs
target), so parents stay spread over the whole cost range instead of crowding at the accurate, expensive
end. Each generation also draws `gap_children` subnets inside every interval between consecutive targets
that the front has no member in yet, bred from the archive members on either side: distinct targets then
get distinct models unless the evaluated front has none between them. Fitness is top-1 on the search split
(never the test split) from the shared evaluator, and no subnet is evaluated twice. Hypervolume is
measured in a fixed window per space (`hypervolume` in the space YAML), so fronts of different methods
and runs compare.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import moocore
import numpy as np

from attentivenas.flops import count, flops_range, mflops
from attentivenas.predictor import AccuracyPredictor
from attentivenas.progress import progress_bar
from attentivenas.space import SearchSpace, Subnet
from attentivenas.specs import SearchSpec

PREFILTER_FACTOR = 4  # with a predictor, draw this many candidates per child and keep the best fraction

Fitness = Callable[[Sequence[Subnet]], Sequence[float]]


@dataclass(frozen=True)
class Candidate:
    """An evaluated subnet and the generation that proposed it (0: the initial population)."""

    generation: int
    subnet: Subnet
    mflops: float
    params_m: float
    top1: float


class ParetoArchive:
    """The best-top-1 candidate of each MFLOPs bucket over [low, high]: `buckets` equal-width ones, each
    split again at the `edges` inside it (the FLOPs targets). A bucket holds (lower edge, upper edge], so
    a subnet of exactly a target's MFLOPs shares the bucket of the subnets that fit that target."""

    def __init__(self, low: float, high: float, buckets: int, edges: Sequence[float] = ()):
        if not low < high or buckets < 1:
            raise ValueError(f"need low < high and buckets >= 1, got {low}, {high}, {buckets}")
        self.low, self.high = low, high
        equal_width = [low + (high - low) * i / buckets for i in range(1, buckets)]
        self.edges = sorted({*equal_width, *(e for e in edges if low < e < high)})
        self.buckets = len(self.edges) + 1
        self.best: dict[int, Candidate] = {}

    def bucket(self, mflops_value: float) -> int:
        return bisect.bisect_left(self.edges, mflops_value)

    def offer(self, candidate: Candidate) -> bool:
        """Keep `candidate` if it beats its bucket's best; True when it was kept."""
        key = self.bucket(candidate.mflops)
        current = self.best.get(key)
        if current is None or candidate.top1 > current.top1:
            self.best[key] = candidate
            return True
        return False

    @property
    def members(self) -> list[Candidate]:
        return [self.best[key] for key in sorted(self.best)]


def pareto_front(candidates: Iterable[Candidate]) -> list[Candidate]:
    """The non-dominated candidates (fewer MFLOPs, higher top-1), by increasing MFLOPs; of equal ones, the first."""
    candidates = list(candidates)
    if not candidates:
        return []
    points = np.array([(c.mflops, c.top1) for c in candidates], dtype=float)
    keep = moocore.is_nondominated(points, maximise=[False, True])
    return sorted((c for c, kept in zip(candidates, keep, strict=True) if kept), key=lambda c: c.mflops)


@dataclass(frozen=True)
class Hypervolume:
    """Area dominated by a front inside the window box, raw (MFLOPs x top-1 points) and as a box fraction."""

    raw: float
    normalized: float
    reference_point: tuple[float, float]
    window: tuple[float, float]
    top1_floor: float
    points_counted: int

    def as_dict(self) -> dict[str, Any]:
        return {"raw": self.raw, "normalized": self.normalized,
                "reference_point": {"mflops": self.reference_point[0], "top1": self.reference_point[1]},
                "window_mflops": list(self.window), "top1_floor": self.top1_floor,
                "points_counted": self.points_counted}


def hypervolume(points: Iterable[tuple[float, float]], window: tuple[float, float], top1_floor: float,
                top1_ceiling: float = 100.0) -> Hypervolume:
    """Hypervolume of (MFLOPs, top-1) points, minimizing MFLOPs and maximizing top-1.

    The reference point is (window's MFLOPs max, `top1_floor`); a point outside the MFLOPs window or
    at or below the floor contributes nothing. Normalized by the box window x [floor, ceiling].
    """
    low, high = window
    if not low < high or not top1_floor < top1_ceiling:
        raise ValueError(f"empty hypervolume box: window {window}, top-1 from {top1_floor} to {top1_ceiling}")
    inside = np.array([(m, t) for m, t in points if low <= m <= high and t > top1_floor], dtype=float)
    area = float(moocore.hypervolume(inside, ref=[high, top1_floor], maximise=[False, True])) if len(inside) else 0.0
    return Hypervolume(raw=area, normalized=area / ((high - low) * (top1_ceiling - top1_floor)),
                       reference_point=(high, top1_floor), window=(low, high), top1_floor=top1_floor,
                       points_counted=len(inside))


def choose_at_targets(candidates: Sequence[Candidate],
                      targets: Sequence[float]) -> list[tuple[str, float, Candidate]]:
    """(name, target, best-top-1 candidate with MFLOPs <= target) per target, named a0, a1, ... by target."""
    chosen = []
    for index, target in enumerate(sorted(targets)):
        fitting = [c for c in candidates if c.mflops <= target]
        if not fitting:
            raise ValueError(f"no evaluated subnet has at most {target} MFLOPs")
        chosen.append((f"a{index}", float(target), max(fitting, key=lambda c: (c.top1, -c.mflops))))
    return chosen


class EvolutionarySearch:
    """Evolution with a FLOPs-bucket Pareto archive; `run` returns every evaluated candidate."""

    def __init__(self, space: SearchSpace, fitness: Fitness, settings: SearchSpec, seed: int,
                 predictor: AccuracyPredictor | None = None):
        self.space, self.fitness, self.settings, self.predictor = space, fitness, settings, predictor
        self.rng = random.Random(seed)
        self.low, self.high = flops_range(space)
        self.targets = sorted(t for t in settings.targets_mflops if self.low <= t <= self.high)
        self.archive = ParetoArchive(self.low, self.high, settings.buckets, self.targets)
        self.evaluated: dict[Subnet, Candidate] = {}

    def _in_range(self, subnet: Subnet, within: tuple[float, float] | None = None) -> bool:
        """Inside the space's FLOPs range, and inside (lower, upper] when `within` is given."""
        cost = mflops(self.space, subnet)
        inside = within is None or within[0] < cost <= within[1]
        return self.low <= cost <= self.high and inside

    def _evaluate(self, subnets: Sequence[Subnet], generation: int) -> None:
        for subnet, top1 in zip(subnets, self.fitness(subnets), strict=True):
            cost = count(self.space, subnet)
            candidate = Candidate(generation, subnet, cost.mflops, cost.params_m, float(top1))
            self.evaluated[subnet] = candidate
            self.archive.offer(candidate)

    def _draw_new(self, draw: Callable[[], Subnet], taken: set[Subnet],
                  within: tuple[float, float] | None = None) -> Subnet | None:
        """A draw inside the FLOPs range (and `within`) not evaluated or taken yet, or None after
        `max_tries` draws."""
        for _ in range(self.settings.max_tries):
            subnet = draw()
            if subnet not in self.evaluated and subnet not in taken and self._in_range(subnet, within):
                taken.add(subnet)
                return subnet
        return None

    def initial_population(self) -> list[Subnet]:
        population = list(dict.fromkeys([self.space.min_subnet(), self.space.max_subnet()]))
        taken = set(population)
        for _ in range(self.settings.population):
            subnet = self._draw_new(lambda: self.space.sample_uniform(self.rng), taken)
            if subnet is not None:
                population.append(subnet)
        return population

    def _mutant(self) -> Subnet:
        parent = self.rng.choice(self.archive.members).subnet
        return self.space.mutate(parent, self.rng, self.settings.mutation_prob)

    def _crossover(self) -> Subnet:
        members = self.archive.members
        first, second = self.rng.sample(members, 2) if len(members) > 1 else (members[0], members[0])
        return self.space.crossover(first.subnet, second.subnet, self.rng)

    def target_gaps(self) -> list[tuple[float, float]]:
        """The FLOPs intervals (previous target, target] in which the front of the subnets evaluated so far
        has no member: there the target would repeat a cheaper target's model."""
        front = [c.mflops for c in pareto_front(self.evaluated.values())]
        intervals = zip([-np.inf, *self.targets[:-1]], self.targets, strict=True)
        return [(lower, upper) for lower, upper in intervals if not any(lower < m <= upper for m in front)]

    def _bred_into(self, lower: float, upper: float) -> Subnet:
        """A child meant for (lower, upper]: a crossover of the archive members nearest below and above
        the interval (or a mutant of the one side there is), then mutated."""
        members = self.archive.members
        below = [m for m in members if m.mflops <= lower]
        above = [m for m in members if m.mflops > upper]
        parents = [side(group, key=lambda c: c.mflops).subnet for side, group in ((max, below), (min, above))
                   if group] or [self.rng.choice(members).subnet]
        child = self.space.crossover(*parents, self.rng) if len(parents) == 2 else parents[0]
        return self.space.mutate(child, self.rng, self.settings.mutation_prob)

    def gap_children(self, taken: set[Subnet]) -> list[Subnet]:
        """`gap_children` new subnets inside each target gap (fewer where `max_tries` draws find none)."""
        children = []
        for lower, upper in self.target_gaps():
            for _ in range(self.settings.gap_children):
                child = self._draw_new(lambda lower=lower, upper=upper: self._bred_into(lower, upper), taken,
                                       within=(lower, upper))
                if child is not None:
                    children.append(child)
        return children

    def offspring(self) -> list[Subnet]:
        """One generation's children: mutants and crossovers (with a predictor, the most promising quarter
        of 4x as many), then the gap children."""
        factor = PREFILTER_FACTOR if self.predictor is not None else 1
        taken: set[Subnet] = set()
        children = []
        for draw, wanted in ((self._mutant, self.settings.mutations_per_generation),
                             (self._crossover, self.settings.crossovers_per_generation)):
            for _ in range(wanted * factor):
                child = self._draw_new(draw, taken)
                if child is not None:
                    children.append(child)
        if self.predictor is not None:
            keep = self.settings.mutations_per_generation + self.settings.crossovers_per_generation
            children = self._most_promising(children, keep)
        return children + self.gap_children(set(children))

    def _most_promising(self, children: list[Subnet], keep: int) -> list[Subnet]:
        """The `keep` children with the largest predicted gain over the archive's best in their bucket.

        Ranking by predicted top-1 alone would keep only the largest children and starve the cheap end of
        the front; an empty bucket counts as an infinite gain.
        """
        members = self.archive.members
        predicted = self.predictor.predict(self.space, [*children, *(m.subnet for m in members)])
        bucket_best = {self.archive.bucket(m.mflops): p for m, p in zip(members, predicted[len(children):],
                                                                           strict=True)}
        gains = [p - bucket_best.get(self.archive.bucket(mflops(self.space, c)), -np.inf)
                 for c, p in zip(children, predicted[:len(children)], strict=True)]
        order = sorted(range(len(children)), key=lambda i: -gains[i])
        return [children[i] for i in sorted(order[:keep])]

    def run(self, progress: bool = True) -> list[Candidate]:
        self._evaluate(self.initial_population(), generation=0)
        bar = progress_bar(range(1, self.settings.generations + 1), desc="search generations",
                   disable=not progress)
        for generation in bar:
            children = self.offspring()
            if not children:
                break
            self._evaluate(children, generation)
            best = max(self.evaluated.values(), key=lambda c: c.top1)
            bar.set_postfix(evaluated=len(self.evaluated), archive=len(self.archive.best),
                            best_top1=f"{best.top1:.2f}")
        return list(self.evaluated.values())


def candidate_row(candidate: Candidate) -> dict[str, Any]:
    return {"generation": candidate.generation, "subnet": candidate.subnet.to_json(),
            "mflops": candidate.mflops, "params_m": candidate.params_m, "top1_search": candidate.top1}
