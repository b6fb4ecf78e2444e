"""Accuracy predictors on the subnet encoding: fitted, scored by rank quality, saved with the sklearn version.

A predictor file is an .npz read without pickle: the regressor's arrays (attentivenas.regressor_arrays)
and a JSON header, so opening a predictor never runs code from it.

The predictor's job is ranking subnets, above all subnets of similar cost (the attentive sampler
compares candidates within one FLOPs bin), so its quality is reported as Kendall tau and Spearman rho
on held-out subnets, overall and within equal-count FLOPs bins, next to the RMSE. The attentive
sampler's `predictor` estimator and the search's pre-filter load predictors through `load_predictor`,
which refuses a predictor fitted for a different space.
"""

from __future__ import annotations

import csv
import json
import random
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
from scipy import stats
from sklearn.base import RegressorMixin
from sklearn.ensemble import ExtraTreesRegressor, GradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import Ridge
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsRegressor

from attentivenas import regressor_arrays
from attentivenas.errors import UserInputError
from attentivenas.evaluation import EvalResult
from attentivenas.io import read_csv, write_npz
from attentivenas.space import SearchSpace, Subnet, SubnetError
from attentivenas.specs import PredictorSpec

REGRESSORS: dict[str, type[RegressorMixin]] = {
    "random_forest": RandomForestRegressor,
    "extra_trees": ExtraTreesRegressor,
    "gradient_boosting": GradientBoostingRegressor,
    "ridge": Ridge,
    "knn": KNeighborsRegressor,
}
# The reference predictor is a forest of 100 trees of depth 15; `predictor.params` overrides these.
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "random_forest": {"n_estimators": 100, "max_depth": 15},
    "extra_trees": {"n_estimators": 100, "max_depth": 15},
}
SAMPLE_COLUMNS = ("subnet", "mflops", "params_m", "top1", "loss")
FILE_FORMAT = "attentivenas-predictor/1"


class PredictorError(UserInputError):
    """A predictor file or its training data is missing, unreadable or made for another space."""


@dataclass
class AccuracyPredictor:
    """A fitted regressor from the subnet encoding to top-1 (percent), held as its arrays."""

    model: regressor_arrays.StoredRegressor
    space_name: str
    encoding_length: int
    sklearn_version: str = sklearn.__version__

    def __post_init__(self):
        try:
            self.model = regressor_arrays.to_arrays(self.model)
        except regressor_arrays.UnsupportedRegressor as err:
            raise PredictorError(str(err)) from None

    def predict(self, space: SearchSpace, subnets: Sequence[Subnet]) -> np.ndarray:
        features = np.array([space.encode(s) for s in subnets], dtype=np.float64)
        return self.model.predict(features)


def save_predictor(path: str | Path, predictor: AccuracyPredictor) -> None:
    header = {"format": FILE_FORMAT, "kind": regressor_arrays.kind_of(predictor.model),
              "space_name": predictor.space_name, "encoding_length": predictor.encoding_length,
              "sklearn_version": predictor.sklearn_version, **predictor.model.meta()}
    write_npz(path, {"header": np.array(json.dumps(header, sort_keys=True)), **predictor.model.arrays()})


def load_predictor(path: str | Path, space: SearchSpace) -> AccuracyPredictor:
    """Read a predictor file written by `save_predictor` (never code: no pickle) and check it fits `space`."""
    path = Path(path)
    if not path.is_file():
        raise PredictorError(f"predictor file {path} does not exist: fit one first "
                             "(python -m attentivenas fit-predictor, or snakemake --cores all predictor)")
    not_ours = (f"{path} is not an attentivenas predictor file ({FILE_FORMAT}: an .npz of arrays and a "
                "header, written by fit-predictor)")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("it holds one array, not an .npz archive of arrays")
        with loaded:
            arrays = {name: loaded[name] for name in loaded.files}
        if "header" not in arrays:
            raise ValueError("it has no header array")
        header = json.loads(str(arrays.pop("header")))
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
        raise PredictorError(f"{not_ours}; it cannot be read: {err}") from None
    if not isinstance(header, dict) or header.get("format") != FILE_FORMAT:
        raise PredictorError(not_ours)
    if header.get("space_name") != space.name or header.get("encoding_length") != space.encoding_length:
        raise PredictorError(f"predictor {path} was fitted for space {header.get('space_name')!r} "
                             f"({header.get('encoding_length')} numbers), not {space.name!r}; "
                             "refit it for this space")
    try:
        model = regressor_arrays.restore(header.get("kind"), header, arrays, space.encoding_length)
        model.predict(np.array([space.encode(space.min_subnet())]))
    except (ValueError, KeyError, TypeError) as err:
        raise PredictorError(f"{not_ours}; its regressor is inconsistent: {err}") from None
    return AccuracyPredictor(model, space.name, space.encoding_length, str(header.get("sklearn_version")))


