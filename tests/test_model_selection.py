"""Validation-free criteria on cases with known answers, and the searches built on them."""

import math

import numpy as np
import pytest
import torch
from joblib import parallel_backend
from scipy.stats import norm
from sklearn.base import clone
from sklearn.datasets import load_diabetes
from sklearn.metrics import log_loss
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler

from sklearn_ibvi import BoundEarlyStopping, EntropySGDClassifier, EntropySGDRegressor
from sklearn_ibvi.model_selection import (
    BlockPrequentialSearchCV,
    ScreenedGridSearchCV,
    TrainOnlySplit,
    block_prequential_log_likelihood,
    bound_scorer,
    log_predictive_scorer,
    make_bound_scorer,
    predictive_log_likelihood,
    prequential_log_evidence,
    prequential_log_likelihood,
)


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return StandardScaler().fit_transform(X[:120]), y[:120]


def closed_form_log_evidence(features, y, prior_var, noise_var):
    """``log N(y; 0, Φ Σ₀ Φᵀ + σ² I)``, written independently of the library."""
    cov = features @ np.diag(prior_var) @ features.T + noise_var * np.eye(len(y))
    _, logdet = np.linalg.slogdet(cov)
    return -0.5 * (y @ np.linalg.solve(cov, y) + logdet + len(y) * math.log(2 * math.pi))


# -- the criteria's principles, against closed forms -----------------------------------------


@pytest.mark.parametrize("batch_size", [1, 7, 40])
def test_prequential_with_exact_bayesian_updating_equals_the_closed_form_log_evidence(batch_size):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(40, 5))
    prior_var = rng.uniform(0.2, 2.0, size=5)
    y = features @ (rng.normal(size=5) * np.sqrt(prior_var)) + 0.3 * rng.normal(size=40)
    evidence = closed_form_log_evidence(features, y, prior_var, 0.09)
    for order in (np.arange(40), rng.permutation(40)):
        coded = prequential_log_evidence(features[order], y[order], prior_var, 0.09, batch_size=batch_size)
        assert coded == pytest.approx(evidence, abs=1e-8)


def test_prequential_criterion_is_the_first_passs_code_length(diabetes):
    X, y = diabetes
    # With a vanishing step the weights never leave the prior draw, so every prediction of the
    # first pass is the draw's, and the code length is the draw's log-likelihood of all rows.
    one_pass = EntropySGDRegressor(
        hidden_layer_sizes=(8,), max_epochs=1, lr=1e-12, batch_size=16, noise_std=0.7, noise="gaussian",
        random_state=3,
    ).fit(X, y)
    mean, std = one_pass.predict(X, return_std=True)
    expected = norm.logpdf(y, mean, std).sum()
    assert prequential_log_likelihood(one_pass) == pytest.approx(expected, rel=1e-5)
    # the scorer: per sample, through pipelines and BoundEarlyStopping alike
    scorer = make_bound_scorer("prequential")
    assert scorer(one_pass, X, y) == pytest.approx(expected / len(X), rel=1e-5)
    wrapped = BoundEarlyStopping(clone(one_pass).set_params(max_epochs=3), patience=None)
    pipe = make_pipeline(StandardScaler(), wrapped).fit(X, y)  # X is standardised already
    assert scorer(pipe, X, y) == pytest.approx(expected / len(X), rel=1e-5)


def test_control_variate_keeps_the_mean_and_lowers_the_variance(diabetes):
    X, y = diabetes
    # 64 chains = 64 independent prior draws and runs; same seed, so the paths are identical and
    # the two estimates differ per chain by exactly log p(θ₀) + S₀, of mean zero and spread
    # √(D/2). Wide noise keeps the likelihood term's own spread (untouched by the control
    # variate) small, so the prior-draw term dominates as in NOTES.md's bound study.
    fits = {
        cv: EntropySGDRegressor(
            hidden_layer_sizes=(64,), noise_std=3.0, max_epochs=3, batch_size=40, n_chains=64, control_variate=cv, random_state=0
        ).fit(X, y)
        for cv in (False, True)
    }
    plain, controlled = (np.asarray(fits[cv].history_[:, "bound"]) for cv in (False, True))
    plain_se, controlled_se = (np.asarray(fits[cv].history_[:, "bound_se"]) for cv in (False, True))
    assert np.all(np.abs(controlled - plain) < 3 * plain_se)
    assert np.all(controlled_se < plain_se / 2)


