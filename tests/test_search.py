import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import Ridge
from torch import nn

from attentivenas.__main__ import main
from attentivenas.checkpoint import save_checkpoint, supernet_state
from attentivenas.export import EVALUATION_FILE, load_exported
from attentivenas.flops import count, mflops
from attentivenas.io import read_csv, read_json
from attentivenas.predictor import AccuracyPredictor, sample_distinct, save_predictor
from attentivenas.search import (
    Candidate,
    EvolutionarySearch,
    ParetoArchive,
    choose_at_targets,
    flops_range,
    hypervolume,
    pareto_front,
)
from attentivenas.space import SearchSpace
from attentivenas.specs import SearchSpec
from attentivenas.supernet import Supernet

SETTINGS = SearchSpec(population=6, generations=3, mutations_per_generation=4, crossovers_per_generation=3,
            mutation_prob=0.3, buckets=4, max_tries=50, predictor_prefilter=False,
            targets_mflops=[1.0, 3.0], gap_children=0)


@pytest.fixture(scope="module")
def space():
    return SearchSpace.load("fmnist")


def _point(m: float, t: float, generation: int = 0) -> Candidate:
    return Candidate(generation, None, m, 0.0, t)


def _fitness(space, calls):
    """Top-1 rising with MFLOPs and with kernel sizes: cheap and deterministic; records every call."""
    def fitness(subnets):
        calls.extend(subnets)
        return [50 + 5 * mflops(space, s) + sum(s.kernel_size) for s in subnets]
    return fitness


# ---------------------------------------------------------------- hypervolume by hand

def test_hypervolume_single_point():
    hv = hypervolume([(2.0, 80.0)], window=(1.0, 6.0), top1_floor=70.0)
    assert hv.raw == pytest.approx((6 - 2) * (80 - 70))
    assert hv.normalized == pytest.approx(40 / (5 * 30))
    assert hv.reference_point == (6.0, 70.0) and hv.points_counted == 1


def test_hypervolume_two_points_and_dominated_points():
    two = hypervolume([(2.0, 80.0), (4.0, 90.0)], window=(1.0, 6.0), top1_floor=70.0)
    assert two.raw == pytest.approx((4 - 2) * 10 + (6 - 4) * 20)
    with_dominated = hypervolume([(4.0, 90.0), (2.0, 80.0), (3.0, 75.0), (5.0, 85.0), (4.0, 89.0)],
                                 window=(1.0, 6.0), top1_floor=70.0)
    assert with_dominated.raw == pytest.approx(two.raw)


def test_hypervolume_ignores_points_outside_window_or_below_floor():
    base = hypervolume([(2.0, 80.0)], window=(1.0, 6.0), top1_floor=70.0)
    outside = hypervolume([(2.0, 80.0), (0.5, 99.0), (7.0, 99.0), (3.0, 65.0), (3.0, 70.0)],
                          window=(1.0, 6.0), top1_floor=70.0)
    assert outside.raw == pytest.approx(base.raw) and outside.points_counted == 1
    empty = hypervolume([], window=(1.0, 6.0), top1_floor=70.0)
    assert empty.raw == 0 and empty.normalized == 0
    full = hypervolume([(1.0, 100.0)], window=(1.0, 6.0), top1_floor=70.0)
    assert full.normalized == pytest.approx(1.0)
    with pytest.raises(ValueError, match="empty hypervolume box"):
        hypervolume([], window=(6.0, 1.0), top1_floor=70.0)


# ---------------------------------------------------------------- the library against the sweep it replaced

def _sweep_front(points):
    """The hand-written front this module had before it used moocore: the oracle for the cross-check."""
    front = []
    for m, t in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or t > front[-1][1]:
            front.append((m, t))
    return front


def _sweep_hypervolume(points, window, floor):
    low, high = window
    inside = sorted((m, t) for m, t in points if low <= m <= high and t > floor)
    area, best = 0.0, floor
    for i, (m, t) in enumerate(inside):
        best = max(best, t)
        next_m = inside[i + 1][0] if i + 1 < len(inside) else high
        area += (next_m - m) * (best - floor)
    return area


# coarse grids make ties in MFLOPs, in top-1 and exact duplicates common
_fronts = st.lists(st.tuples(st.integers(0, 40).map(lambda i: i / 5), st.integers(0, 50).map(lambda i: 50 + i)),
                   max_size=40)