# ---------------------------------------------------------------- data: sampled and evaluated subnets

def sample_distinct(space: SearchSpace, count: int, seed: int) -> list[Subnet]:
    """`count` different subnets, each drawn uniformly; the same list for the same seed and space."""
    if count > space.num_subnets():
        raise UserInputError(f"cannot draw {count} different subnets: space {space.name!r} holds only "
                             f"{space.num_subnets()}")
    rng = random.Random(seed)
    chosen: dict[Subnet, None] = {}
    while len(chosen) < count:
        chosen.setdefault(space.sample_uniform(rng))
    return list(chosen)


def sample_rows(space: SearchSpace, subnets: Sequence[Subnet], results: Sequence[EvalResult]) -> list[dict]:
    """Rows of the sample table: subnet JSON, its encoding as x0..x{n-1}, cost, top-1 and loss."""
    rows = []
    for subnet, result in zip(subnets, results, strict=True):
        row = {"subnet": subnet.to_json()}
        row.update({f"x{i}": value for i, value in enumerate(space.encode(subnet))})
        row.update(mflops=result.mflops, params_m=result.params_m, top1=result.top1, loss=result.loss)
        rows.append(row)
    return rows


@dataclass(frozen=True)
class SampleTable:
    subnets: list[Subnet]
    mflops: np.ndarray
    top1: np.ndarray


def read_sample_table(path: str | Path, space: SearchSpace) -> SampleTable:
    """A CSV written by `sample-subnets`; every subnet is checked against `space`."""
    path = Path(path)
    if not path.is_file():
        raise PredictorError(f"predictor data {path} does not exist: "
                             "run python -m attentivenas sample-subnets")
    try:
        rows = read_csv(path)
    except (UnicodeDecodeError, csv.Error) as err:
        raise PredictorError(f"predictor data {path} is not a CSV table of sample-subnets ({err})") from None
    missing = [c for c in SAMPLE_COLUMNS if rows and c not in rows[0]]
    if not rows or missing:
        raise PredictorError(f"{path} is not a sample-subnets table: "
                             f"{'no rows' if not rows else 'missing column(s) ' + ', '.join(missing)}")
    subnets, mflops, top1 = [], [], []
    for number, row in enumerate(rows, start=2):
        try:
            subnets.append(space.validate(json.loads(row["subnet"])))
        except (json.JSONDecodeError, SubnetError) as err:
            raise PredictorError(f"{path} line {number}: {err}") from None
        for column, values in (("mflops", mflops), ("top1", top1)):
            try:
                values.append(float(row[column]))
            except (TypeError, ValueError):
                raise PredictorError(f"{path} line {number}: column {column} = {row[column]!r} is not a "
                                     "number") from None
    return SampleTable(subnets, np.array(mflops), np.array(top1))


# ---------------------------------------------------------------- fitting and rank quality

def build_regressor(model: str, params: Mapping[str, Any], seed: int) -> RegressorMixin:
    """The configured scikit-learn regressor; a bad parameter name fails here, naming `predictor.params`."""
    if model not in REGRESSORS:
        raise PredictorError(f"config key 'predictor.model' = {model!r}; allowed: {', '.join(REGRESSORS)}")
    regressor_class = REGRESSORS[model]
    settings = {**DEFAULT_PARAMS.get(model, {}), **params}
    allowed = regressor_class().get_params()
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise PredictorError(f"config key 'predictor.params': {', '.join(unknown)} is not a parameter of "
                             f"{regressor_class.__name__} (predictor.model={model!r}); allowed: "
                             f"{', '.join(sorted(allowed))}")
    if "random_state" in allowed:
        settings.setdefault("random_state", seed)
    return regressor_class(**settings)


