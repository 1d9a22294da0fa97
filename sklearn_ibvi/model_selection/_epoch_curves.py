"""Evaluations on held-out rows after every epoch of one ``fit`` (or of stages of one).

Criteria that choose a stopping epoch (forward chaining, cross-validation) need a learner's
predictions on other rows after each epoch. Training epoch by epoch with ``partial_fit`` gives
them, but each call re-validates the data and copies the network (so that a failed call loses
nothing): on small prefixes that overhead costs more than the epoch itself. Here the rows are
scored from a skorch callback inside a single ``fit`` instead; the training path is unchanged
(scoring draws no random numbers from the training stream).
"""

import time

import numpy as np
import torch
from sklearn.base import clone
from sklearn.utils import _safe_indexing
from skorch.callbacks import Callback

from ..core.estimator import BayesianNetEstimator
from ._predictive import predictive_log_likelihood

CALLBACK_NAME = "sklearn_ibvi_epochwise_log_likelihood"


def final_estimator(learner):
    """The sklearn_ibvi estimator that ``learner`` (itself or a pipeline ending in one) trains."""
    estimator = learner.steps[-1][1] if hasattr(learner, "steps") else learner
    if not isinstance(estimator, BayesianNetEstimator):
        raise TypeError(
            "Epoch-by-epoch criteria need an sklearn_ibvi estimator (or a Pipeline ending in one); "
            f"got {type(estimator).__name__}."
        )
    return estimator


def final_parameter_prefix(learner):
    """``"<last step>__"`` for a pipeline, ``""`` for an estimator: how its parameters are named."""
    return f"{learner.steps[-1][0]}__" if hasattr(learner, "steps") else ""


class EpochwiseEvaluation(Callback):
    """After every epoch, ``evaluate(learner, X, y)`` on the learner as it is then.

    ``learner`` is the object evaluated (the estimator, or the pipeline that ends in it);
    ``estimator`` is the sklearn_ibvi estimator whose net this callback runs in. Results are
    appended to ``values``; ``seconds`` accumulates the time spent evaluating.

    It lives in a net only while :class:`EpochwiseRun` trains it. A continued fit works on a
    deep copy of the net; the copy must report to the same recorder and evaluate the live
    learner, so copying returns the recorder itself.
    """

    def __init__(self, learner, estimator, X, y, evaluate, values):
        self.learner = learner
        self.estimator = estimator
        self.X = X
        self.y = y
        self.evaluate = evaluate
        self.values = values
        self.seconds = 0.0

    def __deepcopy__(self, memo):
        return self

    def on_epoch_end(self, net, **kwargs):
        start = time.perf_counter()
        estimator = self.estimator
        missing = object()
        previous = estimator.__dict__.get("net_", missing)
        training = net.module_.training
        estimator.net_ = net  # what predict reads; the fit sets it for good when it succeeds
        try:
            with torch.random.fork_rng(devices=[]):
                self.values.append(self.evaluate(self.learner, self.X, self.y))
        finally:
            if previous is missing:
                del estimator.net_
            else:
                estimator.net_ = previous
            net.module_.train(training)
        self.seconds += time.perf_counter() - start


class EpochwiseRun:
    """A learner trained in stages and evaluated on fixed rows after every epoch.

    ``train(X, y, X_eval, y_eval, epochs)`` trains on until ``epochs`` epochs in all (the first
    call starts from a prior draw; later calls continue the network, as ``warm_start`` does, so
    stages give the same path as one fit with a constant learning rate). ``values`` holds one
    evaluation per epoch, ``scoring_seconds`` the time they took. Between stages the learner
    holds no recorder and no evaluation rows, so a run pickles (to joblib workers) cleanly.

    Parameters
    ----------
    estimator : sklearn_ibvi estimator, or a Pipeline ending in one
        Cloned.
    evaluate : callable
        ``evaluate(learner, X_eval, y_eval)`` → anything, after every epoch.
    """

    def __init__(self, estimator, evaluate):
        self.learner = clone(estimator)
        self.evaluate = evaluate
        self.values = []
        self.scoring_seconds = 0.0

    @property
    def epochs(self):
        """Epochs trained so far."""
        return len(self.values)

    def train(self, X, y, X_eval, y_eval, epochs):
        """Train on until ``epochs`` epochs in all, evaluating after each; returns self."""
        more = epochs - self.epochs
        if more <= 0:
            return self
        trained = final_estimator(self.learner)
        recorder = EpochwiseEvaluation(self.learner, trained, X_eval, y_eval, self.evaluate, self.values)
        own = trained.get_params(deep=False)
        if self.epochs == 0:
            trained.set_params(callbacks=[*(own["callbacks"] or []), (CALLBACK_NAME, recorder)], max_epochs=more)
        else:  # a continued net keeps the callbacks it was started with: give it the recorder
            trained.net_.callbacks_.append((CALLBACK_NAME, recorder))
            trained.set_params(warm_start=True, max_epochs=more)
        try:
            self.learner.fit(X, y)
        finally:
            trained.set_params(**{name: own[name] for name in ("callbacks", "max_epochs", "warm_start")})
            net = getattr(trained, "net_", None)
            if net is not None:
                net.callbacks_ = [(name, cb) for name, cb in net.callbacks_ if name != CALLBACK_NAME]
                net.callbacks = list(own["callbacks"] or [])
                # the recorder was a parameter when the net started; continuations compare to that
                trained._started_with_params["callbacks"] = own["callbacks"]
            self.scoring_seconds += recorder.seconds
        if self.epochs != epochs:
            raise RuntimeError(f"Expected {epochs} evaluated epochs, got {self.epochs}: training stopped early.")
        return self


