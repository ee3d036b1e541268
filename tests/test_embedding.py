"""crnn.Embedding and the functional pair embedding_forward / embedding_backward.

- parity with torch.nn.Embedding in float64 (<= 1e-10, gradients and
  padding_idx included), ids of any shape and integer dtype;
- the C engine's functions against the reference (float32 <= 1e-5, float64
  <= 1e-12) on shapes of every kind (both run on NumPy: no thread count
  applies);
- bad inputs: a clear TypeError / ValueError naming the argument, raised
  before anything runs, nothing modified;
- initialisation, central differences, save / load.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import crnn
from crnn import functional as F, reference as R
from helpers import HAVE_TORCH, REL_TOL, rel_error

ENGINES = {"c": F, "numpy": R}
DTYPES = [np.float32, np.float64]


def _problem(shape, V, D, dtype, seed=0, pad=None):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, V, size=shape)
    if pad is not None and ids.size:
        ids.reshape(-1)[::3] = pad % V  # make sure the padding row is hit
    weight = rng.standard_normal((V, D)).astype(dtype)
    dout = rng.standard_normal(tuple(shape) + (D,)).astype(dtype)
    return ids, weight, dout


# --------------------------------------------------------------------------
# Semantics: the NumPy formula, torch
# --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ENGINES)
@pytest.mark.parametrize("shape", [(), (7,), (5, 3), (2, 3, 4), (0, 4)])
@pytest.mark.parametrize("pad", [None, 2, -1])
def test_matches_the_formula(backend, shape, pad):
    eng = ENGINES[backend]
    V, D = 6, 5
    ids, weight, dout = _problem(shape, V, D, np.float64, pad=pad)
    out = eng.embedding_forward(ids, weight, pad)
    assert out.shape == ids.shape + (D,) and out.dtype == np.float64
    np.testing.assert_array_equal(out, weight[ids])
    dw = eng.embedding_backward(ids, dout, V, pad)
    want = np.zeros((V, D))
    for i, v in zip(ids.reshape(-1), dout.reshape(-1, D)):
        want[i] += v
    if pad is not None:
        want[pad % V] = 0
    assert dw.shape == (V, D) and dw.dtype == np.float64
    np.testing.assert_allclose(dw, want, rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize(
    "dtype", [np.int8, np.uint8, np.int16, np.int32, np.uint32, np.int64, np.uint64]
)
def test_any_integer_dtype(dtype):
    ids = np.array([[0, 3], [2, 3]], dtype=dtype)
    w = np.arange(12.0).reshape(4, 3)
    for eng in ENGINES.values():
        np.testing.assert_array_equal(eng.embedding_forward(ids, w), w[ids.astype(np.int64)])
        np.testing.assert_array_equal(
            eng.embedding_backward(ids, np.ones((2, 2, 3)), 4),
            [[1, 1, 1], [0, 0, 0], [1, 1, 1], [2, 2, 2]],
        )
    # Python lists and scalars are ids too.
    np.testing.assert_array_equal(F.embedding_forward([1, 2], w), w[[1, 2]])
    np.testing.assert_array_equal(F.embedding_forward(3, w), w[3])


def test_both_engines_share_signatures():
    for name in ("embedding_forward", "embedding_backward"):
        assert inspect.signature(getattr(F, name)) == inspect.signature(getattr(R, name))
        assert getattr(crnn, name) is getattr(F, name)
        assert getattr(R, name).__doc__ and getattr(F, name).__doc__


@pytest.mark.skipif(not HAVE_TORCH, reason="torch not installed")
@pytest.mark.parametrize("backend", ENGINES)
@pytest.mark.parametrize("pad", [None, 0, 3, -2])
@pytest.mark.parametrize("shape", [(9,), (6, 4), (2, 3, 5)])
def test_layer_matches_torch(backend, pad, shape):
    import torch

    V, D = 7, 5
    ref = torch.nn.Embedding(V, D, padding_idx=pad, dtype=torch.float64)
    with torch.no_grad():
        ref.weight.normal_()  # a non-zero padding row too: the forward reads it
    emb = crnn.Embedding(V, D, padding_idx=pad, dtype=np.float64, backend=backend)
    emb.load_state_dict(ref.state_dict())
    rng = np.random.default_rng(1)
    ids = rng.integers(0, V, size=shape)
    if pad is not None:
        ids.reshape(-1)[::2] = pad % V
    dout = rng.standard_normal(shape + (D,))

    out_t = ref(torch.from_numpy(ids))
    out_t.backward(torch.from_numpy(dout))
    out = emb(ids)
    emb.backward(dout)
    assert rel_error(out, out_t.detach().numpy()) <= 1e-10
    assert rel_error(emb.grads["weight"], ref.weight.grad.numpy()) <= 1e-10
    if pad is not None:
        assert not emb.grads["weight"][pad % V].any()
    # Initialisation: torch zeroes the padding row; so does crnn.
    fresh = crnn.Embedding(V, D, padding_idx=pad, seed=0)
    fresh_t = torch.nn.Embedding(V, D, padding_idx=pad)
    if pad is not None:
        assert not fresh.params["weight"][pad % V].any()
        assert not fresh_t.weight[pad % V].any()


def test_initialisation_is_standard_normal_and_seeded():
    e = crnn.Embedding(400, 50, seed=3, dtype=np.float64)
    w = e.params["weight"]
    assert abs(w.mean()) < 0.02 and abs(w.std() - 1) < 0.02
    np.testing.assert_array_equal(
        w, crnn.Embedding(400, 50, seed=3, dtype=np.float64).params["weight"]
    )
    assert not np.array_equal(w, crnn.Embedding(400, 50, seed=4, dtype=np.float64).params["weight"])
    assert crnn.Embedding(4, 3).params["weight"].dtype == np.float32
    assert crnn.nn.Embedding is crnn.Embedding


@pytest.mark.parametrize("backend", ENGINES)
def test_gradcheck(backend):
    rng = np.random.default_rng(2)
    e = crnn.Embedding(6, 3, padding_idx=1, dtype=np.float64, seed=0, backend=backend)
    ids = rng.integers(0, 6, size=(4, 3))
    ids[0, 0] = 1
    target = rng.standard_normal((4, 3, 3))

    def f():
        return float(np.sum(np.tanh(e(ids)) * target))

    e.zero_grad()
    out = e(ids)
    e.backward((1 - np.tanh(out) ** 2) * target)
    # The padding row has no gradient by definition (torch's semantics), so
    # check the other rows against central differences.
    rows = [r for r in range(6) if r != 1]
    w = e.params["weight"]
    sub = {"w": w}
    rep = crnn.gradcheck(f, sub, {"w": e.grads["weight"]})
    bad = [fl for fl in rep.failures if fl[1][0] in rows]
    assert not bad, str(rep)
    assert not e.grads["weight"][1].any()


def test_backward_accumulates_and_uses_saved_cache():
    e = crnn.Embedding(5, 2, dtype=np.float64, seed=0)
    e([0, 1])
    saved = e.cache
    e([4, 4, 4])
    e.backward(np.ones((3, 2)))
    e.backward(np.ones((2, 2)), cache=saved)
    np.testing.assert_array_equal(e.grads["weight"], [[1, 1], [1, 1], [0, 0], [0, 0], [3, 3]])
    e.zero_grad()
    assert not e.grads["weight"].any()
    with pytest.raises(RuntimeError, match="before forward"):
        crnn.Embedding(3, 2).backward(np.ones((1, 2)))


# --------------------------------------------------------------------------
# C against the reference; threads
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pad", [None, 5])
def test_c_matches_reference(dtype, pad):
    ids, weight, dout = _problem((64, 33), 50, 70, dtype, seed=4, pad=pad)
    np.testing.assert_array_equal(
        F.embedding_forward(ids, weight, pad), R.embedding_forward(ids, weight, pad)
    )
    got = F.embedding_backward(ids, dout, 50, pad)
    want = R.embedding_backward(ids, dout, 50, pad)
    assert got.dtype == want.dtype == dtype
    assert rel_error(got, want) <= REL_TOL[dtype]


def _zipf_ids(shape, V, seed):
    """Ids as skewed as words in text: a few rows take most of them."""
    rng = np.random.default_rng(seed)
    return np.minimum(rng.zipf(1.3, size=shape) - 1, V - 1)


# Problems with (num_embeddings + ids) * dim >= 4M additions: enough work for
# the C engine to cut the rows into 4 slices at 4 threads (a thread gets ~1M
# by default), and 2 or 3 at 2 or 3.
SPLIT_PROBLEMS = {
    "many rows, wide": (1000, 64, (400, 170), "uniform"),
    "three rows, all hit often": (3, 300, (20000,), "uniform"),  # at most 3 slices
    "sparse hits": (100000, 32, (300, 110), "uniform"),
    "skewed hits": (5000, 64, (600, 110), "zipf"),  # slices balanced by ids, not rows
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("problem", SPLIT_PROBLEMS)
def test_backward_is_bitwise_independent_of_threads(dtype, problem):
    V, D, shape, kind = SPLIT_PROBLEMS[problem]
    pad = V // 2
    ids, _, dout = _problem(shape, V, D, dtype, seed=5, pad=pad)
    if kind == "zipf":
        ids = _zipf_ids(shape, V, seed=5)
        ids.reshape(-1)[::7] = pad
    assert (V + ids.size) * D >= 4 * 2**20
    ids_before, dout_before = ids.copy(), dout.copy()
    results = []
    for n in (1, 2, 3, 4):
        crnn.set_num_threads(n)
        results.append(F.embedding_backward(ids, dout, V, pad))
    for n, r in zip((2, 3, 4), results[1:]):
        assert r.tobytes() == results[0].tobytes(), f"{n} threads differ from 1"
    want = R.embedding_backward(ids, dout, V, pad)
    assert rel_error(results[0], want) <= REL_TOL[dtype]
    assert not results[0][pad].any()
    np.testing.assert_array_equal(ids, ids_before)
    np.testing.assert_array_equal(dout, dout_before)


@pytest.mark.skipif(not HAVE_TORCH, reason="torch not installed")
@pytest.mark.parametrize("pad", [None, 7])
def test_c_backward_matches_torch_at_a_size_that_splits(pad):
    import torch

    V, D = 2000, 48
    ids = _zipf_ids((700, 128), V, seed=8)
    dout = np.random.default_rng(9).standard_normal(ids.shape + (D,))
    weight = torch.zeros((V, D), dtype=torch.float64, requires_grad=True)
    torch.nn.functional.embedding(torch.from_numpy(ids), weight, padding_idx=pad).backward(
        torch.from_numpy(dout)
    )
    for n in (1, 2):
        crnn.set_num_threads(n)
        got = F.embedding_backward(ids, dout, V, pad)
        assert rel_error(got, weight.grad.numpy()) <= 1e-10


@pytest.mark.parametrize("dtype", DTYPES)
def test_c_backward_reads_any_layout_and_modifies_nothing(dtype):
    """Strided, Fortran-ordered, byte-swapped and int32 inputs give the
    reference's result and are left as they were."""
    V, D = 40, 6
    ids, _, dout = _problem((30, 8), V, D, dtype, seed=3)
    want = R.embedding_backward(ids, dout, V, 3)
    variants = [
        (ids.astype(np.int32), dout),
        (np.asfortranarray(ids), np.asfortranarray(dout)),
        (ids.astype(ids.dtype.newbyteorder()), dout.astype(dout.dtype.newbyteorder())),
    ]
    wide_ids = np.zeros((30, 16), ids.dtype)
    wide_ids[:, ::2] = ids
    wide_dout = np.zeros((30, 16, D), dtype)
    wide_dout[:, ::2] = dout
    variants.append((wide_ids[:, ::2], wide_dout[:, ::2]))
    for i, d in variants:
        i_before, d_before = i.copy(), d.copy()
        got = F.embedding_backward(i, d, V, 3)
        assert got.dtype == dtype and got.flags.c_contiguous
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(i, i_before)
        np.testing.assert_array_equal(d, d_before)
        assert i.dtype == i_before.dtype and d.dtype == d_before.dtype


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "V,D,n_ids", [(5, 0, 4), (5, 3, 0), (1, 4, 6)], ids=["dim 0", "no ids", "one row"]
)
def test_c_backward_edge_sizes(dtype, V, D, n_ids):
    ids = np.zeros(n_ids, np.int64)
    dout = np.ones((n_ids, D), dtype)
    got = F.embedding_backward(ids, dout, V)
    want = np.zeros((V, D), dtype)
    want[0] = n_ids
    assert got.shape == (V, D)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(F.embedding_backward(ids, dout, V, 0), np.zeros((V, D)))


