"""Where every artefact of a results directory lives: the one place its file and folder names are spelled.

The Snakemake rules, the stage commands, the report and the tests all ask this module for paths. A
method name or a FLOPs-target label may also be a Snakemake wildcard such as "{method}": the same
calls then give the rules' path patterns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

FIGURES = ("pareto_fronts", "accuracy_by_flops_bin", "predictor_rank", "training_curves")
ABLATIONS = ("sampler", "estimator", "k")
DSNAS = "dsnas"
"""The DSNAS baseline's name in the report: its rows of the paper table and its metrics file."""
TIMINGS = "timings.json"


def target_label(mflops: float) -> str:
    """A FLOPs target as it appears in paths and tables (e.g. 1.5 -> '1.5', 2.0 -> '2')."""
    return f"{mflops:g}"


def seed_folder(seed: int | str) -> str:
    """A per-seed run's folder name (e.g. 0 -> 'seed0'; '{seed}' gives the rules' pattern)."""
    return f"seed{seed}"


@dataclass(frozen=True)
class RunFiles:
    """What every run of the shared run loop writes into its folder: supernet training and DSNAS."""

    dir: Path

    @property
    def checkpoint(self) -> Path:
        return self.dir / "supernet.pt"

    @property
    def resume(self) -> Path:
        return self.dir / "resume.pt"

    @property
    def timings(self) -> Path:
        """Wall-clock times, kept apart from the results (which are byte-identical run to run)."""
        return self.dir / TIMINGS

    @property
    def summary(self) -> Path:
        return self.dir / "summary.json"

    @property
    def metrics(self) -> Path:
        return self.dir / "metrics.csv"


@dataclass(frozen=True)
class TrainingRunFiles(RunFiles):
    """A supernet training run's folder (`attentivenas train --out-dir`): the warm-up or one method."""

    @property
    def epochs(self) -> Path:
        return self.dir / "epochs.csv"

    @property
    def flops_table(self) -> Path:
        return self.dir / "flops_table.csv"

    @property
    def flops_histogram(self) -> Path:
        return self.dir / "flops_histogram.csv"


@dataclass(frozen=True)
class DsnasRunFiles(RunFiles):
    """One DSNAS run's folder (`attentivenas dsnas --out-dir`)."""

    @property
    def child(self) -> Path:
        return self.dir / "child.json"


@dataclass(frozen=True)
class SearchRunFiles:
    """One method's Pareto search folder (`attentivenas search --out-dir`)."""

    dir: Path

    @property
    def evaluated(self) -> Path:
        return self.dir / "evaluated.csv"

    @property
    def front(self) -> Path:
        return self.dir / "front.csv"

    @property
    def chosen(self) -> Path:
        return self.dir / "chosen.csv"

    @property
    def hypervolume(self) -> Path:
        return self.dir / "hypervolume.json"

    @property
    def timings(self) -> Path:
        """Wall-clock times, kept apart from the results (which are byte-identical run to run)."""
        return self.dir / TIMINGS

    @property
    def summary(self) -> Path:
        return self.dir / "summary.json"

    @property
    def chosen_dir(self) -> Path:
        """Each chosen model's subnet JSON and exported model folder."""
        return self.dir / "chosen"

    def chosen_subnet(self, model: str) -> Path:
        return self.chosen_dir / f"{model}.json"

    def chosen_model(self, model: str) -> Path:
        return self.chosen_dir / model


@dataclass(frozen=True)
class PredictorFiles:
    """The accuracy predictor's folder: its training table, the fitted model and its rank quality."""

    dir: Path

    @property
    def subnets(self) -> Path:
        return self.dir / "subnets.csv"

    @property
    def predictor(self) -> Path:
        return self.dir / "predictor.npz"

    @property
    def metrics(self) -> Path:
        return self.dir / "metrics.json"

    @property
    def predictions(self) -> Path:
        return self.dir / "predictions.csv"

    @property
    def plot_stem(self) -> Path:
        """The predicted-vs-true plot, without its format suffix."""
        return self.dir / "predicted_vs_true"

    @property
    def plot(self) -> Path:
        return self.plot_stem.with_suffix(".png")


