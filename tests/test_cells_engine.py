"""The C engine against the NumPy reference (the oracle), for every cell of the
registry.

Contract: array-wise relative error <= 1e-5 in float32 and <= 1e-12 in
float64 for the output, every final state, every array the cache saves and
every gradient, whatever the instruction set and the thread count. Each case
computes the reference once and runs the C engine on every ISA of
`crnn.available_isas()` and several thread counts. Two threads or more run
under `crnn._testing.force_split`, so the small problems here are cut into as
many slices as they allow (batch rows, hidden units, tiles of the products),
each on a thread of its own whatever the machine, and the C library's
counters of what ran are checked after each configuration
(`problems.assert_split`).

Axes: cell x options (every value of every option at least once) x dtype x
lengths (None, random, with zeros) x initial states (given, None) x biases,
on an odd-sized problem; edge shapes (empty time, batch, input, hidden or
output; width 1; a single row); larger problems; the special paths of the
kernels (backward through time in chunks, the batch-1 split of the hidden
units across threads, a team smaller than the slice count, blocking beyond
the kernels' block sizes, saturating inputs); and the semantics both engines
share (lengths, None states, caches that cross engines, NaN confined to its
row).
"""

from __future__ import annotations

import numpy as np
import pytest

import crnn
from crnn import reference as ref
from helpers import assert_bitwise, assert_results_close
from problems import (
    L1_BYTES,
    L2_BYTES,
    SPECS,
    backward,
    bias_id,
    bias_variants,
    cell_params,
    cell_variants,
    configs,
    dtype_param,
    forward,
    forward_splits_columns,
    make_problem,
    option_variants,
    processors,
    run,
    shape_id,
    splits_columns,
    spread_threads,
    variant_id,
    variant_shape_params,
)

ENGINES = {"c": crnn, "reference": ref}
engine_param = pytest.mark.parametrize("engine", list(ENGINES))


def _float64(up):
    dout, dstates = up
    return (
        None if dout is None else dout.astype(np.float64),
        tuple(None if d is None else d.astype(np.float64) for d in dstates),
    )


def _check(p, upstreams=("all",), threads=None, seed=0, isas=None, check=None, oversubscribe=True):
    """The reference once, then the C engine on every ISA x thread count (by
    default each ISA on 1 thread and one of 2, 3, 4: `spread_threads`), for
    each upstream kind: every result within the contract (float32 results
    also against the reference in float64, where the float32 one itself
    lost digits: see assert_results_close), and the recurrence cut as the
    thread count asks (`configs`, which also calls `check`)."""
    ups = [p.upstream(which, seed) for which in upstreams]
    want = [run(ref, p, *up) for up in ups]
    exact = [None] * len(ups)
    if p.dtype == np.float32:
        exact = [run(ref, p.astype(np.float64), *_float64(up)) for up in ups]
    threads = spread_threads(isas=isas) if threads is None else threads
    for config in configs(threads, isas, p, oversubscribe=oversubscribe, check=check):
        for which, up, w, e in zip(upstreams, ups, want, exact):
            assert_results_close(
                run(crnn, p, *up), w, p.dtype, ctx=f"[{config}, upstream {which}]", exact=e
            )


# --------------------------------------------------------------------------
# The main grid: odd sizes, every semantic axis, every ISA on 1 thread and on
# one of 2, 3, 4 (each count on some ISA).
# --------------------------------------------------------------------------
GRID_SHAPES = [(9, 7, 5, 17), (7, 5, 3, 6, 2)]


@pytest.mark.parametrize("bias", [True, False], ids=bias_id)
@pytest.mark.parametrize("states", [True, False], ids=["states", "no_states"])
@pytest.mark.parametrize("lengths", [None, "random", "zeros"], ids=str)
@dtype_param
@pytest.mark.parametrize("spec, options, shape", variant_shape_params(GRID_SHAPES))
def test_grid(spec, options, shape, dtype, lengths, states, bias):
    p = make_problem(
        spec, shape, dtype, seed=17, states=states, bias=bias, lengths=lengths, options=options
    )
    _check(p, upstreams=("all", "none"), seed=17)


