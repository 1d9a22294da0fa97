"""
Predictive bands on 1-D data with a gap: IBVI and entropy-SGD chains
====================================================================

Training inputs fill :math:`[-3, -1] \\cup [1, 3]`, targets are :math:`\\sin(x)` plus Gaussian
noise of standard deviation 0.1. :class:`~sklearn_ibvi.IBVIRegressor` learns a Gaussian
posterior over the weights and the noise (a Student-t, whose degrees of freedom come out large
on Gaussian noise); ``predict_interval(X, coverage=0.95)`` returns the central 95 % interval of
the predictive mixture over ``n_predict_samples`` weight draws, and ``predict(X,
return_std=True)`` its standard deviation. Beside it,
:class:`~sklearn_ibvi.EntropySGDRegressor` with ``n_chains=4``: four SGD runs from four prior
draws, whose spread is its input-dependent part (a single chain's interval would have the same
width everywhere).

The bands are plotted on :math:`[-6, 6]`: inside the gap and beyond the data there are no
observations, and a Bayesian predictive should be less certain there. The printout gives the
mean predictive standard deviation where the data are, in the gap and outside, and the learned
noise against the truth. In these runs both bands widen beyond the data, where the ReLU network
extrapolates linearly -- the four chains' spread more than IBVI's weight draws -- but hardly in
the gap between the two clusters: both models interpolate across a gap this short with about
the confidence they have on the data.
"""

import os
import warnings

import matplotlib.pyplot as plt
import numpy as np

from sklearn_ibvi import EntropySGDRegressor, IBVIRegressor

# Set SKLEARN_IBVI_FAST_EXAMPLES=1 (as the docs CI does) for a quick run with fewer epochs/rows.
FAST = bool(os.environ.get("SKLEARN_IBVI_FAST_EXAMPLES"))
NOISE = 0.1
rng = np.random.default_rng(0)
n = 100 if FAST else 300
x = np.concatenate([rng.uniform(-3, -1, n // 2), rng.uniform(1, 3, n - n // 2)])
y = np.sin(x) + NOISE * rng.standard_normal(n)
X = x[:, None]
grid = np.linspace(-6, 6, 400)[:, None]

models = {
    "IBVIRegressor": IBVIRegressor(
        hidden_layer_sizes=(128,), lr=0.01, max_epochs=400, batch_size=16, random_state=0
    ),
    "EntropySGDRegressor, 4 chains": EntropySGDRegressor(
        hidden_layer_sizes=(64,), lr=0.02, max_epochs=200 if FAST else 400, batch_size=16,
        n_chains=4, random_state=0
    ),
}

regions = {
    "data, |x| in [1, 3]": (np.abs(grid[:, 0]) >= 1) & (np.abs(grid[:, 0]) <= 3),
    "gap, |x| < 1": np.abs(grid[:, 0]) < 1,
    "outside, |x| > 3": np.abs(grid[:, 0]) > 3,
}
fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
for ax, (name, model) in zip(axes, models.items()):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bound-validity warnings stay in the model's history
        model.fit(X, y)
    mean, std, interval = model.predict(grid, return_std=True, coverage=0.95)
    ax.fill_between(grid[:, 0], interval[:, 0], interval[:, 1], alpha=0.3, label="95 % predictive interval")
    ax.plot(grid[:, 0], mean, label="predictive mean")
    ax.plot(grid[:, 0], np.sin(grid[:, 0]), "k--", lw=1, label="sin(x)")
    ax.scatter(x, y, s=6, color="k", alpha=0.5)
    ax.set(xlabel="x", title=name, ylim=(-4, 4))
    widths = ", ".join(f"{region}: {std[mask].mean():.2f}" for region, mask in regions.items())
    print(f"{name}: learned noise_std_ = {model.noise_std_:.3f} (truth {NOISE}), noise_dof_ = {model.noise_dof_:.3g}; "
          f"bound {model.score(X, y):.3f} nats/sample")
    print(f"    mean predictive std -- {widths}")
axes[0].set_ylabel("y")
axes[0].legend(loc="lower left", fontsize=8)
fig.tight_layout()
plt.show()
