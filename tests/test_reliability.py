"""Reliability of every estimator: nothing lost, nothing silent.

Numerical faults (divergence, exceptions and NaN injected into training), continuation
(``partial_fit``/``warm_start``), persistence (pickle, joblib, clone, a CUDA model on a CPU-only
machine), determinism, concurrency (loky workers, threads), scale (memory linear in the parameters,
memmapped data read on demand) and the GPU path (skipped without CUDA). The number of faults
injected is printed at the end of the module (``-rA`` or ``-s`` shows it).
"""

import collections
import copy
import math
import os
import pickle
import random
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.model_selection import GridSearchCV
from skorch.callbacks import Callback, PrintLog
from skorch.exceptions import DeviceWarning
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

import sklearn_ibvi
from sklearn_ibvi import TrainingDivergedError
from sklearn_ibvi.core import estimator as _base
from sklearn_ibvi.model_selection import log_predictive_scorer

ESTIMATOR_NAMES = ["EntropySGDRegressor", "EntropySGDClassifier", "IBVIRegressor", "IBVIClassifier"]
ESTIMATORS = [getattr(sklearn_ibvi, name) for name in ESTIMATOR_NAMES if hasattr(sklearn_ibvi, name)]
CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device")

pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn_ibvi.BoundValidityWarning"),
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]

#: Faults injected, by kind; printed when the module finishes.
FAULTS_INJECTED = collections.Counter()


@pytest.fixture(scope="module", autouse=True)
def report_faults_injected(request):
    yield
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is None or capture is None or not FAULTS_INJECTED:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(f"\ntest_reliability: {sum(FAULTS_INJECTED.values())} faults injected")
        for kind, injected in sorted(FAULTS_INJECTED.items()):
            reporter.write_line(f"  {kind}: {injected}")


@pytest.fixture(params=ESTIMATORS, ids=lambda c: c.__name__)
def cls(request):
    return request.param


def small(cls, **params):
    """A small, quick configuration: 6 hidden units, 2 epochs of batches of 10, on the CPU."""
    defaults = dict(hidden_layer_sizes=(6,), max_epochs=2, batch_size=10, random_state=0, device="cpu")
    if "n_predict_samples" in cls().get_params():
        defaults["n_predict_samples"] = 4
    return cls(**{**defaults, **params})


def data_for(cls, n=40, d=3, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, d)
    if is_regressor(cls()):
        return X, X @ np.array([1.0, -2.0, 0.5][:d] + [0.0] * max(0, d - 3)) + 0.1 * rng.randn(n)
    return X, (X[:, 0] + 0.3 * rng.randn(n) > 0).astype(int) + (X[:, 1] > 1)


def snapshot(estimator, X, y):
    """Everything a user can observe of a fitted estimator, copied."""
    state = {
        "predict": estimator.predict(X),
        "score": estimator.score(X, y),
        "bound_curve_": np.array(estimator.bound_curve_),
        "n_epochs_": estimator.n_epochs_,
        # repr: rows hold NaNs, which == would not match; 'dur' is wall time
        "history": repr([{k: v for k, v in row.items() if k != "dur"} for row in estimator.history_]),
        "attributes": sorted(estimator.__dict__),
        "weights": {k: v.detach().cpu().clone() for k, v in estimator.net_.module_.state_dict().items()},
    }
    if is_classifier(estimator):
        state["predict_proba"] = estimator.predict_proba(X)
    else:
        state["predict_std"] = estimator.predict(X, return_std=True)[1]
    return state


def assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if key == "weights":
            assert a[key].keys() == b[key].keys()
            for name in a[key]:
                assert torch.equal(a[key][name], b[key][name]), f"weights {name} differ"
        else:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