# --------------------------------------------------------------------------
# Edge shapes: empty time / batch / input / hidden / output, width 1, one row.
# --------------------------------------------------------------------------
EDGE_SHAPES = [
    (0, 3, 4, 5),  # T = 0
    (4, 0, 3, 5),  # B = 0
    (0, 0, 2, 3),  # T = B = 0
    (5, 3, 4, 1),  # H = 1
    (5, 3, 1, 4),  # I = 1
    (6, 1, 3, 4),  # B = 1
    (1, 1, 1, 1),  # everything 1
    (1, 5, 3, 4),  # T = 1
    (3, 2, 6, 2),  # I > H
    (3, 2, 0, 4),  # I = 0: no input projection
    (3, 2, 4, 0),  # H = 0: empty state
    (5, 3, 2, 4, 0),  # O = 0: empty output (cells with an output size)
    (1, 1, 1, 1, 1),
]


@pytest.mark.parametrize("lengths", [None, "zeros"], ids=str)
@dtype_param
@pytest.mark.parametrize("spec, options, shape", variant_shape_params(EDGE_SHAPES))
def test_edge_shapes(spec, options, shape, dtype, lengths):
    seed = sum(shape)
    if lengths == "zeros" and shape[1] == 1:
        lengths = [0]  # the single row is empty: its states pass through
    p = make_problem(
        spec, shape, dtype, seed=seed, states=seed % 2 == 0, lengths=lengths, options=options
    )
    _check(p, upstreams=("all", "none", "dout", "states"), seed=seed)


@engine_param
@dtype_param
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_T0_passes_states_and_their_gradients_through(spec, dtype, engine):
    """T = 0: the final states are the initial ones (new arrays), their
    gradients pass straight back, and every weight gradient is zero."""
    p = make_problem(spec, (0, 3, 4, 5), dtype, seed=3)
    out, states_n, cache = forward(ENGINES[engine], p)
    assert out.shape == (0, 3, p.width)
    for s, s0 in zip(states_n, p.states):
        np.testing.assert_array_equal(s, s0)
        assert not np.shares_memory(s, s0)
    dstates = tuple(
        np.arange(3 * p.width, dtype=dtype).reshape(3, p.width) + k for k in range(len(spec.states))
    )
    g = backward(ENGINES[engine], spec, cache, None, dstates)
    for s in spec.states:
        np.testing.assert_array_equal(getattr(g, f"d{s}0"), dstates[spec.states.index(s)])
    assert g.dx.shape == (0, 3, 4)
    for name in spec.weight_names:
        assert not np.any(getattr(g, "d" + name)), name


# --------------------------------------------------------------------------
# Larger problems (blocking, vector tails), each on one thread and on the
# thread count its row of LARGER_SHAPES names (rows split unevenly: 33 / 2,
# 40 / 3, 41 / 4, 17 / 3, 41 / 2).
# --------------------------------------------------------------------------
LARGER_SHAPES = {
    (30, 33, 40, 70): 2,
    (12, 40, 20, 36): 3,
    (6, 41, 20, 80): 4,
    (9, 17, 8, 33, 5): 3,
    (6, 41, 20, 40, 35): 2,
}


@pytest.mark.parametrize("lengths", [None, "random", "zeros"], ids=str)
@dtype_param
@pytest.mark.parametrize("spec, options, shape", variant_shape_params(LARGER_SHAPES))
def test_larger_problems(spec, options, shape, dtype, lengths):
    """With lengths: initial states given; without: no states either."""
    p = make_problem(
        spec, shape, dtype, seed=5, states=lengths is not None, lengths=lengths, options=options
    )
    ups = ("all",) if lengths is not None else ("all", "none")
    _check(p, upstreams=ups, threads=(1, LARGER_SHAPES[shape]), seed=5)


# --------------------------------------------------------------------------
# Long sequences: the backward runs through time in chunks of steps (about
# T/8 steps of at least 2048 rows), so these cross chunk boundaries (2048 + 52
# and 228 + 228 + 144 steps), with lengths ending inside chunks.
#
# Seed 33: with some seeds (31 for (600, 9, 6, 11), 32 for (600, 9, 4, 11, 3))
# the Jordan cell's float32 weight gradients with sigmoid / relu and dout only
# cancel down to ~0.1 of their terms, and the array-wise relative error of
# both engines' float32 sums against float64 reaches 1e-5 (C: 1.5e-5, the
# reference: 2.7e-6): a limit of the contract's form, not of the kernels.
# --------------------------------------------------------------------------
CHUNK_CASES = [((2100, 1, 3, 5), "each"), ((600, 9, 6, 11), "each"), ((600, 9, 4, 11, 3), "each")]


