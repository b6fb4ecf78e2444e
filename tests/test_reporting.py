"""The paper table, figures and ablations, made from a hand-written results folder."""

import csv
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib import pyplot as plt
from matplotlib.collections import PathCollection
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from attentivenas import reporting
from attentivenas.budget import method_steps_per_epoch
from attentivenas.config import validate_config
from attentivenas.io import read_csv, read_json, write_csv, write_json
from attentivenas.layout import ResultsLayout, target_label
from attentivenas.space import SearchSpace
from attentivenas.specs import ExperimentSpec, load_experiment
from attentivenas.stages import stage_job

REPO = Path(__file__).resolve().parents[1]

METHODS = {"bignas": {"sampler": "uniform"},
           "bestup_loss": {"sampler": "attentive", "mode": "bestup", "k": 3, "estimator": "loss"},
           "bestup_loss_k5": {"sampler": "attentive", "mode": "bestup", "k": 5, "estimator": "loss"},
           "bestup_predictor": {"sampler": "attentive", "mode": "bestup", "k": 3, "estimator": "predictor",
                                "label": "BestUp & predictor"},
           "bestup_loss_k2": {"sampler": "attentive", "mode": "bestup", "k": 2, "estimator": "loss"}}
CHOSEN = {"bignas": [(1.0, 0.9, 71.0), (3.0, 2.5, 74.0)],
          "bestup_loss": [(1.0, 0.95, 72.0), (3.0, 2.8, 75.0)],
          "bestup_loss_k5": [(1.0, 0.8, 70.5), (3.0, 2.9, 75.5)],
          "bestup_predictor": [(1.0, 1.0, 71.5), (3.0, 3.0, 74.5)],
          "bestup_loss_k2": [(1.0, 0.85, 71.2), (3.0, 2.7, 74.2)]}
WARMUP_STEPS, METHOD_STEPS, SAMPLED = 40, 25, 18
SEEDS = [0, 1, 2]
SEED_SHIFT = [0.0, 1.0, -1.0]  # every method's runs move together from seed to seed
PLANTED = {"bignas": [0.0, 0.0, 0.0], "bestup_loss": [3.0, 3.1, 2.9], "bestup_loss_k5": [2.0, -2.5, 0.4],
           "bestup_predictor": [0.0, 0.0, 0.0], "bestup_loss_k2": [0.5, -0.5, 0.0]}
"""Top-1 added to BigNAS's at every target per seed: one clearly better method, others noisy or equal."""


def _loss_rows(steps: int, start: float) -> list[dict]:
    return [{"step": step, "epoch": 0, "lr": 0.1, "loss_max": round(start - step / 100 + step % 3 / 50, 4),
             "loss_min": round(start + 0.2 - step / 120, 4), "loss_mid": 1.0, "mflops_mid": 2.0, "images_scored": 0}
            for step in range(1, steps + 1)]


def write_results(root, seeds, planted):
    """A results folder: every method's runs at `seeds`, each method's top-1 its own (`planted` None) or
    BigNAS's plus the planted difference."""
    layout = ResultsLayout(root)
    write_json(layout.warmup.summary, {"subnet_images_trained": 1000})
    write_json(layout.data_summary, {"test": {"images": 2000}})
    write_csv(layout.warmup.metrics, _loss_rows(WARMUP_STEPS, 2.3))
    for i, method in enumerate(CHOSEN):
        for seed in seeds:
            shift = SEED_SHIFT[seed] + planted[method][seed] if planted else 0.0
            models = CHOSEN["bignas" if planted else method]
            search, training = layout.search(method, seed), layout.supernet(method, seed)
            write_csv(search.chosen,
                      [{"name": f"a{j}", "target": t, "subnet": f"{method}-{j}", "mflops": m, "params_m": 0.1,
                        "top1_search": top1, "top1_test": top1 + shift} for j, (t, m, top1) in enumerate(models)])
            write_json(search.summary, {"images_processed": 10})
            write_json(training.summary,
                       {"subnet_images_trained": 2000 + i, "sampler_stats": {"images_scored": 64 * i}})
            write_csv(search.evaluated,
                      [{"generation": 0, "mflops": 0.4 + (k * 7 % SAMPLED) / 4, "top1_search": 60 + k % 5 + i}
                       for k in range(SAMPLED)] + [{"generation": 1, "mflops": 9.0, "top1_search": 80}])
            write_csv(training.metrics, _loss_rows(METHOD_STEPS, 1.2 + i / 20))
    for target, top1 in ((1.0, 70.0), (2.5, 73.0)):
        for seed in seeds:
            write_json(layout.dsnas(target_label(target), seed).summary,
                       {"mflops": target * 0.9, "params_m": 0.2, "top1_search": top1, "top1_test": top1,
                        "subnet_images_trained": 500, "evaluation_images": 30, "child": {"target": target}})
    write_csv(layout.predictor.predictions,
              [{"mflops": k, "true": 60 + k, "predicted": 61 + k % 3} for k in range(8)])


