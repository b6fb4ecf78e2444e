"""Fitted scikit-learn regressors as plain arrays, so that a predictor file holds numbers, never code.

Each regressor the accuracy predictor supports is kept as the arrays its predictions need: a tree
ensemble (random forest, extra trees, gradient boosting) as one table of the nodes of all its trees,
a linear model (ridge) as coefficients and intercept, k-nearest neighbours as its training points and
parameters. Each predicts from those arrays exactly as scikit-learn does, to the last bit, and `restore`
checks arrays read from a file before anything uses them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import ExtraTreesRegressor, GradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.neighbors import KNeighborsRegressor

_LEAF = -1  # scikit-learn's child index of a leaf


class UnsupportedRegressor(TypeError):
    """A regressor that cannot be stored as arrays."""


def plain_params(regressor: Any) -> dict[str, Any]:
    """The regressor's parameters that are plain JSON values (the others cannot come from a config)."""
    return {k: v for k, v in regressor.get_params().items()
            if v is None or isinstance(v, bool | int | float | str)}


@dataclass(frozen=True)
class TreeEnsemble:
    """The nodes of all trees in one table; children index the table, roots[t] is tree t's first node.

    `combine` is "mean" (forests: the trees' average) or "boosted" (gradient boosting: `baseline` plus
    `learning_rate` times each tree, added stage by stage).
    """

    combine: str
    roots: np.ndarray
    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    value: np.ndarray
    baseline: float = 0.0
    learning_rate: float = 1.0

    ARRAYS = ("roots", "left", "right", "feature", "threshold", "value")

    @classmethod
    def from_trees(cls, trees: list[Any], combine: str, **scalars: float) -> TreeEnsemble:
        parts: dict[str, list[np.ndarray]] = {name: [] for name in cls.ARRAYS}
        start = 0
        for tree in trees:
            left = tree.children_left.astype(np.int64)
            leaf = left == _LEAF
            shift = np.where(leaf, 0, start)
            parts["roots"].append(np.array([start]))
            parts["left"].append(left + shift)
            parts["right"].append(tree.children_right.astype(np.int64) + shift)
            parts["feature"].append(np.where(leaf, 0, tree.feature).astype(np.int64))
            parts["threshold"].append(tree.threshold.astype(np.float64))
            parts["value"].append(tree.value[:, 0, 0].astype(np.float64))
            start += tree.node_count
        return cls(combine, **{name: np.concatenate(parts[name]) for name in cls.ARRAYS}, **scalars)

    def leaves(self, features: np.ndarray) -> np.ndarray:
        """The leaf each sample reaches in each tree (trees x samples), as scikit-learn walks them."""
        # the trees compare float32 features (scikit-learn's tree dtype) with float64 thresholds
        x = features.astype(np.float32).astype(np.float64)
        node = np.repeat(self.roots[:, None], len(x), axis=1)
        samples = np.arange(len(x))[None, :]
        while True:
            left = self.left[node]
            inner = left != _LEAF
            if not inner.any():
                return node
            go_left = x[samples, self.feature[node]] <= self.threshold[node]
            node = np.where(inner, np.where(go_left, left, self.right[node]), node)

    def predict(self, features: np.ndarray) -> np.ndarray:
        per_tree = self.value[self.leaves(features)]
        if self.combine == "boosted":
            total = np.full(len(features), self.baseline, dtype=np.float64)
            for values in per_tree:
                total += self.learning_rate * values
            return total
        total = np.zeros(len(features), dtype=np.float64)
        for values in per_tree:
            total += values
        total /= len(per_tree)
        return total

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.ARRAYS}

    def meta(self) -> dict[str, Any]:
        return {"combine": self.combine, "baseline": self.baseline, "learning_rate": self.learning_rate}

    @classmethod
    def restore(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray], n_features: int) -> TreeEnsemble:
        stored = cls(meta.get("combine"), **{name: arrays[name] for name in cls.ARRAYS},
                     baseline=float(meta.get("baseline", 0.0)), learning_rate=float(meta.get("learning_rate", 1.0)))
        stored._check(n_features)
        return stored

    def _check(self, n_features: int) -> None:
        n = len(self.left)
        if self.combine not in ("mean", "boosted"):
            raise ValueError(f"combine is {self.combine!r}, not 'mean' or 'boosted'")
        for name in self.ARRAYS:
            array = getattr(self, name)
            kind = "f" if name in ("threshold", "value") else "i"
            if array.ndim != 1 or array.dtype.kind != kind or (name != "roots" and len(array) != n):
                raise ValueError(f"array {name!r} must be 1-D {'float' if kind == 'f' else 'integer'} "
                                 f"of length {n}, got {array.dtype} {array.shape}")
        if not len(self.roots) or self.roots.min() < 0 or self.roots.max() >= n:
            raise ValueError(f"tree roots must be node indices 0..{n - 1}")
        index = np.arange(n)
        inner = self.left != _LEAF
        if np.any(inner != (self.right != _LEAF)):
            raise ValueError("a node has exactly one child")
        # children come after their parent, so every walk from a root ends at a leaf
        for child in (self.left[inner], self.right[inner]):
            if np.any(child <= index[inner]) or np.any(child >= n):
                raise ValueError("a child index does not point to a later node")
        if self.feature.min(initial=0) < 0 or self.feature.max(initial=0) >= n_features:
            raise ValueError(f"a split feature is outside 0..{n_features - 1}")