def _chunk_params():
    for shape, mode in CHUNK_CASES:
        for p in variant_shape_params([shape], mode):
            for lengths in [None, "random"] if shape[1] == 1 else [None, "random", "zeros"]:
                yield pytest.param(*p.values, lengths, id=f"{p.id}-{lengths}")


@dtype_param
@pytest.mark.parametrize("spec, options, shape, lengths", list(_chunk_params()))
def test_backward_across_time_chunks(spec, options, shape, lengths, dtype):
    p = make_problem(spec, shape, dtype, seed=33, lengths=lengths, options=options)
    _check(p, upstreams=("all", "dout"), threads=(1, 2), seed=33, check=_two_chunks_each)


def _two_chunks_each(seen):
    """Every backward of the configuration ran through at least two chunks."""
    assert seen.bptt_chunks >= 2 * (seen.recurrences - seen.bptt_chunks), seen


# --------------------------------------------------------------------------
# Batch 1 with W_hh beyond a core's L1 cache (gates * H * H * 4 bytes > 32 KiB):
# forward and backward split the hidden units across threads, which meet after
# every step. Each role's H is the first of its candidates past that size for
# the cell's gate count: unequal panel counts per thread (H not a multiple of
# the panel width) on 3 threads, and a wide layer on 4. The split is forced
# (any step count and CPU count split), so a few steps suffice: threads that
# outnumber the processors take turns at every step's barrier, which costs
# a scheduler time slice per step on a busy machine. Every ISA runs 1 and 2
# threads, the ISA in use also the role's thread count. Results must not
# depend on the thread count.
# --------------------------------------------------------------------------
SPLIT_ROLES = [((5, 1, 3), (70, 130), 3), ((4, 1, 5), (130, 200), 4)]
# The same split over 2100 steps, which cross a chunk of the backward (2048
# steps at batch 1).
SPLIT_CHUNK_ROLE = ((2100, 1, 2), (56, 130))


def split_hidden(spec, candidates):
    return next(H for H in candidates if spec.gates * H * H * 4 > L1_BYTES)


def _split_params(roles):
    """Every option setting with initial states; the defaults also without.
    Cells with an output layer never split one row (see driver.inc)."""
    for spec in SPECS:
        if spec.uses_output_size:
            continue
        for i, opts in enumerate(option_variants(spec)):
            for (T, B, I), candidates, threads in roles:
                shape = (T, B, I, split_hidden(spec, candidates))
                for states in (True, False) if i == 0 else (True,):
                    yield pytest.param(
                        spec,
                        opts,
                        shape,
                        states,
                        threads,
                        id=f"{variant_id(spec, opts)}-{shape_id(shape)}"
                        f"{'' if states else '-no_states'}",
                    )


def _split_check(p, isa_threads, oversubscribe=True, check=None):
    """For each ISA and its thread counts (the first 1): 1 thread within the
    contract, more threads bitwise the same, and each of those really split
    the hidden units (`configs`)."""
    up = p.upstream("all", seed=12)
    want = run(ref, p, *up)
    for isa, threads in isa_threads.items():
        results = [
            run(crnn, p, *up)
            for _ in configs(threads, [isa], p, oversubscribe=oversubscribe, check=check)
        ]
        got = dict(zip(threads, results))
        assert_results_close(got[1], want, p.dtype, ctx=f"[{isa}]")
        for n in threads[1:]:
            assert_bitwise(got[n], got[1], ctx=f"[{isa}] {n} threads vs 1")


@pytest.mark.parametrize("lengths", [None, "random"], ids=str)
@dtype_param
@pytest.mark.parametrize("spec, options, shape, states, threads", list(_split_params(SPLIT_ROLES)))
def test_batch1_unit_split(spec, options, shape, states, threads, dtype, lengths):
    p = make_problem(spec, shape, dtype, seed=11, states=states, lengths=lengths, options=options)
    assert splits_columns(p)
    isa_threads = {isa: (1, 2) for isa in crnn.available_isas()}
    isa_threads[crnn.build_info()["isa"]] = (1, 2, threads)
    _split_check(p, isa_threads)


