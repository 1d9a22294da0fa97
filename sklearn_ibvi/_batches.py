"""Minibatches by tensor slicing: skorch's ``iterator_train`` without a per-sample DataLoader.

A DataLoader calls ``__getitem__`` and collates per sample — about 40 % of a small MLP's fit time
(NOTES.md). The data are converted to tensors on the training device once, and each epoch
yields index slices of a fresh permutation.
"""

import torch


class TensorBatches:
    """Iterate over ``(X, y)`` minibatches of a skorch ``Dataset`` by slicing tensors.

    Parameters
    ----------
    dataset : skorch.dataset.Dataset or tuple of (X, y)
        Arrays or tensors of equal length.
    batch_size : int
    shuffle : bool
        Draw a new permutation from the global torch RNG at each pass (the estimators seed it).
    device : str or torch.device
    """

    def __init__(self, dataset, batch_size, shuffle=False, device="cpu"):
        X, y = (dataset.X, dataset.y) if hasattr(dataset, "X") else dataset
        self.X = torch.as_tensor(X).to(device)
        self.y = None if y is None else torch.as_tensor(y).to(device)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle

    def __len__(self):
        return -(-len(self.X) // self.batch_size)

    def __iter__(self):
        n = len(self.X)
        order = torch.randperm(n, device=self.X.device) if self.shuffle else None
        for start in range(0, n, self.batch_size):
            if order is None:
                index = slice(start, start + self.batch_size)
            else:
                index = order[start : start + self.batch_size]
            yield self.X[index], (None if self.y is None else self.y[index])
