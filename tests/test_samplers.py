import random
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.linear_model import LinearRegression

from attentivenas.config import merge, validate_config
from attentivenas.errors import UserInputError
from attentivenas.flops import mflops
from attentivenas.io import read_csv
from attentivenas.predictor import AccuracyPredictor, load_predictor, save_predictor
from attentivenas.samplers import (
    AttentiveSampler,
    FlopsTable,
    FlopsTableError,
    LossEstimator,
    PredictorEstimator,
    UniformSampler,
    build_sampler,
    frozen_bn_statistics,
)
from attentivenas.space import SearchSpace
from attentivenas.specs import ExperimentSpec
from attentivenas.stages import stage_job, training_stage
from attentivenas.supernet import Supernet

FMNIST = SearchSpace.load("fmnist")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def table() -> FlopsTable:
    return FlopsTable.build(FMNIST, 2000, random.Random(0))


def _predictor(tmp_path) -> AccuracyPredictor:
    """A linear 'accuracy' rising with width and depth, fitted and read back through the predictor files."""
    rng = random.Random(1)
    subnets = [FMNIST.sample_uniform(rng) for _ in range(200)]
    features = np.array([FMNIST.encode(s) for s in subnets])
    target = np.array([sum(s.width) / 10 + 3 * sum(s.depth) - s.resolution / 8 for s in subnets])
    path = tmp_path / "predictor.npz"
    save_predictor(path, AccuracyPredictor(LinearRegression().fit(features, target), "fmnist",
                                           FMNIST.encoding_length))
    return load_predictor(path, FMNIST)


def test_uniform_sampler_covers_every_choice_and_resumes_exactly():
    sampler = UniformSampler(FMNIST, random.Random(3))
    draws = [FMNIST.to_genes(sampler.sample()) for _ in range(300)]
    for gene, values in zip(FMNIST.genes, zip(*draws, strict=True), strict=True):
        assert set(values) == set(gene.choices), gene.label
    state = sampler.state_dict()
    ahead = [sampler.sample() for _ in range(5)]
    resumed = UniformSampler(FMNIST, random.Random(99))
    resumed.load_state_dict(state)
    assert [resumed.sample() for _ in range(5)] == ahead


def test_flops_table_bins_marginals_and_histogram(table, tmp_path):
    assert len(table.subnets) == 2000
    for subnet, b in zip(table.subnets[:200], table.bins[:200], strict=True):
        assert b * table.bin_width <= mflops(FMNIST, subnet) < (b + 1) * table.bin_width
    heaviest = table.occupied_bins[-1]
    marginal = table.marginal(heaviest)
    in_bin = [s for s, b in zip(table.subnets, table.bins, strict=True) if b == heaviest]
    assert len(marginal) == FMNIST.encoding_length
    assert marginal[0] == {r: n / len(in_bin) for r, n in Counter(s.resolution for s in in_bin).items()}
    assert all(abs(sum(m.values()) - 1) < 1e-9 for m in marginal)

    table.save_histogram(tmp_path / "hist.csv")
    rows = read_csv(tmp_path / "hist.csv")
    assert list(rows[0]) == ["bin_low", "bin_high", "count", "prior"]
    assert sum(int(r["count"]) for r in rows) == 2000
    assert abs(sum(float(r["prior"]) for r in rows) - 1) < 1e-9
    assert float(rows[0]["bin_low"]) <= table.mflops.min() < float(rows[0]["bin_high"])
    assert all(float(b["bin_low"]) == pytest.approx(float(a["bin_high"])) for a, b in zip(rows, rows[1:], strict=False))


def test_flops_table_save_load_roundtrip(table, tmp_path):
    path = tmp_path / "table.csv"
    table.save(path)
    loaded = FlopsTable.load(path, FMNIST)
    assert loaded.subnets == table.subnets
    assert np.array_equal(loaded.bins, table.bins) and loaded.counts == table.counts
    assert np.allclose(loaded.mflops, table.mflops, atol=1e-6)
    assert all(loaded.marginal(b) == table.marginal(b) for b in table.occupied_bins)
    with pytest.raises(FlopsTableError, match="columns of space 'cifar10'"):
        FlopsTable.load(path, SearchSpace.load("cifar10"))


def test_paper_space_prior_is_heavy_in_the_middle():
    """The empirical prior the spec warns about: median near 720 MFLOPs, almost nothing below 300."""
    space = SearchSpace.load("attentivenas")
    paper = FlopsTable.build(space, 2000, random.Random(0))
    assert 650 < np.median(paper.mflops) < 800
    assert (paper.mflops < 300).mean() < 0.01
    bins, empirical = paper.prior("empirical")
    light = [p for b, p in zip(bins, empirical, strict=True) if (b + 1) * paper.bin_width <= 400]
    assert sum(light) < 0.05 and len(light) / len(bins) > 0.05