@settings(max_examples=300, deadline=None)
@given(points=_fronts)
def test_moocore_front_and_hypervolume_agree_with_the_sweep(points):
    assert [(c.mflops, c.top1) for c in pareto_front([_point(m, t) for m, t in points])] == _sweep_front(points)
    hv = hypervolume(points, window=(1.0, 6.0), top1_floor=70.0)
    assert hv.raw == pytest.approx(_sweep_hypervolume(points, (1.0, 6.0), 70.0), rel=1e-12, abs=1e-12)


def test_pareto_front_keeps_the_first_of_equal_candidates():
    first, second = Candidate(0, "first", 2.0, 0.0, 70.0), Candidate(1, "second", 2.0, 0.0, 70.0)
    assert pareto_front([first, second]) == [first] and pareto_front([second, first]) == [second]
    assert pareto_front([]) == []


# ---------------------------------------------------------------- front, archive, choice

def test_pareto_front_keeps_non_dominated_points():
    points = [_point(1, 60), _point(2, 70), _point(2, 65), _point(3, 68), _point(4, 80), _point(5, 80)]
    assert [(c.mflops, c.top1) for c in pareto_front(points)] == [(1, 60), (2, 70), (4, 80)]


def test_archive_keeps_best_per_equal_width_bucket():
    archive = ParetoArchive(0.0, 4.0, buckets=4)
    assert [archive.bucket(m) for m in (0.0, 0.99, 1.0, 1.01, 3.5, 4.0)] == [0, 0, 0, 1, 3, 3]
    assert archive.offer(_point(0.5, 70)) and not archive.offer(_point(0.6, 69))
    assert archive.offer(_point(0.7, 75)) and archive.offer(_point(3.9, 60))
    assert [(c.mflops, c.top1) for c in archive.members] == [(0.7, 75), (3.9, 60)]


def test_archive_buckets_split_at_the_targets():
    archive = ParetoArchive(0.0, 4.0, buckets=2, edges=[0.5, 2.0, 3.0, 9.0])
    assert archive.edges == [0.5, 2.0, 3.0] and archive.buckets == 4
    assert [archive.bucket(m) for m in (0.5, 0.6, 2.0, 2.5, 3.5)] == [0, 1, 1, 2, 3], "a target's fits are below it"


def test_choose_at_targets_takes_best_under_each_target():
    points = [_point(1, 60), _point(1.5, 72), _point(2, 70), _point(3, 80)]
    chosen = choose_at_targets(points, [2.5, 1.2, 3.0])
    assert [(name, target, c.top1) for name, target, c in chosen] == [("a0", 1.2, 60), ("a1", 2.5, 72),
                                                                        ("a2", 3.0, 80)]
    with pytest.raises(ValueError, match="at most 0.5"):
        choose_at_targets(points, [0.5])


# ---------------------------------------------------------------- evolution

def test_search_never_evaluates_a_subnet_twice_and_is_deterministic(space):
    calls = []
    candidates = EvolutionarySearch(space, _fitness(space, calls), SETTINGS, seed=0).run(progress=False)
    assert len(calls) == len(set(calls)) == len(candidates)
    generations = [c.generation for c in candidates]
    assert generations.count(0) == SETTINGS.population + 2
    for g in range(1, SETTINGS.generations + 1):
        assert 0 < generations.count(g) <= (SETTINGS.mutations_per_generation
                                            + SETTINGS.crossovers_per_generation)
    assert {space.min_subnet(), space.max_subnet()} <= set(calls)
    low, high = flops_range(space)
    assert all(low <= c.mflops <= high for c in candidates)
    again = EvolutionarySearch(space, _fitness(space, []), SETTINGS, seed=0).run(progress=False)
    assert again == candidates
    other = EvolutionarySearch(space, _fitness(space, []), SETTINGS, seed=1).run(progress=False)
    assert [c.subnet for c in other] != [c.subnet for c in candidates]


def test_archive_holds_best_evaluated_per_bucket(space):
    search = EvolutionarySearch(space, _fitness(space, []), SETTINGS, seed=2)
    candidates = search.run(progress=False)
    for key, best in search.archive.best.items():
        in_bucket = [c.top1 for c in candidates if search.archive.bucket(c.mflops) == key]
        assert best.top1 == max(in_bucket)


