"""Bitwise reproducibility for every cell: the same bits for 1, 2, 3 and 4
threads, on every ISA, and on repeated calls (fixed reduction order, no
races), through the functional API and through the layers (outputs,
gradients and optimizer updates).

Work is only cut into slices when each gets about 1M multiply-adds (the
recurrence counts all T steps). The first shape stays whole; the others split
the recurrence into up to 4 slices, and the last also every large product.
The hidden size is scaled by 1/sqrt(gates) so that every cell does about the
Elman RNN's work on each shape; batch sizes are divisible by no thread count.
A cell's option settings are spread over the shapes (shape i runs setting
i mod n), so every option value is checked without multiplying the cases:
how a result is cut between threads does not depend on the activation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import crnn
from helpers import assert_bitwise
from problems import (
    SPECS,
    cell_params,
    cell_variants,
    copies,
    dtype_param,
    make_problem,
    option_variants,
    run,
    shape_id,
    variant_id,
)

THREADS = [1, 2, 3, 4]
SHAPES = [(11, 13, 19, 37), (20, 64, 33, 70), (8, 67, 45, 90), (30, 96, 64, 128)]


def scaled(spec, shape):
    """`shape` with H scaled by 1/sqrt(gates): about the same work for every cell."""
    T, B, I, H = shape  # noqa: E741
    return T, B, I, max(1, round(H / math.sqrt(spec.gates)))


def _shape_params():
    for spec in SPECS:
        variants = option_variants(spec)
        for i, shape in enumerate(SHAPES):
            opts, s = variants[i % len(variants)], scaled(spec, shape)
            yield pytest.param(spec, opts, s, id=f"{variant_id(spec, opts)}-{shape_id(s)}")


def _per_thread_count(p, up, threads=THREADS):
    res = {}
    for n in threads:
        crnn.set_num_threads(n)
        if crnn.build_info()["openmp"]:
            assert crnn.get_num_threads() == n
        res[n] = copies(run(crnn, p, *up))
    return res


@dtype_param
@pytest.mark.parametrize("spec, options, shape", list(_shape_params()))
def test_threads_bitwise_identical(spec, options, shape, dtype):
    p = make_problem(spec, shape, dtype, seed=shape[1], lengths="zeros", options=options)
    up = p.upstream("all", seed=99)
    for isa in crnn.available_isas():
        crnn.set_isa(isa)
        res = _per_thread_count(p, up)
        for n in THREADS[1:]:
            assert_bitwise(res[n], res[1], ctx=f"[{isa}] threads={n} vs 1")


@pytest.mark.parametrize(
    "dtype, options_index", [(np.float32, 0), (np.float64, 1)], ids=["float32", "float64"]
)
@pytest.mark.parametrize("spec", cell_params())
def test_threads_bitwise_no_lengths_no_states(spec, dtype, options_index):
    variants = option_variants(spec)
    options = variants[options_index % len(variants)]
    p = make_problem(
        spec, scaled(spec, (15, 29, 24, 48)), dtype, seed=1, states=False, options=options
    )
    up = p.upstream("dout", seed=5)
    for isa in crnn.available_isas():
        crnn.set_isa(isa)
        res = _per_thread_count(p, up)
        for n in THREADS[1:]:
            assert_bitwise(res[n], res[1], ctx=f"[{isa}] threads={n} vs 1")


@pytest.mark.parametrize("threads", [1, 3])
@dtype_param
@pytest.mark.parametrize("spec", cell_params())
def test_repeated_calls_identical(spec, dtype, threads):
    options = option_variants(spec)[-1]
    crnn.set_num_threads(threads)
    p = make_problem(
        spec, scaled(spec, (12, 21, 17, 45)), dtype, seed=3, lengths="random", options=options
    )
    up = p.upstream("all", seed=6)
    for isa in crnn.available_isas():
        crnn.set_isa(isa)
        first = copies(run(crnn, p, *up))
        for i in range(5):
            assert_bitwise(run(crnn, p, *up), first, ctx=f"[{isa}] call {i + 2}")


@dtype_param
@pytest.mark.parametrize("spec, options", cell_variants())
def test_default_thread_count_matches_explicit(spec, options, dtype):
    # Cheap (one problem below the split threshold, one call per count): every setting.
    """The OpenMP-default thread count gives the same bits as an explicit one."""
    p = make_problem(
        spec, scaled(spec, (10, 17, 9, 23)), dtype, seed=8, lengths="random", options=options
    )
    up = p.upstream("dout", seed=7)
    crnn.set_num_threads(None)
    default = copies(run(crnn, p, *up))
    crnn.set_num_threads(1)
    assert_bitwise(default, run(crnn, p, *up), ctx="default vs 1 thread")


# --------------------------------------------------------------------------
# Layers: outputs, gradients and optimizer updates (test_cells_layers.py
# holds them to the NumPy backend).
# --------------------------------------------------------------------------
T, B, I, H = 16, 67, 40, 64

LAYER_CONFIGS = {
    "2layer": dict(num_layers=2),
    "bi-lengths": dict(bidirectional=True),
    "batch_first": dict(batch_first=True),
    "dropout": dict(num_layers=2, dropout=0.25, bidirectional=True),
    "nobias-unbatched": dict(bias=False),
}


def _layer_params():
    """The configs cycle through the option settings and the ISAs: every
    config of every cell, every option value, every ISA, at a fifth of the
    cost of the full product (the functional tests above cover each ISA)."""
    isas = crnn.available_isas()
    for k, spec in enumerate(SPECS):
        variants = option_variants(spec)
        for i, name in enumerate(LAYER_CONFIGS):
            opts, isa = variants[i % len(variants)], isas[(i + k) % len(isas)]
            yield pytest.param(spec, opts, name, isa, id=f"{variant_id(spec, opts)}-{name}-{isa}")


def _layer(spec, options, dtype, **kw):
    Hs = scaled(spec, (0, 0, 0, H))[3]
    extra = {"output_size": Hs // 2 + 1} if spec.uses_output_size else {}
    return crnn.nn.recurrent_layer(spec, I, Hs, dtype=dtype, **extra, **kw, **options)


def _run_layer(spec, options, name, dtype, threads):
    crnn.set_num_threads(threads)
    kw = LAYER_CONFIGS[name]
    rng = np.random.default_rng(1)
    layer = _layer(spec, options, dtype, seed=5, **kw)
    opt = crnn.optim.Adam(layer.params, lr=1e-2, clip_grad_norm=0.5)
    if name == "nobias-unbatched":
        x = rng.standard_normal((T * 4, I)).astype(dtype)
    elif kw.get("batch_first"):
        x = rng.standard_normal((B, T, I)).astype(dtype)
    else:
        x = rng.standard_normal((T, B, I)).astype(dtype)
    lengths = rng.integers(0, T + 1, size=B) if name == "bi-lengths" else None
    results = []
    for _ in range(2):  # two training steps: the second sees the updated weights
        layer.zero_grad()
        out, s_n = layer(x, lengths=lengths)
        parts = list(s_n) if isinstance(s_n, tuple) else [s_n]
        dx, d0 = layer.backward(
            np.cos(out), tuple(np.sin(s) for s in parts) if isinstance(s_n, tuple) else np.sin(s_n)
        )
        total = opt.step(layer.grads)
        d0 = list(d0) if isinstance(d0, tuple) else [d0]
        results += [out, *parts, dx, *d0, np.float64(total)] + [
            g.copy() for g in layer.grads.values()
        ]
    return results + [p.copy() for p in layer.params.values()]


@dtype_param
@pytest.mark.parametrize("spec, options, name, isa", list(_layer_params()))
def test_layer_bitwise_across_threads(spec, options, name, isa, dtype):
    crnn.set_isa(isa)
    base = _run_layer(spec, options, name, dtype, 1)
    for n in THREADS[1:]:
        assert_bitwise(_run_layer(spec, options, name, dtype, n), base, ctx=f"{n} threads vs 1")


def _run_cell(spec, dtype, threads):
    crnn.set_num_threads(threads)
    rng = np.random.default_rng(2)
    cell = crnn.nn.RecurrentCell(spec, I, scaled(spec, (0, 0, 0, 4 * H))[3], dtype=dtype, seed=6)
    xs = rng.standard_normal((T, 4 * B, I)).astype(dtype)
    state, caches = None, []
    for t in range(T):
        state = cell(xs[t], state)
        caches.append(cell.cache)
    parts = list(state) if isinstance(state, tuple) else [state]
    results = list(parts)
    dstate = (
        tuple(np.ones_like(s) for s in parts) if isinstance(state, tuple) else np.ones_like(state)
    )
    for cache in reversed(caches):
        dx, dstate = cell.backward(dstate, cache=cache)
        results.append(dx)
    results += list(dstate) if isinstance(dstate, tuple) else [dstate]
    return results + [g.copy() for g in cell.grads.values()]


@dtype_param
@pytest.mark.parametrize("spec", cell_params(where=lambda s: not s.uses_output_size))
def test_recurrent_cell_loop_bitwise_across_threads(spec, dtype):
    base = _run_cell(spec, dtype, 1)
    for n in THREADS[1:]:
        assert_bitwise(_run_cell(spec, dtype, n), base, ctx=f"{n} threads vs 1")


@pytest.mark.parametrize("spec", cell_params())
def test_layer_default_thread_count_and_repeats_match(spec):
    """The OpenMP default and repeated runs give the same bits too."""
    opts = option_variants(spec)[0]
    one = _run_layer(spec, opts, "bi-lengths", np.float32, 1)
    for threads in (None, None):
        assert_bitwise(
            _run_layer(spec, opts, "bi-lengths", np.float32, threads),
            one,
            ctx="default vs 1 thread",
        )
