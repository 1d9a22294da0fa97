"""Per-epoch held-out curves from one fit, and the searches built on them (forward chaining, CV)."""

import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_diabetes
from sklearn.exceptions import FitFailedWarning
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler

from sklearn_ibvi import BoundEarlyStopping, EntropySGDClassifier, EntropySGDRegressor, IBVIClassifier, IBVIRegressor
from sklearn_ibvi.model_selection._epoch_curves import CALLBACK_NAME, EpochwiseRun, epochwise_evaluations
from sklearn_ibvi.model_selection._epoch_curves import for_held_out_scoring
from sklearn_ibvi.model_selection._held_out import shuffled_folds
from sklearn_ibvi.exceptions import TrainingDivergedError
from sklearn_ibvi.model_selection import (
    BlockPrequential,
    BlockPrequentialSearchCV,
    EpochwiseGridSearchCV,
    PartialKFold,
    block_prequential_log_likelihood,
    log_predictive_scorer,
    predictive_log_likelihood,
)
from test_model_selection import evidence_picks_degree, linear_model, polynomial_data


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return StandardScaler().fit_transform(X[:160]), y[:160]


# -- curves from inside one fit --------------------------------------------------------------


def epochwise_log_likelihood(estimator, X, y, X_eval, y_eval):
    """The fitted clone and its held-out log densities, shape (n_epochs, n_eval)."""
    learner, values, _ = epochwise_evaluations(estimator, X, y, X_eval, y_eval, predictive_log_likelihood)
    return learner, np.vstack(values)


@pytest.mark.parametrize(
    "make",
    [
        lambda: EntropySGDRegressor(hidden_layer_sizes=(16,), max_epochs=5, batch_size=32, random_state=0),
        lambda: IBVIRegressor(hidden_layer_sizes=(16,), max_epochs=4, batch_size=32, random_state=0),
    ],
    ids=["entropy_sgd", "ibvi"],
)
def test_epochwise_curve_equals_scoring_after_each_partial_fit(diabetes, make):
    """The callback's per-epoch scores are those of a model trained epoch by epoch with
    partial_fit and scored in between, and scoring does not perturb the training path."""
    X, y = diabetes
    learner, log_density = epochwise_log_likelihood(make(), X[:100], y[:100], X[100:], y[100:])
    reference = make()
    for epoch in range(len(log_density)):
        reference.partial_fit(X[:100], y[:100])
        np.testing.assert_array_equal(log_density[epoch], predictive_log_likelihood(reference, X[100:], y[100:]))
    np.testing.assert_array_equal(learner.predict(X), make().fit(X[:100], y[:100]).predict(X))
    assert learner.callbacks is None  # the recorder is removed, and with it the scored rows


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # IBVI after 5 epochs
@pytest.mark.parametrize("make", [
    lambda: make_pipeline(StandardScaler(), EntropySGDRegressor(hidden_layer_sizes=(8,), max_epochs=9, random_state=0)),
    lambda: IBVIRegressor(hidden_layer_sizes=(8,), max_epochs=9, random_state=0, n_bound_samples=0),
], ids=["entropy_sgd_pipeline", "ibvi"])
def test_training_in_stages_follows_the_path_of_one_fit(diabetes, make):
    """Stages of 2, 3 and 4 epochs (continued, as successive halving trains) give the curve and
    the model of one 9-epoch fit, and between stages the learner pickles without the recorder."""
    X, y = diabetes
    single = EpochwiseRun(make(), predictive_log_likelihood).train(X[:100], y[:100], X[100:], y[100:], 9)
    staged = EpochwiseRun(make(), predictive_log_likelihood)
    for epochs in (2, 5, 9):
        staged.train(X[:100], y[:100], X[100:], y[100:], epochs)
        staged = pickle.loads(pickle.dumps(staged))
    np.testing.assert_array_equal(np.vstack(staged.values), np.vstack(single.values))
    np.testing.assert_array_equal(staged.learner.predict(X), single.learner.predict(X))
    final = staged.learner[-1] if hasattr(staged.learner, "steps") else staged.learner
    assert (final.max_epochs, final.warm_start, final.callbacks) == (9, False, None)
    assert all(name != CALLBACK_NAME for name, _ in final.net_.callbacks_)


