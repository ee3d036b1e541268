"""Bad inputs, unusual inputs and untouched inputs, for every cell, through
both engines and both APIs (the generic ``forward(cell, ...)`` /
``backward(...)`` and the cell's named ``<cell>_forward`` / ``<cell>_backward``).

Every argument of every entry point is tried with wrong dtypes, non-arrays,
masked arrays, None where it is required, mixed float32 / float64, wrong
shapes, bad option values, bad lengths, bad caches and bad containers: the
call raises TypeError or ValueError naming the argument (as a whole word)
before any C code runs, and changes nothing. Unusual but valid forms (views,
negative strides, Fortran order, read-only, big-endian, lists) give the same
numbers as the canonical arrays; inputs are never modified; outputs are new
arrays of the input's precision. The arguments and their shapes come from
the cell's spec.
"""

from __future__ import annotations

import copy
import itertools
import re

import numpy as np
import pytest

import crnn
from crnn import reference as ref
from helpers import BAD_ARRAYS, OPTIONAL_OK, assert_bitwise, assert_results_close, unusual, word
from problems import (
    SPECS,
    backward,
    cell_params,
    cell_variants,
    dtype_param,
    forward,
    make_problem,
    run,
)

ENGINES = {"c": crnn, "reference": ref}
APIS = ("generic", "named")
# Distinct sizes so a message's numbers can be told apart.
T, B, I, H = 4, 3, 5, 6  # noqa: E741
_UNSET = object()


def _problem(spec, dtype=np.float64, **kw):
    return make_problem(spec, (T, B, I, H, 7), dtype, seed=0, **kw)


def _call_forward(mod, api, p, name=None, value=_UNSET, **extra):
    """Forward of `p` with argument `name` replaced by `value` (and extra keywords)."""
    spec = p.spec
    if api == "named":
        kw = p.named_kwargs()
        if name is not None:
            kw[name] = value
        kw.update(extra)
        return getattr(mod, f"{spec.name}_forward")(**kw)
    x, states, weights = p.x, list(p.states), dict(p.weights)
    lengths, options = p.lengths, dict(p.options)
    if name == "x":
        x = value
    elif name in spec.initial_states:
        states[spec.initial_states.index(name)] = value
    elif name in spec.weight_names:
        weights[name] = value
    elif name == "lengths":
        lengths = value
    elif name is not None:
        options[name] = value
    options.update(extra)
    return mod.forward(spec.name, x, tuple(states), weights, lengths=lengths, **options)


def _dstate_names(spec):
    return [f"d{s}_n" for s in spec.states]


def _call_backward(mod, api, spec, cache, dout, dstates, name=None, value=_UNSET):
    dstates = list(dstates)
    if name == "dout":
        dout = value
    elif name is not None:
        dstates[_dstate_names(spec).index(name)] = value
    if api == "named":
        return getattr(mod, f"{spec.name}_backward")(dout, *dstates, cache)
    return mod.backward(dout, tuple(dstates), cache)


def _expect(failures, ctx, excs, name, call):
    """Run `call`; record a failure unless it raises one of `excs` naming `name`."""
    try:
        call()
    except excs as e:
        if not re.search(name if name.startswith("(") else word(name), str(e)):
            failures.append(f"{ctx}: {type(e).__name__} does not name {name!r}: {e}")
    except Exception as e:  # noqa: BLE001 - any other exception is a failure too
        failures.append(f"{ctx}: {type(e).__name__} instead of {excs}: {e}")
    else:
        failures.append(f"{ctx}: no error")


def _engines_apis():
    return itertools.product(ENGINES.items(), APIS)


# --------------------------------------------------------------------------
# Every float array argument: wrong types and dtypes, mixed precision
# --------------------------------------------------------------------------
def _array_params():
    for spec in SPECS:
        for name in ["x", *spec.initial_states, *spec.weight_names]:
            yield pytest.param(spec, "forward", name, id=f"{spec.name}-forward-{name}")
        for name in ["dout", *_dstate_names(spec)]:
            yield pytest.param(spec, "backward", name, id=f"{spec.name}-backward-{name}")


def _optional(spec, entry, name):
    return (
        entry == "backward"
        or name in spec.initial_states
        or name in spec.weight_names
        and name not in spec.required_weights
    )