def test_offspring_holds_only_subnets_not_evaluated_yet(space):
    search = EvolutionarySearch(space, _fitness(space, []), replace(SETTINGS, mutation_prob=0.0,
                                                                    crossovers_per_generation=0), seed=0)
    search._evaluate(search.initial_population(), generation=0)
    # with no gene re-drawn, every mutant equals its parent, which is already evaluated: none is new
    assert search.offspring() == []


TARGETS = [0.6, 1.0, 1.5, 2.0, 3.0, 4.0, 5.5]  # the default config's


def _distinct_chosen(candidates) -> int:
    return len({c.subnet for _, _, c in choose_at_targets(candidates, TARGETS)})


def test_gap_children_are_bred_into_the_target_intervals_the_front_misses(space):
    settings = replace(SETTINGS, population=2, targets_mflops=TARGETS, gap_children=2)
    search = EvolutionarySearch(space, _fitness(space, []), settings, seed=0)
    search._evaluate(search.initial_population(), generation=0)
    gaps = search.target_gaps()
    assert len(gaps) >= 3, "min, max and two uniform subnets leave most target intervals empty"
    front = pareto_front(search.evaluated.values())
    assert not any(lower < c.mflops <= upper for c in front for lower, upper in gaps)
    children = search.gap_children(set())
    assert len(set(children)) == len(children) and not set(children) & set(search.evaluated)
    inside = [sum(lower < mflops(space, c) <= upper for c in children) for lower, upper in gaps]
    assert all(n <= 2 for n in inside) and sum(inside) == len(children) >= len(gaps)


def test_gap_children_give_distinct_targets_distinct_models(space):
    settings = replace(SETTINGS, population=8, generations=2, targets_mflops=TARGETS)
    without = EvolutionarySearch(space, _fitness(space, []), settings, seed=0).run(progress=False)
    search = EvolutionarySearch(space, _fitness(space, []), replace(settings, gap_children=2), seed=0)
    with_gaps = search.run(progress=False)
    assert _distinct_chosen(without) < _distinct_chosen(with_gaps) == len(TARGETS)
    assert search.target_gaps() == []


class _CheapFirst:
    """A stand-in predictor that prefers cheap subnets."""

    def predict(self, space, subnets):
        return np.array([-mflops(space, s) for s in subnets])


def test_predictor_prefilter_keeps_most_promising_quarter(space):
    search = EvolutionarySearch(space, _fitness(space, []), SETTINGS, seed=0, predictor=_CheapFirst())
    search._evaluate(search.initial_population(), generation=0)
    children = search.offspring()
    assert len(children) == SETTINGS.mutations_per_generation + SETTINGS.crossovers_per_generation
    assert not set(children) & set(search.evaluated)
    plain = EvolutionarySearch(space, _fitness(space, []), SETTINGS, seed=0)
    plain._evaluate(plain.initial_population(), generation=0)
    assert len(plain.offspring()) == len(children)

    pool = sample_distinct(space, 20, seed=5)
    best_in_bucket = {search.archive.bucket(m.mflops): -m.mflops for m in search.archive.members}

    def gain(subnet):
        return -mflops(space, subnet) - best_in_bucket.get(search.archive.bucket(mflops(space, subnet)), -np.inf)

    kept = search._most_promising(pool, 5)
    assert len(kept) == 5 and set(kept) <= set(pool)
    assert sorted(map(gain, kept)) == sorted(map(gain, pool))[-5:]


# ---------------------------------------------------------------- python -m attentivenas search

def _checkpoint(path, space_name="fmnist"):
    torch.manual_seed(0)
    net = Supernet(SearchSpace.load(space_name))
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.weight.data.uniform_(0.5, 1.5)
    save_checkpoint(path, supernet_state(net))
    return path


@pytest.fixture
def search_config(tmp_path, tiny_config_dict):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        **tiny_config_dict, "data": {**tiny_config_dict["data"], "search_holdout": 100},
        "evaluation": {"calibration_images": 32, "calibration_batch_size": 32, "batch_size": 250},
        "search": {"population": 2, "generations": 1, "mutations_per_generation": 2, "crossovers_per_generation": 1,
                   "buckets": 3, "targets_mflops": [1.0, 1.1, 0.9]}}))
    return config