# -- numerical faults -------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["fit", "warm_start", "partial_fit"])
def test_divergence_raises_and_leaves_a_fitted_estimator_usable_and_unchanged(cls, how):
    X, y = data_for(cls)
    estimator = small(cls).fit(X, y)
    before = snapshot(estimator, X, y)
    estimator.set_params(lr=1e6, warm_start=how == "warm_start")
    FAULTS_INJECTED[f"diverging lr ({how})"] += 1
    with pytest.raises(TrainingDivergedError, match="Lower `lr`"):
        estimator.partial_fit(X, y) if how == "partial_fit" else estimator.fit(X, y)
    assert_same(snapshot(estimator, X, y), before)
    # The failure consumed nothing, random stream included: continuing now is continuing a twin
    # that never failed.
    twin = small(cls).fit(X, y)
    estimator.set_params(lr=twin.lr, warm_start=False).partial_fit(X, y)
    twin.partial_fit(X, y)
    assert_same(snapshot(estimator, X, y), snapshot(twin, X, y))


FAULTS = {"runtime": RuntimeError, "memory": MemoryError, "interrupt": KeyboardInterrupt}


class InjectFault(Callback):
    """Raise ``kind`` (or poison a weight with NaN) at the third batch of the second epoch."""

    def __init__(self, kind):
        self.kind = kind

    def on_batch_end(self, net, batch=None, training=None, **kwargs):
        if len(net.history) == 2 and len(net.history[-1, "batches"]) == 3:
            if self.kind == "nan":
                with torch.no_grad():
                    next(net.module_.parameters()).view(-1)[0] = float("nan")
            else:
                raise FAULTS[self.kind]("injected fault")


class StopAfterEpoch(Callback):
    """skorch's way of stopping early: ``KeyboardInterrupt`` at the end of an epoch."""

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == 2:
            raise KeyboardInterrupt


@pytest.mark.parametrize("kind", ["runtime", "memory", "interrupt", "nan"])
@pytest.mark.parametrize("how", ["fit", "partial_fit"])
def test_faults_injected_into_training_leave_the_estimator_unchanged(cls, kind, how):
    X, y = data_for(cls)
    estimator = small(cls, max_epochs=3).fit(X, y)
    before = snapshot(estimator, X, y)
    estimator.set_params(callbacks=[InjectFault(kind)])
    if how == "partial_fit":
        # the callbacks of a continued network are those it was started with: start it faulty
        estimator = small(cls, max_epochs=1, callbacks=[InjectFault(kind)]).fit(X, y)
        before = snapshot(estimator, X, y)
    FAULTS_INJECTED[f"{kind} in a training step"] += 1
    with pytest.raises(FAULTS.get(kind, TrainingDivergedError)):
        estimator.partial_fit(X, y) if how == "partial_fit" else estimator.fit(X, y)
    assert_same(snapshot(estimator, X, y), before)


def test_an_interrupt_at_the_end_of_an_epoch_stops_training_there_consistently(cls):
    X, y = data_for(cls)
    stopped = small(cls, max_epochs=5, callbacks=[StopAfterEpoch()]).fit(X, y)
    assert stopped.n_epochs_ == len(stopped.bound_curve_) == 2
    assert stopped.score(X, y) == pytest.approx(stopped.bound_ / len(X), rel=1e-6)


def test_entropy_accumulates_in_float64_so_a_long_run_of_tiny_changes_is_not_lost(monkeypatch):
    """1e-7-nat steps on a 66-nat entropy: float32 would drop most of them, float64 keeps all."""
    from sklearn_ibvi.entropy_sgd import net as entropy_sgd

    changes = []
    estimate = entropy_sgd.stochastic_entropy_change

    def recording(*args, **kwargs):
        change = estimate(*args, **kwargs)
        changes.append(change.detach().double().cpu().clone())
        return change

    monkeypatch.setattr(entropy_sgd, "stochastic_entropy_change", recording)
    X, y = data_for(sklearn_ibvi.EntropySGDRegressor, n=50)
    estimator = sklearn_ibvi.EntropySGDRegressor(
        hidden_layer_sizes=(16,), lr=1e-8, batch_size=1, max_epochs=2, n_power_iterations=0,
        random_state=0, device="cpu",
    ).fit(X, y)  # fmt: skip
    net = estimator.net_
    assert net.entropy_.dtype == torch.float64
    steps = torch.stack(changes)[:, 0]
    assert len(steps) == 100 and float(steps.abs().max()) < 1e-5  # float32's ulp at 66 is 7.6e-6
    expected = math.fsum(steps.tolist())
    assert float(net.entropy_[0] - net.initial_entropy_) == pytest.approx(expected, rel=1e-9)
    in_float32 = torch.tensor(net.initial_entropy_, dtype=torch.float32)
    for step in steps:
        in_float32 += step.float()
    lost = abs(float(in_float32) - net.initial_entropy_ - expected)
    assert lost > 0.5 * abs(expected), "the test must be sensitive: float32 loses these steps"


