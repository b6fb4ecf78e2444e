"""The paper table, figures and ablation plots, made from a results folder without retraining.

Everything here reads the files the pipeline's stages wrote (attentivenas.layout), so a plot can be
regenerated, restyled or extended at the cost of a few seconds. `job` is a report stage's settings
(attentivenas.specs.ReportJob, resolved from a config by attentivenas.stages).
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

from attentivenas.budget import TOLERANCE
from attentivenas.io import atomic_write_bytes, atomic_write_text, read_csv, read_json, write_csv, write_json
from attentivenas.layout import ABLATIONS, DSNAS, FIGURES, ResultsLayout, target_label
from attentivenas.predictor import rank_quality
from attentivenas.search import hypervolume
from attentivenas.significance import PairedTest, Spread, accuracy_interval, paired_tests, spread
from attentivenas.space import SearchSpace
from attentivenas.specs import ReportJob

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402  (after choosing the non-interactive backend)
from matplotlib.ticker import MaxNLocator  # noqa: E402

__all__ = ["ABLATIONS", "DSNAS", "FIGURES"]  # re-exported: the report's figure, ablation and DSNAS names


@dataclass
class ModelRow:
    method: str
    label: str
    seed: int
    model: str
    target_mflops: float
    subnet: str
    mflops: float
    params_m: float
    top1_search: float
    top1_test: float
    test_images: int

    @property
    def top1_test_interval(self) -> tuple[float, float]:
        return accuracy_interval(self.top1_test, self.test_images)


@dataclass
class SeedRun:
    """One method's models and compute at one seed of config `seeds`."""

    seed: int
    models: list[ModelRow]
    hypervolume: float
    subnet_images_trained: float
    images_scored: float
    images_evaluated: float

    @property
    def distinct_models(self) -> int:
        return len({m.subnet for m in self.models})


@dataclass
class MethodResult:
    method: str
    label: str
    runs: list[SeedRun]

    @property
    def seeds(self) -> list[int]:
        return [run.seed for run in self.runs]

    @property
    def models(self) -> list[ModelRow]:
        """The first seed's models (the figures show one run per method)."""
        return self.runs[0].models

    @property
    def hypervolume(self) -> float:
        """Mean over the seeds."""
        return float(np.mean([run.hypervolume for run in self.runs]))

    @property
    def subnet_images_trained(self) -> float:
        return float(np.mean([run.subnet_images_trained for run in self.runs]))

    @property
    def images_scored(self) -> float:
        return float(np.mean([run.images_scored for run in self.runs]))

    @property
    def images_evaluated(self) -> float:
        return float(np.mean([run.images_evaluated for run in self.runs]))

    @property
    def distinct_models(self) -> Spread:
        return spread([run.distinct_models for run in self.runs])

    def top1_at(self, target: float) -> list[float]:
        """Test top-1 of the model chosen at `target`, per seed (empty when the method has none there)."""
        values = [m.top1_test for run in self.runs for m in run.models if m.target_mflops == target]
        return values if len(values) == len(self.runs) else []

    @property
    def targets(self) -> list[float]:
        return sorted({m.target_mflops for m in self.models})


def method_label(job: ReportJob, method: str) -> str:
    return "DSNAS (one-stage)" if method == DSNAS else job.labels[method]


def _compute(summary_path: Path, field: str) -> float:
    """A deterministic compute count from a stage's summary (wall-clock time lives in timings.json)."""
    return float(read_json(summary_path)[field]) if summary_path.is_file() else 0.0