def rank_quality(true: np.ndarray, predicted: np.ndarray) -> dict[str, float | None]:
    """Kendall tau, Spearman rho (None where undefined: fewer than 2 points or a constant side) and RMSE."""
    rmse = float(np.sqrt(np.mean((true - predicted) ** 2))) if len(true) else None
    if len(true) < 2 or np.ptp(true) == 0 or np.ptp(predicted) == 0:
        return {"kendall_tau": None, "spearman_rho": None, "rmse": rmse}
    return {"kendall_tau": float(stats.kendalltau(true, predicted).statistic),
            "spearman_rho": float(stats.spearmanr(true, predicted).statistic), "rmse": rmse}


def rank_metrics(true: np.ndarray, predicted: np.ndarray, mflops: np.ndarray, bins: int) -> dict[str, Any]:
    """Rank quality overall and within `bins` equal-count bins of `mflops`."""
    order = np.argsort(mflops, kind="stable")
    per_bin = []
    for members in np.array_split(order, min(bins, len(order))):
        per_bin.append({"mflops_min": float(mflops[members].min()),
                        "mflops_max": float(mflops[members].max()), "n": int(len(members)),
                        **rank_quality(true[members], predicted[members])})
    taus = [b["kendall_tau"] for b in per_bin if b["kendall_tau"] is not None]
    rhos = [b["spearman_rho"] for b in per_bin if b["spearman_rho"] is not None]
    return {**rank_quality(true, predicted),
            "mean_bin_kendall_tau": float(np.mean(taus)) if taus else None,
            "mean_bin_spearman_rho": float(np.mean(rhos)) if rhos else None,
            "flops_bins": per_bin}


@dataclass
class PredictorFit:
    predictor: AccuracyPredictor
    metrics: dict[str, Any]
    predictions: list[dict[str, float]]


def fit_predictor(space: SearchSpace, table: SampleTable, settings: PredictorSpec, seed: int) -> PredictorFit:
    """Fit `settings.model` on a seeded part of `table`; score its ranking on the held-out rest."""
    regressor = build_regressor(settings.model, settings.params, seed)
    n = len(table.subnets)
    held = round(n * settings.holdout_fraction)
    if held < 2 or n - held < 2:
        raise PredictorError(f"{n} sampled subnets with config key predictor.holdout_fraction="
                             f"{settings.holdout_fraction} leave fewer than 2 rows to fit or to hold out; "
                             "sample more subnets (predictor.num_subnets) or change the fraction")
    features = np.array([space.encode(s) for s in table.subnets], dtype=np.float64)
    fit_idx, held_idx = train_test_split(np.arange(n), test_size=held, random_state=seed)
    try:
        regressor.fit(features[fit_idx], table.top1[fit_idx])
        predictor = AccuracyPredictor(regressor, space.name, space.encoding_length)
        predicted = predictor.model.predict(features[held_idx])
    except (ValueError, TypeError) as err:
        raise PredictorError(f"config key 'predictor.params' {dict(settings.params)} rejected by "
                             f"{type(regressor).__name__}: {err}") from None
    true, mflops = table.top1[held_idx], table.mflops[held_idx]
    params = regressor_arrays.plain_params(regressor)
    metrics = {"model": settings.model, "params": params, "n_fit": int(len(fit_idx)),
               "n_heldout": int(len(held_idx)),
               **rank_metrics(true, predicted, mflops, settings.flops_bins),
               "sklearn_version": sklearn.__version__}
    predictions = [{"mflops": float(m), "true": float(t), "predicted": float(p)}
                   for m, t, p in zip(mflops, true, predicted, strict=True)]
    return PredictorFit(predictor, metrics, predictions)
