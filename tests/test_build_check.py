"""The build check of conftest.py (buildcheck.py): an in-tree extension older
than a tracked source stops the run; untracked newer sources only warn; an
installed package is not checked."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

import buildcheck

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _tree(root, git=True):
    """A fake source tree with an in-tree extension built after its sources."""
    (root / "csrc").mkdir()
    (root / "src" / "crnn").mkdir(parents=True)
    for name in (
        "csrc/kernels.c",
        "csrc/crnn.h",
        "csrc/driver.inc",
        "csrc/cells.def",
        "src/crnn/_core.pyx",
        "setup.py",
    ):
        (root / name).write_text("x")
        os.utime(root / name, (1000, 1000))
    ext = root / "src" / "crnn" / "_core.cpython-311-x86_64-linux-gnu.so"
    ext.write_text("so")
    os.utime(ext, (2000, 2000))
    if git:
        subprocess.run(["git", "init", "-q", str(root)], check=True)
        subprocess.run(
            ["git", "-C", str(root), "add", "csrc", "src/crnn/_core.pyx", "setup.py"], check=True
        )
    return ext


def _touch(path, when=3000):
    path.write_text(path.read_text() if path.exists() else "new")
    os.utime(path, (when, when))


@needs_git
def test_fresh_build_passes(tmp_path):
    ext = _tree(tmp_path)
    assert buildcheck.check(tmp_path, str(ext)) == (None, [])


@needs_git
@pytest.mark.parametrize(
    "name",
    [
        "csrc/kernels.c",
        "csrc/crnn.h",
        "csrc/driver.inc",
        "csrc/cells.def",
        "src/crnn/_core.pyx",
        "setup.py",
    ],
)
def test_tracked_source_newer_than_the_build_fails(tmp_path, name, monkeypatch):
    monkeypatch.delenv(buildcheck.ALLOW_STALE_ENV, raising=False)
    ext = _tree(tmp_path)
    _touch(tmp_path / name)
    error, warnings = buildcheck.check(tmp_path, str(ext))
    assert error and name in error and "pip install" in error
    monkeypatch.setenv(buildcheck.ALLOW_STALE_ENV, "1")
    error, warnings = buildcheck.check(tmp_path, str(ext))
    assert error is None and any("STALE" in w and name in w for w in warnings)


@needs_git
def test_untracked_newer_source_only_warns(tmp_path, monkeypatch):
    monkeypatch.delenv(buildcheck.ALLOW_STALE_ENV, raising=False)
    ext = _tree(tmp_path)
    _touch(tmp_path / "csrc" / "new_cell.inc")
    _touch(tmp_path / "csrc" / "notes.txt")  # not a build input
    error, warnings = buildcheck.check(tmp_path, str(ext))
    assert error is None
    assert len(warnings) == 1 and "csrc/new_cell.inc" in warnings[0] and "notes" not in warnings[0]


def test_without_git_every_source_counts(tmp_path, monkeypatch):
    monkeypatch.delenv(buildcheck.ALLOW_STALE_ENV, raising=False)
    ext = _tree(tmp_path, git=False)
    assert buildcheck.check(tmp_path, str(ext)) == (None, [])
    _touch(tmp_path / "csrc" / "anything.c")
    error, _ = buildcheck.check(tmp_path, str(ext))
    assert error and "csrc/anything.c" in error


def test_an_installed_package_is_not_checked(tmp_path):
    _tree(tmp_path, git=False)
    _touch(tmp_path / "csrc" / "kernels.c")
    installed = tmp_path / "site-packages" / "crnn" / "_core.so"
    installed.parent.mkdir(parents=True)
    installed.write_text("so")
    assert buildcheck.check(tmp_path, str(installed)) == (None, ())
    assert buildcheck.check(tmp_path, None) == (None, ())
