import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import yaml
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import Ridge

from attentivenas.__main__ import main
from attentivenas.checkpoint import save_checkpoint, supernet_state
from attentivenas.errors import UserInputError
from attentivenas.evaluation import EvalResult
from attentivenas.flops import count
from attentivenas.io import read_csv, read_json, write_csv
from attentivenas.predictor import (
    PredictorError,
    SampleTable,
    build_regressor,
    fit_predictor,
    load_predictor,
    rank_metrics,
    read_sample_table,
    sample_distinct,
    sample_rows,
    save_predictor,
)
from attentivenas.space import SearchSpace
from attentivenas.specs import PredictorSpec
from attentivenas.supernet import Supernet

SETTINGS = PredictorSpec(model="random_forest", params={}, holdout_fraction=0.5, flops_bins=3)


@pytest.fixture(scope="module")
def space():
    return SearchSpace.load("fmnist")


def _synthetic_rows(space: SearchSpace, n: int, seed: int = 0) -> list[dict]:
    """Sample-table rows whose top-1 grows with MFLOPs and resolution, plus a little noise."""
    subnets = sample_distinct(space, n, seed)
    noise = np.random.default_rng(seed).normal(0, 0.3, n)
    results = []
    for subnet, e in zip(subnets, noise, strict=True):
        cost = count(space, subnet)
        top1 = 60 + 5 * cost.mflops + 0.2 * subnet.resolution + sum(subnet.kernel_size) + e
        results.append(EvalResult(top1=top1, loss=1.0, images=100, mflops=cost.mflops, params_m=cost.params_m))
    return sample_rows(space, subnets, results)


def _table(space, rows) -> SampleTable:
    return SampleTable([space.validate(json.loads(r["subnet"])) for r in rows],
                       np.array([r["mflops"] for r in rows]), np.array([r["top1"] for r in rows]))


def test_sample_distinct_is_deterministic_and_distinct(space):
    first = sample_distinct(space, 50, seed=1)
    assert first == sample_distinct(space, 50, seed=1)
    assert len(set(first)) == 50
    assert first != sample_distinct(space, 50, seed=2)
    with pytest.raises(UserInputError, match="holds only"):
        sample_distinct(space, space.num_subnets() + 1, seed=0)


def test_sample_table_round_trip(space, tmp_path):
    rows = _synthetic_rows(space, 6)
    assert list(rows[0])[:2] == ["subnet", "x0"] and f"x{space.encoding_length - 1}" in rows[0]
    subnet = space.validate(json.loads(rows[0]["subnet"]))
    assert [rows[0][f"x{i}"] for i in range(space.encoding_length)] == space.encode(subnet)
    path = tmp_path / "samples.csv"
    write_csv(path, rows)
    table = read_sample_table(path, space)
    assert table.subnets[0] == subnet
    assert np.allclose(table.top1, [r["top1"] for r in rows])


def test_sample_table_errors_name_the_problem(space, tmp_path):
    with pytest.raises(PredictorError, match="does not exist"):
        read_sample_table(tmp_path / "none.csv", space)
    rows = _synthetic_rows(space, 3)
    write_csv(tmp_path / "no_top1.csv", [{k: v for k, v in r.items() if k != "top1"} for r in rows])
    with pytest.raises(PredictorError, match="missing column.*top1"):
        read_sample_table(tmp_path / "no_top1.csv", space)
    rows[1]["subnet"] = json.dumps({**json.loads(rows[1]["subnet"]), "resolution": 99})
    write_csv(tmp_path / "bad.csv", rows)
    with pytest.raises(PredictorError, match="line 3.*resolution"):
        read_sample_table(tmp_path / "bad.csv", space)


def test_build_regressor_defaults_and_bad_parameters():
    forest = build_regressor("random_forest", {}, seed=5)
    assert isinstance(forest, RandomForestRegressor)
    assert (forest.n_estimators, forest.max_depth, forest.random_state) == (100, 15, 5)
    assert build_regressor("random_forest", {"n_estimators": 7}, seed=0).n_estimators == 7
    assert isinstance(build_regressor("ridge", {"alpha": 2.0}, seed=0), Ridge)
    with pytest.raises(PredictorError, match=r"predictor\.params.*n_trees.*RandomForestRegressor"):
        build_regressor("random_forest", {"n_trees": 3}, seed=0)
    with pytest.raises(PredictorError, match=r"predictor\.model"):
        build_regressor("svm", {}, seed=0)


def test_bad_parameter_value_fails_naming_the_config_key(space):
    table = _table(space, _synthetic_rows(space, 8))
    with pytest.raises(PredictorError, match=r"predictor\.params.*n_estimators"):
        fit_predictor(space, table, replace(SETTINGS, params={"n_estimators": -1}), seed=0)


