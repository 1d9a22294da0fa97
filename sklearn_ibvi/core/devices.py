"""Where tensors live and where random numbers come from: devices, torch RNG streams, and
device-neutral serialization of trained nets (a model trained on CUDA loads on a CPU-only machine).
"""

import copy
import io
import threading
import warnings
from contextlib import contextmanager

import torch
from skorch.exceptions import DeviceWarning

#: torch's RNG is process-global; every section that seeds or resumes it holds this lock.
_TORCH_RNG_LOCK = threading.RLock()


def resolve_device(device):
    """``'auto'`` → ``'cuda'`` when available, else ``'cpu'``; a CUDA device must be available.

    Raises
    ------
    ValueError
        If ``device`` is not a torch device string, or names CUDA on a machine without it.
    """
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device={device!r} is not a torch device: use 'auto', 'cpu' or 'cuda'.") from error
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested, but CUDA is not available on this machine. Use "
            "device='cpu', or 'auto' (CUDA when present). A model trained on CUDA loads, predicts "
            "and scores on the CPU as it is."
        )
    return device


def _rng_devices(device):
    device = torch.device(device)
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


@contextmanager
def seeded_torch(seed, device):
    """Run torch code with ``manual_seed(seed)`` and leave the global RNG state untouched.

    torch's RNG is process-global: two threads seeding and drawing from it at once would mix
    their streams. Seeded sections therefore hold one process-wide re-entrant lock, so fits (and
    seeded predictions) run in threads take turns and each gives the result it gives alone. Fit
    in processes (joblib's default loky backend, ``n_jobs``) to fit in parallel.
    """
    with _TORCH_RNG_LOCK, torch.random.fork_rng(devices=_rng_devices(device)):
        torch.manual_seed(seed)
        yield


def torch_rng_state(device):
    """The state of the generators a fit on ``device`` draws from (CPU, and CUDA on CUDA)."""
    state = {"cpu": torch.get_rng_state()}
    if torch.device(device).type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(_rng_devices(device)[0])
    return state


@contextmanager
def resumed_torch(state, device):
    """Continue the random stream saved by :func:`torch_rng_state`, as :func:`seeded_torch` does a seed."""
    with _TORCH_RNG_LOCK, torch.random.fork_rng(devices=_rng_devices(device)):
        torch.set_rng_state(state["cpu"])
        if "cuda" in state and _rng_devices(device):
            torch.cuda.set_rng_state(state["cuda"], _rng_devices(device)[0])
        yield


def net_device(net):
    """Where the trained network's parameters are."""
    return next(net.module_.parameters()).device


def _point_net_at(net, device):
    """Make a net whose tensors are on ``device`` train there too (data and module)."""
    net.device = device
    if hasattr(net, "iterator_train__device"):
        net.iterator_train__device = device


def serialized_net(net, device=None):
    """Bytes of ``net`` by ``torch.save``; with ``device``, recorded as if it lived there.

    Recording the target device makes skorch's own loader map its module, criterion and
    optimizer where :func:`deserialized_net` maps every other tensor.
    """
    if device is not None:
        proxy = object.__new__(type(net))
        proxy.__dict__.update(net.__dict__)
        _point_net_at(proxy, device)
        net = proxy
    buffer = io.BytesIO()
    torch.save(net, buffer)
    return buffer.getvalue()


def deserialized_net(data, to_cpu):
    """The net saved by :func:`serialized_net`, as saved, or with every tensor on the CPU."""
    with warnings.catch_warnings():
        # skorch warns of its own CUDA → CPU fallback; the caller says it once, for the estimator.
        warnings.simplefilter("ignore", DeviceWarning)
        net = torch.load(io.BytesIO(data), map_location="cpu" if to_cpu else None, weights_only=False)
    if to_cpu:
        _point_net_at(net, "cpu")
    return net


def moved_net(net, device, share_history=False):
    """An independent copy of ``net`` with everything it holds on ``device``.

    Towards the CPU any net moves (every tensor is mapped there). The other way is refused: a net
    on the CPU may hold tensors that must stay there, and nothing tells them apart.
    ``share_history=True`` keeps one history object between the copy and ``net`` when no move
    is needed (copying it costs time linear in the epochs run, on every continuation); the
    caller then truncates it if the copy's training fails.
    """
    current = net_device(net)
    target = torch.device(device)
    if target == current or (target.type == current.type == "cuda" and target.index is None):
        return copy.deepcopy(net, {id(net.history): net.history} if share_history else None)
    if target.type != "cpu":
        raise ValueError(
            f"The fitted network is on {current}; continuing it on {device!r} is not supported "
            f"(networks move to the CPU only). Continue with device={str(current)!r}, or fit anew "
            "(warm_start=False) on the new device."
        )
    return deserialized_net(serialized_net(net, "cpu"), to_cpu=True)
