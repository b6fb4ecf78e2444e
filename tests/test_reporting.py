"""The paper table, figures and ablations, made from a hand-written results folder."""

import csv

import pytest

from attentivenas import reporting
from attentivenas.config import validate_config
from attentivenas.io import read_csv, read_json, write_csv, write_json
from attentivenas.layout import ResultsLayout, target_label
from attentivenas.space import SearchSpace

METHODS = {"bignas": {"sampler": "uniform"},
           "bestup_loss": {"sampler": "attentive", "mode": "bestup", "k": 3, "estimator": "loss"},
           "bestup_loss_k5": {"sampler": "attentive", "mode": "bestup", "k": 5, "estimator": "loss"},
           "bestup_predictor": {"sampler": "attentive", "mode": "bestup", "k": 3, "estimator": "predictor",
                                "label": "BestUp & predictor"}}
CHOSEN = {"bignas": [(1.0, 0.9, 71.0), (3.0, 2.5, 74.0)],
          "bestup_loss": [(1.0, 0.95, 72.0), (3.0, 2.8, 75.0)],
          "bestup_loss_k5": [(1.0, 0.8, 70.5), (3.0, 2.9, 75.5)],
          "bestup_predictor": [(1.0, 1.0, 71.5), (3.0, 3.0, 74.5)]}


@pytest.fixture
def results(tmp_path, tiny_config_dict):
    config = validate_config({**tiny_config_dict, "methods": METHODS,
                              "training": {"init": "warmup"},
                              "dsnas": {"targets_mflops": [1.0, 2.5], "init": "warmup"}})
    layout = ResultsLayout(tmp_path)
    write_json(layout.warmup.summary, {"subnet_images_trained": 1000})
    for i, (method, models) in enumerate(CHOSEN.items()):
        write_csv(layout.search(method).chosen,
                  [{"name": f"a{j}", "target": t, "subnet": "{}", "mflops": m, "params_m": 0.1, "top1_search": top1,
                    "top1_test": top1} for j, (t, m, top1) in enumerate(models)])
        write_json(layout.search(method).summary, {"images_processed": 10})
        write_json(layout.supernet(method).summary,
                   {"subnet_images_trained": 2000 + i})
        write_csv(layout.search(method).evaluated,
                  [{"generation": k // 8, "mflops": 0.5 + k / 4, "top1_search": 60 + k + i} for k in range(12)])
        write_csv(layout.supernet(method).epochs,
                  [{"epoch": e, "top1_max": 60 + e, "top1_min": 50 + e} for e in range(3)])
    for target, top1 in ((1.0, 70.0), (2.5, 73.0)):
        write_json(layout.dsnas(target_label(target)).summary,
                   {"mflops": target * 0.9, "params_m": 0.2, "top1_search": top1, "top1_test": top1,
                    "subnet_images_trained": 500, "evaluation_images": 30})
    write_csv(layout.predictor.predictions,
              [{"mflops": k, "true": 60 + k, "predicted": 61 + k % 3} for k in range(8)])
    return config, tmp_path


def test_collect_reads_every_method_and_counts_compute(results):
    config, root = results
    collected = {r.method: r for r in reporting.collect(config, root)}
    assert list(collected) == [*METHODS, "dsnas"]
    assert collected["bignas"].subnet_images_trained == 1000 + 2000
    assert collected["bestup_loss"].subnet_images_trained == 1000 + 2001
    assert collected["bignas"].images_evaluated == 10
    assert collected["dsnas"].subnet_images_trained == 1000 + 2 * 500, "DSNAS from the warm-up pays for it"
    assert collected["dsnas"].subnet_images_per_model == 1000 and collected["dsnas"].images_evaluated == 60
    assert collected["bestup_predictor"].label == "BestUp & predictor"
    assert collected["bestup_loss"].label == "AttentiveNAS bestup-3 (loss)"


def test_pareto_table_in_three_formats_with_hand_computed_hypervolume(results):
    config, root = results
    reporting.write_pareto_table(config, root)
    space = SearchSpace.load("fmnist")
    low, high = space.hypervolume_window
    floor = space.hypervolume_top1_floor
    # bignas: (0.9, 71) then (2.5, 74) up to the window's right edge
    area = (2.5 - 0.9) * (71 - floor) + (high - 2.5) * (74 - floor)
    expected = area / ((high - low) * (100 - floor))
    metrics = read_json(ResultsLayout(root).paper.metrics)
    assert metrics["bignas"]["hypervolume"] == pytest.approx(expected, abs=1e-5)
    assert metrics["bestup_loss"]["best_top1_test"] == 75.0
    rows = read_csv(ResultsLayout(root).paper.table_csv)
    assert len(rows) == 2 * len(METHODS) + 2 and rows[-1]["method"] == "dsnas"
    assert list(rows[0]) == reporting.TABLE_COLUMNS
    markdown = ResultsLayout(root).paper.table_markdown.read_text()
    assert "| BestUp & predictor | a1 | 3 | 3.000 |" in markdown and "DSNAS (one-stage)" in markdown
    latex = ResultsLayout(root).paper.table_latex.read_text()
    assert latex.count(r"\midrule") == len(METHODS) + 1 and r"BestUp \& predictor" in latex


def test_figures_and_their_plot_data(results):
    config, root = results
    reporting.write_figures(config, root)
    for name in reporting.FIGURES:
        assert ResultsLayout(root).paper.figure(name, "png").read_bytes()[:4] == b"\x89PNG"
        assert ResultsLayout(root).paper.figure(name, "pdf").read_bytes()[:4] == b"%PDF"
    with open(ResultsLayout(root).paper.fronts_data) as handle:
        fronts = list(csv.DictReader(handle))
    assert len(fronts) == 2 * len(METHODS) + 2
    curves = read_csv(ResultsLayout(root).paper.training_curves_data)
    assert {r["method"] for r in curves} == set(METHODS) and len(curves) == 3 * len(METHODS)


@pytest.mark.parametrize("ablation,expected", [
    ("sampler", ["bignas", "bestup_loss", "bestup_loss_k5"]),
    ("estimator", list(METHODS)),
    ("k", list(METHODS)),
])
def test_each_ablation_plot_is_made_on_its_own(results, ablation, expected):
    config, root = results
    assert reporting.ablation_methods(config, ablation) == expected
    reporting.write_ablation(config, root, ablation)
    assert ResultsLayout(root).paper.ablation(ablation, "png").is_file()
    assert not ResultsLayout(root).paper.figures_dir.exists()


def test_unknown_ablation(results):
    with pytest.raises(ValueError, match="sampler, estimator, k"):
        reporting.ablation_methods(results[0], "lr")
