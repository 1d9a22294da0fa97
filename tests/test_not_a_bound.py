"""``score`` is a bound only on the training rows: it warns elsewhere, and nowhere the package
itself scores the training rows (bound_scorer with TrainOnlySplit, BoundEarlyStopping)."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_ibvi import (
    BoundEarlyStopping,
    EntropySGDClassifier,
    EntropySGDRegressor,
    IBVIClassifier,
    IBVIRegressor,
    NotABoundWarning,
)
from sklearn_ibvi.core import estimator as _base
from sklearn_ibvi.core.estimator import rows_fingerprint, same_rows
from sklearn_ibvi.model_selection import TrainOnlySplit, bound_scorer, log_predictive_scorer

ESTIMATORS = [EntropySGDClassifier, EntropySGDRegressor, IBVIClassifier, IBVIRegressor]


@pytest.fixture(scope="module")
def data():
    X, y = load_iris(return_X_y=True)
    order = np.random.RandomState(0).permutation(len(X))
    return X[order] * 10, y[order]  # unscaled, so that the pipeline's scaler matters


def small(cls):
    return cls(hidden_layer_sizes=(8,), max_epochs=2, random_state=0)


def targets(cls, y):
    return y if "Classifier" in cls.__name__ else y.astype(float)


def assert_silent(call):
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotABoundWarning)
        return call()


@pytest.mark.parametrize("in_pipeline", [False, True], ids=["plain", "pipeline"])
@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_score_warns_on_held_out_rows_only(data, cls, in_pipeline):
    X, y = data[0], targets(cls, data[1])
    train, held_out = slice(0, 100), slice(100, None)
    if in_pipeline:
        model = make_pipeline(StandardScaler(), small(cls)).fit(X[train], y[train])
    else:
        X = StandardScaler().fit_transform(X)
        model = small(cls).fit(X[train], y[train])
    bound = assert_silent(lambda: model.score(X[train], y[train]))
    reversed_rows = assert_silent(lambda: model.score(X[train][::-1], y[train][::-1]))
    assert reversed_rows == pytest.approx(bound, rel=1e-6)  # the same data set: the same bound
    with pytest.warns(NotABoundWarning, match="log_predictive_scorer") as record:
        model.score(X[held_out], y[held_out])
    assert ("neg_log_loss" in str(record[0].message)) == ("Classifier" in cls.__name__)
    assert record[0].filename == __file__  # attributed to the caller's line


def test_fingerprint_is_of_the_same_rows_in_any_order_and_chunking(data, monkeypatch):
    X, y = data
    whole = rows_fingerprint(X.astype(np.float32), y)
    monkeypatch.setattr(_base, "VALIDATION_CHUNK_BYTES", 7 * 4 * X.shape[1])  # chunks of 7 rows
    order = np.random.RandomState(1).permutation(len(X))
    assert same_rows(whole, rows_fingerprint(np.asarray(X[order], dtype=np.float32), y[order]))
    changed = X.copy()
    changed[3, 2] += 0.1
    assert not same_rows(whole, rows_fingerprint(changed, y))
    swapped = y.copy()
    swapped[[0, -1]] = swapped[[-1, 0]]  # the same targets on other rows
    assert y[0] != y[-1] and not same_rows(whole, rows_fingerprint(X, swapped))
    assert not same_rows(whole, rows_fingerprint(X[:-1], y[:-1]))


def test_memmap_training_rows_score_silently(data, tmp_path):
    X, y = StandardScaler().fit_transform(data[0]), data[1]
    stored = np.lib.format.open_memmap(tmp_path / "X.npy", mode="w+", dtype=np.float64, shape=X.shape)
    stored[:] = X
    model = small(EntropySGDClassifier).fit(stored, y)
    assert_silent(lambda: model.score(stored, y))
    assert_silent(lambda: model.score(X, y))
    with pytest.warns(NotABoundWarning):
        model.score(stored[:100], y[:100])


def test_continuations_recognise_the_rows_of_their_last_call(data):
    X, y = StandardScaler().fit_transform(data[0]), data[1]
    first, second = slice(0, 75), slice(75, None)
    model = small(EntropySGDClassifier)
    model.partial_fit(X[first], y[first], classes=np.unique(y))
    model.partial_fit(X[second], y[second])
    assert_silent(lambda: model.score(X[second], y[second]))
    with pytest.warns(NotABoundWarning):
        model.score(X[first], y[first])
    model.set_params(warm_start=True).fit(X[first], y[first])
    assert_silent(lambda: model.score(X[first], y[first]))


@pytest.mark.parametrize("in_pipeline", [False, True], ids=["plain", "pipeline"])
def test_bound_selection_on_the_training_rows_is_silent(data, in_pipeline):
    X, y = data
    if in_pipeline:
        estimator, grid = make_pipeline(StandardScaler(), small(IBVIClassifier)), {"ibviclassifier__lr": [0.05, 0.1]}
    else:
        X, estimator, grid = StandardScaler().fit_transform(X), small(IBVIClassifier), {"lr": [0.05, 0.1]}
    search = GridSearchCV(estimator, grid, scoring=bound_scorer, cv=TrainOnlySplit())
    assert_silent(lambda: search.fit(X, y))
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))


def test_early_stopping_scores_its_training_rows_silently(data):
    X, y = StandardScaler().fit_transform(data[0]), data[1]
    for criterion in ["bound", "block_prequential"]:
        stopped = BoundEarlyStopping(small(EntropySGDClassifier), criterion=criterion, patience=None).fit(X, y)
        assert_silent(lambda: stopped.score(X, y))


def test_grid_search_with_the_default_scoring_warns(data):
    X, y = StandardScaler().fit_transform(data[0]), data[1]
    grid = {"lr": [0.05, 0.1]}
    with pytest.warns(NotABoundWarning, match="scoring=log_predictive_scorer"):
        GridSearchCV(small(IBVIClassifier), grid, cv=3).fit(X, y)
    assert_silent(lambda: GridSearchCV(small(IBVIClassifier), grid, cv=3, scoring=log_predictive_scorer).fit(X, y))
