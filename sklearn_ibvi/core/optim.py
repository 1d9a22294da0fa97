"""SGD as torch has it, without the compiler stack its methods import on first use.

``torch.optim.Optimizer`` wraps ``add_param_group``, ``zero_grad``, ``state_dict``,
``load_state_dict`` and ``SGD.step`` in decorators that import ``torch._dynamo`` the first time
they run: about 1.5 s at the first fit of a process, for code that never compiles. :class:`SGD`
calls the undecorated methods, so its arithmetic is torch's own (the same updates, bit for bit),
and it is still a ``torch.optim.Optimizer`` for learning-rate schedulers.
"""

import torch


class SGD(torch.optim.SGD):
    """``torch.optim.SGD`` whose methods do not import ``torch._dynamo``."""

    add_param_group = torch.optim.Optimizer.add_param_group.__wrapped__
    zero_grad = torch.optim.Optimizer.zero_grad.__wrapped__
    state_dict = torch.optim.Optimizer.state_dict.__wrapped__
    load_state_dict = torch.optim.Optimizer.load_state_dict.__wrapped__

    def step(self, closure=None):
        # torch's decorator switches autograd off around the update (not differentiable SGD)
        with torch.no_grad():
            return torch.optim.SGD.step.__wrapped__(self, closure)
