"""Property-based tests (hypothesis): the C engine against the reference.

Random cells of the registry with random options, shapes (zero sizes
included), dtypes, lengths (with zeros, all zeros), initial states and
biases present or not, upstream gradients present or not, thread counts 1-4
(two or more under `crnn._testing.force_split`, each checked by the C
library's counters to have cut the problem as far as it allows) and
instruction sets: the output, the final states, the cache and every
gradient within the numerical contract (relative error <= 1e-5 in float32,
<= 1e-12 in float64). Also the layers (C vs NumPy backend) and gradient
clipping.

Settings are fixed (max_examples, derandomize=True, deadline=None) so the
run is fast and the same every time: no flaky failures, no database needed.
"""

from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import (  # noqa: E402
    HealthCheck,
    given,
    settings,
    strategies as st,  # noqa: E402
)

import crnn  # noqa: E402
from crnn import reference as ref  # noqa: E402
from crnn._testing import counts, force_split  # noqa: E402
from helpers import assert_rel_close, assert_results_close  # noqa: E402
from problems import (  # noqa: E402
    SPECS,
    bias_variants,
    configs,
    make_problem,
    option_variants,
    run,
)

SETTINGS = dict(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
DTYPES = st.sampled_from([np.float32, np.float64])
ISAS = st.sampled_from(crnn.available_isas())


@st.composite
def cell_problems(draw):
    """A random problem of a random registered cell, and its upstream gradients."""
    spec = draw(st.sampled_from(SPECS))
    options = draw(st.sampled_from(option_variants(spec, "all")))
    dtype = draw(DTYPES)
    T, B = draw(st.integers(0, 7)), draw(st.integers(0, 9))
    I, H = draw(st.integers(0, 9)), draw(st.integers(0, 20))  # noqa: E741
    O = draw(st.integers(0, 6))  # noqa: E741 - used by cells with an output size
    kind = draw(st.sampled_from(["none", "random", "zeros", "full"]))
    int_type = draw(st.sampled_from([np.int64, np.int32, np.uint8]))
    lengths = {
        "none": None,
        "zeros": [0] * B,
        "random": draw(st.lists(st.integers(0, T), min_size=B, max_size=B)),
        "full": np.full(B, T, dtype=int_type),
    }[kind]
    p = make_problem(
        spec,
        (T, B, I, H, O),
        dtype,
        seed=draw(st.integers(0, 2**32 - 1)),
        states=draw(st.booleans()),
        bias=draw(st.sampled_from(bias_variants(spec))),
        lengths=lengths,
        options=options,
        scale=draw(st.sampled_from([0.1, 1.0, 5.0])),
    )
    up = p.upstream(
        draw(st.sampled_from(["all", "dout", "states", "none"])), seed=draw(st.integers(0, 1000))
    )
    return p, up


@settings(**SETTINGS)
@given(problem=cell_problems(), threads=st.integers(1, 4), isa=ISAS)
def test_c_engine_matches_reference(problem, threads, isa):
    p, up = problem
    try:
        for _ in configs((threads,), [isa], problem=p):
            c = run(crnn, p, *up)
    finally:
        crnn.set_num_threads(None)
        crnn.set_isa("auto")
    r = run(ref, p, *up)
    ctx = f"{p.spec.name} {p.options} threads={threads} isa={isa}"
    assert_results_close(c, r, p.dtype, ctx=ctx)
    # Semantics both engines share: padded outputs are 0; an empty row keeps its states.
    if p.lengths is not None:
        assert not c["out"][~p.valid()].any(), ctx
        empty = np.asarray(p.lengths, dtype=np.int64) == 0
        for name, s0 in zip(p.spec.final_states, p.zero_states().states):
            np.testing.assert_array_equal(c[name][empty], s0[empty])


@settings(**SETTINGS)
@given(problem=cell_problems())
def test_cross_engine_caches(problem):
    """A cache from one engine's forward gives the same gradients in the other's backward."""
    from problems import backward, forward

    p, (dout, dstates) = problem
    _, _, cache_c = forward(crnn, p)
    _, _, cache_r = forward(ref, p)
    g_cr = backward(ref, p.spec, cache_c, dout, dstates)
    g_rc = backward(crnn, p.spec, cache_r, dout, dstates)
    assert_results_close(g_rc._asdict(), g_cr._asdict(), p.dtype)


@st.composite
def layer_problems(draw):
    spec = draw(st.sampled_from(SPECS))
    dtype = draw(DTYPES)
    L = draw(st.integers(1, 3))
    bidirectional = draw(st.booleans())
    batch_first = draw(st.booleans())
    T, B = draw(st.integers(0, 6)), draw(st.integers(1, 6))
    I, H = draw(st.integers(1, 6)), draw(st.integers(1, 10))  # noqa: E741
    unbatched = draw(st.booleans()) and not batch_first
    lengths = None
    if not unbatched and draw(st.booleans()):
        lengths = draw(st.lists(st.integers(0, T), min_size=B, max_size=B))
    cfg = dict(
        input_size=I,
        hidden_size=H,
        num_layers=L,
        bidirectional=bidirectional,
        batch_first=batch_first,
        bias=draw(st.booleans()),
        dtype=dtype,
        seed=draw(st.integers(0, 1000)),
        **draw(st.sampled_from(option_variants(spec, "all"))),
    )
    W = H
    if spec.uses_output_size:
        cfg["output_size"] = W = draw(st.integers(1, 5))
    D = 2 if bidirectional else 1
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if unbatched:
        x_shape, s_shape, out_shape = (T, I), (L * D, W), (T, D * W)
    else:
        x_shape = (B, T, I) if batch_first else (T, B, I)
        s_shape, out_shape = (L * D, B, W), ((B, T, D * W) if batch_first else (T, B, D * W))
    x = rng.standard_normal(x_shape).astype(dtype)
    n = len(spec.states)

    def state():
        parts = [
            rng.standard_normal(s_shape).astype(dtype) if draw(st.booleans()) else None
            for _ in range(n)
        ]
        return parts[0] if n == 1 else tuple(parts)

    dout = rng.standard_normal(out_shape).astype(dtype)
    return spec, cfg, x, state(), lengths, dout, state()


@settings(**SETTINGS)
@given(problem=layer_problems(), threads=st.integers(1, 4))
def test_layer_c_matches_numpy_backend(problem, threads):
    spec, cfg, x, s0, lengths, dout, ds = problem
    res, seen = {}, {}
    for backend in ("c", "numpy"):
        with force_split(threads), counts() as seen[backend]:
            layer = crnn.nn.recurrent_layer(spec, **cfg, backend=backend)
            out, s_n = layer(x, s0, lengths=lengths)
            dx, d0 = layer.backward(dout, ds)
        parts = lambda v: list(v) if isinstance(v, tuple) else [v]  # noqa: E731
        res[backend] = [out, *parts(s_n), dx, *parts(d0)] + list(layer.grads.values())
    # The C layer's recurrences were cut into as many slices as its rows allow.
    if x.ndim == 2:  # unbatched
        T, rows = x.shape[0], 1
    else:
        T, rows = (x.shape[1], x.shape[0]) if cfg["batch_first"] else x.shape[:2]
    c = seen["c"]
    assert c.max_slices == min(threads, rows) if T else c.recurrences == 0, c
    for i, (a, b) in enumerate(zip(res["c"], res["numpy"])):
        assert a.shape == b.shape and a.dtype == b.dtype, i
        # Stacked layers feed one engine's (slightly different) output to the next.
        tol = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-11}[a.dtype]
        assert_rel_close(a, b, tol=tol, name=f"{spec.name} result #{i}")