def test_empirical_and_uniform_priors_drive_the_bin_draws(table):
    bins, empirical = table.prior("empirical")
    assert empirical == pytest.approx([table.counts[b] / 2000 for b in bins])
    assert table.prior("uniform")[1] == pytest.approx([1 / len(bins)] * len(bins))
    with pytest.raises(FlopsTableError, match="sampler.prior"):
        table.prior("flat")
    draws = 6000
    for prior, expected in (("empirical", empirical), ("uniform", [1 / len(bins)] * len(bins))):
        sampler = AttentiveSampler(FMNIST, random.Random(0), table, estimator=None, prior=prior)
        counts = Counter(sampler.draw_bin() for _ in range(draws))
        observed = np.array([counts[b] / draws for b in bins])
        assert np.abs(observed - np.array(expected)).max() < 0.02, prior


def test_attentive_candidates_land_in_their_bin(table):
    sampler = AttentiveSampler(FMNIST, random.Random(0), table, estimator=None, k=3, max_tries=100)
    for _ in range(100):
        bin_index, candidates = sampler.draw_candidates()
        assert len(candidates) == 3
    assert sampler.stats()["in_bin_rate"] > 0.97
    lazy = AttentiveSampler(FMNIST, random.Random(0), table, estimator=None, k=3, max_tries=1)
    for _ in range(100):
        lazy.draw_candidates()
    assert lazy.stats()["tries_per_candidate"] == 1 and lazy.stats()["in_bin_rate"] < 0.9
    bin_index, candidates = sampler.draw_candidates()
    assert {table.bin_of(c) for c in candidates} == {bin_index}


def test_predictor_estimator_bestup_and_worstup(table, tmp_path):
    estimator = PredictorEstimator(_predictor(tmp_path), FMNIST)
    for mode, pick in (("bestup", np.argmax), ("worstup", np.argmin)):
        sampler = AttentiveSampler(FMNIST, random.Random(5), table, estimator, mode=mode, k=4)
        for _ in range(10):
            chosen = sampler.sample()
            predicted = estimator.predictor.predict(FMNIST, sampler.last_candidates)
            assert np.array_equal(sampler.last_scores, predicted)
            assert chosen == sampler.last_candidates[int(pick(predicted))]
            assert len(set(predicted)) > 1


