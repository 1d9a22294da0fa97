"""Messy input, property by property: every estimator either works correctly or raises a clear error.

"Clear" means a ``ValueError``/``TypeError`` (or :class:`~sklearn_ibvi.TrainingDivergedError`,
which says to lower ``lr`` or standardise) with a readable message — never a raw torch or numpy
internal error. Hypothesis draws shapes, dtypes, magnitudes, NaN/inf and labels; the deterministic
tests below pin the cases users hit most (pandas, sparse, 2-D ``y``, unseen labels). The number of
inputs tried is printed at the end of the module (``-rA`` or ``-s`` shows it).
"""

import collections
import re
import tracemalloc
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.base import is_classifier, is_regressor
from sklearn.exceptions import DataConversionWarning, NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import sklearn_ibvi
from sklearn_ibvi import TrainingDivergedError
from sklearn_ibvi.core.estimator import feature_rms

ESTIMATOR_NAMES = ["EntropySGDRegressor", "EntropySGDClassifier", "IBVIRegressor", "IBVIClassifier"]
ESTIMATORS = [getattr(sklearn_ibvi, name) for name in ESTIMATOR_NAMES if hasattr(sklearn_ibvi, name)]

pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn_ibvi.BoundValidityWarning"),
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]

HYPOTHESIS = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure here is reproducible
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: Inputs tried, by test; printed when the module finishes.
INPUTS_TRIED = collections.Counter()

#: Errors a user may see: sklearn-style validation errors and the divergence error.
CLEAR_ERRORS = (ValueError, TypeError, TrainingDivergedError)

#: Phrases of errors raised from inside numpy or torch rather than by a check of the input.
RAW_ERROR = re.compile(
    r"not supported between instances|must be Tensor|mat1 and mat2|expected scalar type|size mismatch|"
    r"shape '\[|index \d+ is out of bounds|Expected all tensors|Torch not compiled|object of type|"
    r"unhashable|has no attribute"
)

FLOAT32_MAX = float(np.finfo(np.float32).max)


@pytest.fixture(scope="module", autouse=True)
def report_inputs_tried(request):
    yield
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    total = sum(INPUTS_TRIED.values())
    if reporter is None or capture is None or not total:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(f"\ntest_input_properties: {total} inputs tried")
        for name, tried in sorted(INPUTS_TRIED.items()):
            reporter.write_line(f"  {name}: {tried}")


def tiny(cls, **params):
    """The smallest, fastest configuration of an estimator (CPU, one epoch, 4 hidden units)."""
    defaults = dict(hidden_layer_sizes=(4,), max_epochs=1, random_state=0, device="cpu")
    if "n_predict_samples" in cls().get_params():
        defaults["n_predict_samples"] = 4
    return cls(**{**defaults, **params})


def count(name, estimator):
    INPUTS_TRIED[f"{name}[{type(estimator).__name__}]"] += 1


def clear_error_or_none(call):
    """Run ``call``; return the error if it raised a clear one, ``None`` if it worked."""
    try:
        call()
    except CLEAR_ERRORS as error:
        message = str(error)
        assert message.strip(), f"{type(error).__name__} without a message"
        assert not RAW_ERROR.search(message), f"raw internal error reached the user: {message!r}"
        return error
    return None


def assert_sound_predictions(estimator, X, n_rows):
    """Predictions of the right shape and kind; probabilities that are probabilities."""
    prediction = estimator.predict(X)
    assert prediction.shape == (n_rows,)
    if is_classifier(estimator):
        assert set(prediction.tolist()) <= set(estimator.classes_.tolist())
        proba = estimator.predict_proba(X)
        assert proba.shape == (n_rows, len(estimator.classes_))
        assert np.all(np.isfinite(proba)) and np.all(proba >= 0)
        np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-10)
    else:
        assert np.all(np.isfinite(prediction))
        mean, std = estimator.predict(X, return_std=True)
        assert np.all(np.isfinite(std)) and np.all(std > 0)