@pytest.mark.parametrize("spec, entry, name", list(_array_params()))
def test_bad_array_argument(spec, entry, name):
    """Each kind of bad value (helpers.BAD_ARRAYS), and the argument in the
    other float precision than the rest: TypeError / ValueError naming it."""
    failures = []
    for (ename, mod), api in _engines_apis():
        for dtype, odd in ((np.float64, np.float32), (np.float32, np.float64)):
            p = _problem(spec, dtype)
            out, states_n, cache = forward(mod, p)
            dout, dstates = p.upstream("all")
            if entry == "forward":
                good = p.inputs()[name]

                def call(value, p=p):
                    _call_forward(mod, api, p, name, value)
            else:
                good = dout if name == "dout" else dstates[_dstate_names(spec).index(name)]

                def call(value, cache=cache, dout=dout, dstates=dstates):
                    _call_backward(mod, api, spec, cache, dout, dstates, name, value)

            _expect(
                failures,
                f"{ename}/{api} {np.dtype(odd).name} among {np.dtype(dtype).name}",
                TypeError,
                name,
                lambda: call(good.astype(odd)),
            )
            if dtype != np.float64:
                continue
            for kind, (make, exc) in BAD_ARRAYS.items():
                if kind in OPTIONAL_OK and _optional(spec, entry, name):
                    continue
                _expect(failures, f"{ename}/{api} {kind}", exc, name, lambda: call(make(good)))
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("spec", cell_params())
def test_required_arguments_may_not_be_none_or_missing(spec):
    failures = []
    for (ename, mod), api in _engines_apis():
        p = _problem(spec)
        for name in ("x",) + spec.required_weights:
            _expect(
                failures,
                f"{ename}/{api} {name}=None",
                TypeError,
                name,
                lambda: _call_forward(mod, api, p, name, None),
            )
        for name in spec.required_weights:  # the generic API: a weight left out
            weights = {k: v for k, v in p.weights.items() if k != name}
            _expect(
                failures,
                f"{ename} without {name}",
                TypeError,
                name,
                lambda: mod.forward(spec.name, p.x, None, weights),
            )
    assert not failures, "\n".join(failures)


# --------------------------------------------------------------------------
# Shapes, derived from the spec's symbolic shapes
# --------------------------------------------------------------------------
def _symbols(spec, name):
    """The symbolic shape of a forward or backward array argument."""
    W = spec.state_size
    if name in ("x",):
        return ("T", "B", "I")
    if name == "dout":
        return ("T", "B", W)
    if name in spec.initial_states or name in _dstate_names(spec):
        return ("B", W)
    return next(w.shape for w in spec.weights if w.name == name)


def _same(a, b):
    return a == b or {a, b} == {"G", "H"}


def _bad_shapes(shape):
    """Wrong ranks, and each dimension one larger or smaller; (bad shape, dim or None)."""
    out = [(shape[:-1], None), ((1,) + shape, None)]
    if len(shape) == 1:
        out += [((), None), (shape + (1,), None)]
    for i, d in enumerate(shape):
        out.append((shape[:i] + (d + 1,) + shape[i + 1 :], i))
        if d > 1:
            out.append((shape[:i] + (d - 1,) + shape[i + 1 :], i))
    return out


def _blamed(spec, entry, name, dim):
    """The arguments an error about this shape may name: the argument itself,
    and those that share the symbol of the wrong dimension (which one a
    checker blames depends on which it reads first), or any of its symbols
    for a wrong rank."""
    names = (
        ["x", *spec.initial_states, *spec.weight_names]
        if entry == "forward"
        else ["dout", *_dstate_names(spec), "x"]
    )
    syms = _symbols(spec, name)
    wanted = syms if dim is None else (syms[dim],)
    return [name] + [
        n
        for n in names
        if n != name and any(_same(a, b) for a in wanted for b in _symbols(spec, n))
    ]


def _size_setters(spec):
    """The weights the sizes are read from: each first carries a size (G
    standing for H) that no earlier weight has."""
    bound, setters = set(), []
    for w in spec.weights:
        symbols = {"H" if s == "G" else s for s in w.shape}
        if not w.bias and not symbols <= bound:
            setters.append(w.name)
            bound |= symbols
    return setters


def _mentions_dims(msg, dims):
    return all(re.search(word(str(d)), msg) for d in dims)