def make_config(tiny_config_dict, seeds):
    """The ablation plot's settings, the report's fullest (each method's sampling too)."""
    return stage_job(ExperimentSpec.from_dict(validate_config({
        **tiny_config_dict, "methods": METHODS, "seeds": seeds, "training": {"init": "warmup"},
        "budget": {"subnet_images": 3000}, "dsnas": {"targets_mflops": [1.0, 2.5], "init": "warmup"}})),
        "ablation_plot")


@pytest.fixture
def results(tmp_path, tiny_config_dict):
    write_results(tmp_path, [0], None)
    return make_config(tiny_config_dict, [0]), tmp_path


@pytest.fixture
def planted(tmp_path, tiny_config_dict):
    write_results(tmp_path, SEEDS, PLANTED)
    return make_config(tiny_config_dict, SEEDS), tmp_path


def test_collect_reads_every_method_and_counts_compute(results):
    config, root = results
    collected = {r.method: r for r in reporting.collect(config, root)}
    assert list(collected) == [*METHODS, "dsnas"]
    assert collected["bignas"].subnet_images_trained == 1000 + 2000
    assert collected["bestup_loss"].subnet_images_trained == 1000 + 2001
    assert collected["bestup_loss"].images_scored == 64, "scoring forwards are counted apart from training"
    assert collected["bignas"].images_evaluated == 10
    assert collected["dsnas"].subnet_images_trained == 1000 + 2 * 500, "DSNAS from the warm-up pays for it"
    assert collected["dsnas"].images_evaluated == 60
    assert collected["bestup_predictor"].label == "BestUp & predictor"
    assert collected["bestup_loss"].label == "AttentiveNAS bestup-3 (loss)"
    assert collected["bignas"].distinct_models.mean == 2


def test_pareto_table_in_three_formats_with_hand_computed_hypervolume(results):
    config, root = results
    reporting.write_pareto_table(config, root)
    space = SearchSpace.load("fmnist")
    low, high = space.hypervolume_window
    floor = space.hypervolume_top1_floor
    # bignas: (0.9, 71) then (2.5, 74) up to the window's right edge
    area = (2.5 - 0.9) * (71 - floor) + (high - 2.5) * (74 - floor)
    expected = area / ((high - low) * (100 - floor))
    metrics = read_json(ResultsLayout(root).paper.statistics)
    assert metrics["bignas"]["hypervolume"]["mean"] == pytest.approx(expected, abs=1e-5)
    assert metrics["bignas"]["hypervolume"]["std"] is None and metrics["bestup_loss"]["hypervolume_vs_baseline"] is None
    assert metrics["bignas"]["budget"] == 3000
    paper = ResultsLayout(root).paper
    assert read_json(paper.metrics("bignas"))["hypervolume"] == pytest.approx(expected, abs=1e-5)
    assert read_json(paper.metrics("bestup_loss"))["best_top1_test"] == 75.0
    assert sorted(p.stem for p in paper.metrics_dir.iterdir()) == sorted([*METHODS, "dsnas"])
    for path in paper.metrics_dir.iterdir():  # numbers only: one short row each in `dvc metrics show`
        assert all(isinstance(v, int | float) for v in read_json(path).values()), path
    rows = read_csv(ResultsLayout(root).paper.table_csv)
    assert len(rows) == 2 * len(METHODS) + 2 and rows[-1]["method"] == "dsnas"
    assert list(rows[0]) == reporting.TABLE_COLUMNS
    assert (float(rows[0]["top1_test_low95"]), float(rows[0]["top1_test_high95"])) == pytest.approx(
        (69.0, 72.9), abs=0.1), "the Wilson interval of 71% on 2,000 images"
    markdown = ResultsLayout(root).paper.table_markdown.read_text()
    assert "| BestUp & predictor | 0 | a1 | 3 | 3.000 |" in markdown and "DSNAS (one-stage)" in markdown
    assert "no ranking of the methods is possible" in markdown and " * |" not in markdown
    assert "| 100.0% |" in markdown and "(!)" in markdown, "3,001 of 3,000 is on budget; DSNAS's 2,000 is not"
    latex = ResultsLayout(root).paper.table_latex.read_text()
    assert latex.count(r"\midrule") == len(METHODS) + 1 and r"BestUp \& predictor" in latex


