"""Does the compiled extension match the source tree it sits in?

An editable install (``pip install -e .``) builds ``src/crnn/_core*.so`` in
the tree; editing csrc/ or _core.pyx afterwards without rebuilding would
test the old build against the new sources. The build inputs are every
csrc/*.c, *.h, *.inc and *.def file, src/crnn/_core.pyx and setup.py: a
source newer than the extension means the build is stale. Sources git
tracks make the test run fail (see conftest.py); untracked ones (work in
progress of a shared tree) only warn. An installed (non-editable) package is
not checked: CI tests the package it installed, wherever its sources are.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

BUILD_INPUT_SUFFIXES = (".c", ".h", ".inc", ".def")
ALLOW_STALE_ENV = "CRNN_TESTS_ALLOW_STALE_BUILD"


def build_inputs(root: Path) -> List[Path]:
    """The files an in-tree build of the extension is made from."""
    files = [root / "src" / "crnn" / "_core.pyx", root / "setup.py"]
    csrc = root / "csrc"
    if csrc.is_dir():
        files += sorted(p for p in csrc.iterdir() if p.suffix in BUILD_INPUT_SUFFIXES)
    return [p for p in files if p.is_file()]


def tracked_files(root: Path) -> Optional[set]:
    """The files git tracks under `root` (index included), or None outside git."""
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z"], capture_output=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {(root / name).resolve() for name in out.decode().split("\0") if name}


def stale_sources(
    root: Path, extension: Path, tracked: Optional[set] = None
) -> Tuple[List[Path], List[Path]]:
    """(tracked sources newer than `extension`, untracked ones). Without git
    information (`tracked` None) every source counts as tracked."""
    built = extension.stat().st_mtime
    newer = [p for p in build_inputs(root) if p.stat().st_mtime > built]
    if tracked is None:
        return newer, []
    return (
        [p for p in newer if p.resolve() in tracked],
        [p for p in newer if p.resolve() not in tracked],
    )


def in_tree_extension(root: Path, extension_file: Optional[str]) -> Optional[Path]:
    """The extension if it was built in this tree (an editable install), else None."""
    if not extension_file:
        return None
    ext = Path(extension_file).resolve()
    return ext if ext.parent == (root / "src" / "crnn").resolve() else None


def check(root: Path, extension_file: Optional[str]) -> Tuple[Optional[str], Sequence[str]]:
    """(an error message or None, warning lines) for the tree at `root`."""
    ext = in_tree_extension(root, extension_file)
    if ext is None:
        return None, ()
    failing, warning = stale_sources(root, ext, tracked_files(root))
    rel = lambda ps: ", ".join(str(p.relative_to(root)) for p in ps)  # noqa: E731
    warnings = []
    if warning:
        warnings.append(
            f"crnn build: untracked sources newer than {ext.name}: {rel(warning)} "
            "(work in progress? rebuild with pip install --no-build-isolation -e .)"
        )
    if not failing:
        return None, warnings
    message = (
        f"the extension {ext} is older than its sources: {rel(failing)}. The tests would "
        f"run the old build. Rebuild it: pip install --no-build-isolation -e . "
        f"(or set {ALLOW_STALE_ENV}=1 to run anyway)"
    )
    if os.environ.get(ALLOW_STALE_ENV, "").strip() not in ("", "0"):
        return None, warnings + ["crnn build: STALE (allowed by the environment): " + message]
    return message, warnings