@pytest.mark.parametrize("spec, entry, name", list(_array_params()))
def test_wrong_shapes(spec, entry, name):
    """ValueError naming the argument (or one it disagrees with); a state or
    bias checked against the others' sizes also names the expected shape."""
    failures = []
    p = _problem(spec)
    sizes = dict(p.sizes, T=T, B=B)
    shape = tuple(sizes[s] for s in _symbols(spec, name))
    # Every array but x and the weights that first carry a size is checked
    # against sizes already known: its message names the shape expected.
    fixed = name != "x" and name not in _size_setters(spec)
    for (ename, mod), api in _engines_apis():
        _, _, cache = forward(mod, p)
        dout, dstates = p.upstream("all")
        for bad, dim in _bad_shapes(shape):
            if entry == "forward" and dim is not None and _symbols(spec, name)[dim] == "T":
                continue  # x sets T: any length is valid
            value = np.full(bad, 0.1)
            if entry == "forward":

                def call():
                    _call_forward(mod, api, p, name, value)
            else:

                def call():
                    _call_backward(mod, api, spec, cache, dout, dstates, name, value)

            blamed = _blamed(spec, entry, name, dim)
            ctx = f"{ename}/{api} {name} {bad}"
            try:
                call()
            except ValueError as e:
                msg = str(e)
                if not any(re.search(word(b), msg) for b in blamed):
                    failures.append(f"{ctx}: names none of {blamed}: {msg}")
                elif fixed and re.search(word(name), msg) and not _mentions_dims(msg, shape):
                    failures.append(f"{ctx}: expected shape {shape} not in: {msg}")
            except Exception as e:  # noqa: BLE001
                failures.append(f"{ctx}: {type(e).__name__} instead of ValueError: {e}")
            else:
                failures.append(f"{ctx}: no error")
    assert not failures, "\n".join(failures)


# --------------------------------------------------------------------------
# Options, lengths, caches, containers
# --------------------------------------------------------------------------
def _option_params():
    for spec in SPECS:
        for o in spec.options:
            yield pytest.param(spec, o, id=f"{spec.name}-{o.name}")


@pytest.mark.parametrize("spec, option", list(_option_params()))
def test_bad_option_values(spec, option):
    bad = [
        None,
        1,
        option.default.upper(),
        "",
        option.default.encode(),
        "gelu",
        option.default + " ",
        option.default.capitalize(),
    ]
    failures = []
    for (ename, mod), api in _engines_apis():
        p = _problem(spec)
        for value in bad:
            _expect(
                failures,
                f"{ename}/{api} {value!r}",
                ValueError,
                option.name,
                lambda: _call_forward(mod, api, p, option.name, value),
            )
        # A cache carrying a bad value is refused by the backward too.
        _, _, cache = forward(mod, p)
        _expect(
            failures,
            f"{ename}/{api} cache.{option.name}",
            ValueError,
            option.name,
            lambda: _call_backward(
                mod,
                api,
                spec,
                cache._replace(**{option.name: "gelu"}),
                None,
                (None,) * len(spec.states),
            ),
        )
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("spec", cell_params())
def test_unknown_options_are_refused(spec):
    """An option the cell does not have: TypeError naming it (the options of
    other cells included)."""
    others = {o.name for s in SPECS for o in s.options} - set(spec.option_names)
    failures = []
    for (ename, mod), api in _engines_apis():
        p = _problem(spec)
        for name in sorted(others | {"bogus"}):
            _expect(
                failures,
                f"{ename}/{api} {name}",
                TypeError,
                name,
                lambda: _call_forward(mod, api, p, **{name: "tanh"}),
            )
    assert not failures, "\n".join(failures)


BAD_LENGTHS = {  # for T = 4, B = 3
    "too_long": (np.arange(B + 1) % (T + 1), ValueError),
    "too_short": (np.array([1] * (B - 1)), ValueError),
    "2d": (np.ones((B, 1), dtype=np.int64), ValueError),
    "scalar": (np.int64(2), ValueError),
    "negative": (np.array([1, -1, 2]), ValueError),
    "above_T": (np.array([1, T + 1, 2]), ValueError),
    "float": (np.array([1.0, 2.0, 3.0]), TypeError),
    "float_list": ([1.0, 2.0, 3.0], TypeError),
    "complex": (np.array([1, 2, 3], dtype=complex), TypeError),
    "bool": (np.array([True, False, True]), TypeError),
    "string": (np.array(["1", "2", "3"]), TypeError),
    "str": ("123", TypeError),
    "ragged": ([[1], [1, 2]], ValueError),
    "masked": (np.ma.masked_array([1, 2, 3]), TypeError),
    "bigint": ([2**70, 1, 1], TypeError),
    "uint64_huge": (np.array([2**63 + 5, 1, 1], np.uint64), ValueError),
    "None_item": ([None, 1, 1], TypeError),
    "shape": ([1, 2], ValueError),
}


