"""
A Pipeline on a DataFrame: choosing the network and its epoch, and stopping early
=================================================================================

The estimators of this package are scikit-learn estimators: they go into a
:class:`~sklearn.pipeline.Pipeline`, accept a pandas DataFrame and string labels, and are tuned
by scikit-learn's searches. This walkthrough takes the breast-cancer data as a DataFrame of 30
raw, unscaled measurements with the labels ``"malignant"`` / ``"benign"``, and puts a
:class:`~sklearn.preprocessing.StandardScaler` in front of an
:class:`~sklearn_ibvi.IBVIClassifier`. Three ways to fit it, each scored on a held-out test set
none of them sees:

1. :class:`~sklearn_ibvi.model_selection.EpochwiseGridSearchCV`: 5-fold cross-validation that
   reads the held-out log predictive density after every epoch of one fit per fold, so it
   chooses the width, the prior scale *and* the stopping epoch, and refits the pipeline once.
2. :class:`~sklearn_ibvi.BoundEarlyStopping` around the pipeline: one configuration, stopped
   where its criterion (by default the same five-fold held-out log density) peaks.
3. :class:`~sklearn.model_selection.GridSearchCV` with
   :func:`~sklearn_ibvi.model_selection.log_predictive_scorer` over the same grid and two
   epoch budgets, each refitted from scratch.

Parameters of the network are addressed through the pipeline as
``ibviclassifier__<name>``. The printout gives each method's choice, test log loss and accuracy
and its wall time.
"""

import os
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_ibvi import BoundEarlyStopping, IBVIClassifier
from sklearn_ibvi.model_selection import EpochwiseGridSearchCV, log_predictive_scorer

data = load_breast_cancer(as_frame=True)
X = data.data  # a DataFrame of raw measurements (areas in the hundreds, smoothness near 0.1)
y = data.target_names[data.target].astype(object)  # "malignant" / "benign"
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
print(X_train.iloc[:3, :4])

# Set SKLEARN_IBVI_FAST_EXAMPLES=1 (as the docs CI does) for a quick run with fewer epochs/rows.
FAST = bool(os.environ.get("SKLEARN_IBVI_FAST_EXAMPLES"))
max_epochs = 12 if FAST else 60
pipeline = make_pipeline(
    StandardScaler(), IBVIClassifier(max_epochs=max_epochs, batch_size=32, random_state=0)
)
grid = {
    "ibviclassifier__hidden_layer_sizes": [(16,), (64,)],
    "ibviclassifier__prior_scale": [0.5, 1.0],
}

warnings.simplefilter("ignore")  # e.g. early-peak warnings; the attributes below say what happened
methods = {}
start = time.perf_counter()
epochwise = EpochwiseGridSearchCV(pipeline, grid, cv=5).fit(X_train, y_train)
methods["EpochwiseGridSearchCV"] = (epochwise, time.perf_counter() - start)

start = time.perf_counter()
stopped = BoundEarlyStopping(pipeline, patience=10).fit(X_train, y_train)
methods["BoundEarlyStopping"] = (stopped, time.perf_counter() - start)

start = time.perf_counter()
budgets = [max_epochs // 4, max_epochs]
cv = GridSearchCV(
    pipeline, {**grid, "ibviclassifier__max_epochs": budgets}, scoring=log_predictive_scorer, cv=5
).fit(X_train, y_train)
methods["GridSearchCV"] = (cv, time.perf_counter() - start)

print(f"\nEpochwiseGridSearchCV chooses {epochwise.best_params_} (epoch {epochwise.best_epoch_})")
print(f"BoundEarlyStopping ({stopped.criterion_}) keeps epoch {stopped.best_epoch_} "
      f"of {stopped.n_epochs_} followed")
print(f"GridSearchCV chooses {cv.best_params_}\n")
test_metrics = {}
for name, (model, seconds) in methods.items():
    proba = model.predict_proba(X_test)
    test_metrics[name] = (log_loss(y_test, proba, labels=model.classes_),
                          accuracy_score(y_test, model.predict(X_test)))
    print(f"{name:>22}: test log loss {test_metrics[name][0]:.3f}, "
          f"accuracy {test_metrics[name][1]:.3f}, {seconds:.1f} s")

# %%
# Left: the cross-validated log predictive density of every candidate after every epoch;
# right: the test log loss of each method's model.
fig, (ax_curves, ax_test) = plt.subplots(1, 2, figsize=(11, 3.8))
curves = epochwise.criterion_curves_
epochs = np.arange(1, curves.shape[1] + 1)
for params, curve in zip(epochwise.cv_results_["params"], curves):
    width = params["ibviclassifier__hidden_layer_sizes"][0]
    ax_curves.plot(epochs, curve, label=f"width {width}, prior scale {params['ibviclassifier__prior_scale']}")
ax_curves.axvline(epochwise.best_epoch_, color="k", ls=":", label=f"chosen: epoch {epochwise.best_epoch_}")
ax_curves.set(xlabel="epoch", ylabel="held-out log density (nats/row)",
              title="EpochwiseGridSearchCV, 5 folds")
ax_curves.legend(fontsize=8)
names = list(test_metrics)
ax_test.barh(names, [test_metrics[name][0] for name in names], color=["C0", "C1", "C2"])
ax_test.set(xlabel="test log loss (nats/row, lower is better)", title="breast cancer, held-out test set")
fig.tight_layout()
plt.show()
