"""``.. optional-toctree::``: a toctree of the listed documents that exist.

The architecture page lists docs/ARCHITECTURE.md, a document that a
repository may or may not have yet; a plain toctree would warn (and fail
``sphinx-build -W``) without it, and Sphinx's empty-glob warning cannot be
silenced. Entries are document names, as in a toctree.
"""

from __future__ import annotations

from typing import Any, Dict, List

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.directives.other import TocTree
from sphinx.util import docname_join


class OptionalTocTree(TocTree):
    def run(self) -> List[nodes.Node]:
        self.env.note_reread()  # read again next build: a listed document may appear
        present = [
            line
            for line in self.content
            if line.strip() and docname_join(self.env.docname, line.strip()) in self.env.found_docs
        ]
        if not present:
            return []
        self.content = StringList(present, source=self.content.source(0))
        return super().run()


def setup(app: Sphinx) -> Dict[str, Any]:
    app.add_directive("optional-toctree", OptionalTocTree)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