# -- continuation ------------------------------------------------------------------------------------


def test_k_partial_fits_and_k_warm_starts_equal_one_fit_of_k_epochs(cls):
    X, y = data_for(cls)
    whole = small(cls, max_epochs=3).fit(X, y)
    stepped = small(cls)
    for _ in range(3):
        stepped.partial_fit(X, y)
    warm = small(cls, max_epochs=1, warm_start=True)
    for _ in range(3):
        warm.fit(X, y)
    mixed = small(cls, max_epochs=2).fit(X, y).partial_fit(X, y)
    reference = snapshot(whole, X, y)
    for continued in (stepped, warm, mixed):
        assert_same(snapshot(continued, X, y), reference)
        np.testing.assert_array_equal(continued.history_[:, "prequential_log_likelihood"],
                                      whole.history_[:, "prequential_log_likelihood"])  # fmt: skip


def test_the_epoch_table_is_printed_when_verbose_and_not_even_formatted_otherwise(cls, capsys, monkeypatch):
    X, y = data_for(cls)
    formatted = []
    table = PrintLog.table
    monkeypatch.setattr(PrintLog, "table", lambda self, row: formatted.append(row["epoch"]) or table(self, row))
    model = small(cls, warm_start=True).fit(X, y)
    assert formatted == [] and capsys.readouterr().out == ""
    model.set_params(verbose=1).fit(X, y)  # switched on in a continuation: header, rule, two rows
    lines = capsys.readouterr().out.splitlines()
    assert formatted == [3, 4] and len(lines) == 4
    assert lines[0].split()[0] == "epoch" and set(lines[1]) <= {"-", " "}
    assert [line.split()[0] for line in lines[2:]] == ["3", "4"]


def test_continuation_trains_with_the_current_schedule(cls):
    """``set_params(lr=…, max_epochs=…, batch_size=…)`` between continuations takes effect."""
    X, y = data_for(cls)
    estimator = small(cls).fit(X, y)
    group_lrs = [group["lr"] for group in estimator.net_.optimizer_.param_groups]
    estimator.set_params(warm_start=True, max_epochs=3, lr=estimator.lr / 4, batch_size=7).fit(X, y)
    assert estimator.n_epochs_ == 5
    scaled = [group["lr"] for group in estimator.net_.optimizer_.param_groups]
    np.testing.assert_allclose(scaled, np.array(group_lrs) / 4, rtol=1e-12)  # per-group multipliers kept
    assert estimator.net_.batch_size == 7
    assert len(estimator.history_[-1, "batches"]) == math.ceil(len(X) / 7)


def test_continuation_refuses_changes_to_the_model_and_keeps_the_fit(cls):
    X, y = data_for(cls)
    estimator = small(cls).fit(X, y)
    before = snapshot(estimator, X, y)
    for change in ({"hidden_layer_sizes": (3,)}, {"prior_scale": 2.0}, {"activation": "tanh"}):
        estimator.set_params(**change)
        with pytest.raises(ValueError, match=f"{next(iter(change))}=.*warm_start=False"):
            estimator.partial_fit(X, y)
        with pytest.raises(ValueError, match="parameters that define it changed"):
            estimator.set_params(warm_start=True).fit(X, y)
        assert_same(snapshot(estimator, X, y), before)
        estimator.set_params(**{k: small(cls).get_params()[k] for k in change}, warm_start=False)
    estimator.set_params(hidden_layer_sizes=[6])  # the same widths, spelled as a list
    estimator.partial_fit(X, y)
    assert estimator.set_params(hidden_layer_sizes=(3,)).fit(X, y).net_ is not None  # a new network