@pytest.mark.parametrize("spec", cell_params())
def test_bad_lengths(spec):
    failures = []
    for (ename, mod), api in _engines_apis():
        p = _problem(spec)
        for case, (lengths, exc) in BAD_LENGTHS.items():
            _expect(
                failures,
                f"{ename}/{api} {case}",
                exc,
                "lengths",
                lambda: _call_forward(mod, api, p, "lengths", lengths),
            )
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("spec", cell_params())
def test_bad_caches(spec):
    """Not a cache, another cell's cache, or a cache whose fields were
    altered: refused, naming the cache or the field."""
    other = SPECS[(SPECS.index(spec) + 1) % len(SPECS)]
    failures = []
    for (ename, mod), api in _engines_apis():
        p = _problem(spec, lengths=[1, 2, 3])
        _, _, cache = forward(mod, p)
        _, _, foreign = forward(mod, _problem(other))
        none = (None,) * len(spec.states)
        bad = [
            ("None", None, TypeError, "cache"),
            ("tuple", tuple(cache), TypeError, "cache"),
            ("dict", cache._asdict(), TypeError, "cache"),
            ("list", list(cache), TypeError, "cache"),
            (f"{other.name} cache", foreign, TypeError, "cache"),
            ("out shape", cache._replace(out=np.zeros((1, 1, 1))), ValueError, "cache.out"),
            ("out int", cache._replace(out=np.zeros(cache.out.shape, int)), TypeError, "cache.out"),
            (
                "out float32",
                cache._replace(out=cache.out.astype(np.float32)),
                TypeError,
                "cache.out",
            ),
            ("lengths", cache._replace(lengths=np.array([9, 9, 9])), ValueError, "lengths"),
            ("x", cache._replace(x=np.zeros((T, B, I + 1))), ValueError, "(x|weight_ih)"),
        ]
        bad += [
            (f"{w} None", cache._replace(**{w: None}), TypeError, w) for w in spec.required_weights
        ]
        bad += [
            (
                f"{s} shape",
                cache._replace(**{s: getattr(cache, s)[:, :, :-1]}),
                ValueError,
                f"cache.{s}",
            )
            for s, _ in spec.saved
        ]
        for ctx, c, exc, name in bad:
            if api == "generic" and ctx == f"{other.name} cache":
                continue  # the generic backward runs whichever cell made the cache
            _expect(
                failures,
                f"{ename}/{api} {ctx}",
                exc,
                name,
                lambda: _call_backward(mod, api, spec, c, None, none),
            )
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("spec", cell_params())
def test_bad_containers_of_the_generic_api(spec):
    failures = []
    p = _problem(spec)
    n = len(spec.states)
    for ename, mod in ENGINES.items():
        for cell in ("nope", None, 3, spec.name.upper() + "X"):
            _expect(
                failures,
                f"{ename} cell={cell!r}",
                ValueError,
                "cell",
                lambda: mod.forward(cell, p.x, None, p.weights),
            )
        for ctx, states in (
            ("an array", np.zeros((B, p.width))),
            ("a dict", {}),
            ("too few", (None,) * (n - 1)),
            ("too many", (None,) * (n + 1)),
        ):
            _expect(
                failures,
                f"{ename} states {ctx}",
                TypeError,
                "states",
                lambda: mod.forward(spec.name, p.x, states, p.weights),
            )
        _expect(
            failures,
            f"{ename} weights list",
            TypeError,
            "weights",
            lambda: mod.forward(spec.name, p.x, None, list(p.weights.values())),
        )
        _expect(
            failures,
            f"{ename} unknown weight",
            ValueError,
            "weight_xx",
            lambda: mod.forward(spec.name, p.x, None, dict(p.weights, weight_xx=p.x)),
        )
        _, _, cache = forward(mod, p)
        for ctx, dstates in (("an array", np.zeros((B, p.width))), ("too many", (None,) * (n + 1))):
            _expect(
                failures,
                f"{ename} dstates {ctx}",
                TypeError,
                "states",
                lambda: mod.backward(None, dstates, cache),
            )
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("spec", cell_params())
def test_huge_zero_size_shapes_are_refused(spec):
    """(2**30, 2**30, 0) is a valid empty array, but T*B rows beyond the
    kernels' 2**59 elements: a ValueError naming x, before any allocation."""
    failures = []
    sizes = spec.dims(0, 0, 0)
    weights = {
        w.name: np.empty(spec.weight_shape(w, sizes), np.float32)
        for w in spec.weights
        if not w.bias
    }
    x = np.empty((2**30, 2**30, 0), np.float32)
    for (ename, mod), api in _engines_apis():
        if api == "named":
            call = lambda: getattr(mod, f"{spec.name}_forward")(  # noqa: E731
                x=x, **dict.fromkeys(spec.initial_states), **weights
            )
        else:
            call = lambda: mod.forward(spec.name, x, None, weights)  # noqa: E731
        _expect(failures, f"{ename}/{api}", ValueError, "x", call)
    assert not failures, "\n".join(failures)