def test_epochwise_curve_of_a_pipeline_scores_in_the_pipelines_input_space(iris):
    X, y = iris
    X_raw = X * 10 + 3  # the pipeline's scaler must be applied to the scored rows too
    model = make_pipeline(StandardScaler(), IBVIClassifier(hidden_layer_sizes=(8,), max_epochs=3, random_state=0))
    learner, log_density = epochwise_log_likelihood(model, X_raw[::2], y[::2], X_raw[1::2], y[1::2])
    fitted = clone(model).fit(X_raw[::2], y[::2])
    np.testing.assert_array_equal(log_density[-1], predictive_log_likelihood(fitted, X_raw[1::2], y[1::2]))
    with pytest.raises(TypeError, match="sklearn_ibvi estimator"):
        epochwise_log_likelihood(Ridge(), X, y, X, y)


def test_held_out_learners_switch_the_bound_off_and_ibvi_averages_fewer_draws():
    assert for_held_out_scoring(EntropySGDClassifier()).entropy is None
    ibvi = for_held_out_scoring(IBVIClassifier(n_predict_samples=32))
    assert (ibvi.n_bound_samples, ibvi.n_predict_samples) == (0, 8)
    assert for_held_out_scoring(IBVIClassifier(n_predict_samples=3)).n_predict_samples == 3
    pipe = for_held_out_scoring(make_pipeline(StandardScaler(), EntropySGDRegressor()))
    assert pipe[-1].entropy is None


# -- the search ------------------------------------------------------------------------------


def grid_search(**params):
    """A full search (no halving) over one ordering unless ``params`` say otherwise."""
    estimator = EntropySGDRegressor(hidden_layer_sizes=(8,), max_epochs=6, batch_size=32, random_state=0)
    params = {"n_orderings": 1, "successive_halving": False, **params}
    return BlockPrequentialSearchCV(estimator, {"prior_scale": [0.5, 2.0], "noise_std": [0.5, 1.0]}, **params)


def test_search_curve_is_the_block_prequential_criterion_epoch_by_epoch(diabetes):
    """Independent reference: block_prequential_log_likelihood refits the prefixes from scratch
    for a given epoch budget; the search reads the same numbers off one fit per prefix."""
    X, y = diabetes
    search = grid_search(n_blocks=2, random_state=3, stopping_epoch="peak").fit(X, y)
    for index, params in enumerate(search.cv_results_["params"]):
        for epochs in (1, 4, 6):
            estimator = EntropySGDRegressor(
                hidden_layer_sizes=(8,), max_epochs=epochs, batch_size=32, entropy=None, random_state=0, **params
            )
            expected = block_prequential_log_likelihood(estimator, X, y, n_blocks=2, random_state=3, n_orderings=1)
            assert search.criterion_curves_[index, epochs - 1] == pytest.approx(expected, rel=1e-12)
    best = np.unravel_index(np.argmax(search.criterion_curves_), search.criterion_curves_.shape)
    assert (search.best_index_, search.best_epoch_) == (best[0], best[1] + 1)
    assert search.best_score_ == search.criterion_curves_.max()
    assert search.best_params_ == {**search.cv_results_["params"][best[0]], "max_epochs": best[1] + 1}
    assert search.cv_results_["rank_test_score"][best[0]] == 1
    assert search.n_splits_ == 2