def test_c_kernel_checks_its_own_arguments():
    """crnn_embedding_backward, called without the Python checks, refuses an
    id or padding_idx out of range and writes nothing."""
    from crnn import _core

    f64 = _core.DTYPES["float64"]
    dout = np.ones((3, 2))
    for ids, pad in (([0, 4, 1], -1), ([0, -1, 1], -1), ([0, 1, 2], 4), ([0, 1, 2], -2)):
        dweight = np.full((4, 2), 7.0)
        with pytest.raises(ValueError, match="C kernel rejected"):
            _core.embedding_backward(f64, np.array(ids, np.int64), dout, 4, pad, dweight)
        assert (dweight == 7.0).all()
    with pytest.raises(ValueError, match="C kernel rejected"):
        _core.embedding_backward(99, np.zeros(3, np.int64), dout, 4, -1, np.zeros((4, 2)))
    dweight = np.full((4, 2), 7.0)
    _core.embedding_backward(f64, np.array([3, 0, 3], np.int64), dout, 4, 0, dweight)
    np.testing.assert_array_equal(dweight, [[0, 0], [0, 0], [0, 0], [2, 2]])


# --------------------------------------------------------------------------
# Bad inputs
# --------------------------------------------------------------------------

_W = np.zeros((4, 3))


@pytest.mark.parametrize(
    "ids,exc,match",
    [
        (
            np.array([0, -1]),
            ValueError,
            r"ids must lie in \[0, num_embeddings\) = \[0, 4\), got values in \[-1, 0\]",
        ),
        (np.array([[4]]), ValueError, r"ids must lie in .*got values in \[4, 4\]"),
        (np.array([2**63 - 1], dtype=np.uint64), ValueError, "ids must lie"),
        (
            np.array([True, False]),
            TypeError,
            "ids must be an array of integer token ids, got dtype bool",
        ),
        (np.array([1.0, 2.0]), TypeError, "got dtype float64"),
        (np.array([1, 2], dtype=object), TypeError, "got dtype object"),
        ([0.5], TypeError, "integer token ids"),
        ("abc", TypeError, "integer token ids"),
        (None, TypeError, "integer token ids"),
        ([[0, 1], [2]], ValueError, "ids cannot be converted"),
    ],
)
def test_bad_ids(ids, exc, match):
    for eng in ENGINES.values():
        with pytest.raises(exc, match=match):
            eng.embedding_forward(ids, _W)
        with pytest.raises(exc, match=match):
            eng.embedding_backward(ids, np.zeros((2, 3)), 4)
    e = crnn.Embedding(4, 3, dtype=np.float64)
    before = e.params["weight"].copy()
    with pytest.raises(exc, match=match):
        e(ids)
    np.testing.assert_array_equal(e.params["weight"], before)
    assert e.cache is None


