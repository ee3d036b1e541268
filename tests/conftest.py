"""Test-wide fixtures and the build check.

Every test leaves crnn's global settings as it found them: after each test the
thread count goes back to the OpenMP default (`crnn.set_num_threads(None)`)
and the instruction set back to "auto" (`crnn.set_isa("auto")`), so a test
that pins 3 threads or the generic kernel cannot leak into the next one.

Importing crnn is guarded: if the package cannot be imported (not built yet,
broken extension), this file still loads and each test module that imports
crnn fails at collection with the real ImportError.

The build check (buildcheck.py): with an editable install, whose extension
sits in this tree, the run stops at once when a source the build is made
from (csrc/, _core.pyx, setup.py) that git tracks is newer than the
extension, and the header warns about newer untracked ones. An installed
package is not checked.
"""

from __future__ import annotations

import os
import sys

import pytest

# Make `import helpers` work whatever pytest's import mode is.
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

try:  # pragma: no cover - depends on the build
    import crnn as _crnn
except Exception:  # noqa: BLE001 - any import failure is reported by the tests
    _crnn = None

import buildcheck  # noqa: E402

_ROOT = buildcheck.Path(_HERE).parent


def _build_check():
    core = getattr(_crnn, "_core", None)
    return buildcheck.check(_ROOT, getattr(core, "__file__", None))


def pytest_configure(config):
    error, _ = _build_check()
    if error:
        raise pytest.UsageError(error)


def pytest_report_header(config):
    return list(_build_check()[1])


def _restore_crnn_settings():
    if _crnn is None:
        return
    if hasattr(_crnn, "set_num_threads"):
        _crnn.set_num_threads(None)
    if hasattr(_crnn, "set_isa"):
        _crnn.set_isa("auto")


@pytest.fixture(autouse=True)
def _crnn_global_settings():
    """Restore crnn's thread count and ISA after every test."""
    yield
    _restore_crnn_settings()