def collect(job: ReportJob, results_dir: str | Path) -> list[MethodResult]:
    """Every method's chosen models (test-evaluated), hypervolume and compute per seed, DSNAS last."""
    layout = ResultsLayout(results_dir)
    space = SearchSpace.load(job.space)
    warmup = _compute(layout.warmup.summary, "subnet_images_trained")
    test_images = int(read_json(layout.data_summary)["test"]["images"])
    seeds = job.seeds
    results = []
    for method in job.methods:
        label = method_label(job, method)
        runs = []
        for seed in seeds:
            search, training = layout.search(method, seed), layout.supernet(method, seed)
            models = [ModelRow(method, label, seed, row["name"], float(row["target"]), row["subnet"],
                               float(row["mflops"]), float(row["params_m"]), float(row["top1_search"]),
                               float(row["top1_test"]), test_images) for row in read_csv(search.chosen)]
            scored = read_json(training.summary).get("sampler_stats", {}).get("images_scored", 0)
            runs.append(SeedRun(seed, models, _hypervolume(space, models),
                                warmup + _compute(training.summary, "subnet_images_trained"), float(scored),
                                _compute(search.summary, "images_processed")))
        results.append(MethodResult(method, label, runs))
    if job.dsnas.targets:
        label, runs = method_label(job, DSNAS), []
        for seed in seeds:
            models, trained, evaluated = [], 0.0, 0.0
            for target in job.dsnas.targets:
                summary = read_json(layout.dsnas(target_label(target), seed).summary)
                models.append(ModelRow(DSNAS, label, seed, f"t{target_label(target)}", float(target),
                                       json.dumps(summary["child"], sort_keys=True), float(summary["mflops"]),
                                       float(summary["params_m"]), float(summary["top1_search"]),
                                       float(summary["top1_test"]), test_images))
                trained += float(summary["subnet_images_trained"])
                evaluated += float(summary["evaluation_images"])
            if job.dsnas.from_warmup:
                trained += warmup
            runs.append(SeedRun(seed, models, _hypervolume(space, models), trained, 0.0, evaluated))
        results.append(MethodResult(DSNAS, label, runs))
    return results


def _hypervolume(space: SearchSpace, models: Sequence[ModelRow]) -> float:
    points = [(m.mflops, m.top1_test) for m in models]
    return hypervolume(points, space.hypervolume_window, space.hypervolume_top1_floor).normalized


# -- statistics over seeds ----------------------------------------------------------------------

@dataclass
class Comparison:
    """Per method: the spread of its hypervolume and of its top-1 at each target over the seeds, and the
    paired tests against the baseline (absent with one seed, for the baseline itself, or at a target the
    baseline has no model at)."""

    hypervolume: dict[str, Spread]
    top1: dict[str, dict[float, Spread]]
    hypervolume_tests: dict[str, PairedTest]
    top1_tests: dict[str, dict[float, PairedTest]]


def compare(results: Sequence[MethodResult], baseline: str | None) -> Comparison:
    hv = {r.method: spread([run.hypervolume for run in r.runs]) for r in results}
    top1 = {r.method: {t: spread(r.top1_at(t)) for t in r.targets if r.top1_at(t)} for r in results}
    by_method = {r.method: r for r in results}
    hv_tests: dict[str, PairedTest] = {}
    top1_tests: dict[str, dict[float, PairedTest]] = {r.method: {} for r in results}
    if baseline in by_method:
        base = by_method[baseline]
        others = [r for r in results if r.method != baseline]
        hv_tests = paired_tests({r.method: [run.hypervolume for run in r.runs] for r in others},
                                [run.hypervolume for run in base.runs])
        for target in base.targets:
            at_target = {r.method: r.top1_at(target) for r in others if r.top1_at(target)}
            for method, test in paired_tests(at_target, base.top1_at(target)).items():
                top1_tests[method][target] = test
    return Comparison(hv, top1, hv_tests, top1_tests)


# -- the paper table ----------------------------------------------------------------------------

TABLE_COLUMNS = ["method", "label", "seed", "model", "target_mflops", "mflops", "params_m", "top1_search",
                 "top1_test", "top1_test_low95", "top1_test_high95", "test_images", "method_hypervolume",
                 "method_distinct_models", "method_subnet_images_trained", "method_images_scored",
                 "method_images_evaluated"]


def table_rows(results: Sequence[MethodResult]) -> list[dict[str, Any]]:
    rows = []
    for result in results:
        for run in result.runs:
            for m in run.models:
                low, high = m.top1_test_interval
                rows.append({"method": m.method, "label": m.label, "seed": run.seed, "model": m.model,
                             "target_mflops": m.target_mflops, "mflops": round(m.mflops, 4),
                             "params_m": round(m.params_m, 4), "top1_search": round(m.top1_search, 2),
                             "top1_test": round(m.top1_test, 2), "top1_test_low95": round(low, 2),
                             "top1_test_high95": round(high, 2), "test_images": m.test_images,
                             "method_hypervolume": round(run.hypervolume, 5),
                             "method_distinct_models": run.distinct_models,
                             "method_subnet_images_trained": int(run.subnet_images_trained),
                             "method_images_scored": int(run.images_scored),
                             "method_images_evaluated": int(run.images_evaluated)})
    return rows


def _mean_std(value: Spread, digits: int) -> str:
    return f"{value.mean:.{digits}f}" if value.std is None else f"{value.mean:.{digits}f} ± {value.std:.{digits}f}"


