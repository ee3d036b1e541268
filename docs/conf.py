"""Sphinx configuration of crnn's manual.

Build (from the repository root, crnn and the ``docs`` extra installed)::

    sphinx-build -W -b html docs docs/_build/html
    sphinx-build -W -b doctest -d docs/_build/html/.doctrees docs docs/_build/doctest

The API reference is generated from the docstrings of the *installed* crnn
(the pages under api/ list the names; autosummary writes one page per name).
The examples/ scripts run at build time and are rendered with their output
and figures (sphinx-gallery). Cross-references to NumPy, PyTorch,
scikit-learn and Dask are made only when their inventories can be fetched,
so a build without a network has no warning.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))

import crnn_gallery  # noqa: E402
import crnn_intersphinx  # noqa: E402

import crnn  # noqa: E402  (the installed package, whose docstrings are documented)

project = "crnn"
author = "the crnn developers"
copyright = "the crnn developers"
version = release = crnn.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
    "crnn_aliases",
    "crnn_cli",
    "crnn_members",
    "crnn_optional",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build", "gallery_header.rst", "**/README.md"]
# `name` in a docstring is a cross-reference to a Python object when one of
# that name is documented, and literal text otherwise.
default_role = "py:obj"
pygments_style = "sphinx"
# Quotes and ellipses only: "--plot" must not become an en dash.
smartquotes_action = "qe"

# -- API reference ----------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = True
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
# The optional libraries of the adapters (crnn.torch subclasses torch.nn's
# modules): documented from stand-ins when the library is not installed.
autodoc_mock_imports = [
    lib
    for lib in ("torch", "onnx", "onnxruntime", "sklearn", "dask", "distributed")
    if importlib.util.find_spec(lib) is None
]
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = False

# -- Doctests (docs pages and the docstrings shown in the reference) --------
doctest_global_setup = """
import importlib.util
import numpy as np
import crnn
np.set_printoptions(precision=4, suppress=True)

def missing(*libraries):  # for ':skipif: missing("torch")' on an adapter's examples
    return any(importlib.util.find_spec(name) is None for name in libraries)
"""
doctest_default_flags = (
    __import__("doctest").ELLIPSIS
    | __import__("doctest").NORMALIZE_WHITESPACE
    | __import__("doctest").DONT_ACCEPT_TRUE_FOR_1
)

# -- Cross-references to other projects --------------------------------------
intersphinx_mapping = crnn_intersphinx.reachable(
    {
        "python": "https://docs.python.org/3",
        "numpy": "https://numpy.org/doc/stable",
        "torch": "https://docs.pytorch.org/docs/stable",
        "sklearn": "https://scikit-learn.org/stable",
        "dask": "https://docs.dask.org/en/stable",
    }
)
intersphinx_timeout = 10

# -- Gallery of the examples/ scripts ---------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": str(crnn_gallery.copy_examples(ROOT / "examples", DOCS)),
    "gallery_dirs": "auto_examples",
    "filename_pattern": crnn_gallery.runnable(ROOT / "examples"),
    "reset_argv": "crnn_gallery.argv",
    "within_subsection_order": "crnn_gallery.ExampleOrder",
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_signature": False,
    "min_reported_time": 1,
    "image_scrapers": ("matplotlib",),
    "matplotlib_animations": False,
    "capture_repr": (),
}

# -- Markdown (docs/ARCHITECTURE.md) ----------------------------------------
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]

# -- HTML --------------------------------------------------------------------
html_theme = "alabaster"
html_title = f"crnn {release}"
html_theme_options = {
    "description": "C-accelerated recurrent neural networks for NumPy",
    "fixed_sidebar": True,
    "page_width": "1180px",
    "sidebar_width": "250px",
    "show_relbars": True,
}
html_sidebars = {"**": ["about.html", "navigation.html", "relations.html", "searchbox.html"]}
html_static_path: list = []
html_show_sourcelink = False

os.environ.setdefault("MPLBACKEND", "Agg")