def test_search_command_writes_front_chosen_models_and_hypervolume(space, tmp_path, search_config):
    out = tmp_path / "search"
    assert main(["search", "--config", str(search_config), "--checkpoint", str(_checkpoint(tmp_path / "s.pt")),
                 "--out-dir", str(out), "--threads", "1"]) == 0
    evaluated = read_csv(out / "evaluated.csv")
    subnets = [space.validate(json.loads(r["subnet"])) for r in evaluated]
    assert len(subnets) == len(set(subnets)) and len(subnets) >= 4
    front = read_csv(out / "front.csv")
    assert [float(r["mflops"]) for r in front] == sorted(float(r["mflops"]) for r in front)
    assert [float(r["top1_search"]) for r in front] == sorted(float(r["top1_search"]) for r in front)
    chosen = read_csv(out / "chosen.csv")
    assert [(r["name"], float(r["target"])) for r in chosen] == [("a0", 0.9), ("a1", 1.0), ("a2", 1.1)]
    for row in chosen:
        fitting = [float(r["top1_search"]) for r in evaluated if float(r["mflops"]) <= float(row["target"])]
        assert float(row["top1_search"]) == max(fitting) and float(row["mflops"]) <= float(row["target"])
        subnet = space.load_subnet(out / "chosen" / f"{row['name']}.json")
        assert subnet.to_json() == row["subnet"]
        exported = out / "chosen" / row["name"]
        assert float(row["top1_test"]) == read_json(exported / EVALUATION_FILE)["top1"]
        assert read_json(exported / EVALUATION_FILE)["split"] == "test"
        assert load_exported(exported).resolution == subnet.resolution
    hv = read_json(out / "hypervolume.json")
    floor = SearchSpace.load("fmnist").hypervolume_top1_floor
    assert hv["reference_point"] == {"mflops": 6.0, "top1": floor} and hv["window_mflops"] == [0.4, 6.0]
    expected = hypervolume([(float(r["mflops"]), float(r["top1_test"])) for r in chosen], (0.4, 6.0), floor)
    assert hv["chosen_test"]["raw"] == pytest.approx(expected.raw)
    summary = read_json(out / "summary.json")
    assert summary["evaluated"] == len(evaluated)
    assert summary["images_processed"] == len(evaluated) * (32 + 100) + summary["chosen_distinct"] * (32 + 500)
    assert count(space, subnets[0]).mflops == pytest.approx(float(evaluated[0]["mflops"]))


def test_search_command_checks_inputs_before_work(tmp_path, search_config, tiny_config_dict, capsys, space):
    base = ["search", "--config", str(search_config), "--out-dir", str(tmp_path / "out")]
    assert main([*base, "--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main([*base, "--checkpoint", str(_checkpoint(tmp_path / "c.pt", "cifar10"))]) == 2
    assert "cifar10" in capsys.readouterr().err
    checkpoint = str(_checkpoint(tmp_path / "s.pt"))
    predictor = tmp_path / "p.npz"
    ridge = Ridge().fit(np.zeros((2, space.encoding_length)), [0.0, 1.0])
    save_predictor(predictor, AccuracyPredictor(ridge, space.name, space.encoding_length))
    assert main([*base, "--checkpoint", checkpoint, "--predictor", str(predictor)]) == 2
    assert "search.predictor_prefilter" in capsys.readouterr().err
    prefilter = tmp_path / "prefilter.yaml"
    prefilter.write_text(yaml.safe_dump({**tiny_config_dict, "search": {"predictor_prefilter": True,
                                                                        "targets_mflops": [2.0]}}))
    assert main(["search", "--config", str(prefilter), "--out-dir", str(tmp_path / "out"),
                 "--checkpoint", checkpoint]) == 2
    assert "--predictor" in capsys.readouterr().err
    no_targets = tmp_path / "no_targets.yaml"
    no_targets.write_text(yaml.safe_dump(tiny_config_dict))
    assert main(["search", "--config", str(no_targets), "--out-dir", str(tmp_path / "out"),
                 "--checkpoint", checkpoint]) == 2
    assert "search.targets_mflops" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