def polynomial_data(seed):
    """True degree 3, noise 0.05, 100 rows on [-1, 1]."""
    rng = np.random.RandomState(seed)
    x = rng.uniform(-1, 1, (100, 1))
    return x, x[:, 0] ** 3 - 0.5 * x[:, 0] + 0.05 * rng.randn(100)


def evidence_picks_degree(x, y, noise_std):
    """Degree (1..4) of highest closed-form evidence for the Bayesian linear model the estimators
    fit: standardised polynomial features, weights N(0, 1/fan_in), bias N(0, 1), known noise."""
    evidence = []
    for degree in (1, 2, 3, 4):
        features = StandardScaler().fit_transform(PolynomialFeatures(degree, include_bias=False).fit_transform(x))
        design = np.hstack([features, np.ones((len(x), 1))])
        prior_var = np.r_[np.full(degree, 1.0 / degree), 1.0]
        evidence.append(closed_form_log_evidence(design, (y - y.mean()) / y.std(), prior_var, noise_std**2))
    return int(np.argmax(evidence)) + 1


def linear_model(noise_std, **params):
    return EntropySGDRegressor(
        hidden_layer_sizes=(), noise_std=noise_std, lr=0.2, batch_size=100, max_epochs=100, random_state=0, **params
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grid_search_with_the_default_criterion_picks_the_true_model_order(seed):
    """Polynomial regression, degree 1..4, true degree 3: the closed-form evidence of the Bayesian
    linear model picks 3, and so does GridSearchCV with make_bound_scorer()'s default criterion
    (block prequential) on a linear model trained by full-batch GD for 100 epochs."""
    x, y = polynomial_data(seed)
    noise_std = 0.05 / y.std()
    assert evidence_picks_degree(x, y, noise_std) == 3
    model = make_pipeline(PolynomialFeatures(include_bias=False), StandardScaler(), linear_model(noise_std, entropy=None))
    search = GridSearchCV(
        model, {"polynomialfeatures__degree": [1, 2, 3, 4]}, scoring=make_bound_scorer(), cv=TrainOnlySplit()
    ).fit(x, y)
    assert search.best_params_["polynomialfeatures__degree"] == 3


def test_the_bound_stopped_at_its_peak_picks_the_true_model_order_too():
    """Same problem (seed 0): the bound of each degree at its best epoch (BoundEarlyStopping),
    4 chains, also ranks degree 3 first."""
    x, y = polynomial_data(0)
    noise_std = 0.05 / y.std()
    model = make_pipeline(
        PolynomialFeatures(include_bias=False),
        StandardScaler(),
        BoundEarlyStopping(linear_model(noise_std, n_chains=4), patience=None),
    )
    search = GridSearchCV(
        model, {"polynomialfeatures__degree": [1, 2, 3, 4]}, scoring=bound_scorer, cv=TrainOnlySplit()
    ).fit(x, y)
    assert search.best_params_["polynomialfeatures__degree"] == 3


def test_log_predictive_scorer_is_minus_log_loss_and_the_gaussian_density(iris, diabetes):
    X, y = iris
    clf = EntropySGDClassifier(hidden_layer_sizes=(8,), max_epochs=3, n_chains=2, random_state=0).fit(X, y)
    assert log_predictive_scorer(clf, X, y) == pytest.approx(-log_loss(y, clf.predict_proba(X)), rel=1e-9)
    X, y = diabetes
    reg = EntropySGDRegressor(hidden_layer_sizes=(8,), max_epochs=3, noise="gaussian", random_state=0).fit(X, y)
    mean, std = reg.predict(X, return_std=True)
    np.testing.assert_allclose(predictive_log_likelihood(reg, X, y), norm.logpdf(y, mean, std), rtol=1e-12)


def test_block_prequential_scorer_refits_prefixes_of_a_plain_estimator(diabetes):
    X, y = diabetes
    est = EntropySGDRegressor(hidden_layer_sizes=(8,), max_epochs=4, entropy=None, random_state=0)
    fitted = clone(est).fit(X, y)
    expected = block_prequential_log_likelihood(est, X, y, n_blocks=2, random_state=1)
    assert make_bound_scorer("block_prequential", n_blocks=2, random_state=1)(fitted, X, y) == expected
    assert make_bound_scorer("bound")(fitted.set_params(entropy="stochastic").fit(X, y), X, y) == bound_scorer(fitted, X, y)
    with pytest.raises(ValueError, match="criterion must be one of"):
        make_bound_scorer("validation")


# -- searches --------------------------------------------------------------------------------


def bound_search(n_jobs):
    return GridSearchCV(
        EntropySGDClassifier(max_epochs=5, batch_size=30, random_state=0),
        {"hidden_layer_sizes": [(2,), (16,)], "prior_scale": [0.5, 2.0]},
        scoring=bound_scorer,
        cv=TrainOnlySplit(),
        n_jobs=n_jobs,
    )


@pytest.fixture(scope="module")
def serial(iris):
    return bound_search(n_jobs=None).fit(*iris)


def test_grid_search_on_the_bound_with_refit_and_two_jobs(iris, serial):
    X, y = iris
    parallel = bound_search(n_jobs=2).fit(X, y)
    assert parallel.best_params_ == serial.best_params_
    np.testing.assert_allclose(parallel.cv_results_["mean_test_score"], serial.cv_results_["mean_test_score"], rtol=1e-6)
    # refit on all the data with the best parameters: its bound is the best score
    assert parallel.best_estimator_.score(X, y) == pytest.approx(parallel.best_score_, rel=1e-6)
    assert parallel.predict(X).shape == y.shape


def test_grid_search_on_a_dask_cluster_matches_serial(iris, serial):
    distributed = pytest.importorskip("dask.distributed")
    X, y = iris
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        client.run(torch.set_num_threads, 1)
        assert set(client.run(torch.get_num_threads).values()) == {1}
        with parallel_backend("dask"):
            distributed_search = bound_search(n_jobs=-1).fit(X, y)
            # staged prefix runs (successive halving) travel to the workers and back
            distributed_chaining = forward_chaining_search(n_jobs=-1).fit(X, y)
    assert distributed_search.best_params_ == serial.best_params_
    np.testing.assert_allclose(
        distributed_search.cv_results_["mean_test_score"], serial.cv_results_["mean_test_score"], rtol=1e-6
    )
    serial_chaining = forward_chaining_search(n_jobs=None).fit(X, y)
    np.testing.assert_array_equal(distributed_chaining.criterion_curves_, serial_chaining.criterion_curves_)
    assert distributed_chaining.best_params_ == serial_chaining.best_params_


def forward_chaining_search(n_jobs):
    return BlockPrequentialSearchCV(
        EntropySGDClassifier(max_epochs=8, batch_size=30, random_state=0),
        {"hidden_layer_sizes": [(2,), (16,)], "prior_scale": [0.5, 2.0]},
        n_jobs=n_jobs,
    )


def test_screened_search_cross_validates_only_the_best_prequential_candidates(iris):
    X, y = iris
    estimator = EntropySGDClassifier(max_epochs=6, batch_size=10, entropy=None, random_state=0)
    grid = {"hidden_layer_sizes": [(2,), (8,), (32,)], "max_epochs": [3, 6]}
    search = ScreenedGridSearchCV(estimator, grid, criterion="prequential", n_survivors=1, cv=3).fit(X, y)
    screened = search.screening_results_
    # the screening score is each candidate's first-pass code length (it runs only that pass)
    for params, score in zip(screened["params"], screened["screening_score"]):
        full = clone(estimator).set_params(**params).fit(X, y)
        assert score == pytest.approx(prequential_log_likelihood(full) / len(X), rel=1e-9)
    # max_epochs cannot change the first pass: both values of the best width survive together
    best_width = screened["params"][int(np.argmax(screened["screening_score"]))]["hidden_layer_sizes"]
    assert [p["hidden_layer_sizes"] for p in search.cv_results_["params"]] == [best_width, best_width]
    assert screened["survived"].sum() == 2
    # cross-validation by held-out log predictive density chose among them and refit
    assert search.best_params_["max_epochs"] in (3, 6)
    assert search.best_estimator_.n_epochs_ == search.best_params_["max_epochs"]


def test_screened_search_by_default_screens_on_the_block_prequential_criterion(iris):
    X, y = iris
    estimator = EntropySGDClassifier(max_epochs=4, batch_size=16, entropy=None, random_state=0)
    grid = {"hidden_layer_sizes": [(2,), (8,), (32,)]}
    search = ScreenedGridSearchCV(estimator, grid, n_survivors=2, cv=3).fit(X, y)
    screened = search.screening_results_
    expected = [block_prequential_log_likelihood(clone(estimator).set_params(**p), X, y) for p in screened["params"]]
    np.testing.assert_allclose(screened["screening_score"], expected, rtol=1e-12)
    kept = np.argsort(expected)[::-1][:2]
    assert sorted(np.flatnonzero(screened["survived"])) == sorted(kept)
    assert len(search.cv_results_["params"]) == 2
