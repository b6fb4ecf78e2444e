"""Accuracy predictors on the subnet encoding: saved with the scikit-learn version that fitted them.

The attentive sampler's `predictor` estimator and the search's pre-filter load them through
`load_predictor`, which refuses a predictor fitted for a different space.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sklearn

from attentivenas.errors import UserInputError
from attentivenas.io import atomic_write_bytes
from attentivenas.space import SearchSpace, Subnet


class PredictorError(UserInputError):
    """A predictor file is missing, unreadable or fitted for another space."""


@dataclass
class AccuracyPredictor:
    """A fitted regressor from the subnet encoding to top-1 (percent)."""

    model: Any
    space_name: str
    encoding_length: int
    sklearn_version: str = sklearn.__version__

    def predict(self, space: SearchSpace, subnets: Sequence[Subnet]) -> np.ndarray:
        features = np.array([space.encode(s) for s in subnets], dtype=np.float64)
        return np.asarray(self.model.predict(features), dtype=np.float64)


def save_predictor(path: str | Path, predictor: AccuracyPredictor) -> None:
    buffer = io.BytesIO()
    pickle.dump(predictor, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_predictor(path: str | Path, space: SearchSpace) -> AccuracyPredictor:
    path = Path(path)
    if not path.is_file():
        raise PredictorError(f"predictor file {path} does not exist: fit one first "
                             "(python -m attentivenas fit-predictor, or snakemake --cores all predictor)")
    with open(path, "rb") as handle:
        predictor = pickle.load(handle)
    if not isinstance(predictor, AccuracyPredictor):
        raise PredictorError(f"{path} is not an attentivenas accuracy predictor")
    if predictor.space_name != space.name or predictor.encoding_length != space.encoding_length:
        raise PredictorError(f"predictor {path} was fitted for space {predictor.space_name!r} "
                             f"({predictor.encoding_length} numbers), not {space.name!r}; refit it for this space")
    return predictor
