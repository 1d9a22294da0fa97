"""Sphinx configuration for sklearn-ibvi.

Build the HTML documentation from the repository root with::

    python -m sphinx -b html docs docs/_build/html

(or ``make -C docs html``). Add ``-W --keep-going`` to turn warnings into
errors, as CI should. Without internet access set
``SKLEARN_IBVI_DOCS_OFFLINE=1``: links to other projects' documentation then
stay plain text instead of failing to fetch their inventories, and
``SKLEARN_IBVI_DOCS_NO_GALLERY=1`` skips running the examples, while
``SKLEARN_IBVI_FAST_EXAMPLES=1`` runs them with fewer epochs and rows (as CI
does). Maths is rendered by MathJax, shipped with the pages (the
``sphinx-mathjax-offline`` package of the ``docs`` extra copies it into
``_static/mathjax``): neither the build nor the reader's browser fetches anything.
"""

import os
import shutil
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec
from pathlib import Path

DOCS_DIR = Path(__file__).resolve().parent
REPO_DIR = DOCS_DIR.parent

# -- Project -------------------------------------------------------------------

project = "sklearn-ibvi"
author = "sklearn-ibvi developers"
copyright = "sklearn-ibvi developers, BSD-3-Clause"
try:
    release = version("sklearn-ibvi")
except PackageNotFoundError:  # building from a checkout that is not installed
    release = "unknown"
version = ".".join(release.split(".")[:2])

# -- Extensions ----------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    # MathJax 3 from a local copy instead of a CDN (sets mathjax_path to _static/mathjax).
    "sphinx-mathjax-offline",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",  # renders the benchmarks' Markdown result tables
]
source_suffix = {".rst": "restructuredtext"}  # Markdown only where included explicitly
# The included result files start at "#"; they sit under a section of benchmarks.rst.
suppress_warnings = ["myst.header"]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
default_role = "literal"

# API pages: one generated page per public name, in gen_modules/ (git-ignored).
autosummary_generate = True
autodoc_typehints = "none"  # numpydoc's Parameters sections carry the types
# Methods are listed by the class template; numpydoc would list them again.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

# -- Links to other projects ---------------------------------------------------

OFFLINE = bool(os.environ.get("SKLEARN_IBVI_DOCS_OFFLINE"))
if not OFFLINE:
    extensions.append("sphinx.ext.intersphinx")
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable/", None),
        "scipy": ("https://docs.scipy.org/doc/scipy/", None),
        "sklearn": ("https://scikit-learn.org/stable/", None),
        "matplotlib": ("https://matplotlib.org/stable/", None),
        "torch": ("https://pytorch.org/docs/stable/", None),
        "skorch": ("https://skorch.readthedocs.io/en/stable/", None),
    }

# -- Example gallery -----------------------------------------------------------

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    # plot_*.py files and the README's quickstart are executed; other scripts are shown, not run.
    "filename_pattern": r"/(plot_|quickstart)",
    "plot_gallery": str(not os.environ.get("SKLEARN_IBVI_DOCS_NO_GALLERY")),
    "doc_module": ("sklearn_ibvi",),
    "backreferences_dir": "gen_modules/backreferences",
    "download_all_examples": False,
    "remove_config_comments": True,
}

# -- HTML ----------------------------------------------------------------------

if find_spec("pydata_sphinx_theme") is not None:
    html_theme = "pydata_sphinx_theme"
    html_theme_options = {
        "navigation_with_keys": False,
        "show_toc_level": 2,
    }
    # Pages without children have an empty "Section Navigation" sidebar: it is dropped there;
    # the header bar and the page's own table of contents (right) navigate them. The user
    # guide's pages list each other in it.
    html_sidebars = {page: [] for page in ("install", "benchmarks")}
else:
    html_theme = "alabaster"
html_title = f"sklearn-ibvi {release}"
html_static_path = []

# -- Benchmark tables ----------------------------------------------------------


#: The result files shown on the benchmarks page, in this order, with their section titles
#: (``benchmarks/results/<name>.md``, written by the scripts in ``benchmarks/``).
BENCHMARK_RESULTS = {
    "model_selection": "Model selection",
    "peers": "IBVI against peer methods",
    "ibvi_variants": "Where IBVI's calibration comes from",
    "regression_coverage": "Regression intervals",
    "learning_rate": "Learning rate, epochs and out-of-distribution detection",
    "cnn_mnist": "Your own network: a CNN on MNIST",
    "ibvi_benchmark": "IBVI under corruption",
    "ibvi_width_transfer": "Learning rates across widths",
    "performance_targets": "Performance targets",
    "fit_time": "Fit time",
    "predict_time": "Prediction time",
    "scale": "Cost against rows and width",
    "gpu_fit_time": "GPU fit time",
    "early_stopping": "Early stopping",
}


def _write_benchmark_includes():
    """Write the include list of the benchmark result tables (Markdown) for ``benchmarks.rst``.

    reStructuredText cannot include a glob, so the list is regenerated on each build;
    myst-parser renders the Markdown tables. A result file not yet written is said to be
    missing rather than silently left out.
    """
    results = REPO_DIR / "benchmarks" / "results"
    # Result files name their plots relative to themselves; inside benchmarks.rst they resolve
    # from docs/, so the plots are copied there (git-ignored).
    for plot in results.glob("*.png"):
        shutil.copyfile(plot, DOCS_DIR / plot.name)
    lines = []
    for name, title in BENCHMARK_RESULTS.items():
        path = results / f"{name}.md"
        lines += [f".. _benchmark_{name}:", "", title, "-" * len(title), ""]
        if path.is_file():
            lines += [
                # A leading "/" makes Sphinx resolve the path from docs/.
                f".. include:: /{Path(os.path.relpath(path, DOCS_DIR)).as_posix()}",
                "   :parser: myst_parser.sphinx_",
                "",
            ]
        else:
            lines += [f"*Not measured yet* (``benchmarks/results/{name}.md`` is missing).", ""]
    target = DOCS_DIR / "gen_modules" / "benchmark_results.inc"
    target.parent.mkdir(exist_ok=True)
    text = "\n".join(lines)
    if not target.is_file() or target.read_text() != text:
        target.write_text(text)


_write_benchmark_includes()

# -- Hooks ---------------------------------------------------------------------


def _skip_metadata_routing(app, what, name, obj, skip, options):
    """Leave scikit-learn's metadata-routing plumbing to scikit-learn's docs.

    ``get_metadata_routing`` and the ``set_*_request`` methods are inherited
    by every estimator; their docstrings point to labels of scikit-learn's
    own documentation that do not exist here.
    """
    if name == "get_metadata_routing" or (
        name.startswith("set_") and name.endswith("_request")
    ):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_metadata_routing)
