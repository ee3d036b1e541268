"""bfloat16 products (precision="bf16") beside crnn's own float32
(pytest-benchmark): the RNN, LSTM and GRU at (50, 64, 512, 1024) and
(50, 32, 1760, 1760), forward and forward + backward, crnn's default thread
count. Groups ``bf16-<cell>-<mode>-T..``, implementations ``crnn`` (float32)
and ``crnn-bf16``; for ratios measured with the two interleaved, run
``python bench/bf16.py``. Under --benchmark-disable the shapes run as
problems.smoke_shape stand-ins. No benchmark asserts a timing.
"""

from __future__ import annotations

import pytest

import bf16 as BF
import problems as P


@pytest.mark.parametrize("precision", BF.PRECISIONS, ids=["crnn", "crnn-bf16"])
@pytest.mark.parametrize("mode", P.MODES)
@pytest.mark.parametrize("shape", BF.SHAPES, ids=P.shape_id)
@pytest.mark.parametrize("cell", list(BF.CELLS))
def test_bf16(timed, smoke, cell, shape, mode, precision):
    real_shape = P.smoke_shape(shape) if smoke else tuple(shape)
    fwd, fwdbwd = BF.problem(cell, real_shape, precision)
    result = timed(
        fwd if mode == "fwd" else fwdbwd,
        group=f"bf16-{cell}-{mode}-{P.shape_id(shape)}",
        impl="crnn" if precision == "native" else "crnn-bf16",
        mode=mode,
        shape=list(shape),
        dtype="float32",
        precision=precision,
        threads=P.default_threads(),
        flops=BF.CELLS[cell] * P.flops(shape, mode),
    )
    P.check_result(result, real_shape)