# -- strategies ---------------------------------------------------------------------------------

DTYPES = [
    "float16", "float32", "float64", "int8", "int64", "uint8", "bool",
    "object-numbers", "object-numeric-strings", "object-words", "list",
]  # fmt: skip
MAGNITUDES = [0.0, 1e-45, 1e-30, 1e-3, 1.0, 1e3, 1e20, 1e38, 1e39, 1e300]


@st.composite
def design_matrices(draw, min_rows=0, max_rows=8, n_features=None):
    """``X`` of any dtype, shape, magnitude, with optional constant columns and NaN/inf cells."""
    n = draw(st.integers(min_rows, max_rows))
    d = n_features or draw(st.integers(1, 4))
    unit = draw(arrays(np.float64, (n, d), elements=st.floats(-3, 3, allow_nan=False, width=64)))
    X = unit * draw(st.sampled_from(MAGNITUDES))
    if n and draw(st.booleans()):
        X[:, draw(st.integers(0, d - 1))] = draw(st.sampled_from([0.0, 1.0, -7.5]))
    fault = draw(st.sampled_from([None, None, None, np.nan, np.inf, -np.inf]))
    if n and fault is not None:
        X[draw(st.integers(0, n - 1)), draw(st.integers(0, d - 1))] = fault
    dtype = draw(st.sampled_from(DTYPES))
    if dtype in ("int8", "int64", "uint8"):
        info = np.iinfo(dtype)
        return np.clip(np.nan_to_num(np.round(unit * 50)), info.min, info.max).astype(dtype)
    if dtype == "bool":
        return unit > 0
    if dtype.startswith("float"):
        with np.errstate(over="ignore"):
            return X.astype(dtype)
    if dtype == "object-numbers":
        return X.astype(object)
    if dtype == "object-numeric-strings":
        return X.astype(str).astype(object)
    if dtype == "object-words":
        return np.where(unit > 0, "yes", "no").astype(object)
    return X.tolist()


def as_float64(X):
    """``X`` as float64, or ``None`` if it holds values that are not numbers."""
    try:
        values = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return values.reshape(len(values), -1) if values.size else values.reshape(len(values), 0)


LABEL_SETS = {
    "int": np.array([3, -1, 7]),
    "str": np.array(["cat", "dog", "eel"]),
    "bool": np.array([False, True]),
    "float": np.array([0.0, 1.0, 2.0]),
    "object-str": np.array(["x", "y", "z"], dtype=object),
}


@st.composite
def targets(draw, n, regression):
    if regression:
        y = draw(arrays(np.float64, n, elements=st.floats(-3, 3, allow_nan=False, width=64)))
        y = y * draw(st.sampled_from([1e-300, 1e-5, 1.0, 1e5, 1e300]))
        if n and draw(st.integers(0, 5)) == 0:
            y[draw(st.integers(0, n - 1))] = draw(st.sampled_from([np.nan, np.inf]))
        return y
    labels = LABEL_SETS[draw(st.sampled_from(sorted(LABEL_SETS)))]
    return labels[draw(arrays(np.int64, n, elements=st.integers(0, len(labels) - 1)))]


