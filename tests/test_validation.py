"""The global settings: thread count and instruction set.

(The bad-input battery of the functional API, for every cell, both engines
and both APIs, is test_cells_validation.py; of the layers, losses,
optimizers and files, test_reliability_inputs.py.)
"""

from __future__ import annotations

import pytest

import crnn
from crnn import _core


# --------------------------------------------------------------------------
# global settings
# --------------------------------------------------------------------------
@pytest.mark.parametrize("n", [-1, -8])
def test_set_num_threads_negative(n):
    with pytest.raises(ValueError):
        crnn.set_num_threads(n)


@pytest.mark.parametrize("n", [2.5, 2.0, "2", [2]], ids=repr)
def test_set_num_threads_non_int(n):
    with pytest.raises(TypeError):
        crnn.set_num_threads(n)


def test_set_num_threads_failure_keeps_setting():
    crnn.set_num_threads(2)
    with pytest.raises(ValueError):
        crnn.set_num_threads(-1)
    if crnn.build_info()["openmp"]:
        assert crnn.get_num_threads() == 2


@pytest.mark.parametrize("name", ["sse2", "AVX9", "", "native"])
def test_set_isa_unknown(name):
    with pytest.raises(ValueError):
        crnn.set_isa(name)


# The kernel builds of the C library's registry (csrc/crnn_isas.def), worst first.
REGISTERED_ISAS = [
    name for name, code in sorted(_core.ISAS.items(), key=lambda i: i[1]) if code >= 0
]


@pytest.mark.parametrize("name", REGISTERED_ISAS)
def test_set_isa_known_names(name):
    if name in crnn.available_isas():
        crnn.set_isa(name)
        assert crnn.build_info()["isa"] == name
    else:
        before = crnn.build_info()["isa"]
        with pytest.raises(ValueError):
            crnn.set_isa(name)
        assert crnn.build_info()["isa"] == before


def test_available_isas():
    isas = crnn.available_isas()
    assert isinstance(isas, list)
    assert "generic" in isas
    assert set(isas) <= set(REGISTERED_ISAS)
    assert len(set(isas)) == len(isas)
    # Best first: the registry's order, reversed.
    assert isas == [name for name in reversed(REGISTERED_ISAS) if name in isas]
    crnn.set_isa("auto")
    assert crnn.build_info()["isa"] in isas