@dataclass(frozen=True)
class PaperFiles:
    """The report: the Pareto table, its figures, their plot data and the ablation plots."""

    dir: Path

    @property
    def table_markdown(self) -> Path:
        return self.dir / "pareto_table.md"

    @property
    def table_csv(self) -> Path:
        return self.dir / "pareto_table.csv"

    @property
    def table_latex(self) -> Path:
        return self.dir / "pareto_table.tex"

    @property
    def metrics_dir(self) -> Path:
        return self.dir / "metrics"

    def metrics(self, method: str) -> Path:
        """One method's numbers (hypervolume, best top-1, compute): one row of `dvc metrics show`."""
        return self.metrics_dir / f"{method}.json"

    @property
    def statistics(self) -> Path:
        """Per method over the seeds: spreads, 95% intervals and the tests against the baseline."""
        return self.dir / "statistics.json"

    @property
    def figures_dir(self) -> Path:
        return self.dir / "figures"

    def figure_stem(self, name: str) -> Path:
        return self.figures_dir / name

    def figure(self, name: str, fmt: str) -> Path:
        return self.figures_dir / f"{name}.{fmt}"

    @property
    def fronts_data(self) -> Path:
        return self.dir / "plots" / "fronts.csv"

    @property
    def training_curves_data(self) -> Path:
        return self.dir / "plots" / "training_curves.csv"

    @property
    def ablations_dir(self) -> Path:
        return self.dir / "ablations"

    def ablation_stem(self, ablation: str) -> Path:
        return self.ablations_dir / ablation

    def ablation(self, ablation: str, fmt: str) -> Path:
        return self.ablations_dir / f"{ablation}.{fmt}"


@dataclass(frozen=True)
class ResultsLayout:
    """Every artefact path of one results directory (config key `results_dir`)."""

    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root))

    @property
    def data_summary(self) -> Path:
        return self.root / "data" / "summary.json"

    @property
    def warmup(self) -> TrainingRunFiles:
        return TrainingRunFiles(self.root / "warmup")

    def supernet(self, method: str, seed: int | str) -> TrainingRunFiles:
        """A method's training run at one seed of config `seeds`."""
        return TrainingRunFiles(self.root / "supernet" / method / seed_folder(seed))

    @property
    def predictor(self) -> PredictorFiles:
        return PredictorFiles(self.root / "predictor")

    def search(self, method: str, seed: int | str) -> SearchRunFiles:
        """The search in a method's supernet of one seed."""
        return SearchRunFiles(self.root / "search" / method / seed_folder(seed))

    def dsnas(self, target: str, seed: int | str) -> DsnasRunFiles:
        """A DSNAS run by its target label (`target_label(mflops)`) and seed."""
        return DsnasRunFiles(self.root / "dsnas" / target / seed_folder(seed))

    @property
    def paper(self) -> PaperFiles:
        return PaperFiles(self.root / "paper")

    def root_of(self, path: str | Path, artefact: Path) -> Path:
        """The results folder `path` lies in, given that `path` is this layout's `artefact` (e.g. a
        job's actual input path, which a storage plugin may have prefixed)."""
        depth = len(artefact.relative_to(self.root).parts)
        return Path(path).parents[depth - 1]

    def is_result(self, path: Path) -> bool:
        """Whether `path` (inside this folder) is a result, byte-identical run to run; logs, timings,
        Snakemake's timing records and DVC's `.gitignore` files are not."""
        relative = Path(path).relative_to(self.root)
        return relative.parts[0] not in ("logs", "benchmarks") and relative.name not in (TIMINGS, ".gitignore")

    def log(self, rule: str, wildcard: str | None = None, seed: int | str | None = None) -> Path:
        """A Snakemake job's log: one per rule, or per wildcard value (and seed)."""
        return self.root / "logs" / self._job_file(rule, wildcard, seed, "log")

    def benchmark(self, rule: str, wildcard: str | None = None, seed: int | str | None = None) -> Path:
        """A Snakemake job's timing record (kept apart from the results)."""
        return self.root / "benchmarks" / self._job_file(rule, wildcard, seed, "tsv")

    @staticmethod
    def _job_file(rule: str, wildcard: str | None, seed: int | str | None, suffix: str) -> str:
        if wildcard is None:
            return f"{rule}.{suffix}"
        return f"{rule}/{wildcard}.{suffix}" if seed is None else f"{rule}/{wildcard}/{seed_folder(seed)}.{suffix}"