@pytest.mark.parametrize("lengths", [None, "random"], ids=str)
@pytest.mark.parametrize("spec", cell_params(where=lambda s: not s.uses_output_size))
def test_batch1_unit_split_across_time_chunks(spec, lengths):
    """float64, initial states given, the ISA in use: two threads over two
    chunks of the backward (a length that ends inside the first chunk, too).
    At most one thread per processor: 2100 steps of a step barrier between
    threads that take turns on one processor would take seconds."""
    (T, B, I), candidates = SPLIT_CHUNK_ROLE
    p = make_problem(
        spec, (T, B, I, split_hidden(spec, candidates)), np.float64, seed=11, lengths=lengths
    )
    assert splits_columns(p)
    isa_threads = {crnn.build_info()["isa"]: (1, 2)}
    _split_check(p, isa_threads, oversubscribe=False, check=_two_chunks_each)


# Several rows with a W_hh beyond a core's L2 cache: the forward's threads
# split the hidden units of every row (one barrier per step), the backward's
# the batch rows; (T, B, I) and candidate hidden sizes.
ROWS_SPLIT_ROLE = ((6, 5, 3), (264, 304, 528, 800))


@pytest.mark.parametrize("lengths", [None, "random"], ids=str)
@dtype_param
@pytest.mark.parametrize(
    "spec",
    cell_params(where=lambda s: not s.uses_output_size and s.name != "gru_reset_before"),
)
def test_rows_unit_split(spec, dtype, lengths):
    (T, B, I), candidates = ROWS_SPLIT_ROLE
    itemsize = np.dtype(dtype).itemsize
    H = next(H for H in candidates if spec.gates * H * H * itemsize > L2_BYTES)
    p = make_problem(spec, (T, B, I, H), dtype, seed=13, lengths=lengths)
    assert forward_splits_columns(p) and not splits_columns(p)
    isa_threads = {isa: (1, 2) for isa in crnn.available_isas()}
    isa_threads[crnn.build_info()["isa"]] = (1, 2, 3)
    _split_check(p, isa_threads)


# --------------------------------------------------------------------------
# A team smaller than the slice count: with more slices of batch rows than
# processors (and no oversubscription) each thread takes several slices in
# turn, whatever the number of processors.
# --------------------------------------------------------------------------
@dtype_param
@pytest.mark.parametrize("spec, options", cell_variants())
def test_threads_take_several_slices(spec, options, dtype):
    n = processors() + 2
    p = make_problem(spec, (5, n + 3, 4, 7), dtype, seed=41, lengths="random", options=options)
    _check(p, threads=(n,), seed=41, oversubscribe=False, check=_shared_slices)


def _shared_slices(seen):
    """Every recurrence of the configuration gave a thread several slices."""
    assert seen.shared_slices == seen.recurrences >= 2, seen


# --------------------------------------------------------------------------
# Past the kernels' block sizes (depth 256, 2048 columns).
# --------------------------------------------------------------------------
@dtype_param
@pytest.mark.parametrize(
    "spec, options, shape", variant_shape_params([(3, 4, 300, 10), (3, 5, 7, 260), (2, 3, 2100, 5)])
)
def test_blocking_shapes(spec, options, shape, dtype):
    p = make_problem(spec, shape, dtype, seed=23, lengths="zeros", options=options)
    # Keep pre-activations O(1) for wide inputs (input weights ~ 1/sqrt(I)):
    # with the default ~1/sqrt(H) scale and I=2100 every unit saturates, and
    # the float32 derivatives near saturation are then mostly rounding noise
    # (that regime is test_large_magnitude_inputs').
    I, H = p.sizes["I"], p.sizes["H"]
    for w in spec.weights:
        if w.shape[-1] == "I" and I:
            p.weights[w.name] = (p.weights[w.name] * np.sqrt(max(H, 1) / I)).astype(dtype)
    _check(p, threads=(2,), seed=23)


@dtype_param
@pytest.mark.parametrize("spec, options", cell_variants())
def test_large_magnitude_inputs(spec, options, dtype):
    """Saturating pre-activations (|a| up to ~40): the activations' tails."""
    p = make_problem(spec, (10, 16, 8, 24), dtype, seed=31, lengths="zeros", options=options)
    p = p.replace(x=p.x * dtype(10))
    _check(p, threads=(1,), seed=31)