def test_loss_estimator_picks_by_minibatch_loss_without_touching_bn_or_rng(table):
    torch.manual_seed(0)
    supernet = Supernet(FMNIST).train()
    for module in supernet.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 0.5  # would move the running statistics if the estimator let it
            module.running_mean.uniform_()
    buffers = {k: v.clone() for k, v in supernet.state_dict().items()}
    images, labels = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    supernet.set_active_subnet(FMNIST.max_subnet(), regularize=True)
    rng_before = torch.get_rng_state()
    for mode in ("bestup", "worstup"):
        sampler = AttentiveSampler(FMNIST, random.Random(2), table, LossEstimator(supernet, 0.1), mode=mode, k=3)
        chosen = sampler.sample(images, labels)
        losses = []
        with torch.no_grad(), frozen_bn_statistics(supernet):
            for candidate in sampler.last_candidates:
                supernet.set_active_subnet(candidate)
                losses.append(F.cross_entropy(supernet(images), labels, label_smoothing=0.1).item())
        supernet.set_active_subnet(FMNIST.max_subnet(), regularize=True)
        assert np.allclose(-sampler.last_scores, losses, atol=1e-5)
        pick = np.argmin(losses) if mode == "bestup" else np.argmax(losses)
        assert chosen == sampler.last_candidates[int(pick)]
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert all(torch.equal(v, buffers[k]) for k, v in supernet.state_dict().items())
    assert supernet.active_subnet == FMNIST.max_subnet() and supernet.regularize
    assert {m.momentum for m in supernet.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {0.5}


@pytest.mark.parametrize("score_images", [5, None, 64])
def test_loss_estimator_scores_on_the_first_score_images_and_counts_them(table, score_images):
    torch.manual_seed(0)
    supernet = Supernet(FMNIST).train()
    images, labels = torch.randn(12, 1, 28, 28), torch.randint(0, 10, (12,))
    sampler = AttentiveSampler(FMNIST, random.Random(2), table, LossEstimator(supernet, 0.1, score_images), k=3)
    sampler.sample(images, labels)
    first_candidates = sampler.last_candidates
    seen = 12 if score_images is None else min(score_images, 12)
    losses = []
    with torch.no_grad(), frozen_bn_statistics(supernet):
        for candidate in sampler.last_candidates:
            supernet.set_active_subnet(candidate)
            losses.append(F.cross_entropy(supernet(images[:seen]), labels[:seen], label_smoothing=0.1).item())
    assert np.allclose(-sampler.last_scores, losses, atol=1e-5)
    if seen < 12:  # batch statistics of the sub-batch, not a slice of the whole batch's losses
        with torch.no_grad(), frozen_bn_statistics(supernet):
            supernet.set_active_subnet(sampler.last_candidates[0])
            whole = F.cross_entropy(supernet(images), labels, label_smoothing=0.1).item()
        assert abs(whole - losses[0]) > 1e-4
    sampler.sample(images, labels)
    stats = sampler.stats()
    assert stats["scoring_forwards"] == 6 and stats["images_scored"] == 6 * seen
    assert stats["scoring_mflops"] == pytest.approx(seen * sum(mflops(FMNIST, c) for c in sampler.last_candidates)
                                                    + seen * sum(mflops(FMNIST, c) for c in first_candidates))
    assert sampler.describe()["score_images"] == score_images

    state = sampler.state_dict()
    resumed = AttentiveSampler(FMNIST, random.Random(0), table, LossEstimator(supernet, 0.1, score_images), k=3)
    resumed.load_state_dict(state)
    assert resumed.stats()["images_scored"] == 6 * seen and resumed.stats()["candidates_drawn"] == 6
    assert resumed.stats()["scoring_mflops"] == stats["scoring_mflops"]


def test_loss_estimator_rejects_a_non_positive_sub_batch():
    with pytest.raises(UserInputError, match="sampler.score_images"):
        LossEstimator(Supernet(FMNIST), 0.1, 0)


def test_predictor_and_uniform_sampling_score_no_images(table, tmp_path):
    sampler = AttentiveSampler(FMNIST, random.Random(8), table, PredictorEstimator(_predictor(tmp_path), FMNIST))
    sampler.sample()
    assert sampler.stats()["scoring_forwards"] == 0 and sampler.stats()["images_scored"] == 0
    assert UniformSampler(FMNIST, random.Random(0)).stats() == {"scoring_forwards": 0, "images_scored": 0,
                                                                "scoring_mflops": 0.0}


def test_attentive_sampler_resumes_exactly(table, tmp_path):
    estimator = PredictorEstimator(_predictor(tmp_path), FMNIST)
    sampler = AttentiveSampler(FMNIST, random.Random(8), table, estimator)
    [sampler.sample() for _ in range(3)]
    state = sampler.state_dict()
    ahead = [sampler.sample() for _ in range(5)]
    resumed = AttentiveSampler(FMNIST, random.Random(0), table, estimator)
    resumed.load_state_dict(state)
    assert [resumed.sample() for _ in range(5)] == ahead


def job(config, run):
    return stage_job(ExperimentSpec.from_dict(config), training_stage(run), run)


def test_factory_follows_the_config(tiny_config_dict, tmp_path):
    config = validate_config({**tiny_config_dict, "sampler": {"table_size": 500, "prior": "uniform",
                                                              "max_tries": 7},
                              "methods": {"bignas": {"sampler": "uniform"},
                                          "worst_pred": {"sampler": "attentive", "mode": "worstup", "k": 2,
                                                         "estimator": "predictor"}}})
    assert isinstance(build_sampler(job(config, "warmup"), FMNIST), UniformSampler)
    assert isinstance(build_sampler(job(config, "bignas"), FMNIST), UniformSampler)
    sampler = build_sampler(job(config, "worst_pred"), FMNIST, predictor=_predictor(tmp_path))
    assert sampler.describe() == {"sampler": "attentive", "mode": "worstup", "k": 2, "estimator": "predictor",
                                  "prior": "uniform", "max_tries": 7, "table_size": 500, "bin_width": 0.25}
    again = build_sampler(job(config, "worst_pred"), FMNIST, predictor=_predictor(tmp_path))
    assert [sampler.sample() for _ in range(4)] == [again.sample() for _ in range(4)]
    with pytest.raises(UserInputError, match="--predictor"):
        build_sampler(job(config, "worst_pred"), FMNIST)
    for score_images in (16, None):
        scored = validate_config(merge(config, {"sampler": {"score_images": score_images},
                                                "methods": {"loss": {"sampler": "attentive"}}}))
        loss = build_sampler(job(scored, "loss"), FMNIST, supernet=Supernet(FMNIST))
        assert loss.estimator.score_images == score_images and loss.describe()["score_images"] == score_images
    assert validate_config(tiny_config_dict)["sampler"]["score_images"] == 32
    with pytest.raises(UserInputError, match=r"unknown method 'bestup': config key 'methods' defines bignas, worst_pr"):
        job(config, "bestup")