@pytest.mark.parametrize(
    "peaks, expected",
    [
        ((10, 10), 10),  # the peak does not move with the rows: a number of epochs, kept
        ((20, 10), 5),  # it halves as the rows double: a number of steps, halved once more
        ((16, 12), 9),  # in between: 12 × 12/16
        ((5, 10), 10),  # later for more rows: kept as it is
        ((40, 1), 1),  # never below one epoch
    ],
)
def test_scaled_stopping_epoch_interpolates_between_epochs_and_steps(peaks, expected):
    from sklearn_ibvi.model_selection._held_out import scaled_stopping_epoch

    curves = [-((np.arange(1, 61) - peak) ** 2.0) for peak in peaks]  # peak at epoch `peak`
    assert scaled_stopping_epoch(*curves) == expected


def test_search_and_early_stopping_keep_the_scaled_epoch_of_the_chosen_candidates_prefixes():
    """Independent reference: the chosen candidate's n/4 and n/2 prefixes fitted from scratch
    for every epoch budget, their coded log densities summed over the two orderings. On these
    data the n/2 prefixes peak much earlier than the n/4 ones (the scaled epoch is not the peak).
    BoundEarlyStopping(stopping_epoch='scaled') on that candidate keeps the same epoch."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(160, 5))
    y = np.sin(X[:, 0]) + 0.5 * rng.normal(size=160)
    estimator = EntropySGDRegressor(hidden_layer_sizes=(64,), max_epochs=12, batch_size=8, lr=0.02, entropy=None, random_state=0)
    grid = {"prior_scale": [0.5, 1.0]}
    search = BlockPrequentialSearchCV(estimator, grid, successive_halving=False).fit(X, y)
    peak = BlockPrequentialSearchCV(estimator, grid, successive_halving=False, stopping_epoch="peak").fit(X, y)
    assert search.peak_epoch_ == peak.best_epoch_ and search.best_index_ == peak.best_index_
    chosen = clone(estimator).set_params(**search.cv_results_["params"][search.best_index_])
    blocks = BlockPrequential().blocks(y)  # [(n/4, next n/4), (n/2, last n/2)] per ordering
    curves = np.zeros((2, 12))
    for k, (prefix, coded) in enumerate(blocks):
        for epochs in range(1, 13):
            learner = clone(chosen).set_params(max_epochs=epochs).fit(X[prefix], y[prefix])
            curves[k % 2, epochs - 1] += predictive_log_likelihood(learner, X[coded], y[coded]).sum()
    quarter, half = (int(np.argmax(c)) + 1 for c in curves)
    expected = max(1, round(half * min(1.0, max(0.5, half / quarter))))
    assert search.best_epoch_ == expected < search.peak_epoch_
    assert search.best_params_["max_epochs"] == search.best_estimator_.n_epochs_ == search.best_epoch_
    stopped = BoundEarlyStopping(chosen, patience=None, criterion="block_prequential", stopping_epoch="scaled")
    stopped.fit(X, y)
    assert stopped.best_epoch_ == stopped.estimator_.n_epochs_ == expected
    assert stopped.peak_epoch_ == int(np.argmax(stopped.bound_curve_)) + 1 > expected


def test_search_refits_the_chosen_candidate_for_the_chosen_epochs_with_its_bound(diabetes):
    X, y = diabetes
    search = grid_search().fit(X, y)
    expected = EntropySGDRegressor(hidden_layer_sizes=(8,), batch_size=32, random_state=0, **search.best_params_)
    expected.fit(X, y)
    np.testing.assert_array_equal(search.predict(X), expected.predict(X))
    assert search.best_estimator_.n_epochs_ == search.best_epoch_
    assert search.best_estimator_.score(X, y) == expected.score(X, y)  # the refit tracks its bound
    assert search.score(X, y) == pytest.approx(np.mean(predictive_log_likelihood(expected, X, y)), rel=1e-12)


def test_search_in_parallel_and_with_two_orderings(diabetes):
    X, y = diabetes
    serial = grid_search(n_orderings=2).fit(X, y)
    parallel = grid_search(n_orderings=2, n_jobs=2).fit(X, y)
    np.testing.assert_array_equal(serial.criterion_curves_, parallel.criterion_curves_)
    assert serial.n_splits_ == 4  # n_blocks=2 × 2 orderings
    one = [grid_search(random_state=r).fit(X, y).criterion_curves_ for r in (0, 1)]
    np.testing.assert_allclose(serial.criterion_curves_, (one[0] + one[1]) / 2, rtol=1e-12)


def test_search_picks_the_true_model_order_where_the_evidence_does():
    """Polynomial degree 1..4, true degree 3 (the closed-form evidence picks 3 too)."""
    x, y = polynomial_data(0)
    noise_std = 0.05 / y.std()
    assert evidence_picks_degree(x, y, noise_std) == 3
    model = make_pipeline(PolynomialFeatures(include_bias=False), StandardScaler(), linear_model(noise_std))
    search = BlockPrequentialSearchCV(model, {"polynomialfeatures__degree": [1, 2, 3, 4]}).fit(x, y)
    assert search.best_params_["polynomialfeatures__degree"] == 3
    assert search.best_params_["entropysgdregressor__max_epochs"] == search.best_epoch_


def test_search_reports_a_diverging_candidate_and_keeps_the_others(diabetes):
    X, y = diabetes
    estimator = EntropySGDRegressor(hidden_layer_sizes=(8,), max_epochs=3, random_state=0)
    grid = {"lr": [0.01, 1e4]}
    with pytest.warns(FitFailedWarning, match="TrainingDivergedError") as caught:  # it diverges in epoch 2
        search = BlockPrequentialSearchCV(estimator, grid, successive_halving=False).fit(X, y)
    assert [w.filename for w in caught] == [__file__]
    assert np.isnan(search.cv_results_["mean_test_score"][1])
    assert list(search.cv_results_["rank_test_score"]) == [1, 2]
    assert search.best_params_["lr"] == 0.01
    with pytest.raises(TrainingDivergedError):
        BlockPrequentialSearchCV(estimator, grid, error_score="raise", successive_halving=False).fit(X, y)
    with pytest.raises(ValueError, match="Every candidate failed"), warnings.catch_warnings():
        warnings.simplefilter("ignore", FitFailedWarning)
        BlockPrequentialSearchCV(estimator, {"lr": [1e4]}).fit(X, y)


def test_search_refuses_what_it_cannot_run(iris):
    X, y = iris
    with pytest.raises(TypeError, match="sklearn_ibvi estimator"):
        BlockPrequentialSearchCV(Ridge(), {"alpha": [1.0]}).fit(X, y)
    with pytest.raises(ValueError, match="needs targets"):
        BlockPrequentialSearchCV(EntropySGDClassifier(), {"lr": [0.01]}).fit(X, None)
    with pytest.raises(ValueError, match="n_blocks"):
        BlockPrequentialSearchCV(EntropySGDClassifier(), {"lr": [0.01]}, n_blocks=0).fit(X, y)
    with pytest.raises(ValueError, match="too few"):
        BlockPrequentialSearchCV(EntropySGDClassifier(), {"lr": [0.01]}, n_blocks=6).fit(X[::4], y[::4])


def test_search_on_a_classifier_codes_every_class_and_delegates(iris):
    X, y = iris
    search = BlockPrequentialSearchCV(
        EntropySGDClassifier(hidden_layer_sizes=(8,), max_epochs=4, random_state=0), {"prior_scale": [0.5, 1.0]}
    ).fit(X, y)
    first_prefix = BlockPrequential().blocks(y, classifier=True)[0][0]
    assert set(y[first_prefix]) == set(y)
    assert list(search.classes_) == [0, 1, 2]
    assert search.predict_proba(X).shape == (150, 3)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))


def test_successive_halving_keeps_the_better_half_at_each_stage(diabetes):
    """Reference: the full search's curves. Stages at 1, 2, 4 and 8 of 8 epochs; each stage keeps
    the half of the candidates whose curve reached the highest value so far, and the choice is
    the best (candidate, epoch) among those trained. A survivor's curve is its full curve."""
    X, y = diabetes
    make = lambda **kw: BlockPrequentialSearchCV(  # noqa: E731
        EntropySGDRegressor(hidden_layer_sizes=(8,), max_epochs=8, batch_size=32, random_state=0),
        {"prior_scale": [0.5, 1.0, 2.0], "noise_std": [0.5, 1.0]},
        **kw,
    )
    full = make(successive_halving=False).fit(X, y).criterion_curves_
    halved = make(n_jobs=2).fit(X, y)  # the defaults: halving, 2 blocks, 2 orderings
    alive = np.arange(6)
    for epochs in (1, 2, 4):
        reached = full[alive, :epochs].max(axis=1)
        alive = np.sort(alive[np.argsort(-reached, kind="stable")[: int(np.ceil(len(alive) / 2))]])
    trained = halved.cv_results_["n_epochs_trained"]
    assert sorted(trained) == [1, 1, 1, 2, 4, 8]
    assert trained[alive[0]] == 8
    for c in range(6):
        np.testing.assert_allclose(halved.criterion_curves_[c, : trained[c]], full[c, : trained[c]], rtol=1e-12)
        assert np.all(np.isnan(halved.criterion_curves_[c, trained[c] :]))
    masked = np.where(np.isnan(halved.criterion_curves_), -np.inf, halved.criterion_curves_)
    best = np.unravel_index(np.argmax(masked), masked.shape)
    assert (halved.best_index_, halved.best_epoch_) == (best[0], best[1] + 1)


