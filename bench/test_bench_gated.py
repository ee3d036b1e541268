"""LSTM and GRU benchmarks (pytest-benchmark): crnn's C engine beside the
NumPy reference, torch.nn.LSTM / GRU (when torch is importable) and oneDNN's
LSTM / linear-before-reset GRU (when the harness builds, see
bench/native.py), on the RNN benchmark's shapes (problems.shapes()),
float32, default thread count; the reference only up to H = 256 (beyond,
one of its calls takes minutes).

Groups ``lstm-fwd-T..``, ``lstm-fwdbwd-T..``, ``gru-fwd-T..``,
``gru-fwdbwd-T..``; extra_info as in test_bench_core.py, with flops counted
for the cell's 4 (LSTM) or 3 (GRU) gates. Under --benchmark-disable the large
shapes run as problems.smoke_shape stand-ins. No benchmark asserts a timing.
"""

from __future__ import annotations

import pytest

import crnn
import problems as P
from crnn import reference

GATES = P.GATED_CELLS
IMPLS = ("crnn", "reference", "torch", "onednn")
DEFAULT_THREADS = P.default_threads()


def numpy_calls(engine, cell, x, h0, weights, grads):
    """(forward, forward + backward) of one of crnn's engines."""
    if cell == "lstm":

        def fwd():
            return engine.lstm_forward(x, h0, h0, *weights)[0]

        def fwdbwd():
            out, h_n, c_n, cache = engine.lstm_forward(x, h0, h0, *weights)
            return engine.lstm_backward(*grads, cache).dx
    else:

        def fwd():
            return engine.gru_forward(x, h0, *weights)[0]

        def fwdbwd():
            out, h_n, cache = engine.gru_forward(x, h0, *weights)
            return engine.gru_backward(*grads, cache).dx

    return fwd, fwdbwd


def torch_calls(cell, x, h0, weights, grads):
    import torch

    T, B, I = x.shape
    H = h0.shape[1]
    module = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(I, H)
    with torch.no_grad():
        for name, w in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), weights):
            getattr(module, name + "_l0").copy_(torch.from_numpy(w))
    xt, h0t = torch.from_numpy(x), torch.from_numpy(h0)[None]
    state = (h0t, h0t) if cell == "lstm" else h0t
    g = [torch.from_numpy(a) for a in grads]

    def fwd():
        with torch.no_grad():
            return module(xt, state)[0]

    def fwdbwd():
        xg = xt.detach().requires_grad_(True)
        module.zero_grad(set_to_none=True)
        out, final = module(xg, state)
        finals = list(final) if cell == "lstm" else [final]
        torch.autograd.backward([out] + [f[0] for f in finals], g)
        return xg.grad

    return fwd, fwdbwd


def calls(impl, cell, shape):
    """(forward, forward + backward, close) of `impl` on a fresh problem."""
    x, h0, weights, grads = P.make_gated_problem(cell, shape)
    if impl == "onednn":
        im = P.onednn_impl(
            shape, P.gated_onednn_inputs(cell, x, h0, weights, grads), DEFAULT_THREADS, cell
        )
        return im.fwd, im.fwdbwd, im.close
    if impl == "torch":
        import torch

        torch.set_num_threads(DEFAULT_THREADS)
        return torch_calls(cell, x, h0, weights, grads) + (lambda: None,)
    crnn.set_num_threads(DEFAULT_THREADS)
    engine = crnn if impl == "crnn" else reference
    return numpy_calls(engine, cell, x, h0, weights, grads) + (lambda: None,)


def _cases():
    cases = []
    for cell in GATES:
        for shape in P.shapes():
            for mode in P.MODES:
                for impl in IMPLS:
                    reason = P.unavailable(impl) if impl in ("torch", "onednn") else None
                    if impl == "reference" and shape[3] > 256:
                        reason = "the NumPy reference of a gated cell takes minutes at H > 256"
                    marks = [pytest.mark.skip(reason=reason)] if reason else []
                    cases.append(
                        pytest.param(
                            cell,
                            mode,
                            shape,
                            impl,
                            marks=marks,
                            id=f"{cell}-{mode}-{P.shape_id(shape)}-{impl}",
                        )
                    )
    return cases


@pytest.mark.parametrize("cell, mode, shape, impl", _cases())
def test_gated(timed, smoke, cell, mode, shape, impl):
    real_shape = P.smoke_shape(shape) if smoke else tuple(shape)
    fwd, fwdbwd, close = calls(impl, cell, real_shape)
    try:
        result = timed(
            fwd if mode == "fwd" else fwdbwd,
            group=f"{cell}-{mode}-{P.shape_id(shape)}",
            impl=impl,
            mode=mode,
            shape=list(shape),
            dtype="float32",
            threads=DEFAULT_THREADS,
            flops=GATES[cell] * P.flops(shape, mode),
        )
    finally:
        close()
    P.check_result(result, real_shape)
