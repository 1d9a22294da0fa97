"""The package's SGD is torch's, bit for bit, without importing the compiler stack."""

import subprocess
import sys

import torch

from sklearn_ibvi.core.optim import SGD


def test_updates_match_torch_sgd_bit_for_bit_with_momentum_and_groups():
    torch.manual_seed(0)
    start = [torch.randn(5, 3), torch.randn(3)]
    runs = []
    for optimizer_class in (torch.optim.SGD, SGD):
        params = [torch.nn.Parameter(p.clone()) for p in start]
        optimizer = optimizer_class([{"params": [params[0]], "lr": 0.1}, {"params": [params[1]], "lr": 0.02}],
                                    lr=0.05, momentum=0.9)  # fmt: skip
        torch.manual_seed(1)
        for _ in range(4):
            optimizer.zero_grad(set_to_none=True)
            loss = (params[0].sum(0) * params[1] * torch.randn(3)).square().sum()
            loss.backward()
            optimizer.step()
        runs.append((params, optimizer.state_dict()))
    for a, b in zip(runs[0][0], runs[1][0]):
        assert torch.equal(a, b)
    reference, ours = runs[0][1], runs[1][1]
    assert all(torch.equal(reference["state"][k]["momentum_buffer"], ours["state"][k]["momentum_buffer"])
               for k in reference["state"])  # fmt: skip


def test_first_fit_of_a_process_does_not_import_the_compiler():
    """Neither torch's compiler (dynamo) nor its symbolic-shape machinery (sympy), which
    ``torch.autograd.grad`` with ``grad_outputs`` imports, is loaded by fitting, predicting,
    scoring and pickling every estimator: about 0.4 s and 480 modules on a first fit."""
    code = (
        "import sys; import numpy as np\n"
        "import sklearn_ibvi\n"
        "X = np.random.RandomState(0).randn(40, 3); y = np.arange(40) % 2\n"
        "for name in ('IBVIClassifier', 'EntropySGDClassifier', 'IBVIRegressor', 'EntropySGDRegressor'):\n"
        "    m = getattr(sklearn_ibvi, name)(hidden_layer_sizes=(4,), max_epochs=2, random_state=0).fit(X, y)\n"
        "    m.predict(X); m.score(X, y)\n"
        "import pickle; pickle.loads(pickle.dumps(m))\n"
        "print(sorted({'torch._dynamo', 'sympy', 'torch.fx.experimental.symbolic_shapes'} & set(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"