# -- properties of fit, predict and score ---------------------------------------------------------


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
@HYPOTHESIS
@given(data=st.data())
def test_fit_on_any_design_matrix_works_or_raises_a_clear_error(cls, data):
    estimator = tiny(cls)
    X = data.draw(design_matrices(), label="X")
    n = len(X)
    y = data.draw(targets(n, is_regressor(estimator)), label="y")
    count("fit", estimator)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's own overflow notes on the drawn data
        error = clear_error_or_none(lambda: estimator.fit(X, y))
    values = as_float64(X)
    if n == 0:
        assert isinstance(error, ValueError) and re.search("0 sample|Expected 2D", str(error)), error
        return
    if values is None:
        assert isinstance(error, ValueError) and re.search("convert|string", str(error)), error
        return
    if not np.all(np.isfinite(values)) or np.abs(values).max() > FLOAT32_MAX:
        assert isinstance(error, ValueError) and re.search("NaN|infinity", str(error)), error
        return
    if is_regressor(estimator) and not np.all(np.isfinite(y)):
        assert isinstance(error, ValueError) and re.search("NaN|infinity", str(error)), error
        return
    if is_classifier(estimator) and len(np.unique(y)) < 2:
        assert isinstance(error, ValueError) and "class" in str(error), error
        return
    if error is None:
        scores = []
        error = clear_error_or_none(
            lambda: (assert_sound_predictions(estimator, X, n), scores.append(estimator.score(X, y)))
        )
        assert not (scores and np.isnan(scores[0]))
        # Unscaled inputs may blow the network up; then predictions must say so, not return inf.
        assert error is None or isinstance(error, ValueError), error
    else:
        assert isinstance(error, TrainingDivergedError), error
        assert not hasattr(estimator, "net_"), "a failed first fit must leave the estimator unfitted"
    if np.abs(values).max() <= 10:
        # One SGD step on data of ordinary scale cannot overflow: this must simply work.
        assert error is None, f"failed on ordinary data: {error!r}"


FITTED = {}


