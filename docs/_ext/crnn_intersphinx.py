"""Intersphinx inventories that can be fetched now, so that an offline build
of the manual has no warning (``sphinx-build -W`` would fail on one).

``CRNN_DOCS_INTERSPHINX=0`` turns the cross-references to other projects
off without probing, ``=1`` keeps them all (a failed fetch then warns);
unset, each inventory is probed with a short request and kept if it answers.
"""

from __future__ import annotations

import os
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Optional, Tuple

PROBE_TIMEOUT = 5.0


def _answers(url: str) -> bool:
    request = urllib.request.Request(url.rstrip("/") + "/objects.inv", method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT) as response:
            return 200 <= response.status < 400
    except (OSError, ValueError):
        return False


def reachable(projects: Dict[str, str]) -> Dict[str, Tuple[str, Optional[str]]]:
    """The intersphinx mapping of the `projects` (name -> documentation URL)
    whose inventory answers, as ``{name: (url, None)}``."""
    setting = os.environ.get("CRNN_DOCS_INTERSPHINX", "").strip()
    if setting == "0":
        return {}
    if setting == "1":
        return {name: (url, None) for name, url in projects.items()}
    with ThreadPoolExecutor(max_workers=len(projects) or 1) as pool:
        answers = dict(zip(projects, pool.map(_answers, projects.values())))
    return {name: (url, None) for name, url in projects.items() if answers[name]}
