"""Cross-references through crnn's re-exports.

Each object of the API reference is documented once, in the module that
defines it (``crnn.nn.LSTM``), while docstrings and pages also name it as
users write it (``crnn.LSTM``, or ``Embedding`` from inside ``crnn.nn``).
When Sphinx finds no object of such a name, this extension imports the name,
and if it is the same object as a documented one, links there.
"""

from __future__ import annotations

import importlib
from typing import Any, Dict, List, Optional

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.nodes import make_refnode

_MISSING = object()


def _resolve(dotted: str) -> Any:
    """The object a dotted name of crnn refers to, or _MISSING."""
    parts = dotted.split(".")
    if parts[0] != "crnn":
        return _MISSING
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attr in parts[split:]:
            obj = getattr(obj, attr, _MISSING)
            if obj is _MISSING:
                return _MISSING
        return obj
    return _MISSING


def _documented(app: Sphinx) -> Dict[int, str]:
    """id(object) -> the name under which the reference documents it."""
    domain = app.env.domains["py"]
    # On the application, not the environment: ids mean nothing once pickled.
    cache = getattr(app, "_crnn_documented", None)
    if cache is None or cache[0] != len(domain.objects):
        table: Dict[int, str] = {}
        for name, entry in domain.objects.items():
            if getattr(entry, "aliased", False) or entry.objtype == "module":
                continue
            obj = _resolve(name)
            if obj is not _MISSING and not isinstance(obj, (str, int, float, tuple)):
                table.setdefault(id(obj), name)
        cache = (len(domain.objects), table)
        app._crnn_documented = cache
    return cache[1]


def _candidates(node: nodes.Element) -> List[str]:
    target = node["reftarget"].lstrip(".~")
    module = node.get("py:module")
    cls = node.get("py:class")
    names = [target]
    if module:
        names.append(f"{module}.{target}")
        if cls:
            names.append(f"{module}.{cls}.{target}")
    return names


def missing_reference(
    app: Sphinx, env: Any, node: nodes.Element, contnode: nodes.Element
) -> Optional[nodes.Element]:
    if node.get("refdomain") != "py":
        return None
    documented = _documented(app)
    for name in _candidates(node):
        obj = _resolve(name)
        if obj is _MISSING:
            continue
        home = documented.get(id(obj))
        if home is None:
            continue
        entry = env.domains["py"].objects[home]
        return make_refnode(
            app.builder, node["refdoc"], entry.docname, entry.node_id, contnode, home
        )
    return None


def setup(app: Sphinx) -> Dict[str, Any]:
    app.connect("missing-reference", missing_reference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