def test_classes_are_fixed_when_the_network_starts():
    for cls in [c for c in ESTIMATORS if is_classifier(c())]:
        X, y = data_for(cls)
        estimator = small(cls).partial_fit(X[:10], y[:10], classes=[0, 1, 2])
        assert list(estimator.classes_) == [0, 1, 2]
        estimator.partial_fit(X[10:], y[10:], classes=[0, 1, 2])
        with pytest.raises(ValueError, match="classes"):
            estimator.partial_fit(X, y, classes=[0, 1, 2, 3])


# -- persistence -------------------------------------------------------------------------------------


def test_pickle_and_joblib_round_trips_predict_score_and_continue_identically(cls, tmp_path):
    X, y = data_for(cls)
    estimator = small(cls).fit(X, y)
    reference = snapshot(estimator, X, y)
    path = tmp_path / "model.joblib"
    restored = [pickle.loads(pickle.dumps(estimator))]
    for compress in (0, 3):
        joblib.dump(estimator, path, compress=compress)
        restored.append(joblib.load(path))
    restored.append(copy.deepcopy(estimator))
    for model in restored:
        assert_same(snapshot(model, X, y), reference)
        assert model.history_ is model.net_.history
    continued = [model.partial_fit(X, y) for model in restored]
    estimator.partial_fit(X, y)
    for model in continued:
        assert_same(snapshot(model, X, y), snapshot(estimator, X, y))