def test_rank_metrics_by_hand():
    true = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    mflops = np.array([6.0, 5.0, 4.0, 3.0, 2.0, 1.0])
    perfect = rank_metrics(true, true + 1, mflops, bins=2)
    assert perfect["kendall_tau"] == pytest.approx(1) and perfect["spearman_rho"] == pytest.approx(1)
    assert perfect["rmse"] == pytest.approx(1)
    assert [(b["mflops_min"], b["mflops_max"], b["n"]) for b in perfect["flops_bins"]] == [(1, 3, 3), (4, 6, 3)]
    predicted = np.array([1.0, 2.0, 3.0, 6.0, 5.0, 4.0])  # bin of mflops 1..3 (true 4..6) reversed
    mixed = rank_metrics(true, predicted, mflops, bins=2)
    assert mixed["flops_bins"][0]["kendall_tau"] == pytest.approx(-1)
    assert mixed["flops_bins"][1]["kendall_tau"] == pytest.approx(1)
    assert mixed["mean_bin_kendall_tau"] == pytest.approx(0)
    assert mixed["kendall_tau"] == pytest.approx(9 / 15)  # 12 concordant, 3 discordant pairs
    constant = rank_metrics(true, np.full(6, 3.0), mflops, bins=1)
    assert constant["kendall_tau"] is None and constant["mean_bin_kendall_tau"] is None


def test_fit_predictor_ranks_held_out_subnets(space):
    table = _table(space, _synthetic_rows(space, 120))
    fit = fit_predictor(space, table, SETTINGS, seed=0)
    metrics = fit.metrics
    assert (metrics["n_fit"], metrics["n_heldout"]) == (60, 60)
    assert metrics["kendall_tau"] > 0.6 and metrics["spearman_rho"] > 0.75
    assert len(metrics["flops_bins"]) == 3 and sum(b["n"] for b in metrics["flops_bins"]) == 60
    assert metrics["params"]["max_depth"] == 15 and "sklearn_version" in metrics
    assert [p["true"] for p in fit.predictions] == [p["true"] for p in fit_predictor(
        space, table, SETTINGS, seed=0).predictions]
    held = {json.dumps(p) for p in fit.predictions}
    assert held != {json.dumps(p) for p in fit_predictor(space, table, SETTINGS, seed=1).predictions}
    with pytest.raises(PredictorError, match="fewer than 2"):
        fit_predictor(space, SampleTable(table.subnets[:3], table.mflops[:3], table.top1[:3]), SETTINGS, 0)


def test_saved_predictor_reloads_and_refuses_other_spaces(space, tmp_path):
    fit = fit_predictor(space, _table(space, _synthetic_rows(space, 20)),
                        replace(SETTINGS, model="knn", params={"n_neighbors": 3}), seed=0)
    save_predictor(tmp_path / "p.npz", fit.predictor)
    loaded = load_predictor(tmp_path / "p.npz", space)
    subnets = sample_distinct(space, 5, seed=9)
    assert np.array_equal(loaded.predict(space, subnets), fit.predictor.predict(space, subnets))
    with pytest.raises(PredictorError, match="fmnist"):
        load_predictor(tmp_path / "p.npz", SearchSpace.load("cifar10"))


def test_sample_subnets_and_fit_predictor_commands(space, tmp_path, tiny_config_dict):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        **tiny_config_dict, "evaluation": {"calibration_images": 32, "calibration_batch_size": 32, "batch_size": 200},
        "predictor": {"num_subnets": 4, "holdout_fraction": 0.5, "flops_bins": 2}}))
    torch.manual_seed(0)
    checkpoint = tmp_path / "supernet.pt"
    save_checkpoint(checkpoint, supernet_state(Supernet(space)))
    out = tmp_path / "samples.csv"
    assert main(["sample-subnets", "--config", str(config), "--checkpoint", str(checkpoint), "--out", str(out),
                 "--threads", "1"]) == 0
    rows = read_csv(out)
    assert len(rows) == 4
    assert [space.validate(json.loads(r["subnet"])) for r in rows] == sample_distinct(space, 4, seed=0)
    assert {"mflops", "params_m", "top1", "loss", "x0"} <= set(rows[0])
    assert all(0 <= float(r["top1"]) <= 100 for r in rows)

    data = tmp_path / "big.csv"
    write_csv(data, _synthetic_rows(space, 40, seed=3))
    out_dir = tmp_path / "predictor"
    assert main(["fit-predictor", "--config", str(config), "--data", str(data), "--out-dir", str(out_dir)]) == 0
    metrics = read_json(out_dir / "metrics.json")
    assert {"kendall_tau", "spearman_rho", "rmse", "n_fit", "n_heldout", "flops_bins", "sklearn_version"} <= set(
        metrics)
    assert len(read_csv(out_dir / "predictions.csv")) == metrics["n_heldout"] == 20
    assert load_predictor(out_dir / "predictor.npz", space).sklearn_version == metrics["sklearn_version"]
    assert (out_dir / "predicted_vs_true.png").stat().st_size > 1000
