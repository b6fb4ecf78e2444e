"""The paper table, figures and ablation plots, made from a results folder without retraining.

Everything here reads the files the pipeline's stages wrote (attentivenas.layout), so a plot can be
regenerated, restyled or extended at the cost of a few seconds. `config` is a validated config or a
report stage's settings (attentivenas.stages).
"""

from __future__ import annotations

import io
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

WARMUP = "warmup"
WARMUP_COLOR = "0.45"
DEFAULT_FLOPS_BINS = 4
MIN_PER_BOX = 2


def method_colors(methods: Sequence[str]) -> dict[str, Any]:
    """The one colour of each method in every figure and ablation, by its place in the config (DSNAS last)."""
    names = [m for m in methods if m != DSNAS] + [DSNAS]
    palette = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
    if len(names) > palette.N:
        return {name: matplotlib.colormaps["turbo"](i / (len(names) - 1)) for i, name in enumerate(names)}
    return {name: palette(i) for i, name in enumerate(names)}


def _figure(ncols: int = 1, nrows: int = 1, **kwargs: Any) -> tuple[plt.Figure, Any]:
    """A figure whose layout engine keeps titles, tick labels and the legend clear of each other."""
    return plt.subplots(nrows, ncols, layout="constrained", **kwargs)


def _legend_below(figure: plt.Figure, axes: Sequence[plt.Axes]) -> None:
    """One legend for the whole figure, under the panels, so that it never covers data."""
    entries: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    columns = max(1, min(len(entries), int(figure.get_figwidth() // 2.6)))
    figure.legend(list(entries.values()), list(entries), loc="outside lower center", ncols=columns, fontsize=8,
                  frameon=False)


def save_figure(figure: plt.Figure, stem: Path, formats: Sequence[str]) -> None:
    """Save atomically once per format (png, pdf) beside `stem`, then free the figure."""
    for fmt in formats:
        buffer = io.BytesIO()
        metadata = {"CreationDate": None} if fmt == "pdf" else None  # no timestamp: the same bytes every run
        figure.savefig(buffer, format=fmt, dpi=150, metadata=metadata)
        atomic_write_bytes(stem.with_suffix(f".{fmt}"), buffer.getvalue())
    plt.close(figure)


def _plot_fronts(axes: plt.Axes, results: Sequence[MethodResult], colors: dict[str, Any]) -> None:
    for r in results:
        models = sorted(r.models, key=lambda m: m.mflops)
        style = dict(marker="*", markersize=11, linestyle="none") if r.method == DSNAS else dict(marker="o")
        axes.plot([m.mflops for m in models], [m.top1_test for m in models], label=r.label,
                  color=colors[r.method], **style)
    axes.set_xlabel("MFLOPs")
    axes.set_ylabel("top-1 on test (%)")
    axes.grid(alpha=0.3)


def pareto_fronts_figure(results: Sequence[MethodResult], space: SearchSpace,
                         colors: dict[str, Any]) -> plt.Figure:
    figure, axes = _figure(figsize=(6.4, 5))
    _plot_fronts(axes, results, colors)
    axes.set_title(f"Chosen models per method ({space.name})", fontsize=10)
    _legend_below(figure, [axes])
    return figure


@dataclass
class FlopsBins:
    """MFLOPs bins from quantiles of the sampled subnets, merged until every method has
    `MIN_PER_BOX` subnets in every bin; `groups[method][b]` is the top-1 of method's subnets in bin b."""
    edges: list[float]
    groups: dict[str, list[list[float]]]


def flops_bins(sampled: dict[str, list[dict[str, str]]], bins: int = DEFAULT_FLOPS_BINS) -> FlopsBins:
    flops = np.array([float(r["mflops"]) for rows in sampled.values() for r in rows])
    if flops.size == 0:
        raise ValueError("no sampled subnets to bin: every method's generation 0 is empty")
    # quantiles that are sampled values: every bin [edge, next edge) holds at least the subnet at its edge
    edges = list(np.unique(np.quantile(flops, np.linspace(0, 1, bins + 1), method="higher")))
    if len(edges) == 1:
        edges.append(edges[0])

    def grouped(edges: list[float]) -> dict[str, list[list[float]]]:
        inner = np.array(edges[1:-1])
        groups = {}
        for method, rows in sampled.items():
            index = np.searchsorted(inner, [float(r["mflops"]) for r in rows], side="right")
            groups[method] = [[float(r["top1_search"]) for r, i in zip(rows, index, strict=True) if i == b]
                              for b in range(len(edges) - 1)]
        return groups

    groups = grouped(edges)
    while len(edges) > 2:
        counts = [min(len(g[b]) for g in groups.values()) for b in range(len(edges) - 1)]
        thin = int(np.argmin(counts))
        if counts[thin] >= MIN_PER_BOX:
            break
        sizes = [sum(len(g[b]) for g in groups.values()) for b in range(len(edges) - 1)]
        neighbour = thin - 1 if thin == len(counts) - 1 or (thin > 0 and sizes[thin - 1] <= sizes[thin + 1]) \
            else thin + 1
        del edges[max(thin, neighbour)]  # the edge between the thin bin and its smaller neighbour
        groups = grouped(edges)
    return FlopsBins([float(e) for e in edges], groups)


def accuracy_by_bin_figure(sampled: dict[str, list[dict[str, str]]], labels: dict[str, str],
                           colors: dict[str, Any], bins: int = DEFAULT_FLOPS_BINS) -> plt.Figure:
    """Box plots of uniformly sampled subnets' search top-1 (`top1_search`) per MFLOPs quantile bin, one
    box per method."""
    binned = flops_bins(sampled, bins)
    count = len(binned.edges) - 1
    figure, axes = _figure(figsize=(7.5, 5))
    width = 0.8 / max(len(sampled), 1)
    for i, (method, groups) in enumerate(binned.groups.items()):
        positions = [b + (i - (len(sampled) - 1) / 2) * width for b in range(count)]
        boxes = axes.boxplot(groups, positions=positions, widths=width * 0.9, patch_artist=True,
                             manage_ticks=False, medianprops={"color": "black"},
                             flierprops={"markersize": 3, "markeredgecolor": colors[method]})
        for patch in boxes["boxes"]:
            patch.set_facecolor(colors[method])
            patch.set_alpha(0.7)
        boxes["boxes"][0].set_label(labels[method])
    sizes = [sorted({len(g[b]) for g in binned.groups.values()}) for b in range(count)]
    subnets = [f"{n[0]}" if len(n) == 1 else f"{n[0]}-{n[-1]}" for n in sizes]
    axes.set_xticks(range(count), [f"{lo:.2f}-{hi:.2f}\n({n} per method)" for lo, hi, n in
                                   zip(binned.edges[:-1], binned.edges[1:], subnets, strict=True)], fontsize=8)
    axes.set_xlim(-0.5, count - 0.5)
    axes.set_xlabel("MFLOPs bin (quantiles of the sampled subnets)")
    axes.set_ylabel("top-1 on search split (%)")
    axes.set_title("Search generation 0 per FLOPs bin: uniform subnets (the same for every method) + min, max",
                   fontsize=9)
    axes.grid(alpha=0.3, axis="y")
    _legend_below(figure, [axes])
    return figure


def predictor_rank_figure(predictions: Sequence[dict[str, Any]],
                          title: str = "Accuracy predictor on held-out subnets") -> plt.Figure:
    """Predicted vs true top-1 of held-out subnets, coloured by MFLOPs, Kendall tau in the title."""
    true = np.array([float(r["true"]) for r in predictions])
    predicted = np.array([float(r["predicted"]) for r in predictions])
    mflops = np.array([float(r["mflops"]) for r in predictions])
    tau = rank_quality(true, predicted)["kendall_tau"]
    figure, axes = _figure(figsize=(5, 4.2))
    points = axes.scatter(true, predicted, c=mflops, cmap="viridis", s=16)
    low, high = min(true.min(), predicted.min()), max(true.max(), predicted.max())
    axes.plot([low, high], [low, high], color="grey", linewidth=0.8, linestyle="--")
    axes.set_xlabel("true top-1 (%)")
    axes.set_ylabel("predicted top-1 (%)")
    tau_text = "undefined" if tau is None else f"{tau:.3f}"
    axes.set_title(f"{title}\nKendall τ = {tau_text} (n = {len(true)})", fontsize=9)
    figure.colorbar(points, ax=axes, label="MFLOPs")
    return figure


CURVE_COLUMNS = ["run", "step", "loss_max", "loss_min"]


def curve_rows(curves: dict[str, list[dict[str, str]]]) -> list[dict[str, Any]]:
    """The training curves' plot data: one row per logged step of each run (the warm-up, then every method)."""
    return [{"run": run, "step": int(r["step"]), "loss_max": float(r["loss_max"]), "loss_min": float(r["loss_min"])}
            for run, rows in curves.items() for r in rows]


def training_curves_figure(curves: dict[str, list[dict[str, str]]], labels: dict[str, str],
                           colors: dict[str, Any]) -> plt.Figure:
    """Training loss of the max and min subnets at every logged step: the shared warm-up on the left, each
    method's own steps on the right (on the same loss scale)."""
    figure, axes = _figure(2, 2, figsize=(9, 6.4), sharey="row", width_ratios=[1, 1.6])
    runs = [(WARMUP, "shared warm-up (uniform)", WARMUP_COLOR, 0)] + [
        (run, labels[run], colors[run], 1) for run in curves if run != WARMUP]
    for run, label, color, column in runs:
        rows = curves.get(run, [])
        steps = [int(r["step"]) for r in rows]
        for row, field in enumerate(("loss_max", "loss_min")):
            axes[row, column].plot(steps, [float(r[field]) for r in rows], color=color, label=label,
                                   marker=".", markersize=3, linewidth=1)
    for row, subnet in enumerate(("max", "min")):
        axes[row, 0].set_ylabel(f"training loss, {subnet} subnet")
        for column, title in enumerate(("shared warm-up", "each method, after the warm-up")):
            axes[row, column].set_title(f"{title}: {subnet} subnet", fontsize=9)
            axes[row, column].grid(alpha=0.3)
            axes[1, column].set_xlabel("step (one point per logged step)")
    _legend_below(figure, [axes[0, 0], axes[0, 1]])
    return figure


def paper_figures(config: dict[str, Any], results_dir: str | Path) -> dict[str, plt.Figure]:
    """Every paper figure by name (attentivenas.layout.FIGURES), drawn from the results folder."""
    space = SearchSpace.load(config["space"])
    layout = ResultsLayout(results_dir)
    results = collect(config, results_dir)  # every input is read before the first figure is drawn
    labels = {r.method: r.label for r in results}
    colors = method_colors(list(config["methods"]))
    sampled = {m: [r for r in read_csv(layout.search(m).evaluated) if r["generation"] == "0"]
               for m in config["methods"]}
    predictions = read_csv(layout.predictor.predictions)
    curves = {WARMUP: read_csv(layout.warmup.metrics)} | {m: read_csv(layout.supernet(m).metrics)
                                                           for m in config["methods"]}
    return {"pareto_fronts": pareto_fronts_figure(results, space, colors),
            "accuracy_by_flops_bin": accuracy_by_bin_figure(sampled, labels, colors),
            "predictor_rank": predictor_rank_figure(predictions),
            "training_curves": training_curves_figure(curves, labels, colors)}


def write_figures(config: dict[str, Any], results_dir: str | Path) -> None:
    layout = ResultsLayout(results_dir)
    paper = layout.paper
    figures = paper_figures(config, results_dir)
    for name in FIGURES:
        save_figure(figures[name], paper.figure_stem(name), config["report"]["formats"])
    write_csv(paper.fronts_data,
              [{"method": m.method, "model": m.model, "mflops": round(m.mflops, 4), "top1_test": round(m.top1_test, 2)}
               for r in collect(config, results_dir) for m in sorted(r.models, key=lambda m: m.mflops)])
    curves = {WARMUP: read_csv(layout.warmup.metrics)} | {m: read_csv(layout.supernet(m).metrics)
                                                           for m in config["methods"]}
    write_csv(paper.training_curves_data, curve_rows(curves), fieldnames=CURVE_COLUMNS)


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


def _plot_k(axes: plt.Axes, config: dict[str, Any], compared: Sequence[MethodResult],
            colors: dict[str, Any]) -> None:
    """Hypervolume against k: a grey line joins the methods that differ only in k, each point in its method's
    colour; the uniform sampler (no k) is a dashed reference line. The fronts panel's legend names them."""
    groups: dict[str, list[MethodResult]] = {}
    for r in compared:
        m = config["methods"][r.method]
        if m["sampler"] == "uniform":
            axes.axhline(r.hypervolume, color=colors[r.method], linestyle="--")
        else:
            groups.setdefault(f"{m['mode']} ({m['estimator']})", []).append(r)
    ks = sorted({config["methods"][r.method]["k"] for rs in groups.values() for r in rs})
    for group in groups.values():
        group.sort(key=lambda r: config["methods"][r.method]["k"])
        if len(group) > 1:
            axes.plot([config["methods"][r.method]["k"] for r in group], [r.hypervolume for r in group],
                      color="0.6", linewidth=1, zorder=1)
        for r in group:
            axes.plot([config["methods"][r.method]["k"]], [r.hypervolume], marker="o", markersize=8,
                      linestyle="none", color=colors[r.method], zorder=2)
    axes.set_xticks(ks)
    if len(ks) == 1:
        axes.set_xlim(ks[0] - 1, ks[0] + 1)
    axes.set_xlabel("k (candidates scored per sampled subnet)")
    axes.set_ylabel("hypervolume")
    axes.set_title(f"hypervolume against k ({len(ks)} value{'s' * (len(ks) != 1)} of k in this config)",
                   fontsize=10)
    axes.grid(alpha=0.3)


def _plot_hypervolume_bars(axes: plt.Axes, compared: Sequence[MethodResult], colors: dict[str, Any]) -> None:
    """One bar per method in its colour (the legend names it), its value at its end, inside the panel."""
    values = [r.hypervolume for r in compared]
    bars = axes.barh(range(len(compared)), values, color=[colors[r.method] for r in compared])
    axes.bar_label(bars, [f"{v:.3f}" for v in values], padding=3, fontsize=8)
    axes.set_xlim(0, max([*values, 1e-3]) * 1.2)  # room for the value labels
    axes.set_yticks([])
    axes.invert_yaxis()
    axes.set_xlabel("hypervolume")
    axes.set_title("hypervolume of the chosen models (test)", fontsize=10)


def ablation_figure(config: dict[str, Any], results: Sequence[MethodResult], ablation: str) -> plt.Figure:
    by_method = {r.method: r for r in results}
    compared = [by_method[n] for n in ablation_methods(config, ablation)]
    colors = method_colors(list(config["methods"]))
    figure, (fronts, summary) = _figure(2, figsize=(10, 5))
    _plot_fronts(fronts, compared, colors)
    fronts.set_title("chosen models", fontsize=10)
    if ablation == "k":
        _plot_k(summary, config, compared, colors)
    else:
        _plot_hypervolume_bars(summary, compared, colors)
    figure.suptitle(f"Ablation: {ablation}", fontsize=11)
    _legend_below(figure, [fronts, summary])
    return figure


def write_ablation(config: dict[str, Any], results_dir: str | Path, ablation: str) -> None:
    results = collect(config, results_dir)
    figure = ablation_figure(config, results, ablation)
    save_figure(figure, ResultsLayout(results_dir).paper.ablation_stem(ablation), config["report"]["formats"])
