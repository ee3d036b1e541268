"""The examples/ scripts as sphinx-gallery's input.

sphinx-gallery runs each script in the directory that holds it, and the
scripts write their figures (``--plot``) to the current directory; so the
gallery runs copies under docs/_build/, and the repository's examples/
stays clean. The copies are refreshed at every build (a script whose text
did not change is not run again: sphinx-gallery keeps its output).
"""

from __future__ import annotations

import ast
import importlib.util
import re
import shutil
from pathlib import Path
from typing import Any, Dict, List, Tuple

HEADER = "gallery_header.rst"


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def copy_examples(examples: Path, docs: Path) -> Path:
    """Copy examples/*.py and the gallery's header into docs/_build/examples_src;
    return that directory."""
    target = docs / "_build" / "examples_src"
    target.mkdir(parents=True, exist_ok=True)
    scripts = sorted(examples.glob("*.py"))
    for script in scripts:
        _write_if_changed(target / script.name, script.read_text(encoding="utf-8"))
    for stale in set(target.glob("*.py")) - {target / s.name for s in scripts}:
        stale.unlink()
    _write_if_changed(target / "GALLERY_HEADER.rst", (docs / HEADER).read_text(encoding="utf-8"))
    shutil.rmtree(target / "__pycache__", ignore_errors=True)
    return target


def _imports_available(script: Path) -> bool:
    """Whether every package the script imports at its top level is installed."""
    tree = ast.parse(script.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            if importlib.util.find_spec(name.split(".")[0]) is None:
                return False
    return True


def runnable(examples: Path) -> str:
    """sphinx-gallery's ``filename_pattern``: the scripts to run. A script
    that needs an optional library which is not installed (the Dask example
    without dask) is shown without its output."""
    names = [s.name for s in sorted(examples.glob("*.py")) if _imports_available(s)]
    if not names:
        return r"^$"
    return r"[\\/](" + "|".join(re.escape(n) for n in names) + r")$"


def argv(gallery_conf: Dict[str, Any], script_vars: Dict[str, Any]) -> List[str]:
    """The command-line arguments of a script in the gallery: ``--plot`` for
    the scripts that draw figures with it."""
    source = Path(script_vars["src_file"]).read_text(encoding="utf-8")
    return ["--plot"] if '"--plot"' in source else []


# The gallery's order: from the simplest shape of model to the encoder-decoder,
# then the two gradient studies. Scripts not listed follow, by name.
ORDER = (
    "one_to_one.py",
    "one_to_many.py",
    "many_to_one.py",
    "many_to_many.py",
    "encoder_decoder.py",
    "vanishing_gradients.py",
    "exploding_gradients.py",
    "dask_cluster.py",
)


class ExampleOrder:
    """sphinx-gallery's sort key of the examples (``within_subsection_order``)."""

    def __init__(self, src_dir: Any) -> None:
        self.src_dir = src_dir

    def __call__(self, filename: Any) -> Tuple[int, str]:
        name = Path(filename).name
        return (ORDER.index(name) if name in ORDER else len(ORDER), name)

    def __repr__(self) -> str:  # sphinx-gallery compares configurations by repr
        return f"<{type(self).__name__}>"