@dataclass(frozen=True)
class Linear:
    coef: np.ndarray
    intercept: np.ndarray

    def predict(self, features: np.ndarray) -> np.ndarray:
        return features @ self.coef + self.intercept

    def arrays(self) -> dict[str, np.ndarray]:
        return {"coef": self.coef, "intercept": self.intercept}

    def meta(self) -> dict[str, Any]:
        return {}

    @classmethod
    def restore(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray], n_features: int) -> Linear:
        coef, intercept = arrays["coef"], arrays["intercept"]
        if coef.shape != (n_features,) or intercept.shape != () or {coef.dtype.kind, intercept.dtype.kind} != {"f"}:
            raise ValueError(f"coef must be {n_features} floats and intercept one float, got "
                             f"{coef.dtype} {coef.shape} and {intercept.dtype} {intercept.shape}")
        return cls(coef, intercept)


@dataclass(frozen=True)
class Neighbors:
    """k-nearest neighbours: the model is its training points; `params` are KNeighborsRegressor's."""

    points: np.ndarray
    targets: np.ndarray
    params: dict[str, Any]

    def __post_init__(self):
        model = KNeighborsRegressor(**self.params).fit(self.points, self.targets)
        object.__setattr__(self, "_model", model)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(self._model.predict(features), dtype=np.float64)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"points": self.points, "targets": self.targets}

    def meta(self) -> dict[str, Any]:
        return {"params": self.params}

    @classmethod
    def restore(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray], n_features: int) -> Neighbors:
        points, targets, params = arrays["points"], arrays["targets"], meta.get("params")
        if points.ndim != 2 or points.shape[1] != n_features or targets.shape != (len(points),) \
                or points.dtype.kind != "f" or targets.dtype.kind != "f":
            raise ValueError(f"points must be N x {n_features} floats and targets N floats, got "
                             f"{points.dtype} {points.shape} and {targets.dtype} {targets.shape}")
        if not isinstance(params, dict):
            raise ValueError("the parameters of k-nearest neighbours are missing")
        return cls(points, targets, params)


StoredRegressor = TreeEnsemble | Linear | Neighbors
KINDS: dict[str, type] = {"trees": TreeEnsemble, "linear": Linear, "neighbors": Neighbors}


def to_arrays(regressor: Any) -> StoredRegressor:
    """The arrays of a fitted regressor (one of the supported types; an already stored one as it is)."""
    if isinstance(regressor, TreeEnsemble | Linear | Neighbors):
        return regressor
    if isinstance(regressor, RandomForestRegressor | ExtraTreesRegressor):
        return TreeEnsemble.from_trees([e.tree_ for e in regressor.estimators_], "mean")
    if isinstance(regressor, GradientBoostingRegressor):
        if isinstance(regressor.init_, str) and regressor.init_ == "zero":
            baseline = 0.0
        elif isinstance(regressor.init_, DummyRegressor):
            baseline = float(np.ravel(regressor.init_.constant_)[0])
        else:
            raise UnsupportedRegressor(f"gradient boosting with init={regressor.init_!r} cannot be stored")
        return TreeEnsemble.from_trees([e.tree_ for e in regressor.estimators_[:, 0]], "boosted",
                                       baseline=baseline, learning_rate=float(regressor.learning_rate))
    if isinstance(regressor, Ridge | LinearRegression) and np.ndim(regressor.coef_) == 1:
        return Linear(np.asarray(regressor.coef_, dtype=np.float64),
                      np.asarray(regressor.intercept_, dtype=np.float64).reshape(()))
    if isinstance(regressor, KNeighborsRegressor) and isinstance(regressor.weights, str | None):
        return Neighbors(np.asarray(regressor._fit_X, dtype=np.float64), np.asarray(regressor._y, dtype=np.float64),
                         plain_params(regressor))
    raise UnsupportedRegressor(f"{type(regressor).__name__} cannot be stored as arrays; supported: random "
                               "forest, extra trees, gradient boosting, ridge, linear regression, k-nearest "
                               "neighbours")


def restore(kind: str, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray], n_features: int) -> StoredRegressor:
    """A stored regressor from what `arrays()` and `meta()` gave, checked; ValueError or KeyError if inconsistent."""
    if kind not in KINDS:
        raise ValueError(f"regressor kind {kind!r} is not one of {', '.join(KINDS)}")
    return KINDS[kind].restore(meta, arrays, n_features)


def kind_of(stored: StoredRegressor) -> str:
    return next(kind for kind, cls in KINDS.items() if isinstance(stored, cls))
