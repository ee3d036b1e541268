"""The manual's API reference (docs/api/) lists every public name of crnn.

Each page of docs/api/ documents one public module (``.. automodule::``)
and lists its names in autosummary tables: with ``:toctree:`` for the names
the module defines (autosummary generates their pages from the
docstrings), without it for names defined elsewhere and documented there
(``crnn.LSTM`` is ``crnn.nn.LSTM``). The public names are those the
docstring test walks: ``crnn.__all__`` and, for each public submodule, its
``__all__`` (or, without one, the functions and classes it defines).

These checks read the .rst sources, so they run without Sphinx. After a
build, ``CRNN_DOCS_INVENTORY=docs/_build/html/objects.inv`` also checks the
built site's inventory (as .ci/run does).
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import types
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Set

import pytest

from helpers import import_public, public_modules, public_names

API_DIR = Path(__file__).resolve().parents[1] / "docs" / "api"
pytestmark = pytest.mark.skipif(not API_DIR.is_dir(), reason="docs/ is not shipped here")

# The libraries of the adapters (optional extras): an adapter that subclasses
# its library's classes cannot be imported without it.
_MISSING = object()


def _resolve(dotted: str) -> Any:
    """The object a dotted name refers to (a module, or attributes of one)."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attr in parts[split:]:
            obj = getattr(obj, attr, _MISSING)
            if obj is _MISSING:
                return _MISSING
        return obj
    return _MISSING


def _is_data(obj: Any) -> bool:
    return not (inspect.isroutine(obj) or inspect.isclass(obj) or inspect.ismodule(obj))


@dataclass
class Page:
    """What one page of docs/api/ documents."""

    path: Path
    module: str = ""
    listed: List[str] = field(default_factory=list)  # qualified names in its tables
    documented: List[str] = field(default_factory=list)  # names with a page or entry of their own


_DIRECTIVE = re.compile(r"^\.\. ([\w:]+)::\s*(.*?)\s*$")


def _qualify(name: str, current: str) -> str:
    """An autosummary entry as a qualified name: relative to the current
    module when that resolves, else as written."""
    name = name.lstrip("~")
    if current and _resolve(f"{current}.{name}") is not _MISSING:
        return f"{current}.{name}"
    return name


def parse_page(path: Path) -> Page:
    page = Page(path)
    current = ""
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        match = _DIRECTIVE.match(lines[i])
        i += 1
        if not match:
            continue
        directive, argument = match.groups()
        if directive in ("automodule", "module", "py:module"):
            page.module = current = argument
        elif directive in ("currentmodule", "py:currentmodule"):
            current = argument
        elif directive in ("data", "py:data", "autodata"):
            name = _qualify(argument, current)
            page.listed.append(name)
            if _is_data(_resolve(name)):  # else another name of an object documented elsewhere
                page.documented.append(name)
        elif directive == "autosummary":
            toctree = False
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith("   ")):
                text = lines[i].strip()
                i += 1
                if text.startswith(":toctree:"):
                    toctree = True
                elif text and not text.startswith(":"):
                    name = _qualify(text, current)
                    page.listed.append(name)
                    if toctree:
                        page.documented.append(name)
    return page


def _pages() -> List[Page]:
    return [parse_page(path) for path in sorted(API_DIR.glob("*.rst")) if path.name != "index.rst"]


PAGES = _pages()
MODULES = public_modules()


def _importable_pages() -> List[Page]:
    return [page for page in PAGES if import_public(page.module) is not None]


def _same(name: str, module: types.ModuleType, attr: str) -> bool:
    """Whether the documented `name` is `module.attr` (the same object; for a
    constant, the same qualified name)."""
    value = getattr(module, attr)
    if _is_data(value):
        return name == f"{module.__name__}.{attr}"
    return _resolve(name) is value


def test_every_page_documents_a_module():
    assert PAGES, f"no pages in {API_DIR}"
    for page in PAGES:
        assert page.module, f"{page.path.name} has no automodule"
        assert page.path.stem == page.module, f"{page.path.name} documents {page.module}"


def test_every_public_module_has_a_page():
    pages = {page.module for page in PAGES}
    missing = sorted(m.__name__ for m in MODULES if m.__name__ not in pages)
    assert not missing, f"public modules without a page in docs/api/: {missing}"
    assert len(MODULES) >= 20  # the walk found the package's floors


def test_every_public_name_is_listed_on_its_modules_page():
    pages = {page.module: page for page in PAGES}
    missing = []
    for module in MODULES:
        page = pages.get(module.__name__)
        listed = page.listed if page else []
        for attr in public_names(module):
            if not any(_same(name, module, attr) for name in listed):
                missing.append(f"{module.__name__}.{attr}")
    assert not missing, f"public names missing from the API reference: {missing}"


def test_every_listed_name_exists():
    unknown = [
        f"{page.path.name}: {name}"
        for page in _importable_pages()
        for name in page.listed
        if _resolve(name) is _MISSING
    ]
    assert not unknown, f"the API reference lists names that crnn does not have: {unknown}"


def test_every_listed_object_is_documented_somewhere():
    """A table entry without a page of its own links to the page where the
    object is documented; that page must exist."""
    pages = _importable_pages()
    documented = {id(_resolve(name)) for page in pages for name in page.documented}
    documented |= {id(_resolve(page.module)) for page in pages}
    undocumented = [
        f"{page.path.name}: {name}"
        for page in pages
        for name in page.listed
        if not _is_data(_resolve(name)) and id(_resolve(name)) not in documented
    ]
    assert not undocumented, f"listed but documented nowhere: {undocumented}"


def test_each_object_has_one_page():
    """An object documented under two names would be two pages that drift apart."""
    homes: Dict[int, List[str]] = {}
    for page in _importable_pages():
        for name in page.documented:
            obj = _resolve(name)
            if not _is_data(obj):
                homes.setdefault(id(obj), []).append(name)
    twice = [names for names in homes.values() if len(names) > 1]
    assert not twice, f"documented more than once: {twice}"


def read_inventory(path: Path) -> Set[str]:
    """The Python object names of a Sphinx objects.inv (version 2)."""
    data = path.read_bytes()
    header_end = 0
    for _ in range(4):  # four header lines, then zlib-compressed entries
        header_end = data.index(b"\n", header_end) + 1
    if not data.startswith(b"# Sphinx inventory version 2"):
        raise ValueError(f"{path} is not a Sphinx inventory of version 2")
    names = set()
    for line in zlib.decompress(data[header_end:]).decode("utf-8").splitlines():
        match = re.match(r"(\S+)\s+py:\w+\s", line)
        if match:
            names.add(match.group(1))
    return names


@pytest.mark.skipif(
    not os.environ.get("CRNN_DOCS_INVENTORY"),
    reason="set CRNN_DOCS_INVENTORY to a built site's objects.inv to check it",
)
def test_the_built_site_documents_every_public_name():
    inventory = read_inventory(Path(os.environ["CRNN_DOCS_INVENTORY"]))
    missing_modules = sorted(m.__name__ for m in MODULES if m.__name__ not in inventory)
    assert not missing_modules, f"modules missing from the built site: {missing_modules}"
    by_id: Dict[int, List[str]] = {}
    for name in inventory:
        if name.startswith("crnn"):
            by_id.setdefault(id(_resolve(name)), []).append(name)
    missing = [
        f"{module.__name__}.{attr}"
        for module in MODULES
        for attr in public_names(module)
        if f"{module.__name__}.{attr}" not in inventory
        and (_is_data(getattr(module, attr)) or id(getattr(module, attr)) not in by_id)
    ]
    assert not missing, f"public names missing from the built site: {missing}"
