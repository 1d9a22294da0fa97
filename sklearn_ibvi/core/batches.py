"""Minibatches by tensor slicing: skorch's ``iterator_train`` without a per-sample DataLoader.

A DataLoader calls ``__getitem__`` and collates per sample — about 40 % of a small MLP's fit time
(NOTES.md). In-memory data are converted to tensors on the training device once, and each epoch
yields index slices of a fresh permutation.

Data stored out of core (a :class:`numpy.memmap`) stay where they are: :class:`HostRows` reads,
converts and moves only the rows a batch needs, so memory holds the parameters and one batch,
never the whole data set (and never a second, converted copy of it).
"""

import warnings

import numpy as np
import torch
from torch.utils._pytree import tree_map


def is_out_of_core(X):
    """Whether ``X`` is data the estimators read in row chunks instead of converting at once."""
    return isinstance(X, np.memmap) or isinstance(getattr(X, "base", None), np.memmap)


class HostRows:
    """Rows of a host array, read on demand as float32 tensors on ``device``.

    Quacks like the slice of a tensor the training and prediction code use: ``len``,
    ``shape``, ``device``, ``dtype``, ``X[rows]`` (a slice or an index tensor/array) and
    ``to(device)``. Nothing is copied until rows are asked for.

    Parameters
    ----------
    array : numpy.ndarray of shape (n_samples, n_features)
        Typically a :class:`numpy.memmap`, of any real dtype; values must be finite in float32
        (the estimators check this chunk by chunk before training).
    device : str or torch.device, default='cpu'
    standardization : InputStandardization or None, default=None
        Applied to every batch as it is read.
    """

    dtype = torch.float32

    def __init__(self, array, device="cpu", standardization=None):
        self.array = array
        self.device = torch.device(device)
        self.standardization = standardization

    def __len__(self):
        return len(self.array)

    @property
    def shape(self):
        return torch.Size(self.array.shape)

    def __getitem__(self, index):
        if isinstance(index, torch.Tensor):
            index = index.cpu().numpy()
        rows = np.array(self.array[index], dtype=np.float32, order="C")  # one batch, copied
        if self.standardization is not None:
            rows = self.standardization.transform(rows, copy=False)
        return torch.from_numpy(rows).to(self.device)

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        """Fallback for code that needs every row as one tensor: it gets them, copied once.

        The training and prediction paths slice; this keeps any code that does not (a diagnostic,
        say) correct, at the memory cost it asks for.
        """
        materialise = lambda value: value[:] if isinstance(value, HostRows) else value  # noqa: E731
        args, kwargs = tree_map(materialise, (tuple(args), dict(kwargs or {})))
        return func(*args, **kwargs)

    def to(self, device=None, dtype=None):
        """Same rows, delivered on ``device`` (only float32 is produced)."""
        if dtype is not None and dtype != torch.float32:
            raise TypeError("HostRows delivers float32 rows; convert the slices instead.")
        return HostRows(self.array, self.device if device is None else device, self.standardization)


def _on_device(values, device):
    """A tensor of ``values`` on ``device``; CPU float32 memmaps are wrapped without a copy."""
    if isinstance(values, HostRows):
        return values.to(device)
    if torch.device(device).type == "cpu" and isinstance(values, np.ndarray) and not values.flags.writeable:
        with warnings.catch_warnings():
            # A read-only array (a memmap opened with mode='r'): the tensor is only ever read.
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            return torch.as_tensor(values)
    return torch.as_tensor(values).to(device)


class TensorBatches:
    """Iterate over ``(X, y)`` minibatches of a skorch ``Dataset`` by slicing tensors.

    Parameters
    ----------
    dataset : skorch.dataset.Dataset or tuple of (X, y)
        Arrays or tensors of equal length. ``X`` may be a :class:`numpy.memmap`: it then stays
        on the host, in its own dtype, and each batch is read, converted to float32 and moved
        to ``device`` on its own (zero-copy when it is float32 and the device is the CPU).
    batch_size : int
    shuffle : bool
        Draw a new permutation at each pass from the global torch CPU RNG (the estimators seed
        it), so the batch order is the same whatever the device.
    device : str or torch.device

    Attributes
    ----------
    X : torch.Tensor or HostRows
        The inputs, sliceable by row; ``X[rows]`` is a float32 tensor on ``device``.
    y : torch.Tensor or None
        The targets, on ``device``.

    Notes
    -----
    Pickling keeps the settings, not the data: the iterator of a fitted net is no part of the
    model, and a saved estimator must not carry a copy of its training set.
    """

    def __init__(self, dataset, batch_size, shuffle=False, device="cpu"):
        X, y = (dataset.X, dataset.y) if hasattr(dataset, "X") else dataset
        if is_out_of_core(X):
            float32_on_cpu = X.dtype == np.float32 and torch.device(device).type == "cpu"
            self.X = _on_device(X, device) if float32_on_cpu else HostRows(X, device)
        else:
            self.X = _on_device(X, device)
        self.y = None if y is None else _on_device(np.asarray(y) if is_out_of_core(y) else y, device)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.device = torch.device(device)

    def __len__(self):
        return -(-len(self.X) // self.batch_size)

    def __iter__(self):
        n = len(self.X)
        order = torch.randperm(n) if self.shuffle else None
        if order is not None and not isinstance(self.X, HostRows):
            order = order.to(self.X.device)
        for start in range(0, n, self.batch_size):
            if order is None:
                index = slice(start, start + self.batch_size)
            else:
                index = order[start : start + self.batch_size]
            yield self.X[index], (None if self.y is None else self.y[index])

    def __getstate__(self):
        state = self.__dict__.copy()
        state["X"] = state["y"] = None
        return state