def fitted(cls, n_features=3):
    """One fitted estimator per class, trained on clean data (cached: fitting is the slow part)."""
    if cls not in FITTED:
        rng = np.random.RandomState(0)
        X = rng.randn(20, n_features)
        y = X[:, 0] if issubclass(cls, sklearn_ibvi.core.estimator.BayesianRegressorMixin) else np.arange(20) % 3
        FITTED[cls] = tiny(cls).fit(X, y)
    return FITTED[cls]


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
@HYPOTHESIS
@given(X=design_matrices(min_rows=0, max_rows=6))
def test_predict_on_any_design_matrix_works_or_raises_a_clear_error(cls, X):
    estimator = fitted(cls)
    count("predict", estimator)
    values = as_float64(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        error = clear_error_or_none(lambda: assert_sound_predictions(estimator, X, len(X)))
    if values is None or len(X) == 0 or values.shape[1] != 3:
        assert isinstance(error, ValueError), error
        return
    if not np.all(np.isfinite(values)) or np.abs(values).max() > FLOAT32_MAX:
        assert isinstance(error, ValueError) and re.search("NaN|infinity", str(error)), error
        return
    if np.abs(values).max() <= 1e30:
        assert error is None, f"predict failed on valid input: {error!r}"
        # The dtype is only a container: the same numbers give the same predictions.
        np.testing.assert_array_equal(estimator.predict(X), estimator.predict(values))


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
@HYPOTHESIS
@given(data=st.data())
def test_a_rows_prediction_does_not_depend_on_the_other_rows(cls, data):
    estimator = fitted(cls)
    rows = data.draw(arrays(np.float64, (data.draw(st.integers(1, 6)), 3), elements=st.floats(-5, 5)))
    others = data.draw(arrays(np.float64, (data.draw(st.integers(1, 6)), 3), elements=st.floats(-5, 5)))
    count("row independence", estimator)
    alone = estimator._sample_outputs(estimator._validated_input(rows)).numpy()
    together = estimator._sample_outputs(estimator._validated_input(np.vstack([others, rows]))).numpy()
    np.testing.assert_allclose(together[:, len(others) :], alone, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
@HYPOTHESIS
@given(data=st.data())
def test_score_on_any_targets_works_or_raises_a_clear_error(cls, data):
    estimator = fitted(cls)
    n = data.draw(st.integers(1, 6))
    X = np.random.RandomState(n).randn(n, 3)
    y = data.draw(targets(n, is_regressor(estimator)) | targets(n, not is_regressor(estimator)), label="y")
    if data.draw(st.booleans()):
        y = y[: data.draw(st.integers(0, n))]  # possibly fewer targets than rows
    count("score", estimator)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = []
        error = clear_error_or_none(lambda: result.append(estimator.score(X, y)))
    if len(y) != n:
        assert isinstance(error, ValueError), error
    elif is_classifier(estimator) and not set(np.asarray(y).tolist()) <= set(estimator.classes_.tolist()):
        assert isinstance(error, ValueError) and "not seen during fit" in str(error), error
    elif error is None:
        assert not np.isnan(result[0])
    else:
        assert isinstance(error, ValueError), error


# -- the cases users hit most, pinned ---------------------------------------------------------------


@pytest.fixture(params=ESTIMATORS, ids=lambda c: c.__name__)
def cls(request):
    return request.param


def training_data(cls, n=24, d=3):
    rng = np.random.RandomState(1)
    X = rng.randn(n, d)
    y = X[:, 0] + 0.1 * rng.randn(n) if issubclass(cls, sklearn_ibvi.core.estimator.BayesianRegressorMixin) else np.arange(n) % 2
    return X, y


def test_sparse_input_raises_a_clear_type_error_at_fit_and_predict(cls):
    X, y = training_data(cls)
    estimator = tiny(cls).fit(X, y)
    for make in (sp.csr_matrix, sp.csc_matrix, sp.coo_matrix, sp.csr_array):
        count("sparse", estimator)
        with pytest.raises(TypeError, match="dense data is required"):
            tiny(cls).fit(make(X), y)
        with pytest.raises(TypeError, match="dense data is required"):
            estimator.predict(make(X))


def test_dataframe_feature_names_are_recorded_and_checked(cls):
    X, y = training_data(cls)
    frame = pd.DataFrame(X, columns=["age", "dose", "weight"])
    estimator = tiny(cls).fit(frame, pd.Series(y))
    count("pandas", estimator)
    np.testing.assert_array_equal(estimator.feature_names_in_, ["age", "dose", "weight"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        from_frame = estimator.predict(frame)
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        from_array = estimator.predict(X)
    np.testing.assert_array_equal(from_frame, from_array)
    with pytest.raises(ValueError, match="feature names"):
        estimator.predict(frame[["weight", "dose", "age"]])
    with pytest.raises(ValueError, match="feature names"):
        estimator.predict(frame.rename(columns={"dose": "dosage"}))
    unnamed = tiny(cls).fit(X, y)
    assert not hasattr(unnamed, "feature_names_in_")
    with pytest.warns(UserWarning, match="has feature names"):
        unnamed.predict(frame)


def test_dataframe_of_mixed_numeric_dtypes_works_and_a_text_column_is_refused(cls):
    X, y = training_data(cls)
    frame = pd.DataFrame({"a": X[:, 0], "b": (X[:, 1] > 0), "c": (10 * X[:, 2]).astype(int)})
    estimator = tiny(cls).fit(frame, y)
    count("pandas", estimator)
    assert_sound_predictions(estimator, frame, len(frame))
    with pytest.raises(ValueError, match="could not convert|string"):
        tiny(cls).fit(frame.assign(d=np.where(X[:, 0] > 0, "high", "low")), y)


def test_column_vector_y_warns_and_fits_like_1d_y_and_multi_column_y_is_refused(cls):
    X, y = training_data(cls)
    count("2-D y", tiny(cls))
    flat = tiny(cls).fit(X, y)
    with pytest.warns(DataConversionWarning, match="column-vector y"):
        column = tiny(cls).fit(X, y.reshape(-1, 1))
    np.testing.assert_array_equal(column.bound_curve_, flat.bound_curve_)
    np.testing.assert_array_equal(column.predict(X), flat.predict(X))
    assert column.score(X, y.reshape(-1, 1)) == flat.score(X, y)
    with pytest.raises(ValueError, match="1d array"):
        tiny(cls).fit(X, np.column_stack([y, y]))
    with pytest.raises(ValueError, match="1d array"):
        flat.score(X, np.column_stack([y, y]))


@pytest.mark.parametrize("kind", sorted(LABEL_SETS))
@pytest.mark.parametrize("cls_name", [n for n in ESTIMATOR_NAMES if "Classifier" in n])
def test_labels_of_every_type_round_trip_and_unseen_labels_are_refused(cls_name, kind):
    cls = getattr(sklearn_ibvi, cls_name, None)
    if cls is None:
        pytest.skip(f"{cls_name} is not available")
    X, _ = training_data(cls)
    labels = LABEL_SETS[kind]
    y = labels[np.arange(len(X)) % len(labels)]
    estimator = tiny(cls).fit(X, y)
    count("labels", estimator)
    np.testing.assert_array_equal(estimator.classes_, np.unique(y))
    assert set(estimator.predict(X).tolist()) <= set(labels.tolist())
    assert estimator.predict(X).dtype.kind == np.asarray(y).dtype.kind
    assert np.isfinite(estimator.score(X, y))
    unseen = np.array(["never-seen"] * len(X), dtype=object) if kind != "object-str" else np.full(len(X), 99)
    with pytest.raises(ValueError, match="not seen during fit"):
        estimator.score(X, unseen)
    with pytest.raises(ValueError, match="not seen during fit"):
        estimator.partial_fit(X, unseen)


def test_labels_of_mixed_types_are_refused_clearly(cls):
    if not is_classifier(cls()):
        pytest.skip("classifiers only")
    X, _ = training_data(cls)
    for y in (np.array(["a", 1] * 12, dtype=object), np.array(["a", None] * 12, dtype=object)):
        count("labels", tiny(cls))
        with pytest.raises(ValueError, match="mix types|Unknown label type"):
            tiny(cls).fit(X, y)


def test_regression_targets_of_extreme_magnitude_are_learned_at_their_scale(cls):
    """Standardising ``y`` neither overflows (1e300) nor underflows (1e-300): predictions keep the scale."""
    if not is_regressor(cls()):
        pytest.skip("regressors only")
    X, y = training_data(cls)
    reference = tiny(cls).fit(X, y)
    for scale in (1e-300, 1e300):
        count("target magnitude", reference)
        scaled = tiny(cls).fit(X, y * scale)
        np.testing.assert_allclose(scaled.predict(X), reference.predict(X) * scale, rtol=1e-6)
        assert scaled.score(X, y * scale) == pytest.approx(reference.score(X, y) - np.log(scale), rel=1e-6)
    with pytest.raises(ValueError, match="NaN or infinity"):
        tiny(cls).fit(X, np.where(y > 0, None, y).astype(object))


def test_one_sample_one_feature_and_constant_features(cls):
    X, y = training_data(cls)
    estimator = tiny(cls)
    count("edge shapes", estimator)
    if is_regressor(estimator):
        assert_sound_predictions(tiny(cls).fit(X[:1], y[:1]), X[:1], 1)
    else:
        with pytest.raises(ValueError, match="at least 2 classes"):
            tiny(cls).fit(X[:1], y[:1])
    assert_sound_predictions(tiny(cls).fit(X[:, :1], y), X[:, :1], len(X))
    constant = np.ones_like(X)
    fitted_on_constant = tiny(cls).fit(constant, y)
    assert_sound_predictions(fitted_on_constant, constant, len(X))
    outputs = fitted_on_constant._sample_outputs(fitted_on_constant._validated_input(constant)).numpy()
    np.testing.assert_array_equal(outputs, np.broadcast_to(outputs[:, :1], outputs.shape))


def test_unfitted_estimators_and_bad_devices_give_clear_errors(cls):
    X, y = training_data(cls)
    with pytest.raises(NotFittedError):
        tiny(cls).predict(X)
    with pytest.raises(NotFittedError):
        tiny(cls).score(X, y)
    with pytest.raises(ValueError, match="not a torch device"):
        tiny(cls, device="gpu-please").fit(X, y)
    count("devices", tiny(cls))
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            tiny(cls, device="cuda").fit(X, y)



# -- input scale ----------------------------------------------------------------------------------


def _with_rms(column, rms):
    return column * rms / np.sqrt(np.mean(column.astype(np.float32).astype(np.float64) ** 2))


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_unstandardised_features_warn_once_per_network_when_standardisation_is_off(cls):
    rng = np.random.RandomState(0)
    X = rng.randn(40, 3)
    y = X[:, 0] if is_regressor(tiny(cls)) else (X[:, 0] > 0).astype(int)
    raw, edge = X.copy(), X.copy()
    raw[:, 2], edge[:, 2] = _with_rms(X[:, 2], 10.5), _with_rms(X[:, 2], 9.5)
    with pytest.warns(sklearn_ibvi.InputScaleWarning, match=r"feature 2 has root mean square 10\.5 \(1 of 3"):
        estimator = tiny(cls, standardize_inputs=False).fit(raw, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", sklearn_ibvi.InputScaleWarning)
        estimator.partial_fit(raw, y)  # continues the network: warned when it started
        tiny(cls, standardize_inputs=False).fit(edge, y)  # root mean square 9.5: inside the limit
        make_pipeline(StandardScaler(), tiny(cls, standardize_inputs=False)).fit(raw * 1000, y)
        tiny(cls).fit(raw * 1000, y)  # standardised inside the estimator


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_auto_rescales_image_like_inputs_to_unit_mean_square_with_one_common_scale(cls):
    """Inputs in [0, 1] with a nearly constant border are divided by their overall root mean
    square, not standardised per feature: the fit equals one on ``X / rms`` left as it is."""
    rng = np.random.RandomState(0)
    X = np.zeros((80, 9), dtype=np.float32)
    X[:, 4:] = rng.uniform(0, 1, size=(80, 5))  # a 'border' of zero pixels, an 'inside' in [0, 1]
    X[0, 0] = 1e-3  # a border pixel of tiny spread: per-feature standardisation would blow it up
    y = X[:, 4] - X[:, 5] if is_regressor(tiny(cls)) else (X[:, 4] > X[:, 5]).astype(int)
    rms = np.sqrt(np.mean(X.astype(np.float64) ** 2))
    inside = tiny(cls, max_epochs=3).fit(X, y)
    outside = tiny(cls, max_epochs=3, standardize_inputs=False).fit((X / rms).astype(np.float32), y)
    np.testing.assert_array_equal(inside.input_mean_, np.zeros(9))
    np.testing.assert_allclose(inside.input_scale_, np.full(9, rms), rtol=1e-6)
    assert np.mean(((X - inside.input_mean_) / inside.input_scale_) ** 2) == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(inside.bound_curve_, outside.bound_curve_, rtol=1e-4)
    predict = "predict_proba" if is_classifier(inside) else "predict"
    np.testing.assert_allclose(getattr(inside, predict)(X), getattr(outside, predict)(X / rms), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "cls, dtype, scale",
    [(cls, np.float32, 1.0) for cls in ESTIMATORS]
    + [(sklearn_ibvi.IBVIClassifier, np.float32, 100.0), (sklearn_ibvi.IBVIClassifier, np.float64, 1.0)],
    ids=lambda p: getattr(p, "__name__", str(p)),
)
def test_standardised_training_rows_cost_no_copy_of_the_data_set_and_leave_the_callers_array_alone(cls, dtype, scale):
    """The caller's float32 rows are standardised batch by batch as they are read, other dtypes
    in place in the float32 copy validation makes: the largest numpy allocation of ``fit`` stays
    far below one float32 copy of ``X`` (above it only by that copy for float64), whether ``'auto'``
    rescales (inputs in [0, 1]) or standardises per feature (inputs × 100), and ``fit`` and
    ``predict`` leave ``X`` unchanged."""
    rng = np.random.RandomState(0)
    X = (rng.uniform(0, 1, size=(100_000, 320)) * scale).astype(dtype)  # 128 MB as float32
    y = X[:, 0] - X[:, 1] if is_regressor(tiny(cls)) else (X[:, 0] > X[:, 1]).astype(int)
    original = X.copy()
    float32_bytes = X.size * 4
    tiny(cls).fit(X[:50], y[:50])  # imports done before measuring: modules torch loads at a first fit
    tracemalloc.start()
    try:
        model = tiny(cls, batch_size=2000).fit(X, y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    validation_copy = 0 if dtype == np.float32 else float32_bytes
    assert peak - validation_copy < 0.5 * float32_bytes
    model.predict(X[:1000])
    np.testing.assert_array_equal(X, original)


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_standardized_inputs_equal_a_standard_scaler_pipeline(cls):
    """The network sees exactly what StandardScaler would give it: same fit, predictions, bound."""
    rng = np.random.RandomState(0)
    X = rng.randn(60, 3) * [1.0, 1e3, 1e-3] + [0.0, -5e4, 7.0]
    X[:, 0] = 3.0  # a constant feature: scale 1, as in StandardScaler
    y = X[:, 1] * 1e-3 if is_regressor(tiny(cls)) else (X[:, 1] > -5e4).astype(int)
    inside = tiny(cls, max_epochs=3).fit(X, y)
    scaler = StandardScaler().fit(X.astype(np.float32).astype(np.float64))  # the estimator reads float32
    outside = tiny(cls, max_epochs=3, standardize_inputs=False).fit(scaler.transform(X).astype(np.float32), y)
    np.testing.assert_allclose(inside.input_mean_, scaler.mean_, rtol=1e-6)
    np.testing.assert_allclose(inside.input_scale_, scaler.scale_, rtol=1e-5)
    np.testing.assert_allclose(inside.bound_curve_, outside.bound_curve_, rtol=1e-4)
    predict = "predict_proba" if is_classifier(inside) else "predict"
    np.testing.assert_allclose(
        getattr(inside, predict)(X), getattr(outside, predict)(scaler.transform(X)), rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize("name", ["iris", "breast_cancer"])
@pytest.mark.parametrize("cls_name", ["IBVIClassifier", "EntropySGDClassifier"])
def test_raw_features_fit_as_well_as_a_standardised_pipeline(name, cls_name):
    """Raw iris once collapsed IBVI to one prediction; raw breast cancer "fitted" with a bound of
    -6e20 nats/sample. With defaults both now match the StandardScaler pipeline's accuracy."""
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)
    cls = getattr(sklearn_ibvi, cls_name)
    raw = cls(max_epochs=50, random_state=0).fit(X_train, y_train)
    scaled = make_pipeline(StandardScaler(), cls(max_epochs=50, random_state=0, standardize_inputs=False))
    scaled.fit(X_train, y_train)
    raw_accuracy = np.mean(raw.predict(X_test) == y_test)
    scaled_accuracy = np.mean(scaled.predict(X_test) == y_test)
    assert raw_accuracy >= scaled_accuracy - 0.01 and raw_accuracy > 0.8  # chance: 0.33 and 0.63
    np.testing.assert_allclose(raw.score(X_train, y_train), scaled.score(X_train, y_train), rtol=1e-3)


def test_feature_rms_reads_a_memmap_in_chunks_as_numpy_computes_it(tmp_path, monkeypatch):
    monkeypatch.setattr(sklearn_ibvi.core.estimator, "VALIDATION_CHUNK_BYTES", 48)  # 3 rows of 4 features a chunk
    X = (np.random.RandomState(1).randn(50, 4) * [1, 10, 100, 0.1] + [0, 5, -300, 0]).astype(np.float32)
    memmap = np.memmap(tmp_path / "X.dat", dtype=np.float32, mode="w+", shape=X.shape)
    memmap[:] = X
    expected = np.sqrt(np.mean(X.astype(np.float64) ** 2, axis=0))
    np.testing.assert_allclose(feature_rms(memmap), expected, rtol=1e-12)
    np.testing.assert_allclose(feature_rms(X), expected, rtol=1e-12)