# -- cross-validation, epoch by epoch --------------------------------------------------------


def test_epochwise_cv_is_sklearns_grid_search_over_every_epoch_count(diabetes):
    """Independent reference: GridSearchCV with the held-out log predictive density, fitting every
    (candidate, max_epochs) from scratch on the same folds. Equal folds (160 rows / 5), so the
    mean of the folds' means is the mean over held-out rows."""
    X, y = diabetes
    estimator = EntropySGDRegressor(hidden_layer_sizes=(8,), max_epochs=4, batch_size=32, entropy=None, random_state=0)
    grid = {"prior_scale": [0.5, 2.0]}
    folds = KFold(5, shuffle=True, random_state=0)
    search = EpochwiseGridSearchCV(estimator, grid, cv=folds, successive_halving=False).fit(X, y)
    reference = GridSearchCV(
        estimator, {**grid, "max_epochs": [1, 2, 3, 4]}, scoring=log_predictive_scorer, cv=folds
    ).fit(X, y)
    expected = reference.cv_results_["mean_test_score"].reshape(4, 2).T  # ParameterGrid: prior_scale varies fastest
    np.testing.assert_allclose(search.criterion_curves_, expected, rtol=1e-10)
    assert search.best_params_ == reference.best_params_
    assert search.n_splits_ == 5
    for i in range(5):
        np.testing.assert_allclose(
            search.cv_results_[f"split{i}_test_score"][search.best_index_],
            reference.cv_results_[f"split{i}_test_score"][reference.best_index_],
            rtol=1e-10,
        )
    refit = clone(estimator).set_params(**search.best_params_).fit(X, y)
    np.testing.assert_array_equal(search.predict(X), refit.predict(X))


