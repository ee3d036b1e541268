"""Bitwise reproducibility for every cell: the same bits for 1, 2, 3 and 4
threads, on every ISA, and on repeated calls (fixed reduction order, no
races), through the functional API and through the layers (outputs,
gradients and optimizer updates).

crnn starts a thread only for about 1M multiply-adds of work, and never more
threads than processors; these problems are far smaller, so every count
above 1 runs under `crnn._testing.force_split`: each problem is cut into as
many slices as it allows (batch rows, tiles of the products), each on a
thread of its own whatever the machine, and the C library's counters of what
ran prove it (`problems.assert_split`). Batch sizes are divisible by no
thread count; the last shape crosses a chunk of the backward through time.
The hidden size is scaled by 1/sqrt(gates) so that every cell does about the
Elman RNN's work on each shape. A cell's option settings are spread over the
shapes (shape i runs setting i mod n), so every option value is checked
without multiplying the cases: how a result is cut between threads does not
depend on the activation.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest

import crnn
from crnn._testing import counts, force_split, reset_backoff
from helpers import assert_bitwise
from problems import (
    SPECS,
    assert_split,
    cell_params,
    cell_variants,
    configs,
    copies,
    dtype_param,
    make_problem,
    option_variants,
    processors,
    run,
    shape_id,
    variant_id,
)

THREADS = [1, 2, 3, 4]
SHAPES = [(11, 13, 19, 37), (20, 29, 33, 70), (24, 97, 16, 24)]


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


def _per_thread_count(p, up, isa, threads=THREADS, **split):
    """p's results for each thread count (forced splits, checked)."""
    results = [copies(run(crnn, p, *up)) for _ in configs(threads, [isa], p, **split)]
    return dict(zip(threads, results))


@dtype_param
@pytest.mark.parametrize("spec, options, shape", list(_shape_params()))
def test_threads_bitwise_identical(spec, options, shape, dtype):
    p = make_problem(spec, shape, dtype, seed=shape[1], lengths="zeros", options=options)
    up = p.upstream("all", seed=99)
    for isa in crnn.available_isas():
        res = _per_thread_count(p, up, isa)
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
        res = _per_thread_count(p, up, isa)
        for n in THREADS[1:]:
            assert_bitwise(res[n], res[1], ctx=f"[{isa}] threads={n} vs 1")


@dtype_param
@pytest.mark.parametrize("spec, options", cell_variants())
def test_threads_take_several_slices_bitwise(spec, options, dtype):
    """More slices of batch rows than processors, no oversubscription: each
    thread takes several slices in turn, whatever the number of processors."""
    n = processors() + 2
    p = make_problem(spec, (6, n + 3, 5, 9), dtype, seed=7, lengths="random", options=options)
    up = p.upstream("all", seed=8)
    for isa in crnn.available_isas():
        res = _per_thread_count(
            p, up, isa, threads=(1, n), oversubscribe=False, check=_several_slices
        )
        assert_bitwise(res[n], res[1], ctx=f"[{isa}] {n} threads vs 1")


def _several_slices(seen):
    assert seen.max_slices < 2 or seen.shared_slices == seen.recurrences, seen


@pytest.mark.parametrize("threads", [1, 3])
@dtype_param
@pytest.mark.parametrize("spec", cell_params())
def test_repeated_calls_identical(spec, dtype, threads):
    options = option_variants(spec)[-1]
    p = make_problem(
        spec, scaled(spec, (12, 21, 17, 45)), dtype, seed=3, lengths="random", options=options
    )
    up = p.upstream("all", seed=6)
    for _ in configs((threads,), problem=p):
        first = copies(run(crnn, p, *up))
        for i in range(5):
            assert_bitwise(
                run(crnn, p, *up), first, ctx=f"[{crnn.build_info()['isa']}] call {i + 2}"
            )


@dtype_param
@pytest.mark.parametrize("spec, options", cell_variants())
def test_default_thread_count_matches_explicit(spec, options, dtype):
    """The OpenMP-default thread count (split as far as the problem allows)
    gives the same bits as an explicit single thread."""
    p = make_problem(
        spec, scaled(spec, (10, 17, 9, 23)), dtype, seed=8, lengths="random", options=options
    )
    up = p.upstream("dout", seed=7)
    crnn.set_num_threads(None)
    default = crnn.get_num_threads()
    reset_backoff()
    with force_split(), counts() as seen:
        got = copies(run(crnn, p, *up))
    assert_split(seen, p, default, ctx=f"default ({default} threads)")
    crnn.set_num_threads(1)
    assert_bitwise(got, run(crnn, p, *up), ctx="default vs 1 thread")


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


def _threads(threads):
    """A context for a run on `threads` threads, split as far as each call
    allows (None: OpenMP's default count, back-off cleared), that checks
    when it ends that the run had a team that large."""
    if threads == 1:
        crnn.set_num_threads(1)
        return _team_of(1, contextlib.nullcontext())
    if threads is None:
        reset_backoff()
        return _team_of(crnn.get_num_threads(), force_split())
    return _team_of(threads, force_split(threads))


@contextlib.contextmanager
def _team_of(n, split):
    with split, counts() as seen:
        yield
    assert seen.max_team == n, f"{n} threads asked: {seen}"


def _run_layer(spec, options, name, dtype, threads):
    with _threads(threads):
        return _layer_results(spec, options, name, dtype)


def _layer_results(spec, options, name, dtype):
    kw = LAYER_CONFIGS[name]
    rng = np.random.default_rng(1)
    layer = _layer(spec, options, dtype, seed=5, **kw)
    opt = crnn.optim.Adam(layer.params, lr=1e-2, clip_grad_norm=0.5)
    if name == "nobias-unbatched":
        x = rng.standard_normal((T, I)).astype(dtype)
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
    with _threads(threads):
        return _cell_results(spec, dtype)


def _cell_results(spec, dtype):
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
