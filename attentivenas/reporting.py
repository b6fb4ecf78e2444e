"""The paper table, figures and ablation plots, made from a results folder without retraining.

Everything here reads the files the pipeline's stages wrote (attentivenas.layout), so a plot can be
regenerated, restyled or extended at the cost of a few seconds. `config` is a validated config or a
report stage's settings (attentivenas.stages).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

from attentivenas.config import method_label as configured_label
from attentivenas.io import atomic_write_bytes, atomic_write_text, read_csv, read_json, write_csv, write_json
from attentivenas.layout import ABLATIONS, FIGURES, ResultsLayout, target_label
from attentivenas.predictor import rank_quality
from attentivenas.search import hypervolume
from attentivenas.space import SearchSpace

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402  (after choosing the non-interactive backend)

__all__ = ["ABLATIONS", "FIGURES"]  # re-exported: the report's figure and ablation names
DSNAS = "dsnas"


@dataclass
class ModelRow:
    method: str
    label: str
    model: str
    target_mflops: float
    mflops: float
    params_m: float
    top1_search: float
    top1_test: float


@dataclass
class MethodResult:
    method: str
    label: str
    models: list[ModelRow]
    hypervolume: float
    subnet_images_trained: float
    images_evaluated: float

    @property
    def subnet_images_per_model(self) -> float:
        return self.subnet_images_trained / max(len(self.models), 1)


def method_label(config: dict[str, Any], method: str) -> str:
    return "DSNAS (one-stage)" if method == DSNAS else configured_label(config, method)


def _compute(summary_path: Path, field: str) -> float:
    """A deterministic compute count from a stage's summary (wall-clock time lives in timings.json)."""
    return float(read_json(summary_path)[field]) if summary_path.is_file() else 0.0


def collect(config: dict[str, Any], results_dir: str | Path) -> list[MethodResult]:
    """Every method's chosen models (test-evaluated), hypervolume and compute, DSNAS last."""
    layout = ResultsLayout(results_dir)
    space = SearchSpace.load(config["space"])
    warmup = _compute(layout.warmup.summary, "subnet_images_trained")
    results = []
    for method in config["methods"]:
        label = method_label(config, method)
        models = [ModelRow(method, label, row["name"], float(row["target"]), float(row["mflops"]),
                           float(row["params_m"]), float(row["top1_search"]), float(row["top1_test"]))
                  for row in read_csv(layout.search(method).chosen)]
        trained = _compute(layout.supernet(method).summary, "subnet_images_trained")
        evaluated = _compute(layout.search(method).summary, "images_processed")
        results.append(MethodResult(method, label, models, _hypervolume(space, models), warmup + trained,
                                    evaluated))
    if config["dsnas"]["enabled"] and config["dsnas"]["targets_mflops"]:
        models, trained, evaluated = [], 0.0, 0.0
        for target in config["dsnas"]["targets_mflops"]:
            summary = read_json(layout.dsnas(target_label(target)).summary)
            models.append(ModelRow(DSNAS, method_label(config, DSNAS), f"t{target_label(target)}", float(target),
                                   float(summary["mflops"]), float(summary["params_m"]),
                                   float(summary["top1_search"]), float(summary["top1_test"])))
            trained += float(summary["subnet_images_trained"])
            evaluated += float(summary["evaluation_images"])
        if config["dsnas"]["init"] == "warmup":
            trained += warmup
        results.append(MethodResult(DSNAS, method_label(config, DSNAS), models, _hypervolume(space, models),
                                    trained, evaluated))
    return results


def _hypervolume(space: SearchSpace, models: Sequence[ModelRow]) -> float:
    points = [(m.mflops, m.top1_test) for m in models]
    return hypervolume(points, space.hypervolume_window, space.hypervolume_top1_floor).normalized


# -- the paper table ----------------------------------------------------------------------------

TABLE_COLUMNS = ["method", "label", "model", "target_mflops", "mflops", "params_m", "top1_search", "top1_test",
                 "method_hypervolume", "method_subnet_images_trained", "method_images_evaluated",
                 "subnet_images_trained_per_model"]


