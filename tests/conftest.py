"""Test-wide fixtures and the build check.

Every test leaves crnn's global settings as it found them: after each test the
thread count goes back to the OpenMP default (`crnn.set_num_threads(None)`),
the instruction set back to "auto" (`crnn.set_isa("auto")`) and the private
test knobs of `crnn._testing` back to their defaults, so a test that pins 3
threads, the generic kernel or a forced split cannot leak into the next one.
The busy-machine back-off is cleared before and after every test: a region
that ran slowly during one test (a busy machine) cannot move the next test's
calls onto one thread. During every test the arrays the C library writes are
filled with NaN before each call (`crnn._testing.set_output_fill`): an
element a kernel leaves unwritten, or reads before writing it, shows.

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
    from crnn import _testing as _crnn_testing
except Exception:  # noqa: BLE001 - any import failure is reported by the tests
    _crnn = _crnn_testing = None

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
    _crnn.set_num_threads(None)
    _crnn.set_isa("auto")
    _crnn_testing.reset()


@pytest.fixture(autouse=True)
def _crnn_global_settings():
    """A clear back-off and NaN-filled outputs during every test; crnn's
    thread count, ISA and test knobs restored (and the back-off cleared)
    after it."""
    if _crnn_testing is not None:
        _crnn_testing.reset_backoff()
        _crnn_testing.set_output_fill(float("nan"))
    yield
    _restore_crnn_settings()
