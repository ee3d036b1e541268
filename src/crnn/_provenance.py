"""Where the running crnn comes from: its build stamp and, if any, its wheel.

setup.py writes ``_build_stamp.json`` beside the compiled extension at each
build (kind "source" or "wheel", date, git revision, compiler and flags,
Python and NumPy built with). When crnn was installed from a wheel, the
installed distribution's WHEEL file names the wheel's tags, which auditwheel
rewrites when it repairs a wheel (e.g. ``cp312-cp312-manylinux_2_34_x86_64``).
Both are read once per process: they cannot change while it runs.
"""

from __future__ import annotations

import functools
import json
import os
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, List, Optional

from . import _core

BUILD_STAMP_NAME = "_build_stamp.json"


@functools.lru_cache(maxsize=None)
def build_stamp() -> Dict[str, Any]:
    """The build stamp beside the extension; {"kind": "unknown"} if there is none
    (an extension built by other means than setup.py)."""
    path = Path(_core.__file__).with_name(BUILD_STAMP_NAME)
    try:
        with open(path, encoding="utf-8") as f:
            stamp = json.load(f)
    except (OSError, ValueError):
        return {"kind": "unknown"}
    return stamp if isinstance(stamp, dict) else {"kind": "unknown"}


def _compressed_tag(tags: List[str]) -> str:
    """'py-abi-plat' tags in the compressed form of a wheel's file name
    (cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64)."""
    parts: List[List[str]] = [[], [], []]
    for tag in tags:
        for seen, part in zip(parts, tag.split("-", 2)):
            if part not in seen:
                seen.append(part)
    return "-".join(".".join(seen) for seen in parts)


def _installs_this_extension(dist: metadata.Distribution, extension: str) -> bool:
    """Whether `dist` installed the extension module at `extension`
    (an editable install or another copy on sys.path does not)."""
    for file in dist.files or ():
        if file.name.startswith("_core.") and file.parent.name == "crnn":
            if os.path.realpath(str(dist.locate_file(file))) == extension:
                return True
    return False


@functools.lru_cache(maxsize=None)
def wheel_tag() -> Optional[str]:
    """The tag of the wheel this crnn was installed from, or None (run from a
    source tree, or an editable install)."""
    extension = os.path.realpath(_core.__file__)
    try:
        dists = list(metadata.distributions(name="crnn"))
    except Exception:  # noqa: BLE001 - broken metadata on sys.path must not break crnn
        return None
    for dist in dists:
        try:
            if not _installs_this_extension(dist, extension):
                continue
            wheel = dist.read_text("WHEEL") or ""
        except Exception:  # noqa: BLE001 - as above
            continue
        tags = [
            line.split(":", 1)[1].strip() for line in wheel.splitlines() if line.startswith("Tag:")
        ]
        return _compressed_tag(tags) if tags else None
    return None


def describe() -> str:
    """The build in one line: 'wheel cp312-cp312-manylinux_2_34_x86_64 of
    2026-01-01T00:00:00Z, git 0123456789ab' or 'source build of ...'."""
    stamp = build_stamp()
    kind = stamp.get("kind", "unknown")
    tag = wheel_tag()
    if kind == "wheel":
        what = f"wheel {tag}" if tag else "wheel build"
    elif kind == "source":
        what = "source build"
    else:
        what = "unknown build (no build stamp)"
    if stamp.get("date"):
        what += f" of {stamp['date']}"
    if stamp.get("git_revision"):
        what += f", git {stamp['git_revision']}"
    return what