def table_rows(results: Sequence[MethodResult]) -> list[dict[str, Any]]:
    rows = []
    for result in results:
        for m in result.models:
            rows.append({"method": m.method, "label": m.label, "model": m.model,
                         "target_mflops": m.target_mflops, "mflops": round(m.mflops, 4),
                         "params_m": round(m.params_m, 4), "top1_search": round(m.top1_search, 2),
                         "top1_test": round(m.top1_test, 2), "method_hypervolume": round(result.hypervolume, 5),
                         "method_subnet_images_trained": int(result.subnet_images_trained),
                         "method_images_evaluated": int(result.images_evaluated),
                         "subnet_images_trained_per_model": round(result.subnet_images_per_model, 1)})
    return rows


def markdown_table(results: Sequence[MethodResult], space: SearchSpace) -> str:
    low, high = space.hypervolume_window
    lines = [f"# Pareto table: space `{space.name}`", "",
             f"Hypervolume: top-1 (test) up, MFLOPs down, inside {low:g} to {high:g} MFLOPs above "
             f"{space.hypervolume_top1_floor:g}% top-1, normalised to that box. Compute: subnet-images "
             "trained (images x subnets trained per step) by the stages that produced the models (two-stage: "
             "shared warm-up + training; DSNAS: its runs, plus the warm-up when it starts from it), and images "
             "evaluated (two-stage: the search; DSNAS: the child's evaluation). Wall-clock times are in each "
             "stage's timings.json.",
             "", "| method | hypervolume | models | subnet-images trained | per model | images evaluated |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r.label} | {r.hypervolume:.4f} | {len(r.models)} | {r.subnet_images_trained:,.0f} | "
                     f"{r.subnet_images_per_model:,.0f} | {r.images_evaluated:,.0f} |")
    lines += ["", "| method | model | target MFLOPs | MFLOPs | params (M) | top-1 search (%) | top-1 test (%) |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for r in results:
        for m in r.models:
            lines.append(f"| {r.label} | {m.model} | {m.target_mflops:g} | {m.mflops:.3f} | {m.params_m:.3f} | "
                         f"{m.top1_search:.2f} | {m.top1_test:.2f} |")
    return "\n".join(lines) + "\n"


def _latex_escape(text: str) -> str:
    for char, escaped in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#")):
        text = text.replace(char, escaped)
    return text


def latex_table(results: Sequence[MethodResult]) -> str:
    lines = [r"\begin{tabular}{llrrrrr}", r"\toprule",
             r"Method & Model & MFLOPs & Params (M) & Top-1 (\%) & HV & Subnet-images trained \\", r"\midrule"]
    for i, r in enumerate(results):
        if i:
            lines.append(r"\midrule")
        for j, m in enumerate(r.models):
            method = _latex_escape(r.label) if j == 0 else ""
            extra = f"{r.hypervolume:.4f} & {r.subnet_images_trained:.0f}" if j == 0 else " & "
            lines.append(f"{method} & {_latex_escape(m.model)} & {m.mflops:.3f} & {m.params_m:.3f} & "
                         f"{m.top1_test:.2f} & {extra} \\\\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def write_pareto_table(config: dict[str, Any], results_dir: str | Path) -> list[MethodResult]:
    space = SearchSpace.load(config["space"])
    results = collect(config, results_dir)
    paper = ResultsLayout(results_dir).paper
    atomic_write_text(paper.table_markdown, markdown_table(results, space))
    write_csv(paper.table_csv, table_rows(results), fieldnames=TABLE_COLUMNS)
    atomic_write_text(paper.table_latex, latex_table(results))
    write_json(paper.metrics, {
        r.method: {"hypervolume": round(r.hypervolume, 5),
                   "best_top1_test": round(max((m.top1_test for m in r.models), default=0.0), 2),
                   "models": len(r.models), "subnet_images_trained": int(r.subnet_images_trained),
                   "images_evaluated": int(r.images_evaluated)} for r in results})
    return results


# -- figures ------------------------------------------------------------------------------------

def save_figure(figure: plt.Figure, stem: Path, formats: Sequence[str]) -> None:
    """Save atomically once per format (png, pdf) beside `stem`, then free the figure."""
    for fmt in formats:
        buffer = io.BytesIO()
        metadata = {"CreationDate": None} if fmt == "pdf" else None  # no timestamp: the same bytes every run
        figure.savefig(buffer, format=fmt, dpi=150, bbox_inches="tight", metadata=metadata)
        atomic_write_bytes(stem.with_suffix(f".{fmt}"), buffer.getvalue())
    plt.close(figure)


def _plot_fronts(axes: plt.Axes, results: Sequence[MethodResult]) -> None:
    for r in results:
        models = sorted(r.models, key=lambda m: m.mflops)
        style = dict(marker="*", markersize=11, linestyle="none") if r.method == DSNAS else dict(marker="o")
        axes.plot([m.mflops for m in models], [m.top1_test for m in models], label=r.label, **style)
    axes.set_xlabel("MFLOPs")
    axes.set_ylabel("top-1 on test (%)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)


def pareto_fronts_figure(results: Sequence[MethodResult], space: SearchSpace) -> plt.Figure:
    figure, axes = plt.subplots(figsize=(6, 4.2))
    _plot_fronts(axes, results)
    axes.set_title(f"Chosen models per method ({space.name})", fontsize=10)
    return figure


def accuracy_by_bin_figure(sampled: dict[str, list[dict[str, str]]], labels: dict[str, str],
                           bins: int = 4) -> plt.Figure:
    """Box plots of uniformly sampled subnets' search top-1 (`top1_search`), per FLOPs bin, one box per method."""
    all_flops = [float(r["mflops"]) for rows in sampled.values() for r in rows]
    edges = np.linspace(min(all_flops), max(all_flops) + 1e-9, bins + 1)
    figure, axes = plt.subplots(figsize=(7, 4.2))
    width = 0.8 / max(len(sampled), 1)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (method, rows) in enumerate(sampled.items()):
        groups = [[float(r["top1_search"]) for r in rows if lo <= float(r["mflops"]) < hi]
                  for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
        positions = [b + (i - (len(sampled) - 1) / 2) * width for b in range(bins)]
        boxes = axes.boxplot([g if g else [math.nan] for g in groups], positions=positions, widths=width * 0.9,
                             patch_artist=True, manage_ticks=False)
        for patch in boxes["boxes"]:
            patch.set_facecolor(colors[i % len(colors)])
            patch.set_alpha(0.6)
        axes.plot([], [], color=colors[i % len(colors)], linewidth=6, alpha=0.6, label=labels[method])
    axes.set_xticks(range(bins), [f"{lo:.2f}-{hi:.2f}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)])
    axes.set_xlabel("MFLOPs bin")
    axes.set_ylabel("top-1 on search split (%)")
    axes.set_title("Search generation 0 per FLOPs bin: uniform subnets (same for every method) + min, max",
                   fontsize=9)
    axes.legend(fontsize=7)
    axes.grid(alpha=0.3, axis="y")
    return figure


def predictor_rank_figure(predictions: Sequence[dict[str, Any]],
                          title: str = "Accuracy predictor on held-out subnets") -> plt.Figure:
    """Predicted vs true top-1 of held-out subnets, coloured by MFLOPs, Kendall tau in the title."""
    true = np.array([float(r["true"]) for r in predictions])
    predicted = np.array([float(r["predicted"]) for r in predictions])
    mflops = np.array([float(r["mflops"]) for r in predictions])
    tau = rank_quality(true, predicted)["kendall_tau"]
    figure, axes = plt.subplots(figsize=(4.5, 4.2))
    points = axes.scatter(true, predicted, c=mflops, cmap="viridis", s=16)
    low, high = min(true.min(), predicted.min()), max(true.max(), predicted.max())
    axes.plot([low, high], [low, high], color="grey", linewidth=0.8, linestyle="--")
    axes.set_xlabel("true top-1 (%)")
    axes.set_ylabel("predicted top-1 (%)")
    tau_text = "undefined" if tau is None else f"{tau:.3f}"
    axes.set_title(f"{title}\nKendall τ = {tau_text} (n = {len(true)})", fontsize=9)
    figure.colorbar(points, ax=axes, label="MFLOPs")
    return figure


def training_curves_figure(curves: dict[str, list[dict[str, str]]], labels: dict[str, str]) -> plt.Figure:
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8), sharey=True)
    for method, rows in curves.items():
        epochs = [int(r["epoch"]) for r in rows]
        left.plot(epochs, [float(r["top1_max"]) for r in rows], marker="o", label=labels[method])
        right.plot(epochs, [float(r["top1_min"]) for r in rows], marker="o", label=labels[method])
    for axes, title in ((left, "max subnet"), (right, "min subnet")):
        axes.set_title(title, fontsize=10)
        axes.set_xlabel("epoch")
        axes.grid(alpha=0.3)
    left.set_ylabel("top-1 on search split (%)")
    right.legend(fontsize=7)
    return figure


def write_figures(config: dict[str, Any], results_dir: str | Path) -> None:
    space = SearchSpace.load(config["space"])
    layout = ResultsLayout(results_dir)
    formats = config["report"]["formats"]
    paper = layout.paper
    results = collect(config, results_dir)  # every input is read before the first figure is written
    labels = {r.method: r.label for r in results}
    sampled = {m: [r for r in read_csv(layout.search(m).evaluated) if r["generation"] == "0"]
               for m in config["methods"]}
    predictions = read_csv(layout.predictor.predictions)
    curves = {m: read_csv(layout.supernet(m).epochs) for m in config["methods"]}
    save_figure(pareto_fronts_figure(results, space), paper.figure_stem("pareto_fronts"), formats)
    save_figure(accuracy_by_bin_figure(sampled, labels), paper.figure_stem("accuracy_by_flops_bin"), formats)
    save_figure(predictor_rank_figure(predictions), paper.figure_stem("predictor_rank"), formats)
    save_figure(training_curves_figure(curves, labels), paper.figure_stem("training_curves"), formats)
    write_csv(paper.fronts_data,
              [{"method": m.method, "model": m.model, "mflops": round(m.mflops, 4), "top1_test": round(m.top1_test, 2)}
               for r in results for m in sorted(r.models, key=lambda m: m.mflops)])
    write_csv(paper.training_curves_data,
              [{"method": m, "epoch": r["epoch"], "top1_max": r["top1_max"], "top1_min": r["top1_min"]}
               for m, rows in curves.items() for r in rows])


# -- ablations ----------------------------------------------------------------------------------

def ablation_methods(config: dict[str, Any], ablation: str) -> list[str]:
    """The methods an ablation compares: samplers at the loss estimator, or every attentive method
    (estimator and k) next to the uniform baseline."""
    methods = config["methods"]
    if ablation == "sampler":
        return [n for n, m in methods.items() if m["sampler"] == "uniform" or m["estimator"] == "loss"]
    if ablation in ("estimator", "k"):
        return list(methods)
    raise ValueError(f"unknown ablation {ablation!r}; choose from {', '.join(ABLATIONS)}")


def ablation_figure(config: dict[str, Any], results: Sequence[MethodResult], ablation: str) -> plt.Figure:
    by_method = {r.method: r for r in results}
    compared = ablation_methods(config, ablation)
    figure, (fronts, summary) = plt.subplots(1, 2, figsize=(10, 4))
    _plot_fronts(fronts, [by_method[n] for n in compared])
    if ablation == "k":
        lines: dict[str, list[tuple[int, float]]] = {}
        for n in compared:
            m = config["methods"][n]
            if m["sampler"] == "uniform":
                summary.axhline(by_method[n].hypervolume, color="grey", linestyle="--", label=by_method[n].label)
            else:
                lines.setdefault(f"{m['mode']} ({m['estimator']})", []).append((m["k"], by_method[n].hypervolume))
        for key, points in lines.items():
            points.sort()
            summary.plot([k for k, _ in points], [hv for _, hv in points], marker="o", label=key)
        summary.set_xlabel("k (candidates scored per sampled subnet)")
        summary.legend(fontsize=7)
    else:
        summary.barh([by_method[n].label for n in compared], [by_method[n].hypervolume for n in compared])
        summary.invert_yaxis()
        summary.tick_params(axis="y", labelsize=7)
    summary.set_title("hypervolume of the chosen models (test)", fontsize=10)
    figure.suptitle(f"Ablation: {ablation}", fontsize=11)
    return figure


def write_ablation(config: dict[str, Any], results_dir: str | Path, ablation: str) -> None:
    results = collect(config, results_dir)
    figure = ablation_figure(config, results, ablation)
    save_figure(figure, ResultsLayout(results_dir).paper.ablation_stem(ablation), config["report"]["formats"])
