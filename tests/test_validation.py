"""Input validation of rnn_forward / rnn_backward and the global settings.

Bad inputs raise the documented error type with the argument's name in the
message, in both engines (they share one signature and semantics).
Unusual-but-valid inputs (non-contiguous, Fortran order, read-only,
big-endian, Python lists) are accepted and give the same numbers. Inputs are
never modified, and output dtype follows input dtype.
"""
from __future__ import annotations

import copy
import re

import numpy as np
import pytest

import crnn
from crnn import reference as ref
from helpers import assert_rel_close, make_rnn_problem

ENGINES = {"crnn": crnn, "reference": ref}
engine_param = pytest.mark.parametrize("engine", list(ENGINES))
dtype_param = pytest.mark.parametrize(
    "dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
GRAD_FIELDS = crnn.RNNGrads._fields

# Distinct sizes so a message's numbers can be told apart.
T, B, I, H = 4, 3, 5, 6
FLOAT_ARGS = ["x", "h0", "weight_ih", "weight_hh", "bias_ih", "bias_hh"]


def _problem(dtype=np.float64, lengths=None, seed=0):
    return make_rnn_problem(T, B, I, H, dtype, seed=seed, lengths=lengths)


def _word(name):
    """Regex matching `name` as a whole identifier (so "x" is not any 'x')."""
    return r"(?<![A-Za-z0-9_])" + re.escape(name) + r"(?![A-Za-z0-9_])"


def _mentions_dims(msg, dims):
    return all(re.search(_word(str(d)), msg) for d in dims)


# --------------------------------------------------------------------------
# dtypes
# --------------------------------------------------------------------------
@engine_param
@pytest.mark.parametrize("name", FLOAT_ARGS)
@pytest.mark.parametrize("odd, rest", [(np.float32, np.float64), (np.float64, np.float32)],
                         ids=["one_f32", "one_f64"])
def test_mixed_float_dtypes_raise_typeerror(engine, name, odd, rest):
    args = _problem(rest)
    args[name] = args[name].astype(odd)
    with pytest.raises(TypeError, match=_word(name)):
        ENGINES[engine].rnn_forward(**args)


def _bad_dtype(arr, kind):
    if kind == "int64":
        return (arr * 10).astype(np.int64)
    if kind == "int32":
        return (arr * 10).astype(np.int32)
    if kind == "complex128":
        return arr.astype(np.complex128)
    if kind == "bool":
        return arr > 0
    if kind == "object":
        return arr.astype(object)
    if kind == "str_array":
        return arr.astype(str)
    if kind == "float16":
        return arr.astype(np.float16)
    if kind == "string":
        return "not an array"
    raise AssertionError(kind)


@engine_param
@pytest.mark.parametrize("kind", ["int64", "int32", "complex128", "bool", "object",
                                  "str_array", "float16", "string"])
@pytest.mark.parametrize("name", FLOAT_ARGS)
def test_non_float_inputs_raise_typeerror(engine, name, kind):
    args = _problem(np.float64)
    args[name] = _bad_dtype(args[name], kind)
    with pytest.raises(TypeError, match=_word(name)):
        ENGINES[engine].rnn_forward(**args)


@engine_param
@pytest.mark.parametrize("name", ["x", "weight_ih", "weight_hh"])
def test_required_inputs_none_raise_typeerror(engine, name):
    args = _problem()
    args[name] = None
    with pytest.raises(TypeError, match=_word(name)):
        ENGINES[engine].rnn_forward(**args)


# --------------------------------------------------------------------------
# shapes
# --------------------------------------------------------------------------
# (argument, bad shape, names that may be blamed, dims the message must name)
BAD_SHAPES = [
    ("x", (T, B), ["x"], None),
    ("x", (1, T, B, I), ["x"], None),
    ("x", (T, B, I + 1), ["x", "weight_ih"], None),  # disagrees with weight_ih
    ("h0", (B, H + 1), ["h0"], (B, H)),
    ("h0", (B + 1, H), ["h0"], (B, H)),
    ("h0", (H,), ["h0"], (B, H)),
    ("h0", (1, B, H), ["h0"], (B, H)),
    ("weight_ih", (H * I,), ["weight_ih"], None),
    ("weight_ih", (1, H, I), ["weight_ih"], None),
    # H is ambiguous here: any argument that disagrees may be blamed.
    ("weight_ih", (H + 1, I), ["weight_ih", "weight_hh", "h0"], None),
    ("weight_hh", (H, H + 1), ["weight_hh"], (H,)),
    ("weight_hh", (H + 1, H), ["weight_hh"], (H,)),
    ("weight_hh", (H * H,), ["weight_hh"], (H,)),
    ("bias_ih", (H + 1,), ["bias_ih"], (H,)),
    ("bias_ih", (1, H), ["bias_ih"], (H,)),
    ("bias_ih", (), ["bias_ih"], (H,)),
    ("bias_hh", (H - 1,), ["bias_hh"], (H,)),
    ("bias_hh", (H, 1), ["bias_hh"], (H,)),
]


@engine_param
@pytest.mark.parametrize("name, shape, blamed, dims", BAD_SHAPES,
                         ids=[f"{n}-{s}" for n, s, _, _ in BAD_SHAPES])
def test_wrong_shapes_raise_valueerror(engine, name, shape, blamed, dims):
    args = _problem()
    args[name] = np.full(shape, 0.1)
    with pytest.raises(ValueError, match="|".join(_word(b) for b in blamed)) as info:
        ENGINES[engine].rnn_forward(**args)
    if dims is not None:
        msg = str(info.value)
        assert _mentions_dims(msg, dims), f"expected shape {dims} not in: {msg}"


BAD_LENGTHS = {
    "too_long": (np.arange(B + 1) % (T + 1), (ValueError,)),
    "too_short": (np.array([1] * (B - 1)), (ValueError,)),
    "2d": (np.ones((B, 1), dtype=np.int64), (ValueError,)),
    "scalar": (np.int64(2), (ValueError,)),
    "negative": (np.array([1, -1, 2]), (ValueError,)),
    "above_T": (np.array([1, T + 1, 2]), (ValueError,)),
    "float": (np.array([1.0, 2.0, 3.0]), (ValueError, TypeError)),
    "float_list": ([1.0, 2.0, 3.0], (ValueError, TypeError)),
    "complex": (np.array([1, 2, 3], dtype=complex), (ValueError, TypeError)),
    "bool": (np.array([True, False, True]), (ValueError, TypeError)),
    "string": (np.array(["1", "2", "3"]), (ValueError, TypeError)),
}


@engine_param
@pytest.mark.parametrize("case", list(BAD_LENGTHS))
def test_bad_lengths(engine, case):
    lengths, errors = BAD_LENGTHS[case]
    args = _problem()
    with pytest.raises(errors, match=_word("lengths")):
        ENGINES[engine].rnn_forward(**args, lengths=lengths)


@engine_param
@pytest.mark.parametrize("nl", ["gelu", "Tanh", "", "tanh "])
def test_unknown_nonlinearity(engine, nl):
    with pytest.raises(ValueError, match="nonlinearity"):
        ENGINES[engine].rnn_forward(**_problem(), nonlinearity=nl)


# --------------------------------------------------------------------------
# backward
# --------------------------------------------------------------------------
def _forward(engine, dtype=np.float64, lengths=None):
    args = _problem(dtype, lengths=lengths)
    out, h_n, cache = ENGINES[engine].rnn_forward(**args)
    return args, out, h_n, cache


@engine_param
@pytest.mark.parametrize("shape", [(T, B, H + 1), (T + 1, B, H), (T, B + 1, H), (B, H),
                                   (T, B, H, 1)], ids=str)
def test_backward_bad_dout_shape(engine, shape):
    _, _, _, cache = _forward(engine)
    with pytest.raises(ValueError, match=_word("dout")):
        ENGINES[engine].rnn_backward(np.ones(shape), None, cache)


@engine_param
@pytest.mark.parametrize("shape", [(B, H + 1), (B + 1, H), (H,), (1, B, H)], ids=str)
def test_backward_bad_dh_n_shape(engine, shape):
    _, _, _, cache = _forward(engine)
    with pytest.raises(ValueError, match=_word("dh_n")):
        ENGINES[engine].rnn_backward(None, np.ones(shape), cache)


@engine_param
@pytest.mark.parametrize("which", ["dout", "dh_n"])
@pytest.mark.parametrize("bad", ["float32", "int64", "complex128"])
def test_backward_dtype_mismatch(engine, which, bad):
    _, out, h_n, cache = _forward(engine, np.float64)
    up = {"dout": np.ones(out.shape), "dh_n": np.ones(h_n.shape)}
    up[which] = up[which].astype(bad)
    with pytest.raises((ValueError, TypeError), match=_word(which)):
        ENGINES[engine].rnn_backward(up["dout"], up["dh_n"], cache)


def test_backward_dtype_mismatch_float32_cache():
    _, out, h_n, cache = _forward("crnn", np.float32)
    with pytest.raises((ValueError, TypeError), match=_word("dout")):
        crnn.rnn_backward(np.ones(out.shape, np.float64), None, cache)


@engine_param
@pytest.mark.parametrize("kind", ["tuple", "none", "dict", "list"])
def test_backward_cache_not_rnncache(engine, kind):
    _, out, _, cache = _forward(engine)
    bad = {"tuple": tuple(cache), "none": None, "dict": cache._asdict(),
           "list": list(cache)}[kind]
    with pytest.raises(TypeError, match=_word("cache")):
        ENGINES[engine].rnn_backward(np.ones(out.shape), None, bad)


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


@pytest.mark.parametrize("name", ["avx512", "avx2", "generic"])
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
    assert set(isas) <= {"avx512", "avx2", "generic"}
    assert len(set(isas)) == len(isas)
    crnn.set_isa("auto")
    assert crnn.build_info()["isa"] in isas


# --------------------------------------------------------------------------
# unusual but valid inputs
# --------------------------------------------------------------------------
def _make_unusual(arr, kind):
    if arr is None:
        return None
    arr = np.asarray(arr)
    if kind == "noncontig":
        big = np.zeros(arr.shape[:-1] + (2 * arr.shape[-1],), arr.dtype) if arr.ndim else None
        if big is None:
            return arr
        big[..., ::2] = arr
        out = big[..., ::2]
        assert arr.size <= 1 or not out.flags.c_contiguous
        return out
    if kind == "negstride":
        return np.flip(np.flip(arr).copy())
    if kind == "fortran":
        return np.asfortranarray(arr)
    if kind == "transposed":
        # A view with swapped axes: batch-major x made time-major, or a
        # weight given as the transpose of an (I, H) / (H, H) array.
        if arr.ndim == 3:
            return np.ascontiguousarray(arr.swapaxes(0, 1)).swapaxes(0, 1)
        return np.ascontiguousarray(arr.T).T
    if kind == "readonly":
        out = arr.copy()
        out.flags.writeable = False
        return out
    if kind == "bigendian":
        return arr.astype(arr.dtype.newbyteorder(">"))
    raise AssertionError(kind)


UNUSUAL = ["noncontig", "negstride", "fortran", "transposed", "readonly", "bigendian"]


def _assert_same_results(res, base, ctx):
    for name, a, b in res_pairs(res, base):
        assert a.dtype == b.dtype, f"{ctx} {name}: {a.dtype} vs {b.dtype}"
        assert np.array_equal(a, b), f"{ctx} {name} differs"


def res_pairs(res, base):
    (out, h_n, g), (out0, h_n0, g0) = res, base
    yield "out", out, out0
    yield "h_n", h_n, h_n0
    for f in GRAD_FIELDS:
        a, b = getattr(g, f), getattr(g0, f)
        assert (a is None) == (b is None), f
        if a is not None:
            yield f, a, b


def _full(mod, args, dout, dh_n, nl="tanh"):
    out, h_n, cache = mod.rnn_forward(**args, nonlinearity=nl)
    return out, h_n, mod.rnn_backward(dout, dh_n, cache)


@dtype_param
@pytest.mark.parametrize("kind", UNUSUAL)
def test_unusual_layouts_give_same_numbers(kind, dtype):
    args = make_rnn_problem(6, 5, 4, 7, dtype, seed=12, lengths="zeros")
    rng = np.random.default_rng(1)
    dout = rng.standard_normal((6, 5, 7)).astype(dtype)
    dh_n = rng.standard_normal((5, 7)).astype(dtype)
    odd_args = {k: _make_unusual(v, kind) for k, v in args.items()}
    odd_dout, odd_dh_n = _make_unusual(dout, kind), _make_unusual(dh_n, kind)

    base_c = _full(crnn, args, dout, dh_n)
    base_r = _full(ref, args, dout, dh_n)
    res_c = _full(crnn, odd_args, odd_dout, odd_dh_n)
    res_r = _full(ref, odd_args, odd_dout, odd_dh_n)
    _assert_same_results(res_c, base_c, f"crnn[{kind}]")
    _assert_same_results(res_r, base_r, f"reference[{kind}]")
    for name, a, b in res_pairs(res_c, res_r):
        assert a.dtype == np.dtype(dtype), (name, a.dtype)  # native, same precision
        assert_rel_close(a, b, dtype, name=name)


@dtype_param
def test_mixed_byte_order_is_one_dtype(dtype):
    """'>f4' and '<f4' are the same precision: accepted together."""
    args = make_rnn_problem(5, 4, 3, 6, dtype, seed=13)
    odd = dict(args)
    odd["x"] = _make_unusual(args["x"], "bigendian")
    odd["weight_hh"] = _make_unusual(args["weight_hh"], "bigendian")
    dout = np.ones((5, 4, 6), dtype)
    _assert_same_results(_full(crnn, odd, _make_unusual(dout, "bigendian"), None),
                         _full(crnn, args, dout, None), "crnn mixed byte order")


@pytest.mark.parametrize("kind", ["list", "int32", "uint8", "bigendian", "noncontig",
                                  "readonly"])
def test_lengths_forms(kind):
    args = _problem(np.float64)
    lengths = np.array([2, 0, 4])
    odd = {"list": [2, 0, 4], "int32": lengths.astype(np.int32),
           "uint8": lengths.astype(np.uint8),
           "bigendian": lengths.astype(">i8"),
           "noncontig": np.repeat(lengths, 2)[::2],
           "readonly": _make_unusual(lengths, "readonly")}[kind]
    dout = np.ones((T, B, H))
    base = _full(crnn, dict(args, lengths=lengths), dout, None)
    _assert_same_results(_full(crnn, dict(args, lengths=odd), dout, None), base,
                         f"lengths {kind}")
    base_r = _full(ref, dict(args, lengths=lengths), dout, None)
    _assert_same_results(_full(ref, dict(args, lengths=odd), dout, None), base_r,
                         f"reference lengths {kind}")


def test_python_list_x():
    args = make_rnn_problem(3, 2, 4, 5, np.float64, seed=14)
    listed = dict(args, x=args["x"].tolist())
    dout = np.ones((3, 2, 5))
    _assert_same_results(_full(crnn, listed, dout, None), _full(crnn, args, dout, None),
                         "crnn list x")
    _assert_same_results(_full(ref, listed, dout, None), _full(ref, args, dout, None),
                         "reference list x")


# --------------------------------------------------------------------------
# inputs never modified; outputs are fresh arrays of the input precision
# --------------------------------------------------------------------------
@engine_param
@dtype_param
@pytest.mark.parametrize("lengths", [None, "zeros"], ids=str)
def test_inputs_not_modified(engine, dtype, lengths):
    mod = ENGINES[engine]
    args = make_rnn_problem(5, 4, 3, 6, dtype, seed=15, lengths=lengths)
    before = copy.deepcopy(args)
    out, h_n, cache = mod.rnn_forward(**args, nonlinearity="relu")
    rng = np.random.default_rng(2)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dh_n = rng.standard_normal(h_n.shape).astype(dtype)
    dout0, dh_n0, out0 = dout.copy(), dh_n.copy(), out.copy()
    cache0 = copy.deepcopy(cache)
    mod.rnn_backward(dout, dh_n, cache)
    mod.rnn_backward(None, None, cache)
    for k, v in args.items():
        if v is None:
            assert before[k] is None
        else:
            assert np.array_equal(v, before[k]), f"{k} was modified"
    assert np.array_equal(dout, dout0), "dout was modified"
    assert np.array_equal(dh_n, dh_n0), "dh_n was modified"
    assert np.array_equal(out, out0), "out was modified by backward"
    for f in cache._fields:
        a, b = getattr(cache, f), getattr(cache0, f)
        if isinstance(a, np.ndarray):
            assert np.array_equal(a, b), f"cache.{f} was modified"


@engine_param
@dtype_param
@pytest.mark.parametrize("T_", [0, 3])
def test_outputs_do_not_alias_inputs(engine, dtype, T_):
    """out / h_n / grads are new arrays: writing to them cannot change inputs."""
    mod = ENGINES[engine]
    args = make_rnn_problem(T_, 4, 3, 6, dtype, seed=16, lengths="zeros")
    out, h_n, cache = mod.rnn_forward(**args)
    dout = np.ones(out.shape, dtype)
    dh_n = np.ones(h_n.shape, dtype)
    g = mod.rnn_backward(dout, dh_n, cache)
    inputs = [v for v in args.values() if isinstance(v, np.ndarray)] + [dout, dh_n]
    outputs = [out, h_n] + [a for a in g if a is not None]
    for o in outputs:
        for i in inputs:
            assert not np.shares_memory(o, i)


@engine_param
@dtype_param
def test_output_dtype_follows_input(engine, dtype):
    mod = ENGINES[engine]
    args = make_rnn_problem(4, 3, 2, 5, dtype, seed=17, lengths="random")
    out, h_n, cache = mod.rnn_forward(**args)
    g = mod.rnn_backward(np.ones(out.shape, dtype), None, cache)
    for name, a in [("out", out), ("h_n", h_n)] + [(f, getattr(g, f)) for f in GRAD_FIELDS]:
        assert isinstance(a, np.ndarray), name
        assert a.dtype == np.dtype(dtype), (name, a.dtype)
