"""The all-data split: validation-free criteria fit and score every candidate on all the rows."""

import numpy as np
from sklearn.model_selection import BaseCrossValidator
from sklearn.utils.validation import _num_samples


class TrainOnlySplit(BaseCrossValidator):
    """A single "split" whose train and test sets are both all the samples.

    With :func:`bound_scorer` this makes ``GridSearchCV``/``RandomizedSearchCV`` fit every
    candidate once on all the data and score it by its bound on that same data.
    Read more in the :ref:`User Guide <bound_selection>`.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ibvi.model_selection import TrainOnlySplit
    >>> [(train.tolist(), test.tolist()) for train, test in TrainOnlySplit().split(np.zeros((3, 1)))]
    [([0, 1, 2], [0, 1, 2])]
    """

    def split(self, X, y=None, groups=None):
        """Yield ``(all_indices, all_indices)`` once.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The rows to split.
        y, groups : object
            Ignored.

        Yields
        ------
        train, test : ndarray
            Both ``arange(n_samples)``.
        """
        indices = np.arange(_num_samples(X))
        yield indices, indices

    def get_n_splits(self, X=None, y=None, groups=None):
        """Always 1."""
        return 1

    def _iter_test_indices(self, X=None, y=None, groups=None):
        yield np.arange(_num_samples(X))
