"""Checks of the native helpers the benchmarks and the report rely on
(plain tests: they run in the smoke run, and --benchmark-only skips them).

- fma_peak.c builds and reports a plausible FP32 FMA throughput;
- the oneDNN harness (when oneDNN is installed) computes what crnn
  computes, so its timings are of the same work.
"""

from __future__ import annotations

import numpy as np
import pytest

import crnn
import native
import problems as P


def test_fma_peak_runs():
    res = native.fma_peak(seconds=0.01, repetitions=2)
    assert res["isa"] in ("avx512", "avx2", "scalar")
    assert res["threads"] >= 1
    assert 0 < res["gflops_1thread"] < 1e5
    assert 0 < res["gflops_all_threads"] < 1e6
    assert 0 < res["gflops_1thread_cpu"] < 1e5
    assert 0 < res["gflops_all_threads_cpu"] < 1e6


def crnn_problem(cell, shape):
    """(OneDNNRNN.set_inputs's keywords, crnn's results under OneDNNRNN's
    output names) of one float32 problem of `cell`."""
    if cell == "rnn":
        args, dout, dh_n = P.make_problem(shape, np.float32, seed=3)
        out, h_n, cache = crnn.rnn_forward(**args)
        return dict(args, dout=dout, dh_n=dh_n), dict(
            crnn.rnn_backward(dout, dh_n, cache)._asdict(), out=out, h_n=h_n
        )
    x, h0, weights, grads = P.make_gated_problem(cell, shape, seed=3)
    if cell == "lstm":
        out, h_n, c_n, cache = crnn.lstm_forward(x, h0, h0, *weights)
        expected = dict(crnn.lstm_backward(*grads, cache)._asdict(), c_n=c_n)
    else:
        out, h_n, cache = crnn.gru_forward(x, h0, *weights)
        expected = crnn.gru_backward(*grads, cache)._asdict()
    return P.gated_onednn_inputs(cell, x, h0, weights, grads), dict(expected, out=out, h_n=h_n)


@pytest.mark.skipif(P.unavailable("onednn") is not None, reason=str(P.unavailable("onednn")))
@pytest.mark.parametrize("backward", [False, True], ids=["fwd", "fwdbwd"])
@pytest.mark.parametrize("shape", [(7, 3, 5, 11), (4, 2, 64, 48)], ids=P.shape_id)
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_onednn_matches_crnn(cell, shape, backward):
    """Same results as crnn: for the gated cells this checks the gate
    reordering (GRU: r z n -> u r o) and the GRU's separate b_hn."""
    inputs, expected = crnn_problem(cell, shape)
    r = native.OneDNNRNN(*shape, threads=2, backward=backward, cell=cell)
    try:
        r.set_inputs(**inputs)
        r.run()
        r.run()  # twice: weight gradients must not accumulate across runs
        res = r.outputs()
    finally:
        r.close()
    # every output the handle has, and for fwd+bwd every gradient crnn has
    assert set(res) <= set(expected)
    assert not backward or set(res) == set(expected)
    for name, got in res.items():
        np.testing.assert_allclose(got, expected[name], rtol=1e-4, atol=1e-5, err_msg=name)