def test_bad_weights_douts_and_sizes():
    for eng in ENGINES.values():
        with pytest.raises(TypeError, match="weight must be a float32 or float64 array"):
            eng.embedding_forward([0], np.zeros((4, 3), dtype=np.int64))
        with pytest.raises(
            ValueError, match=r"weight must have shape \(num_embeddings, embedding_dim\)"
        ):
            eng.embedding_forward([0], np.zeros(4))
        with pytest.raises(ValueError, match="at least one row"):
            eng.embedding_forward(np.zeros(0, np.int64), np.zeros((0, 3)))
        with pytest.raises(
            ValueError,
            match=r"dout must have shape ids.shape \+ \(embedding_dim,\) = \(2, 3, embedding_dim\)",
        ):
            eng.embedding_backward(np.zeros((2, 3), np.int64), np.zeros((2, 4, 5)), 4)
        with pytest.raises(ValueError, match="dout must have shape"):
            eng.embedding_backward(np.zeros((2, 3), np.int64), np.zeros((2, 3)), 4)
        with pytest.raises(TypeError, match="dout must be a float32 or float64 array"):
            eng.embedding_backward([0], np.zeros((1, 3), np.int32), 4)
        with pytest.raises(TypeError, match="num_embeddings must be an integer"):
            eng.embedding_backward([0], np.zeros((1, 3)), 4.0)
        with pytest.raises(ValueError, match="num_embeddings must be >= 1"):
            eng.embedding_backward(np.zeros(0, np.int64), np.zeros((0, 3)), 0)
        for pad, exc in ((4, ValueError), (-5, ValueError), (True, TypeError), (1.0, TypeError)):
            with pytest.raises(exc, match="padding_idx"):
                eng.embedding_backward([0], np.zeros((1, 3)), 4, pad)
            with pytest.raises(exc, match="padding_idx"):
                eng.embedding_forward([0], _W, pad)