def test_a_pickled_model_predicts_and_scores_identically_in_a_fresh_process(cls, tmp_path):
    """Nothing a fitted model needs lives in the process that trained it (the standardisation, the
    pinned weight draws, the bookkeeping): a new interpreter loads it and gives the same bits."""
    import subprocess
    import sys

    X, y = data_for(cls)
    estimator = small(cls).fit(X, y)
    with open(tmp_path / "model.pkl", "wb") as f:
        pickle.dump((estimator, X, y), f)
    script = f"""
import pickle, numpy as np
with open({str(tmp_path / 'model.pkl')!r}, 'rb') as f:
    estimator, X, y = pickle.load(f)
out = {{'predict': estimator.predict(X), 'score': np.array(estimator.score(X, y))}}
out['detail'] = estimator.predict_proba(X) if hasattr(estimator, 'classes_') else estimator.predict(X, return_std=True)[1]
np.savez({str(tmp_path / 'out.npz')!r}, **out)
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    fresh = np.load(tmp_path / "out.npz")
    detail = estimator.predict_proba(X) if is_classifier(estimator) else estimator.predict(X, return_std=True)[1]
    np.testing.assert_array_equal(fresh["predict"], estimator.predict(X))
    np.testing.assert_array_equal(fresh["score"], estimator.score(X, y))
    np.testing.assert_array_equal(fresh["detail"], detail)


def test_a_saved_model_does_not_carry_its_training_data(cls):
    small_data, large_data = data_for(cls, n=20, d=40), data_for(cls, n=5000, d=40)
    fitted = [small(cls, max_epochs=1, batch_size=1000).fit(*data) for data in (small_data, large_data)]
    sizes = [len(pickle.dumps(estimator)) for estimator in fitted]
    assert sizes[1] - sizes[0] < 0.05 * large_data[0].size * 4  # 5000 × 40 float32 would be 800 kB


def test_a_fitted_estimator_holds_no_reference_to_its_training_data(cls):
    X, y = data_for(cls)
    estimator = small(cls).fit(X, y)
    batches = getattr(estimator.net_, "_train_batches", None)
    assert batches is None or batches.X is None


def test_clones_of_fitted_and_unfitted_estimators_refit_identically(cls):
    X, y = data_for(cls)
    unfitted = small(cls)
    estimator = clone(unfitted).fit(X, y)
    for copy_ in (clone(unfitted), clone(estimator)):
        assert copy_.get_params() == unfitted.get_params()
        assert not hasattr(copy_, "net_") and not hasattr(copy_, "_started_with_params")
        assert_same(snapshot(copy_.fit(X, y), X, y), snapshot(estimator, X, y))


def _pretend_trained_on_cuda(estimator, monkeypatch):
    """Pickle bytes of ``estimator`` exactly as if its net lived on 'cuda:0'.

    Every tensor storage is tagged 'cuda:0' in the pickle (torch's own location tag, which is
    what makes loading a CUDA pickle fail on a CPU-only machine), and the device strings say
    'cuda'. The values are those of the CPU fit.
    """
    import torch.serialization

    with monkeypatch.context() as patch:
        patch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        patch.setattr(_base, "net_device", lambda net: torch.device("cuda:0"))
        patch.setattr(estimator, "device", "cuda")
        patch.setattr(estimator.net_, "device", "cuda")
        patch.setattr(estimator.net_, "iterator_train__device", "cuda")
        saved = pickle.dumps(estimator)
        plain_tensor = pickle.dumps(torch.ones(3))
    return saved, plain_tensor


def test_a_model_trained_on_cuda_loads_predicts_and_scores_on_a_cpu_only_machine(cls, monkeypatch):
    X, y = data_for(cls)
    estimator = small(cls).fit(X, y)
    reference = snapshot(estimator, X, y)
    saved, plain_tensor = _pretend_trained_on_cuda(estimator, monkeypatch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    FAULTS_INJECTED["CUDA pickle on a CPU-only machine"] += 1
    with pytest.raises(RuntimeError, match="CUDA"):
        pickle.loads(plain_tensor)  # the fake is faithful: a CUDA tensor does not load here
    with pytest.warns(DeviceWarning, match="loaded on the CPU"):
        restored = pickle.loads(saved)
    assert _base.net_device(restored.net_) == torch.device("cpu")
    assert_same(snapshot(restored, X, y), reference)
    assert restored.get_params()["device"] == "cuda"
    with pytest.raises(ValueError, match="CUDA is not available"):
        restored.partial_fit(X, y)
    restored.set_params(device="cpu").partial_fit(X, y)  # continues on the CPU
    assert_same(snapshot(restored, X, y), snapshot(estimator.partial_fit(X, y), X, y))


# -- determinism -------------------------------------------------------------------------------------


def test_the_same_random_state_gives_bit_identical_fits(cls):
    X, y = data_for(cls)
    first, second = small(cls, random_state=7).fit(X, y), small(cls, random_state=7).fit(X, y)
    assert_same(snapshot(first, X, y), snapshot(second, X, y))
    other = small(cls, random_state=8).fit(X, y)
    assert not np.array_equal(other.bound_curve_, first.bound_curve_)


def test_fit_predict_and_score_leave_the_global_random_states_untouched(cls):
    X, y = data_for(cls)
    torch_state, numpy_state, python_state = torch.get_rng_state(), np.random.get_state(), random.getstate()
    estimator = small(cls).fit(X, y).partial_fit(X, y)
    estimator.predict(X), estimator.score(X, y)
    if is_classifier(estimator):
        estimator.predict_proba(X)
    else:
        estimator.predict(X, return_std=True)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], numpy_state[1])
    assert random.getstate() == python_state


# -- concurrency -------------------------------------------------------------------------------------


def test_grid_search_in_two_loky_workers_or_two_threads_matches_the_serial_search():
    grid = {"hidden_layer_sizes": [(2,), (5,)], "max_epochs": [1, 2]}
    for cls in ESTIMATORS:
        X, y = data_for(cls)
        search = dict(cv=2, scoring=log_predictive_scorer)  # held-out rows: score is no bound there
        serial = GridSearchCV(small(cls), grid, **search).fit(X, y)
        in_processes = GridSearchCV(small(cls), grid, n_jobs=2, **search).fit(X, y)
        with joblib.parallel_config(backend="threading"):
            in_threads = GridSearchCV(small(cls), grid, n_jobs=2, **search).fit(X, y)
        for parallel in (in_processes, in_threads):
            for key, values in serial.cv_results_.items():
                if "time" not in key:
                    np.testing.assert_array_equal(parallel.cv_results_[key], values, err_msg=f"{cls.__name__}: {key}")


def test_loky_workers_run_torch_on_their_share_of_the_cores():
    """No oversubscription: loky sets each worker's thread budget, and torch follows it."""
    threads = joblib.Parallel(n_jobs=2)(joblib.delayed(torch.get_num_threads)() for _ in range(4))
    assert max(threads) <= max(1, (os.cpu_count() or 1) // 2)


def test_fits_and_predictions_in_concurrent_threads_equal_serial_ones():
    """torch's RNG is process-global; seeded sections take turns, so threads cannot mix streams."""
    jobs = [(cls, seed) for cls in ESTIMATORS for seed in (0, 1)]

    def fit(job):
        cls, seed = job
        X, y = data_for(cls)
        model = small(cls, random_state=seed, max_epochs=3).fit(X, y)
        return model, (model.predict_proba(X) if is_classifier(model) else model.predict(X, return_std=True)[1])

    serial = [fit(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        predicting = [pool.submit(fit, job) for job in jobs]
        concurrent = [future.result() for future in predicting]
    for (cls, _), (expected, expected_out), (model, out) in zip(jobs, serial, concurrent):
        X, y = data_for(cls)
        np.testing.assert_array_equal(out, expected_out)
        assert_same(snapshot(model, X, y), snapshot(expected, X, y))


# -- scale -------------------------------------------------------------------------------------------


class LargestTensor(TorchDispatchMode):
    """Records the largest tensor any torch operation produces (forward, backward, HVPs).

    Tensors that merely view the memory of ``shared`` (a memmap wrapped without a copy) are not
    allocations and are not counted.
    """

    def __init__(self, shared=None):
        super().__init__()
        self.numel = 0
        self.shared = None if shared is None else (shared.ctypes.data, shared.ctypes.data + shared.nbytes)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for value in tree_flatten(out)[0]:
            if isinstance(value, torch.Tensor) and not self._views_shared_memory(value):
                self.numel = max(self.numel, value.numel())
        return out

    def _views_shared_memory(self, tensor):
        if self.shared is None or tensor.device.type != "cpu":
            return False
        return self.shared[0] <= tensor.untyped_storage().data_ptr() < self.shared[1]


def test_stochastic_entropy_memory_is_linear_in_the_parameters_and_exact_is_quadratic():
    rng = np.random.RandomState(0)
    X, y = rng.randn(64, 150), rng.randn(64)
    stochastic = sklearn_ibvi.EntropySGDRegressor(
        hidden_layer_sizes=(100,), max_epochs=1, batch_size=32, random_state=0, device="cpu"
    )
    with LargestTensor() as largest:
        stochastic.fit(X, y)
    D = stochastic.net_.module_.n_parameters  # 15 201: a D×D Hessian would be 231 million floats
    assert largest.numel <= 2 * max(D, X.size)
    exact = sklearn_ibvi.EntropySGDRegressor(
        hidden_layer_sizes=(20,), max_epochs=1, batch_size=64, entropy="exact", random_state=0, device="cpu"
    )
    with LargestTensor() as largest:  # the instrument sees a Hessian when there is one
        exact.fit(X[:, :10], y)
    assert largest.numel >= exact.net_.module_.n_parameters**2


@pytest.mark.skipif(not hasattr(sklearn_ibvi, "IBVIRegressor"), reason="IBVI not available")
@pytest.mark.parametrize("covariance", ["diagonal", "lowrank", "diag+lowrank"])
def test_ibvi_memory_is_linear_in_the_variational_parameters(covariance):
    rng = np.random.RandomState(0)
    X, y = rng.randn(64, 150), rng.randn(64)
    estimator = sklearn_ibvi.IBVIRegressor(
        hidden_layer_sizes=(100,), max_epochs=1, batch_size=32, covariance=covariance, rank=5,
        n_predict_samples=4, random_state=0, device="cpu",
    )  # fmt: skip
    with LargestTensor() as training:
        estimator.fit(X, y)
    with LargestTensor() as predicting:
        estimator.predict(X)
    n_parameters = sum(p.numel() for p in estimator.net_.module_.parameters())
    assert training.numel <= max(n_parameters, X.size)
    # prediction draws the weights of each of the n_predict_samples at once
    assert predicting.numel <= estimator.n_predict_samples * max(n_parameters, X.size)


def test_exact_entropy_refuses_too_large_networks_with_a_clear_message_and_keeps_the_fit():
    from sklearn_ibvi.entropy_sgd.net import MAX_EXACT_PARAMETERS

    X, y = data_for(sklearn_ibvi.EntropySGDClassifier, d=3)
    estimator = small(sklearn_ibvi.EntropySGDClassifier).fit(X, y)
    before = snapshot(estimator, X, y)
    estimator.set_params(entropy="exact", hidden_layer_sizes=(80, 60))
    D = (3 * 80 + 80) + (80 * 60 + 60) + (60 * 3 + 3)
    with pytest.raises(ValueError) as refused:
        estimator.fit(X, y)
    message = str(refused.value)
    assert f"{D}×{D} Hessian" in message and str(MAX_EXACT_PARAMETERS) in message
    assert "entropy='stochastic'" in message
    assert_same(snapshot(estimator, X, y), before)


def test_networks_move_to_the_cpu_and_refuse_to_move_from_it():
    cls = ESTIMATORS[0]
    X, y = data_for(cls)
    net = small(cls).fit(X, y).net_
    copied = _base.moved_net(net, "cpu")
    assert copied is not net and _base.net_device(copied) == torch.device("cpu")
    with pytest.raises(ValueError, match="move to the CPU only"):
        _base.moved_net(net, "cuda")


@pytest.fixture
def memmapped(tmp_path):
    """``(path → memmap)`` opener for arrays written to disk, read-only like a real data set."""

    def open_memmap(array, name="X.npy"):
        np.save(tmp_path / name, array)
        return np.load(tmp_path / name, mmap_mode="r")

    return open_memmap


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_memmapped_data_are_read_in_batches_and_train_exactly_like_in_memory_data(cls, dtype, memmapped, monkeypatch):
    monkeypatch.setattr(_base, "VALIDATION_CHUNK_BYTES", 2**18)
    X, y = data_for(cls, n=20000, d=50)
    X_disk = memmapped(X.astype(dtype))
    estimator = small(cls, max_epochs=1, batch_size=500)
    estimator.fit(X[:50], y[:50])  # warm-up: first-use imports allocate too
    tracemalloc.start()
    try:
        with LargestTensor(shared=X_disk) as largest:
            fitted = clone(estimator).fit(X_disk, y)
        from_disk = snapshot(fitted, X_disk, y)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    float32_copy = X.size * 4  # what converting the whole data set once would allocate
    assert peak < float32_copy / 2, f"{peak / 1e6:.1f} MB allocated for {X_disk.nbytes / 1e6:.1f} MB of data"
    assert largest.numel < X.size / 4, "training builds no tensor of the whole data set"
    X_memory = np.array(X_disk)
    assert_same(from_disk, snapshot(clone(estimator).fit(X_memory, y), X_memory, y))


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_memmapped_data_are_validated_to_the_last_chunk(cls, memmapped, monkeypatch):
    monkeypatch.setattr(_base, "VALIDATION_CHUNK_BYTES", 2**12)
    X, y = data_for(cls, n=400)
    fitted = small(cls).fit(X, y)
    for bad, message in ((np.nan, "NaN"), (np.inf, "infinity"), (1e39, "infinity or a value too large")):
        corrupt = X.copy()
        corrupt[-1, -1] = bad
        X_disk = memmapped(corrupt, name=f"bad{len(message)}.npy")
        FAULTS_INJECTED["bad value in the last chunk of a memmap"] += 1
        with pytest.raises(ValueError, match=message):
            small(cls).fit(X_disk, y)
        with pytest.raises(ValueError, match=message):
            fitted.predict(X_disk)
    with pytest.raises(ValueError, match="features"):
        fitted.predict(memmapped(X[:, :2], name="narrow.npy"))


# -- the GPU path (skipped without CUDA) --------------------------------------------------------------

#: CPU vs CUDA, entropy-SGD: the same prior draw and batch order (both drawn on the CPU), float32
#: kernels that differ in summation order: predictions agree to this tolerance after 3 epochs.
CUDA_PREDICTION_ATOL = 1e-4


@needs_cuda
def test_each_estimator_fits_on_cuda_and_matches_the_cpu(cls):
    X, y = data_for(cls)
    on_gpu = small(cls, device="cuda", max_epochs=3).fit(X, y)
    on_cpu = small(cls, device="cpu", max_epochs=3).fit(X, y)
    assert _base.net_device(on_gpu.net_).type == "cuda"
    gpu_out = on_gpu._sample_outputs(on_gpu._validated_input(X)).numpy()
    if cls.__name__.startswith("EntropySGD"):
        cpu_out = on_cpu._sample_outputs(on_cpu._validated_input(X)).numpy()
        np.testing.assert_allclose(gpu_out, cpu_out, atol=CUDA_PREDICTION_ATOL, rtol=CUDA_PREDICTION_ATOL)
        # the entropy probes are drawn on the CPU too, so the bound follows the same path
        np.testing.assert_allclose(on_gpu.bound_curve_, on_cpu.bound_curve_, rtol=1e-4)
    # IBVI draws its weight noise on the training device (a different generator than the CPU's),
    # so a CUDA fit is a different Monte-Carlo run; what must hold is that the CUDA model gives
    # the same outputs wherever it is evaluated.
    on_gpu_moved = copy.deepcopy(on_gpu)
    on_gpu_moved.net_ = _base.moved_net(on_gpu.net_, "cpu")
    cpu_eval = on_gpu_moved._sample_outputs(on_gpu_moved._validated_input(X)).numpy()
    np.testing.assert_allclose(cpu_eval, gpu_out, atol=CUDA_PREDICTION_ATOL, rtol=CUDA_PREDICTION_ATOL)
    # continuation on CUDA resumes the CUDA random stream too
    stepped = small(cls, device="cuda")
    for _ in range(3):
        stepped.partial_fit(X, y)
    np.testing.assert_allclose(stepped.bound_curve_, on_gpu.bound_curve_, rtol=1e-5)


@needs_cuda
def test_a_cuda_model_really_loads_on_a_cpu_only_machine(cls, monkeypatch):
    X, y = data_for(cls)
    on_gpu = small(cls, device="cuda").fit(X, y)
    expected = on_gpu._sample_outputs(on_gpu._validated_input(X)).numpy()
    saved = pickle.dumps(on_gpu)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(DeviceWarning):
        restored = pickle.loads(saved)
    outputs = restored._sample_outputs(restored._validated_input(X)).numpy()
    np.testing.assert_allclose(outputs, expected, atol=CUDA_PREDICTION_ATOL, rtol=CUDA_PREDICTION_ATOL)
    assert np.isfinite(restored.score(X, y)) or "IBVI" in cls.__name__


@needs_cuda
def test_memmapped_data_train_on_cuda_one_batch_at_a_time(cls, memmapped):
    X, y = data_for(cls, n=20000, d=50)
    X_disk = memmapped(X)
    float32_copy = X.size * 4
    peaks = []
    for data in (X_disk, X):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        fitted = small(cls, device="cuda", max_epochs=1, batch_size=500).fit(data, y)
        peaks.append(torch.cuda.max_memory_allocated())
        fitted.net_ = None  # free the device memory before the next fit
    # Both peaks include what does not depend on the data (cuBLAS's workspace, tens of MB on an
    # H100, comes from the same allocator): the in-memory fit holds the whole float32 copy on
    # the device on top of that, the memmapped one a batch (or a chunk of rows for the bound).
    assert peaks[1] - peaks[0] >= float32_copy / 2
    from_disk = small(cls, device="cuda", batch_size=500).fit(X_disk, y)
    in_memory = small(cls, device="cuda", batch_size=500).fit(X, y)
    np.testing.assert_allclose(from_disk.bound_curve_, in_memory.bound_curve_, rtol=1e-5)