# --------------------------------------------------------------------------
# Biases: each one alone (all and none are in the grid).
# --------------------------------------------------------------------------
def _bias_params():
    for spec in SPECS:
        for bias in bias_variants(spec)[2:]:
            yield pytest.param(spec, bias, id=f"{spec.name}-{bias_id(bias)}")


@dtype_param
@pytest.mark.parametrize("spec, bias", list(_bias_params()))
def test_bias_variants(spec, bias, dtype):
    p = make_problem(spec, (7, 6, 5, 9), dtype, seed=8, bias=bias, lengths="random")
    _check(p, threads=(2,), seed=8)


# --------------------------------------------------------------------------
# Both APIs, both engines: caches cross engines; named == generic.
# --------------------------------------------------------------------------
@pytest.mark.parametrize("lengths", [None, "random", "zeros"], ids=str)
@dtype_param
@pytest.mark.parametrize("spec, options", cell_variants())
def test_cross_engine_caches(spec, options, dtype, lengths):
    p = make_problem(
        spec,
        (8, 6, 5, 7),
        dtype,
        seed=11,
        lengths=lengths,
        states=lengths != "random",
        options=options,
    )
    dout, dstates = p.upstream("all", 11)
    _, _, cache_c = forward(crnn, p)
    out_r, states_r, cache_r = forward(ref, p)
    want = backward(ref, spec, cache_r, dout, dstates)
    for ctx, got in (
        ("C(ref cache)", backward(crnn, spec, cache_r, dout, dstates)),
        ("ref(C cache)", backward(ref, spec, cache_c, dout, dstates)),
    ):
        assert_results_close(got._asdict(), want._asdict(), dtype, ctx=ctx)


@engine_param
@pytest.mark.parametrize("spec, options", cell_variants())
def test_named_entry_points_equal_the_generic_api(spec, options, engine):
    """``<cell>_forward`` / ``<cell>_backward`` are the generic functions."""
    p = make_problem(spec, (5, 4, 3, 6), np.float64, seed=2, lengths="zeros", options=options)
    up = p.upstream("all", 2)
    assert_bitwise(
        run(ENGINES[engine], p, *up, api="named"),
        run(ENGINES[engine], p, *up),
        ctx="named vs generic",
    )
    module = {"c": "crnn.functional", "reference": "crnn.reference"}[engine]
    assert getattr(ENGINES[engine], f"{spec.name}_forward").__module__ == module


# --------------------------------------------------------------------------
# Exact semantics, for both engines (the oracle is checked too).
# --------------------------------------------------------------------------
@engine_param
@dtype_param
@pytest.mark.parametrize("spec, options", cell_variants())
def test_lengths_semantics_exact(spec, options, dtype, engine):
    """Past its length a row's outputs are 0 and its states held; its final
    output state is its output at its last valid step (a cell's output is its
    first state), or its initial state for a length of 0; dout at padded
    steps is ignored and dx there is 0; a row of length 0 passes its states'
    gradients straight back."""
    mod = ENGINES[engine]
    lengths = [3, 0, 6, 1, 0]
    p = make_problem(spec, (6, 5, 3, 4), dtype, seed=21, lengths=lengths, options=options)
    out, states_n, cache = forward(mod, p)
    for b, L in enumerate(lengths):
        assert not np.any(out[L:, b]), f"out[{L}:, {b}] must be zero"
        if L == 0:
            for s, s0 in zip(states_n, p.states):
                np.testing.assert_array_equal(s[b], s0[b])
        else:
            np.testing.assert_array_equal(states_n[0][b], out[L - 1, b])
            if "relu" not in options.values():  # relu may legitimately give all zeros
                assert np.any(out[L - 1, b] != 0)
    dout, dstates = p.upstream("all", 21)
    g = backward(mod, spec, cache, dout, dstates)
    for b, L in enumerate(lengths):
        assert not np.any(g.dx[L:, b]), f"dx[{L}:, {b}] must be zero"
        if L == 0:
            for s, d in zip(spec.states, dstates):
                np.testing.assert_array_equal(getattr(g, f"d{s}0")[b], d[b])
    noisy = dout.copy()
    noisy[~p.valid()] = 1e3
    assert_bitwise(
        backward(mod, spec, cache, noisy, dstates)._asdict(),
        g._asdict(),
        ctx="dout at padded steps",
    )


