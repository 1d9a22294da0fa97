"""The criteria registry is the one home of the criteria, and model_selection's modules import in
any order."""

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.utils._param_validation import InvalidParameterError

import sklearn_ibvi.model_selection as model_selection
from sklearn_ibvi import BoundEarlyStopping, EntropySGDRegressor
from sklearn_ibvi.model_selection import ScreenedGridSearchCV, make_bound_scorer
from sklearn_ibvi.model_selection._criteria import CRITERIA, Criterion

PACKAGE = Path(model_selection.__file__).parent
MODULES = sorted(name for _, name, _ in pkgutil.iter_modules([str(PACKAGE)]))
# What the registry sits below: it must import none of them.
USERS = {"_scorers", "_screened_search", "_early_stopping", "_epochwise_search", "_forward_chaining"}


def relative_imports(module):
    """``[(imported module, at top level?)]`` for the ``from .x import`` statements of ``module``."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    top_level = {id(node) for node in tree.body}
    return [
        (node.module, id(node) in top_level)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module
    ]


def test_registry_lists_the_five_criteria():
    assert set(CRITERIA) == {"bound", "prequential", "block_prequential", "cv", "partial_cv"}
    assert all(isinstance(criterion, Criterion) and criterion.name == name for name, criterion in CRITERIA.items())


def test_no_module_but_the_registry_branches_on_a_criterion_name():
    """A criterion's behaviour lives in its registry entry: nobody else compares with its name."""
    offenders = []
    for module in MODULES:
        if module == "_criteria":
            continue
        for node in ast.walk(ast.parse((PACKAGE / f"{module}.py").read_text())):
            if isinstance(node, ast.Compare):
                for operand in [node.left, *node.comparators]:
                    if isinstance(operand, ast.Constant) and operand.value in CRITERIA:
                        offenders.append(f"{module}.py:{node.lineno}")
    assert offenders == []


@pytest.mark.parametrize(
    "make",
    [
        lambda: make_bound_scorer("evidence"),
        lambda: BoundEarlyStopping(EntropySGDRegressor(), criterion="evidence").fit(np.zeros((4, 1)), np.zeros(4)),
        lambda: ScreenedGridSearchCV(EntropySGDRegressor(), {"lr": [0.01]}, criterion="evidence").fit(
            np.zeros((4, 1)), np.zeros(4)
        ),
    ],
    ids=["make_bound_scorer", "BoundEarlyStopping", "ScreenedGridSearchCV"],
)
def test_an_unknown_criterion_is_rejected_with_the_registry_names(make):
    with pytest.raises((ValueError, InvalidParameterError)) as error:
        make()
    assert all(repr(name) in str(error.value) for name in CRITERIA)


def test_a_new_registry_entry_is_a_criterion_of_the_scorer(monkeypatch):
    class RowCount(Criterion):
        name = "row_count"

        def score(self, estimator, X, y):
            return -float(len(X))

    monkeypatch.setitem(CRITERIA, RowCount.name, RowCount())
    assert make_bound_scorer("row_count")(None, np.zeros((3, 1)), np.zeros(3)) == -3.0


def test_the_registry_imports_none_of_its_users():
    imported = {name for name, _ in relative_imports("_criteria")}
    assert imported & USERS == set()


def test_model_selection_imports_nothing_lazily():
    """A function-level import inside the package hides a cycle; none is needed."""
    lazy = {module: [name for name, top in relative_imports(module) if not top] for module in MODULES}
    assert {module: names for module, names in lazy.items() if names} == {}


def test_model_selection_imports_form_no_cycle():
    graph = {module: {name for name, _ in relative_imports(module) if name in MODULES} for module in MODULES}
    done, visiting = set(), []

    def visit(module):
        assert module not in visiting, " -> ".join([*visiting, module])
        if module not in done:
            visiting.append(module)
            for imported in graph[module]:
                visit(imported)
            visiting.pop()
            done.add(module)

    for module in MODULES:
        visit(module)


@pytest.mark.parametrize("first", MODULES)
def test_each_module_imports_first_in_a_fresh_interpreter(first):
    """Import ``first`` in a new process, then the others in reverse order: no cycle bites."""
    names = [first, *reversed([m for m in MODULES if m != first])]
    code = "import importlib\n" + "".join(
        f"importlib.import_module('sklearn_ibvi.model_selection.{name}')\n" for name in names
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