def _interval(value: Spread, digits: int) -> str:
    return "–" if value.low is None else f"[{value.low:.{digits}f}, {value.high:.{digits}f}]"


def _test(test: PairedTest | None, digits: int) -> str:
    if test is None:
        return "–"
    mark = " *" if test.significant else ""
    return f"{test.difference:+.{digits}f} (p = {test.p_adjusted:.3f}){mark}"


def _budget_share(used: float, budget: int | None) -> str:
    if not budget:
        return "–"
    share = used / budget
    return f"{share:.1%}" + ("" if abs(share - 1) <= TOLERANCE else " (!)")


def markdown_table(results: Sequence[MethodResult], space: SearchSpace, budget: int | None = None,
                   baseline: str | None = None) -> str:
    low, high = space.hypervolume_window
    seeds = results[0].seeds if results else []
    labels = {r.method: r.label for r in results}
    comparison = compare(results, baseline)
    base_label = labels.get(baseline, "the baseline")
    lines = [f"# Pareto table: space `{space.name}`", "",
             f"Hypervolume: top-1 (test) up, MFLOPs down, inside {low:g} to {high:g} MFLOPs above "
             f"{space.hypervolume_top1_floor:g}% top-1, normalised to that box. Compute: subnet-images trained "
             "(images x subnets trained per step) by the stages that produced the models (two-stage: shared "
             "warm-up + training; DSNAS: its runs, one per target, plus the warm-up when it starts from it), "
             f"against the budget of {f'{budget:,}' if budget else 'none (config budget.subnet_images)'}; the "
             "attentive sampler's candidate-scoring forwards train nothing and are counted apart (images "
             "scored); images evaluated: two-stage, the search; DSNAS, the child's evaluation. Wall-clock "
             "times are in each stage's timings.json.", ""]
    if len(seeds) < 2:
        lines += [f"One seed ({', '.join(map(str, seeds))}): no spread, interval or test across seeds, so **no "
                  "ranking of the methods is possible**; give config key `seeds` several values.", ""]
    else:
        lines += [f"Over {len(seeds)} seeds ({', '.join(map(str, seeds))}): mean ± sample standard deviation, the "
                  "t-based 95% interval of the mean, and the paired t-test (by seed) of each method against "
                  f"{base_label}: mean difference and p-value after Holm's correction over the methods "
                  "compared; * marks a difference significant at 5%, and only those.", ""]
    lines += [f"| method | seeds | hypervolume | 95% interval | vs {base_label} | distinct models | "
              "subnet-images trained | of budget | images scored | images evaluated |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        hv = comparison.hypervolume[r.method]
        lines.append(f"| {r.label} | {len(r.runs)} | {_mean_std(hv, 4)} | {_interval(hv, 4)} | "
                     f"{_test(comparison.hypervolume_tests.get(r.method), 4)} | "
                     f"{_mean_std(r.distinct_models, 1)} of {len(r.models)} | {r.subnet_images_trained:,.0f} | "
                     f"{_budget_share(r.subnet_images_trained, budget)} | {r.images_scored:,.0f} | "
                     f"{r.images_evaluated:,.0f} |")
    lines += ["", "Test top-1 (%) of the model chosen at each FLOPs target, over the seeds.", "",
              f"| method | target MFLOPs | MFLOPs (mean) | top-1 test | 95% interval | vs {base_label} |",
              "|---|---:|---:|---:|---:|---:|"]
    for r in results:
        for target, value in comparison.top1[r.method].items():
            mflops_mean = np.mean([m.mflops for run in r.runs for m in run.models if m.target_mflops == target])
            lines.append(f"| {r.label} | {target:g} | {mflops_mean:.3f} | {_mean_std(value, 2)} | "
                         f"{_interval(value, 2)} | {_test(comparison.top1_tests[r.method].get(target), 2)} |")
    lines += ["", "Every chosen model; its test top-1 with the Wilson 95% interval over the test images.", "",
              "| method | seed | model | target MFLOPs | MFLOPs | params (M) | top-1 search (%) | top-1 test (%) | "
              "95% interval |", "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        for run in r.runs:
            for m in run.models:
                low_ci, high_ci = m.top1_test_interval
                lines.append(f"| {r.label} | {run.seed} | {m.model} | {m.target_mflops:g} | {m.mflops:.3f} | "
                             f"{m.params_m:.3f} | {m.top1_search:.2f} | {m.top1_test:.2f} | "
                             f"[{low_ci:.1f}, {high_ci:.1f}] (n = {m.test_images:,}) |")
    return "\n".join(lines) + "\n"


def _latex_escape(text: str) -> str:
    for char, escaped in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#")):
        text = text.replace(char, escaped)
    return text


def latex_table(results: Sequence[MethodResult], baseline: str | None = None) -> str:
    """Per method and target: mean MFLOPs and test top-1 (± std over seeds); hypervolume and compute
    once per method. A dagger marks a significant difference from the baseline."""
    comparison = compare(results, baseline)

    def cell(value: Spread, test: PairedTest | None, digits: int) -> str:
        text = f"{value.mean:.{digits}f}" + ("" if value.std is None else f" $\\pm$ {value.std:.{digits}f}")
        return text + ("$^\\dagger$" if test is not None and test.significant else "")

    lines = [r"\begin{tabular}{llrrrr}", r"\toprule",
             r"Method & Target & MFLOPs & Top-1 (\%) & HV & Subnet-images trained \\", r"\midrule"]
    for i, r in enumerate(results):
        if i:
            lines.append(r"\midrule")
        for j, (target, value) in enumerate(comparison.top1[r.method].items()):
            method = _latex_escape(r.label) if j == 0 else ""
            mflops_mean = np.mean([m.mflops for run in r.runs for m in run.models if m.target_mflops == target])
            hv = cell(comparison.hypervolume[r.method], comparison.hypervolume_tests.get(r.method), 4)
            extra = f"{hv} & {r.subnet_images_trained:.0f}" if j == 0 else " & "
            lines.append(f"{method} & {target:g} & {mflops_mean:.3f} & "
                         f"{cell(value, comparison.top1_tests[r.method].get(target), 2)} & {extra} \\\\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def _spread_json(value: Spread, digits: int) -> dict[str, Any]:
    def rounded(x: float | None) -> float | None:
        return None if x is None else round(x, digits)

    return {"n": value.n, "mean": rounded(value.mean), "std": rounded(value.std), "low95": rounded(value.low),
            "high95": rounded(value.high)}


def _test_json(test: PairedTest | None) -> dict[str, Any] | None:
    if test is None:
        return None
    return {"difference": round(test.difference, 5), "p_value": round(test.p_value, 5),
            "p_holm": round(test.p_adjusted, 5), "significant": test.significant}


def _best_top1(result: MethodResult) -> float:
    """The best chosen model's test top-1, averaged over the seeds."""
    return round(float(np.mean([max(m.top1_test for m in run.models) for run in result.runs])), 2)


def write_pareto_table(job: ReportJob, results_dir: str | Path) -> list[MethodResult]:
    space = SearchSpace.load(job.space)
    results = collect(job, results_dir)
    budget, baseline = job.budget.subnet_images, job.baseline
    comparison = compare(results, baseline)
    paper = ResultsLayout(results_dir).paper
    atomic_write_text(paper.table_markdown, markdown_table(results, space, budget, baseline))
    write_csv(paper.table_csv, table_rows(results), fieldnames=TABLE_COLUMNS)
    atomic_write_text(paper.table_latex, latex_table(results, baseline))
    for r in results:  # the numbers runs are compared by; three, so `dvc metrics show` fits a terminal
        write_json(paper.metrics(r.method), {"hypervolume": round(r.hypervolume, 5), "best_top1_test": _best_top1(r),
                                              "subnet_images_trained": int(r.subnet_images_trained)})
    write_json(paper.statistics, {
        r.method: {"seeds": r.seeds, "hypervolume": _spread_json(comparison.hypervolume[r.method], 5),
                   "hypervolume_vs_baseline": _test_json(comparison.hypervolume_tests.get(r.method)),
                   "top1_test": {target_label(t): {**_spread_json(v, 2), "vs_baseline": _test_json(
                       comparison.top1_tests[r.method].get(t))} for t, v in comparison.top1[r.method].items()},
                   "distinct_models": _spread_json(r.distinct_models, 2), "budget": budget,
                   "subnet_images_trained": int(r.subnet_images_trained), "images_scored": int(r.images_scored)}
        for r in results})
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
            axes[row, column].xaxis.set_major_locator(MaxNLocator(integer=True))
            axes[1, column].set_xlabel("step (one point per logged step)")
    _legend_below(figure, [axes[0, 0], axes[0, 1]])
    return figure


def paper_figures(job: ReportJob, results_dir: str | Path) -> dict[str, plt.Figure]:
    """Every paper figure by name (attentivenas.layout.FIGURES), drawn from the results folder."""
    space = SearchSpace.load(job.space)
    layout = ResultsLayout(results_dir)
    results = collect(job, results_dir)  # every input is read before the first figure is drawn
    labels = {r.method: r.label for r in results}
    colors = method_colors(job.methods)
    seed = job.seeds[0]  # the figures show the first seed's runs
    sampled = {m: [r for r in read_csv(layout.search(m, seed).evaluated) if r["generation"] == "0"]
               for m in job.methods}
    predictions = read_csv(layout.predictor.predictions)
    curves = {WARMUP: read_csv(layout.warmup.metrics)} | {m: read_csv(layout.supernet(m, seed).metrics)
                                                           for m in job.methods}
    return {"pareto_fronts": pareto_fronts_figure(results, space, colors),
            "accuracy_by_flops_bin": accuracy_by_bin_figure(sampled, labels, colors),
            "predictor_rank": predictor_rank_figure(predictions),
            "training_curves": training_curves_figure(curves, labels, colors)}


def write_figures(job: ReportJob, results_dir: str | Path) -> None:
    layout = ResultsLayout(results_dir)
    paper = layout.paper
    figures = paper_figures(job, results_dir)
    for name in FIGURES:
        save_figure(figures[name], paper.figure_stem(name), job.report.formats)
    write_csv(paper.fronts_data,
              [{"method": m.method, "model": m.model, "mflops": round(m.mflops, 4), "top1_test": round(m.top1_test, 2)}
               for r in collect(job, results_dir) for m in sorted(r.models, key=lambda m: m.mflops)])
    seed = job.seeds[0]
    curves = {WARMUP: read_csv(layout.warmup.metrics)} | {m: read_csv(layout.supernet(m, seed).metrics)
                                                           for m in job.methods}
    write_csv(paper.training_curves_data, curve_rows(curves), fieldnames=CURVE_COLUMNS)


# -- ablations ----------------------------------------------------------------------------------

def ablation_methods(job: ReportJob, ablation: str) -> list[str]:
    """The methods an ablation compares: samplers at the loss estimator, or every attentive method
    (estimator and k) next to the uniform baseline."""
    if ablation == "sampler":
        return [n for n, m in job.samplers.items() if not m.attentive or m.estimator == "loss"]
    if ablation in ("estimator", "k"):
        return job.methods
    raise ValueError(f"unknown ablation {ablation!r}; choose from {', '.join(ABLATIONS)}")


def _plot_k(axes: plt.Axes, job: ReportJob, compared: Sequence[MethodResult],
            colors: dict[str, Any]) -> None:
    """Hypervolume against k: a grey line joins the methods that differ only in k, each point in its method's
    colour; the uniform sampler (no k) is a dashed reference line. The fronts panel's legend names them."""
    groups: dict[str, list[MethodResult]] = {}
    for r in compared:
        m = job.samplers[r.method]
        if not m.attentive:
            axes.axhline(r.hypervolume, color=colors[r.method], linestyle="--")
        else:
            groups.setdefault(f"{m.mode} ({m.estimator})", []).append(r)
    k = {method: spec.k for method, spec in job.samplers.items()}
    ks = sorted({k[r.method] for rs in groups.values() for r in rs})
    for group in groups.values():
        group.sort(key=lambda r: k[r.method])
        if len(group) > 1:
            axes.plot([k[r.method] for r in group], [r.hypervolume for r in group],
                      color="0.6", linewidth=1, zorder=1)
        for r in group:
            axes.plot([k[r.method]], [r.hypervolume], marker="o", markersize=8,
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


def ablation_figure(job: ReportJob, results: Sequence[MethodResult], ablation: str) -> plt.Figure:
    by_method = {r.method: r for r in results}
    compared = [by_method[n] for n in ablation_methods(job, ablation)]
    colors = method_colors(job.methods)
    figure, (fronts, summary) = _figure(2, figsize=(10, 5))
    _plot_fronts(fronts, compared, colors)
    fronts.set_title("chosen models", fontsize=10)
    if ablation == "k":
        _plot_k(summary, job, compared, colors)
    else:
        _plot_hypervolume_bars(summary, compared, colors)
    figure.suptitle(f"Ablation: {ablation}", fontsize=11)
    _legend_below(figure, [fronts, summary])
    return figure


def write_ablation(job: ReportJob, results_dir: str | Path, ablation: str) -> None:
    results = collect(job, results_dir)
    figure = ablation_figure(job, results, ablation)
    save_figure(figure, ResultsLayout(results_dir).paper.ablation_stem(ablation), job.report.formats)