def test_epochwise_cv_of_a_classifier_uses_stratified_folds_and_halves(iris):
    X, y = iris
    estimator = EntropySGDClassifier(hidden_layer_sizes=(8,), max_epochs=8, random_state=0)
    grid = {"prior_scale": [0.5, 1.0, 2.0], "lr": [0.01, 0.03]}
    search = EpochwiseGridSearchCV(estimator, grid, cv=3, successive_halving=True).fit(X, y)
    assert search.n_splits_ == 3
    assert sorted(search.cv_results_["n_epochs_trained"]) == [1, 1, 1, 2, 4, 8]
    full = EpochwiseGridSearchCV(estimator, grid, cv=StratifiedKFold(3), successive_halving=False).fit(X, y)
    for c, trained in enumerate(search.cv_results_["n_epochs_trained"]):
        np.testing.assert_allclose(search.criterion_curves_[c, :trained], full.criterion_curves_[c, :trained], rtol=1e-12)
    assert search.predict_proba(X).shape == (150, 3)
    with pytest.raises(ValueError, match="cv"):
        EpochwiseGridSearchCV(estimator, grid, cv="five").fit(X, y)


# -- partial cross-validation, schemes as cv ------------------------------------------------


@pytest.mark.parametrize("classifier", [False, True])
def test_partial_kfold_is_the_first_folds_of_a_shuffled_kfold(classifier):
    y = np.repeat([0, 1, 2], [50, 30, 20]) if classifier else np.arange(100.0)
    splits = PartialKFold(5, 2, random_state=3).held_out_splits(y, classifier=classifier)
    assert len(splits) == 2
    for train, held_out in splits:
        assert len(held_out) == 20 and np.array_equal(np.sort(np.r_[train, held_out]), np.arange(100))
        if classifier:  # stratified: every class in its proportion
            np.testing.assert_array_equal(np.bincount(y[held_out]), [10, 6, 4])
    assert not set(splits[0][1]) & set(splits[1][1])
    assert not np.array_equal(splits[0][1], np.arange(20)), "folds are shuffled, not the first rows"
    every = PartialKFold(5, 5, random_state=3).held_out_splits(y, classifier=classifier)
    held = np.sort(np.concatenate([h for _, h in every]))
    np.testing.assert_array_equal(held, np.arange(100))  # all five: each row held out once
    with pytest.raises(ValueError, match="n_used"):
        PartialKFold(3, 4).held_out_splits(y)