# --------------------------------------------------------------------------
# Inputs never modified; outputs are new arrays of the input's precision
# --------------------------------------------------------------------------
@pytest.mark.parametrize("engine", list(ENGINES))
@dtype_param
@pytest.mark.parametrize("spec, options", cell_variants())
def test_inputs_not_modified(spec, options, dtype, engine):
    mod = ENGINES[engine]
    for api, lengths in itertools.product(APIS, (None, "zeros", "random")):
        p = make_problem(spec, (5, 4, 3, 6), dtype, seed=15, lengths=lengths, options=options)
        before = copy.deepcopy(p)
        out, states_n, cache = forward(mod, p, api)
        dout, dstates = p.upstream("all", 2)
        up0 = copy.deepcopy((dout, dstates))
        cache0 = copy.deepcopy(cache)
        backward(mod, spec, cache, dout, dstates, api)
        backward(mod, spec, cache, None, (None,) * len(dstates), api)
        ctx = f"{api}, lengths {lengths}"
        assert_bitwise(p.inputs(), before.inputs(), ctx=f"{ctx}: inputs")
        assert_bitwise([p.lengths], [before.lengths], ctx=f"{ctx}: lengths")
        assert_bitwise([dout, *dstates], [up0[0], *up0[1]], ctx=f"{ctx}: upstream")
        assert_bitwise(
            [f for f in cache if isinstance(f, np.ndarray)],
            [f for f in cache0 if isinstance(f, np.ndarray)],
            ctx=f"{ctx}: cache",
        )


@pytest.mark.parametrize("engine", list(ENGINES))
@pytest.mark.parametrize("T_", [0, 3])
@dtype_param
@pytest.mark.parametrize("spec", cell_params())
def test_outputs_do_not_alias_inputs(spec, dtype, T_, engine):
    """out, the final states and the gradients are new arrays (also when
    T = 0, or a row is empty, and a final state equals its initial state):
    writing to them cannot change an input."""
    for lengths in (None, "zeros"):
        p = make_problem(spec, (T_, 4, 3, 6), dtype, seed=16, lengths=lengths)
        dout, dstates = p.upstream("all")
        res = run(ENGINES[engine], p, dout, dstates)
        inputs = [v for v in p.inputs().values() if v is not None] + [dout, *dstates]
        for name, o in res.items():
            if o is None or name.startswith("cache."):
                continue
            for i in inputs:
                assert not np.shares_memory(o, i), (lengths, name)
            if name in spec.final_states:
                o += 1.0  # and changing them changes no input
        for s0, before in zip(
            p.states, make_problem(spec, (T_, 4, 3, 6), dtype, seed=16, lengths=lengths).states
        ):
            np.testing.assert_array_equal(s0, before)


@pytest.mark.parametrize("engine", list(ENGINES))
@dtype_param
@pytest.mark.parametrize("spec", cell_params())
def test_output_dtype_follows_input(spec, dtype, engine):
    p = make_problem(spec, (4, 3, 2, 5), dtype, seed=17, lengths="random")
    for name, a in run(ENGINES[engine], p, *p.upstream("dout")).items():
        if p.weights.get(name[1:], 0) is None:
            continue  # the gradient of an absent bias is None
        assert isinstance(a, np.ndarray), name
        assert a.dtype == np.dtype(dtype), (name, a.dtype)


@pytest.mark.parametrize("engine", list(ENGINES))
@pytest.mark.parametrize("spec, options", cell_variants())
def test_cache_holds_normalised_inputs_by_reference(spec, options, engine):
    """Inputs already float, C-contiguous and native are used as they are,
    not copied; out is the returned array; options and int64 lengths kept."""
    p = make_problem(spec, (3, 2, 4, 5), seed=10, lengths="random", options=options)
    out, _, cache = forward(ENGINES[engine], p)
    assert cache.out is out
    for name, value in p.inputs().items():
        assert np.shares_memory(getattr(cache, name), value), name
    for name, value in p.options.items():
        assert getattr(cache, name) == value
    assert cache.lengths.dtype == np.int64
    assert np.array_equal(cache.lengths, p.lengths)