def epochwise_evaluations(estimator, X, y, X_eval, y_eval, evaluate):
    """Fit a clone of ``estimator`` on ``(X, y)``; ``evaluate(learner, X_eval, y_eval)`` after every epoch.

    Returns the fitted clone (identical to ``clone(estimator).fit(X, y)``), the list of
    per-epoch results and the seconds spent evaluating (part of the fit's wall time).
    """
    run = EpochwiseRun(estimator, evaluate)
    run.train(X, y, X_eval, y_eval, final_estimator(run.learner).max_epochs)
    return run.learner, run.values, run.scoring_seconds


def for_held_out_scoring(estimator):
    """``estimator`` (or the pipeline ending in one) set up for fits judged on held-out rows.

    Prefix and fold fits are judged on held-out rows: the bound's extra work (entropy-SGD's
    Hessian-vector products, IBVI's end-of-epoch ELBO) would be wasted there, and IBVI averages
    fewer weight draws for its held-out predictive. Each family names its values
    (``_held_out_params``).
    """
    trained = final_estimator(estimator)
    prefix = final_parameter_prefix(estimator)
    return estimator.set_params(**{prefix + name: value for name, value in trained._held_out_params().items()})


def held_out_clone(estimator):
    """A clone of ``estimator``, :func:`for_held_out_scoring` if it is (or ends in) an sklearn_ibvi one."""
    learner = clone(estimator)
    try:
        return for_held_out_scoring(learner)
    except TypeError:  # any other estimator: nothing to switch off
        return learner


class HeldOutRun:
    """A learner trained in stages on rows ``train``, scoring rows ``held_out`` after every epoch.

    One candidate on one split of an epochwise search (a CV fold, a forward-chaining prefix).
    """

    def __init__(self, learner, train, held_out):
        self.run = EpochwiseRun(learner, predictive_log_likelihood)
        self.train = train
        self.held_out = held_out
        self.budget = final_estimator(self.run.learner).max_epochs
        self.training_seconds = 0.0
        self.error = None

    @property
    def curve(self):
        """Summed log density of the held-out rows after each epoch trained (nats)."""
        return np.array([values.sum() for values in self.run.values])


def advance(held_out_run, X, y, epochs, error_score):
    """Train ``held_out_run`` on to ``epochs`` epochs in all; return it.

    A failure (e.g. ``TrainingDivergedError``) is kept in ``error`` unless ``error_score`` is
    ``'raise'``.
    """
    if held_out_run.error is not None:
        return held_out_run
    start = time.perf_counter()
    scored_before = held_out_run.run.scoring_seconds
    try:
        held_out_run.run.train(
            _safe_indexing(X, held_out_run.train),
            _safe_indexing(y, held_out_run.train),
            _safe_indexing(X, held_out_run.held_out),
            _safe_indexing(y, held_out_run.held_out),
            epochs,
        )
    except Exception as error:  # noqa: BLE001 — reported as error_score says
        if isinstance(error_score, str) and error_score == "raise":
            raise
        held_out_run.error = f"{type(error).__name__}: {error}"
    held_out_run.training_seconds += time.perf_counter() - start - (held_out_run.run.scoring_seconds - scored_before)
    return held_out_run
