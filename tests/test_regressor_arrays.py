import json
import random
import zipfile

import numpy as np
import pytest

from attentivenas.predictor import (
    AccuracyPredictor,
    PredictorError,
    build_regressor,
    load_predictor,
    save_predictor,
)
from attentivenas.space import SearchSpace

FMNIST = SearchSpace.load("fmnist")

# every regressor of `predictor.model`, and the parameters that change how it predicts
CASES = [
    ("random_forest", {"n_estimators": 20, "max_depth": 15}),
    ("random_forest", {"n_estimators": 5, "max_depth": None, "max_features": 0.5}),
    ("extra_trees", {"n_estimators": 20}),
    ("gradient_boosting", {"n_estimators": 30}),
    ("gradient_boosting", {"n_estimators": 20, "loss": "huber", "learning_rate": 0.3}),
    ("gradient_boosting", {"n_estimators": 20, "loss": "quantile", "alpha": 0.3}),
    ("gradient_boosting", {"n_estimators": 20, "init": "zero", "max_leaf_nodes": 7}),
    ("ridge", {"alpha": 0.5}),
    ("knn", {"n_neighbors": 3}),
    ("knn", {"n_neighbors": 7, "weights": "distance", "p": 1}),
]


@pytest.fixture(scope="module")
def data():
    rng = random.Random(0)
    features = np.array([FMNIST.encode(FMNIST.sample_uniform(rng)) for _ in range(200)])
    target = features @ np.random.default_rng(0).normal(size=FMNIST.encoding_length)
    target += np.random.default_rng(1).normal(size=len(features))
    unseen = [FMNIST.sample_uniform(rng) for _ in range(100)]
    return features, target, unseen


@pytest.mark.parametrize(("model", "params"), CASES)
def test_stored_regressor_predicts_bit_for_bit_like_scikit_learn(data, tmp_path, model, params):
    features, target, unseen = data
    regressor = build_regressor(model, params, seed=0).fit(features, target)
    save_predictor(tmp_path / "p.npz", AccuracyPredictor(regressor, FMNIST.name, FMNIST.encoding_length))
    loaded = load_predictor(tmp_path / "p.npz", FMNIST)
    expected = regressor.predict(np.array([FMNIST.encode(s) for s in unseen]))
    assert np.array_equal(loaded.predict(FMNIST, unseen), expected)
    with np.load(tmp_path / "p.npz", allow_pickle=False) as npz:  # plain arrays only
        assert all(npz[name].dtype.kind in "iufU" for name in npz.files)


def test_predictor_file_is_byte_identical_for_the_same_fit(data, tmp_path):
    features, target, _ = data
    for name in ("a.npz", "b.npz"):
        regressor = build_regressor("random_forest", {"n_estimators": 5}, seed=3).fit(features, target)
        save_predictor(tmp_path / name, AccuracyPredictor(regressor, FMNIST.name, FMNIST.encoding_length))
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def _tampered(source, target, **changes):
    """A copy of the predictor file `source` with some arrays replaced."""
    with np.load(source, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays.update(changes)
    np.savez(target, **arrays)
    return target


def test_inconsistent_predictor_files_are_refused_before_use(data, tmp_path):
    features, target, _ = data
    regressor = build_regressor("gradient_boosting", {"n_estimators": 3}, seed=0).fit(features, target)
    good = tmp_path / "good.npz"
    save_predictor(good, AccuracyPredictor(regressor, FMNIST.name, FMNIST.encoding_length))
    with np.load(good) as npz:
        left, feature, header = npz["left"], npz["feature"], json.loads(str(npz["header"]))
    loop = left.copy()
    loop[0] = 0  # a node that is its own child would never reach a leaf
    cases = {
        "child index": _tampered(good, tmp_path / "loop.npz", left=loop),
        "split feature": _tampered(good, tmp_path / "feature.npz", feature=feature + 1000),
        "integer": _tampered(good, tmp_path / "dtype.npz", left=left.astype(np.float64)),
        "regressor kind": _tampered(good, tmp_path / "kind.npz",
                                    header=np.array(json.dumps({**header, "kind": "os.system"}))),
        "not an attentivenas predictor": _tampered(good, tmp_path / "format.npz",
                                                   header=np.array(json.dumps({**header, "format": 2}))),
        "was fitted for space 'cifar10'": _tampered(good, tmp_path / "space.npz",
                                                    header=np.array(json.dumps({**header, "space_name": "cifar10"}))),
    }
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:500])
    cases["cannot be read"] = truncated
    headerless = tmp_path / "headerless.npz"
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(headerless, "w") as copy:
        for item in source.infolist():
            if item.filename != "header.npy":
                copy.writestr(item, source.read(item))
    cases["no header array"] = headerless
    for message, path in cases.items():
        with pytest.raises(PredictorError, match=message):
            load_predictor(path, FMNIST)