# --------------------------------------------------------------------------
# Unusual but valid inputs: the same numbers
# --------------------------------------------------------------------------
UNUSUAL = ["noncontig", "negstride", "fortran", "transposed", "readonly", "bigendian"]


def _odd(p, kind):
    return p.replace(
        x=unusual(p.x, kind),
        states=tuple(unusual(s, kind) for s in p.states),
        weights={k: unusual(v, kind) for k, v in p.weights.items()},
    )


@pytest.mark.parametrize("kind", UNUSUAL)
@dtype_param
@pytest.mark.parametrize("spec", cell_params())
def test_unusual_layouts_give_same_numbers(spec, dtype, kind):
    p = make_problem(spec, (6, 5, 4, 7), dtype, seed=12, lengths="zeros")
    dout, dstates = p.upstream("all", 1)
    odd_up = (unusual(dout, kind), tuple(unusual(d, kind) for d in dstates))
    res = {}
    for name, mod in ENGINES.items():
        base = run(mod, p, dout, dstates)
        res[name] = run(mod, _odd(p, kind), *odd_up)
        assert_bitwise(res[name], base, ctx=f"{name} [{kind}]")
    assert_results_close(res["c"], res["reference"], dtype)  # native, same precision


@dtype_param
@pytest.mark.parametrize("spec", cell_params())
def test_mixed_byte_order_is_one_dtype(spec, dtype):
    """'>f4' and '<f4' are the same precision: accepted together."""
    p = make_problem(spec, (5, 4, 3, 6), dtype, seed=13)
    first = spec.required_weights[-1]
    odd = p.replace(
        x=unusual(p.x, "bigendian"),
        weights=dict(p.weights, **{first: unusual(p.weights[first], "bigendian")}),
    )
    dout = np.ones((5, 4, p.width), dtype)
    assert_bitwise(
        run(crnn, odd, unusual(dout, "bigendian")), run(crnn, p, dout), ctx="mixed byte order"
    )


LENGTH_FORMS = ["list", "int32", "uint8", "bigendian", "noncontig", "readonly"]


@pytest.mark.parametrize("spec", cell_params())
def test_lengths_forms(spec):
    lengths = np.array([2, 0, 4])
    p = make_problem(spec, (T, B, I, H), seed=0, lengths=lengths)
    dout = np.ones((T, B, p.width))
    for kind in LENGTH_FORMS:
        odd = {
            "list": [2, 0, 4],
            "int32": lengths.astype(np.int32),
            "uint8": lengths.astype(np.uint8),
            "bigendian": lengths.astype(">i8"),
            "noncontig": np.repeat(lengths, 2)[::2],
            "readonly": unusual(lengths, "readonly"),
        }[kind]
        for name, mod in ENGINES.items():
            assert_bitwise(
                run(mod, p.replace(lengths=odd), dout),
                run(mod, p, dout),
                ctx=f"{name} lengths {kind}",
            )


@pytest.mark.parametrize("spec", cell_params())
def test_python_list_x(spec):
    p = make_problem(spec, (3, 2, 4, 5), seed=14)
    dout = np.ones((3, 2, p.width))
    for name, mod in ENGINES.items():
        assert_bitwise(
            run(mod, p.replace(x=p.x.tolist()), dout), run(mod, p, dout), ctx=f"{name} list x"
        )


def battery_size():
    """How many bad calls this file makes (README, "Reliability"): every
    argument x bad form x engine x API, and the other tables."""
    engines_apis = len(ENGINES) * len(APIS)
    n = 0
    for spec in SPECS:
        for p in _array_params():
            if p.values[0] is not spec:
                continue
            _, entry, name = p.values
            kinds = sum(
                1 for k in BAD_ARRAYS if not (k in OPTIONAL_OK and _optional(spec, entry, name))
            )
            sizes = dict(spec.dims(I, H, 7), T=T, B=B)
            shapes = len(_bad_shapes(tuple(sizes[s] for s in _symbols(spec, name))))
            n += engines_apis * (kinds + 2 + shapes)
        n += engines_apis * (len(BAD_LENGTHS) + 10 + len(spec.required_weights) + len(spec.saved))
        n += engines_apis * sum(9 for _ in spec.options)
        n += len(ENGINES) * (4 + 4 + 2 + 2)
    return n