@engine_param
@dtype_param
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_none_states_equal_zeros(spec, dtype, engine):
    mod = ENGINES[engine]
    p = make_problem(spec, (5, 4, 3, 6), dtype, seed=2, states=False, lengths="zeros")
    up = p.upstream("all", 2)
    a = run(mod, p, *up)
    b = run(mod, p.zero_states(), *up)
    assert_results_close(a, b, dtype)
    empty = np.asarray(p.lengths) == 0
    for name in spec.final_states:
        assert not np.any(a[name][empty]), name


@dtype_param
@pytest.mark.parametrize("spec, options", cell_variants())
def test_full_lengths_equal_no_lengths(spec, options, dtype):
    """The same numbers (bitwise in the reference, whose steps are the same
    operations either way)."""
    p = make_problem(spec, (7, 5, 4, 6), dtype, seed=4, options=options)
    full = p.replace(lengths=np.full(5, 7))
    up = p.upstream("all", 4)
    assert_bitwise(run(ref, full, *up), run(ref, p, *up), ctx="reference")
    for config in configs(threads=(2,), problem=p):
        assert_results_close(run(crnn, full, *up), run(crnn, p, *up), dtype, ctx=config)


@pytest.mark.parametrize("spec, options", cell_variants())
def test_float32_is_computed_in_float32_accuracy(spec, options):
    """float32 C results agree with the float64 reference to float32 accuracy
    (guards against an engine that silently computes in lower precision)."""
    p64 = make_problem(spec, (12, 9, 10, 20), np.float64, seed=9, lengths="random", options=options)
    want = run(ref, p64, with_backward=False)
    p32 = p64.astype(np.float32)
    for config in configs(threads=(1,), problem=p32):
        got = run(crnn, p32, with_backward=False)
        for name in ("out",) + spec.final_states:
            assert_results_close(
                {name: got[name]}, {name: want[name].astype(np.float32)}, tol=1e-5, ctx=config
            )


@engine_param
@dtype_param
@pytest.mark.parametrize("spec, options", cell_variants())
def test_nan_stays_in_its_row(spec, options, dtype, engine):
    """A NaN input poisons its own row from that step on, and nothing else
    (rows are packed together into tiles in the C engine)."""
    mod = ENGINES[engine]
    p = make_problem(
        spec, (7, 9, 4, 6), dtype, seed=33, lengths=[7, 5, 7, 0, 7, 7, 3, 7, 6], options=options
    )
    x = p.x.copy()
    x[2, 4, 1] = np.nan
    checked = p if engine == "c" else None
    for _ in configs(threads=(2,), isas=[crnn.build_info()["isa"]], problem=checked):
        base = run(mod, p, with_backward=False)
        bad = run(mod, p.replace(x=x), with_backward=False)
    assert np.all(np.isnan(bad["out"][2:, 4])) and np.all(np.isnan(bad[spec.final_states[0]][4]))
    assert not np.any(np.isnan(bad["out"][:2, 4]))
    others = [b for b in range(p.B) if b != 4]
    for name in ("out",) + spec.final_states:
        rows = (slice(None), others) if name == "out" else (others,)
        np.testing.assert_array_equal(bad[name][rows], base[name][rows], err_msg=name)


# --------------------------------------------------------------------------
# The registry and the C library describe the same cells
# --------------------------------------------------------------------------
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_registry_agrees_with_the_c_library(spec):
    """What Python allocates for a cell (crnn.cells) is what the C driver
    reads and writes (crnn_cell_info_get): gates, states, the saved arrays'
    widths, whether the state is the output, whether the biases' gradients
    differ. A disagreement would make the driver overrun a buffer."""
    from crnn import _core

    info = _core.CELL_INFO[spec.name]
    assert info["gates"] == spec.gates
    assert info["states"] == len(spec.states)
    assert info["state_is_output"] == (spec.state_size == "O")
    widths = tuple(spec.gates if symbol == "G" else 1 for _, symbol in spec.saved)
    assert info["saved_gates"] == widths
    assert info["separate_bias_grads"] == spec.separate_bias_grads
    assert set(_core.CELL_INFO) == set(crnn.cells.REGISTRY)
    for option in spec.options:
        if option.role == "precision":  # a dtype code: float32 or its bf16 products
            assert set(option.choices) == {"native", "bf16"} and _core.F32_BF16 >= 0
        else:
            assert set(option.choices) <= set(_core.ACTIVATIONS)