def test_planted_seeds_mark_only_the_clearly_better_method_significant(planted):
    config, root = planted
    reporting.write_pareto_table(config, root)
    metrics = read_json(ResultsLayout(root).paper.statistics)
    assert metrics["bignas"]["seeds"] == SEEDS and metrics["bignas"]["hypervolume"]["n"] == 3
    assert metrics["bignas"]["hypervolume_vs_baseline"] is None
    clear, noisy, equal = (metrics[m] for m in ("bestup_loss", "bestup_loss_k5", "bestup_predictor"))
    assert clear["hypervolume_vs_baseline"]["significant"] and clear["hypervolume_vs_baseline"]["difference"] > 0
    assert not noisy["hypervolume_vs_baseline"]["significant"]
    assert equal["hypervolume_vs_baseline"]["p_value"] == 1.0
    for target in ("1", "3"):
        assert clear["top1_test"][target]["vs_baseline"]["significant"]
        assert clear["top1_test"][target]["vs_baseline"]["difference"] == pytest.approx(3.0)
        assert not noisy["top1_test"][target]["vs_baseline"]["significant"]
        low, high = metrics["bignas"]["top1_test"][target]["low95"], metrics["bignas"]["top1_test"][target]["high95"]
        assert low < metrics["bignas"]["top1_test"][target]["mean"] < high
    assert "vs_baseline" in metrics["dsnas"]["top1_test"]["1"] and "2.5" in metrics["dsnas"]["top1_test"]
    assert metrics["dsnas"]["top1_test"]["2.5"]["vs_baseline"] is None, "BigNAS has no model at 2.5 MFLOPs"
    markdown = ResultsLayout(root).paper.table_markdown.read_text()
    assert "Over 3 seeds (0, 1, 2)" in markdown and "no ranking" not in markdown
    marked = [line for line in markdown.splitlines() if line.endswith(" * |") or " * | " in line]
    assert marked and all(line.startswith("| AttentiveNAS bestup-3 (loss) |") for line in marked)
    assert r"$^\dagger$" in ResultsLayout(root).paper.table_latex.read_text()


def test_a_single_noisy_seed_pair_is_not_significant(tmp_path, tiny_config_dict):
    write_results(tmp_path, [0, 1], {**PLANTED, "bestup_loss": [3.0, -1.0, 0.0]})
    reporting.write_pareto_table(make_config(tiny_config_dict, [0, 1]), tmp_path)
    metrics = read_json(ResultsLayout(tmp_path).paper.statistics)
    assert not any(test["vs_baseline"]["significant"] for test in metrics["bestup_loss"]["top1_test"].values())


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
    assert list(curves[0]) == reporting.CURVE_COLUMNS
    steps = {run: [int(r["step"]) for r in curves if r["run"] == run] for run in ["warmup", *METHODS]}
    assert steps == {"warmup": list(range(1, WARMUP_STEPS + 1))} | {m: list(range(1, METHOD_STEPS + 1))
                                                                     for m in METHODS}


