"""Class pages show the members crnn defines, inherited ones included.

The class template documents inherited members, so that the page of
``crnn.nn.LSTM`` shows the ``forward``, ``backward`` and ``zero_grad`` it
gets from its bases. Members that come from another library (the methods
``crnn.torch.LSTM`` inherits from ``torch.nn.LSTM``, a NamedTuple's
``count``) are that library's to document, and are skipped.
"""

from __future__ import annotations

import inspect
from typing import Any, Dict, Optional

from sphinx.application import Sphinx


def _defining_module(member: Any) -> Optional[str]:
    if isinstance(member, property):
        member = member.fget
    member = inspect.unwrap(member) if callable(member) else member
    module = getattr(member, "__module__", None)
    return module if isinstance(module, str) else None


def skip_foreign_member(
    app: Sphinx, what: str, name: str, obj: Any, skip: bool, options: Any
) -> Optional[bool]:
    if what not in ("class", "exception"):
        return None
    if not (callable(obj) or isinstance(obj, (property, classmethod, staticmethod))):
        return None  # data attributes: autodoc's own rules
    module = _defining_module(obj)
    if module is None or not (module == "crnn" or module.startswith("crnn.")):
        return True
    return None


def setup(app: Sphinx) -> Dict[str, Any]:
    app.connect("autodoc-skip-member", skip_foreign_member)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
