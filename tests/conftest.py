import pytest
import torch
from sklearn.datasets import load_iris
from sklearn.preprocessing import StandardScaler

# Small networks run fastest on one thread, and a 2-core CI machine is not oversubscribed by
# parallel-search tests that start their own workers.
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def iris():
    """Standardised iris, one copy per test module (as when each module defined it)."""
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y