@settings(**SETTINGS)
@given(
    dtype=DTYPES,
    sizes=st.lists(st.integers(0, 3000), min_size=0, max_size=6),
    max_norm=st.sampled_from([0.0, 1e-3, 0.5, 10.0, 1e6]),
    p=st.sampled_from([1.0, 2.0, 3.0, 0.5, float("inf"), "inf"]),
    clip=st.sampled_from([0.0, 0.01, 1.0, 100.0]),
    seed=st.integers(0, 2**32 - 1),
    threads=st.integers(1, 4),
)
def test_clipping_matches_reference(dtype, sizes, max_norm, p, clip, seed, threads):
    rng = np.random.default_rng(seed)
    base = [(rng.standard_normal(n) * rng.choice([1e-3, 1.0, 1e3])).astype(dtype) for n in sizes]
    a_c, a_r = [a.copy() for a in base], [a.copy() for a in base]
    with force_split(threads):
        t_c = crnn.clip_grad_norm(a_c, max_norm, norm_type=p)
    t_r = ref.clip_grad_norm(a_r, max_norm, norm_type=p)
    assert t_c == pytest.approx(t_r, rel=1e-12, abs=0)
    for a, b in zip(a_c, a_r):
        assert_rel_close(a, b, dtype)
    crnn.clip_grad_value(a_c, clip)
    ref.clip_grad_value(a_r, clip)
    for a, b in zip(a_c, a_r):
        assert_rel_close(a, b, dtype)
        assert np.all(np.abs(a) <= dtype(clip))