def test_layer_argument_errors_and_nothing_modified():
    with pytest.raises(ValueError, match="num_embeddings must be >= 1"):
        crnn.Embedding(0, 3)
    with pytest.raises(TypeError, match="embedding_dim must be an integer"):
        crnn.Embedding(3, 2.0)
    with pytest.raises(ValueError, match="padding_idx must lie in"):
        crnn.Embedding(3, 2, padding_idx=3)
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        crnn.Embedding(3, 2, dtype=np.int32)
    with pytest.raises(ValueError, match="backend"):
        crnn.Embedding(3, 2, backend="gpu")
    e = crnn.Embedding(5, 2, dtype=np.float32, seed=0)
    ids = np.array([[1, 2], [3, 4]])
    ids_before = ids.copy()
    e(ids)
    np.testing.assert_array_equal(ids, ids_before)
    g_before = e.grads["weight"].copy()
    with pytest.raises(
        TypeError, match="dout has dtype float64 but this layer computes in float32"
    ):
        e.backward(np.zeros((2, 2, 2)))
    with pytest.raises(
        ValueError, match=r"dout must have shape ids.shape \+ \(embedding_dim,\) = \(2, 2, 2\)"
    ):
        e.backward(np.zeros((2, 2, 3), np.float32))
    np.testing.assert_array_equal(e.grads["weight"], g_before)
    d = np.ones((2, 2, 2), np.float32)
    d_before = d.copy()
    e.backward(d)
    np.testing.assert_array_equal(d, d_before)
    np.testing.assert_array_equal(ids, ids_before)


# --------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------


@pytest.mark.parametrize("pad", [None, -1])
def test_save_load(tmp_path, pad):
    e = crnn.Embedding(6, 4, padding_idx=pad, dtype=np.float64, seed=1, backend="numpy")
    crnn.save(e, tmp_path / "e.npz")
    f = crnn.load(tmp_path / "e.npz")
    assert isinstance(f, crnn.Embedding) and f.config() == e.config()
    np.testing.assert_array_equal(f.params["weight"], e.params["weight"])
    assert f.padding_idx == (None if pad is None else 5)
