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


@pytest.mark.skipif(P.unavailable("onednn") is not None,
                    reason=str(P.unavailable("onednn")))
@pytest.mark.parametrize("backward", [False, True], ids=["fwd", "fwdbwd"])
@pytest.mark.parametrize("shape", [(7, 3, 5, 11), (4, 2, 64, 48)], ids=P.shape_id)
def test_onednn_matches_crnn(shape, backward):
    args, dout, dh_n = P.make_problem(shape, np.float32, seed=3)
    out, h_n, cache = crnn.rnn_forward(**args)
    g = crnn.rnn_backward(dout, dh_n, cache)
    r = native.OneDNNRNN(*shape, threads=2, backward=backward)
    try:
        r.set_inputs(args["x"], args["h0"], args["weight_ih"], args["weight_hh"],
                     args["bias_ih"] + args["bias_hh"], dout, dh_n)
        r.run()
        r.run()  # twice: weight gradients must not accumulate across runs
        res = r.outputs()
    finally:
        r.close()
    tol = dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(res["out"], out, **tol)
    np.testing.assert_allclose(res["h_n"], h_n, **tol)
    if backward:
        np.testing.assert_allclose(res["dx"], g.dx, **tol)
        np.testing.assert_allclose(res["dh0"], g.dh0, **tol)
        np.testing.assert_allclose(res["dweight_ih"], g.dweight_ih, **tol)
        np.testing.assert_allclose(res["dweight_hh"], g.dweight_hh, **tol)
        np.testing.assert_allclose(res["dbias"], g.dbias_ih, **tol)