# -- every figure a reviewer sees: series, bins and text ------------------------------------------

def _drawn_texts(figure: Figure, monkeypatch) -> list[Text]:
    """The text artists a draw of `figure` renders (visible, not empty)."""
    drawn: list[Text] = []
    draw = Text.draw

    def recording_draw(self, renderer):
        if self.get_visible() and self.get_text().strip():
            drawn.append(self)
        return draw(self, renderer)

    with monkeypatch.context() as patch:
        patch.setattr(Text, "draw", recording_draw)
        figure.canvas.draw()
    return drawn


def assert_readable(figure: Figure, monkeypatch) -> None:
    """Every labelled series has >= 2 points; every text lies inside the canvas and overlaps no other text."""
    for axes in figure.axes:
        for line in axes.get_lines():
            if not line.get_label().startswith("_"):
                assert len(line.get_xdata()) >= 2, line.get_label()
        for scatter in axes.collections:
            if isinstance(scatter, PathCollection):
                assert len(scatter.get_offsets()) >= 2
    texts = _drawn_texts(figure, monkeypatch)
    renderer = figure.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts]
    canvas = figure.bbox
    for text, box in boxes:
        assert (box.x0 >= canvas.x0 - 0.5 and box.y0 >= canvas.y0 - 0.5 and box.x1 <= canvas.x1 + 0.5
                and box.y1 <= canvas.y1 + 0.5), f"{text!r} at {box} leaves the canvas {canvas}"
    for i, (text, box) in enumerate(boxes):
        for other, other_box in boxes[i + 1:]:
            overlap = Bbox.intersection(box, other_box)
            assert overlap is None or overlap.width < 0.5 or overlap.height < 0.5, f"{text!r} overlaps {other!r}"


@pytest.mark.parametrize("defect,message", [
    (lambda fig, ax: (ax.text(0.5, 0.5, "first label"), ax.text(0.52, 0.5, "second label")), "overlaps"),
    (lambda fig, ax: fig.text(0.97, 0.5, "a label past the edge"), "leaves the canvas"),
    (lambda fig, ax: ax.plot([1], [2], label="one point"), "one point"),
])
def test_the_readability_check_catches_each_defect(defect, message, monkeypatch):
    figure, axes = plt.subplots(figsize=(4, 3))
    axes.plot([0, 1], [0, 1], label="fine")
    assert_readable(figure, monkeypatch)
    defect(figure, axes)
    with pytest.raises(AssertionError, match=message):
        assert_readable(figure, monkeypatch)
    plt.close(figure)


def test_every_paper_figure_is_readable(results, monkeypatch):
    config, root = results
    figures = reporting.paper_figures(config, root)
    assert set(figures) == set(reporting.FIGURES)
    for name, figure in figures.items():
        try:
            assert_readable(figure, monkeypatch)
        except AssertionError as err:
            raise AssertionError(f"figure {name}: {err}") from None
        finally:
            plt.close(figure)


@pytest.mark.parametrize("ablation", reporting.ABLATIONS)
def test_every_ablation_figure_is_readable(results, ablation, monkeypatch):
    config, root = results
    figure = reporting.ablation_figure(config, reporting.collect(config, root), ablation)
    try:
        assert_readable(figure, monkeypatch)
    finally:
        plt.close(figure)


def test_training_curves_plot_every_logged_step(results):
    config, root = results
    figure = reporting.paper_figures(config, root)["training_curves"]
    labels = {r.method: r.label for r in reporting.collect(config, root)}
    for axes in figure.axes:
        lengths = {line.get_label(): len(line.get_xdata()) for line in axes.get_lines()}
        if "shared warm-up (uniform)" in lengths:
            assert lengths == {"shared warm-up (uniform)": WARMUP_STEPS}
        else:
            assert lengths == {labels[m]: METHOD_STEPS for m in METHODS}
    plt.close(figure)