def test_epochwise_search_on_a_held_out_scheme_is_the_search_on_its_splits(diabetes):
    X, y = diabetes
    estimator = EntropySGDRegressor(hidden_layer_sizes=(8,), max_epochs=4, batch_size=32, entropy=None, random_state=0)
    grid = {"prior_scale": [0.5, 2.0]}
    scheme = PartialKFold(5, 2, random_state=1)
    search = EpochwiseGridSearchCV(estimator, grid, cv=scheme, successive_halving=False).fit(X, y)
    on_splits = EpochwiseGridSearchCV(estimator, grid, cv=scheme.held_out_splits(y), successive_halving=False).fit(X, y)
    np.testing.assert_array_equal(search.criterion_curves_, on_splits.criterion_curves_)
    assert search.n_splits_ == 2
    forward = EpochwiseGridSearchCV(estimator, grid, cv=BlockPrequential(), successive_halving=False).fit(X, y)
    chained = BlockPrequentialSearchCV(estimator, grid, successive_halving=False).fit(X, y)
    np.testing.assert_array_equal(forward.criterion_curves_, chained.criterion_curves_)



@pytest.mark.parametrize("random_state, orderings_agree", [(0, True), (2, False), (3, False)])
def test_orderings_guard_lets_cv_choose_only_where_the_orderings_disagree(diabetes, random_state, orderings_agree):
    """Independent references: each ordering's peak from a one-ordering search seeded as that
    ordering, and the CV choice from an EpochwiseGridSearchCV over the two candidates."""
    X, y = diabetes
    # The seeds below were picked for whether the orderings agree at this fixed noise.
    estimator = EntropySGDRegressor(
        hidden_layer_sizes=(8,), max_epochs=6, batch_size=32, entropy=None, noise_std=0.5, lr=0.01, random_state=0
    )
    grid, folds = {"prior_scale": [1.0, 1.1]}, KFold(5, shuffle=True, random_state=0)
    common = dict(successive_halving=False, stopping_epoch="peak")
    plain = BlockPrequentialSearchCV(estimator, grid, random_state=random_state, **common).fit(X, y)
    guarded = BlockPrequentialSearchCV(estimator, grid, random_state=random_state, tie_break_cv=folds, **common)
    guarded.fit(X, y)
    first, second = guarded.tie_break_["finalists"]
    assert first == plain.best_index_ and {first, second} == {0, 1}
    peaks = [
        BlockPrequentialSearchCV(estimator, grid, n_orderings=1, random_state=random_state + o, **common)
        .fit(X, y)
        .criterion_curves_.max(axis=1)
        for o in (0, 1)
    ]
    expected_gaps = [p[first] - p[second] for p in peaks]
    np.testing.assert_allclose(guarded.tie_break_["ordering_gaps"], expected_gaps, rtol=1e-12)
    assert (np.sign(expected_gaps[0]) == np.sign(expected_gaps[1])) == orderings_agree
    if orderings_agree:
        assert guarded.tie_break_["search"] is None
        assert guarded.best_params_ == plain.best_params_ and guarded.best_index_ == plain.best_index_
        return
    cv = EpochwiseGridSearchCV(estimator, grid, cv=folds, successive_halving=False, refit=False).fit(X, y)
    assert guarded.best_params_ == cv.best_params_
    assert guarded.best_index_ == cv.best_index_ and guarded.best_epoch_ == cv.best_epoch_
    assert guarded.best_score_ == guarded.cv_results_["mean_test_score"][guarded.best_index_]
    assert guarded.best_estimator_.get_params()["max_epochs"] == cv.best_epoch_


def test_an_integer_tie_break_cv_means_shuffled_folds_seeded_as_the_search(diabetes):
    """What the study measured: shuffled 5-fold (stratified for classifiers) CV, not sklearn's
    unshuffled folds of ``cv=5``."""
    X, y = diabetes
    estimator = EntropySGDRegressor(
        hidden_layer_sizes=(8,), max_epochs=6, batch_size=32, entropy=None, noise_std=0.5, lr=0.01, random_state=0
    )
    grid = {"prior_scale": [1.0, 1.1]}
    common = dict(successive_halving=False, stopping_epoch="peak", random_state=2)  # orderings disagree (noise 0.5)
    by_int = BlockPrequentialSearchCV(estimator, grid, tie_break_cv=5, **common).fit(X, y)
    by_splitter = BlockPrequentialSearchCV(estimator, grid, tie_break_cv=KFold(5, shuffle=True, random_state=2), **common)
    by_splitter.fit(X, y)
    searches = [by_int.tie_break_["search"], by_splitter.tie_break_["search"]]
    assert searches[0] is not None
    np.testing.assert_array_equal(searches[0].criterion_curves_, searches[1].criterion_curves_)
    unshuffled = EpochwiseGridSearchCV(estimator, grid, cv=5, successive_halving=False, refit=False).fit(X, y)
    assert not np.array_equal(searches[0].criterion_curves_, unshuffled.criterion_curves_)
    stratified = shuffled_folds(4, classifier=True, random_state=3)
    assert isinstance(stratified, StratifiedKFold) and stratified.shuffle and stratified.random_state == 3
    splitter = KFold(3)
    assert shuffled_folds(splitter, classifier=False, random_state=0) is splitter


def test_orderings_guard_needs_two_orderings_and_is_off_by_default(diabetes):
    X, y = diabetes
    estimator = EntropySGDRegressor(hidden_layer_sizes=(4,), max_epochs=2, batch_size=32, entropy=None, random_state=0)
    with pytest.raises(ValueError, match="n_orderings >= 2"):
        BlockPrequentialSearchCV(estimator, {"prior_scale": [1.0, 2.0]}, n_orderings=1, tie_break_cv=5).fit(X, y)
    assert BlockPrequentialSearchCV(estimator, {"prior_scale": [1.0, 2.0]}).fit(X, y).tie_break_ is None