def test_the_default_config_logs_twenty_points_per_method_for_the_training_curves():
    config = load_experiment(REPO / "config" / "config.yaml")
    for method in config.methods:
        recipe = config.recipe(method)
        steps = recipe.epochs * method_steps_per_epoch(config, method)  # the budget sets the steps
        assert steps // recipe.log_every_steps >= 20, method


def test_one_colour_per_method_in_every_figure(results):
    config, root = results
    results_ = reporting.collect(config, root)
    expected = reporting.method_colors([*METHODS, "dsnas"])
    assert len({to_hex(c) for c in expected.values()}) == len(METHODS) + 1
    by_label = {r.label: to_hex(expected[r.method]) for r in results_}
    figures = [*reporting.paper_figures(config, root).values(),
               *(reporting.ablation_figure(config, results_, a) for a in reporting.ABLATIONS)]
    seen = 0
    for figure in figures:
        for legend in figure.legends:
            for handle, text in zip(legend.legend_handles, legend.get_texts(), strict=True):
                if text.get_text() in by_label:
                    colour = handle.get_facecolor() if hasattr(handle, "get_height") else handle.get_color()
                    assert to_hex(colour) == by_label[text.get_text()], (text.get_text(), figure)
                    seen += 1
        plt.close(figure)
    assert seen >= 6 * len(METHODS)


def test_k_ablation_plots_every_k_of_the_config(results):
    config, root = results
    figure = reporting.ablation_figure(config, reporting.collect(config, root), "k")
    k_axes = figure.axes[1]
    assert list(k_axes.get_xticks()) == [2, 3, 5]
    joined = [line for line in k_axes.get_lines() if line.get_label().startswith("_")
              and len(line.get_xdata()) > 1 and line.get_linestyle() == "-"]
    assert [list(line.get_xdata()) for line in joined] == [[2, 3, 5]]  # bestup (loss) at k = 2, 3, 5
    plt.close(figure)


def test_flops_bins_are_quantiles_of_the_sampled_subnets():
    sampled = {m: [{"mflops": str(f), "top1_search": str(60 + f)} for f in range(12)] for m in ("a", "b")}
    binned = reporting.flops_bins(sampled, bins=4)
    assert binned.edges == [0, 3, 6, 9, 11]
    assert binned.groups["a"] == [[60, 61, 62], [63, 64, 65], [66, 67, 68], [69, 70, 71]]


def test_a_bin_too_thin_for_a_method_merges_with_its_neighbour():
    sampled = {"a": [{"mflops": str(f), "top1_search": str(f)} for f in range(12)],
               "b": [{"mflops": str(f), "top1_search": str(f)} for f in (0, 1, 10, 11)]}
    # quartiles of the 16 subnets: [0, 2) [2, 6) [6, 10) [10, 11]; b has none in the middle two, which merge
    # into their smaller neighbours
    binned = reporting.flops_bins(sampled, bins=4)
    assert binned.edges == [0, 6, 11]
    assert [len(g) for g in binned.groups["b"]] == [2, 2] and [len(g) for g in binned.groups["a"]] == [6, 6]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.floats(0.1, 10, allow_nan=False), min_size=2, max_size=30), min_size=1, max_size=4),
       st.integers(1, 8))
def test_flops_bins_never_leave_a_box_empty_or_thin(flops, bins):
    sampled = {f"m{i}": [{"mflops": str(f), "top1_search": "50"} for f in values] for i, values in enumerate(flops)}
    binned = reporting.flops_bins(sampled, bins)
    assert 1 <= len(binned.edges) - 1 <= bins
    for method, groups in binned.groups.items():
        assert sum(map(len, groups)) == len(sampled[method]), "every subnet lies in exactly one bin"
        if len(groups) > 1:
            assert min(map(len, groups)) >= reporting.MIN_PER_BOX


@pytest.mark.parametrize("ablation,expected", [
    ("sampler", ["bignas", "bestup_loss", "bestup_loss_k5", "bestup_loss_k2"]),
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
