"""Every cell against PyTorch (skipped when torch is not installed).

Two independent implementations, in float64, 1e-10 relative:

- ``torch.nn.<spec.torch_module>`` for the cells that have one (their
  options passed through; settings torch refuses, such as the RNN's sigmoid,
  are left to the second), with lengths through ``pack_padded_sequence``.
  The functional API of both engines, and the layers (``Recurrent`` of the
  cell, any number of layers, bidirectional, every layout) and the one-step
  cells (``RecurrentCell`` against ``torch.nn.<module>Cell``) of both
  backends, with PyTorch's state dicts loaded as they come.
- The cell's step written with torch autograd (`TORCH_STEPS`), for every
  cell, option, bias subset and zero lengths (which packing refuses); it is
  itself held to ``torch.nn`` where torch has the cell.

The gradients compared are those of ``sum(dout * out) + sum(dstate_n *
state_n)``; a None initial state is compared as explicit zeros (torch gives
no gradient for a missing one).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

import crnn  # noqa: E402
from crnn import reference as ref  # noqa: E402
from helpers import assert_rel_close  # noqa: E402
from problems import (  # noqa: E402
    SPECS,
    bias_id,
    bias_variants,
    make_problem,
    option_variants,
    run,
    shape_id,
    variant_id,
)

TOL = 1e-10
ENGINES = {"c": crnn, "reference": ref}
engine_param = pytest.mark.parametrize("engine", list(ENGINES))
UPSTREAMS = ("all", "dout", "states")


@pytest.fixture(autouse=True, scope="module")
def _torch_on_one_thread():
    """The problems are tiny: torch's intra-op threads only add waits on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _accepts(spec, options):
    """Whether torch.nn.<module> has this cell with these options."""
    try:
        getattr(torch.nn, spec.torch_module)(2, 3, **options)
    except (ValueError, TypeError):
        return False
    return True


def torch_variants():
    """(spec, options) of every cell torch has, with the options torch accepts."""
    return [
        (spec, opts)
        for spec in SPECS
        if spec.torch_module
        for opts in option_variants(spec, "all")
        if _accepts(spec, opts)
    ]


def torch_variant_params():
    return [pytest.param(s, o, id=variant_id(s, o)) for s, o in torch_variants()]


# --------------------------------------------------------------------------
# torch's answers
# --------------------------------------------------------------------------
def _leaf(a):
    return torch.tensor(a, dtype=torch.float64, requires_grad=True)


def _loss(out, finals, dout, dstates):
    loss = out.new_zeros(())
    if dout is not None:
        loss = loss + (out * torch.from_numpy(dout)).sum()
    for s, d in zip(finals, dstates):
        if d is not None:
            loss = loss + (s * torch.from_numpy(d)).sum()
    return loss


def _answers(spec, out, finals, leaves, dout, dstates):
    """Our names for torch's results: out, final states, gradients of every input."""
    if any(d is not None for d in dstates) or dout is not None:
        loss = _loss(out, finals, dout, dstates)
        if loss.requires_grad:
            loss.backward()
    res = {"out": out.detach().numpy()}
    res.update({n: s.detach().numpy() for n, s in zip(spec.final_states, finals)})
    for name, leaf in leaves.items():
        if leaf is None:
            res["d" + name] = None
        else:
            res["d" + name] = (torch.zeros_like(leaf) if leaf.grad is None else leaf.grad).numpy()
    return res


def torch_nn(p, dout, dstates):
    """out, final states and every gradient from torch.nn.<spec.torch_module>."""
    spec = p.spec
    has_bias = all(p.weights[w.name] is not None for w in spec.weights if w.bias)
    assert has_bias or all(p.weights[w.name] is None for w in spec.weights if w.bias)
    module = getattr(torch.nn, spec.torch_module)(
        p.sizes["I"], p.sizes["H"], bias=has_bias, dtype=torch.float64, **p.options
    )
    with torch.no_grad():
        for name, value in p.weights.items():
            if value is not None:
                getattr(module, name + "_l0").copy_(torch.from_numpy(value))
    x = _leaf(p.x)
    s0 = [_leaf(s) for s in p.zero_states().states]
    hx = tuple(s[None] for s in s0) if len(s0) > 1 else s0[0][None]
    if p.lengths is None:
        out, finals = module(x, hx)
    else:
        packed = pack_padded_sequence(
            x, torch.as_tensor(p.lengths, dtype=torch.int64), enforce_sorted=False
        )
        out, finals = module(packed, hx)
        out = pad_packed_sequence(out, total_length=p.T)[0]
    finals = [f[0] for f in (finals if len(s0) > 1 else (finals,))]
    leaves = {"x": x, **dict(zip(spec.initial_states, s0))}
    leaves.update(
        {n: getattr(module, n + "_l0") if v is not None else None for n, v in p.weights.items()}
    )
    return _answers(spec, out, finals, leaves, dout, dstates)


def _b(w, name):
    return 0 if w[name] is None else w[name]


def _act(name):
    """torch's activation of that name (torch.nn.functional's: tanh, relu,
    sigmoid, hardtanh, softsign, ...); an activation torch lacks skips the
    case (the reference and central differences still hold it)."""
    if name == "identity":
        return lambda a: a
    fn = getattr(torch.nn.functional, name, None)
    if fn is None:
        pytest.skip(f"torch has no activation {name!r}")
    return fn


def _rnn(x, states, w, options):
    (h,) = states
    return (
        _act(options["nonlinearity"])(
            x @ w["weight_ih"].T + _b(w, "bias_ih") + h @ w["weight_hh"].T + _b(w, "bias_hh")
        ),
    )


def _lstm(x, states, w, options):
    h, c = states
    i, f, g, o = (
        x @ w["weight_ih"].T + _b(w, "bias_ih") + h @ w["weight_hh"].T + _b(w, "bias_hh")
    ).chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def _gru(x, states, w, options):
    (h,) = states
    i_r, i_z, i_n = (x @ w["weight_ih"].T + _b(w, "bias_ih")).chunk(3, dim=1)
    h_r, h_z, h_n = (h @ w["weight_hh"].T + _b(w, "bias_hh")).chunk(3, dim=1)
    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
    return ((1 - z) * torch.tanh(i_n + r * h_n) + z * h,)


def _gru_reset_before(x, states, w, options):
    # No torch.nn module computes it (torch's GRU resets after the product).
    (h,) = states
    w_hr, w_hz, w_hn = w["weight_hh"].chunk(3, dim=0)
    b_hh = _b(w, "bias_hh")
    b_hr, b_hz, b_hn = b_hh.chunk(3) if torch.is_tensor(b_hh) else (0, 0, 0)
    i_r, i_z, i_n = (x @ w["weight_ih"].T + _b(w, "bias_ih")).chunk(3, dim=1)
    r = torch.sigmoid(i_r + h @ w_hr.T + b_hr)
    z = torch.sigmoid(i_z + h @ w_hz.T + b_hz)
    return ((1 - z) * torch.tanh(i_n + (r * h) @ w_hn.T + b_hn) + z * h,)


def _jordan(x, states, w, options):
    (y,) = states
    h = _act(options["nonlinearity"])(
        x @ w["weight_ih"].T + _b(w, "bias_ih") + y @ w["weight_hy"].T + _b(w, "bias_hh")
    )
    return (_act(options["output_nonlinearity"])(h @ w["weight_ho"].T + _b(w, "bias_ho")),)


# Each cell's step in torch autograd; a cell without one is left to torch.nn.
TORCH_STEPS = {
    "rnn": _rnn,
    "lstm": _lstm,
    "gru": _gru,
    "jordan": _jordan,
    "gru_reset_before": _gru_reset_before,
}


def torch_steps(p, dout, dstates):
    """out, final states and every gradient from the step written in torch."""
    spec = p.spec
    leaves = {
        "x": _leaf(p.x),
        **{n: _leaf(s) for n, s in zip(spec.initial_states, p.zero_states().states)},
    }
    leaves.update({n: None if v is None else _leaf(v) for n, v in p.weights.items()})
    valid = torch.from_numpy(p.valid())
    states = [leaves[n] for n in spec.initial_states]
    outs = []
    for t in range(p.T):
        new = TORCH_STEPS[spec.name](leaves["x"][t], states, leaves, p.options)
        keep = valid[t][:, None]
        states = [torch.where(keep, n, s) for n, s in zip(new, states)]
        outs.append(torch.where(keep, new[0], torch.zeros_like(new[0])))
    out = torch.stack(outs) if outs else torch.zeros((0, p.B, p.width), dtype=torch.float64)
    return _answers(spec, out, states, leaves, dout, dstates)


def assert_matches(ours, theirs, ctx=""):
    for name, want in theirs.items():
        got = ours[name]
        if want is None:
            assert got is None, f"{ctx} {name} should be None"
            continue
        assert got is not None and got.dtype == np.float64 and got.shape == want.shape, name
        assert_rel_close(got, want, tol=TOL, name=f"{ctx} {name}")


def _grads_only(res, spec):
    return {k: v for k, v in res.items() if not k.startswith("cache.")}


# --------------------------------------------------------------------------
# The functional API against torch.nn
# --------------------------------------------------------------------------
@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("bias", [True, False], ids=bias_id)
@pytest.mark.parametrize("states", [True, False], ids=["states", "no_states"])
@pytest.mark.parametrize("lengths", [None, "random"], ids=["full", "lengths"])
@engine_param
@pytest.mark.parametrize("spec, options", torch_variant_params())
def test_matches_torch_nn(spec, options, engine, lengths, states, bias, upstream):
    p = make_problem(
        spec, (6, 5, 4, 7), seed=1, lengths=lengths, states=states, bias=bias, options=options
    )
    up = p.upstream(upstream, seed=50)
    assert_matches(_grads_only(run(ENGINES[engine], p, *up), spec), torch_nn(p, *up))


@pytest.mark.parametrize("lengths", [None, "random"], ids=["full", "lengths"])
@engine_param
@pytest.mark.parametrize(
    "shape",
    [(1, 1, 1, 1), (1, 4, 3, 5), (3, 1, 2, 9), (9, 17, 13, 33), (25, 64, 40, 70)],
    ids=shape_id,
)
@pytest.mark.parametrize("spec, options", torch_variant_params())
def test_matches_torch_nn_across_shapes(spec, options, shape, engine, lengths):
    """Odd sizes (not multiples of a vector width) and batches big enough to
    be split across threads."""
    p = make_problem(spec, shape, seed=2, lengths=lengths, options=options)
    up = p.upstream("all", seed=3)
    assert_matches(_grads_only(run(ENGINES[engine], p, *up), spec), torch_nn(p, *up))


@pytest.mark.parametrize("garbage", [np.nan, np.inf], ids=["nan", "inf"])
@engine_param
@pytest.mark.parametrize("spec, options", torch_variant_params())
def test_padding_values_are_ignored_like_torch(spec, options, engine, garbage):
    """pack_padded_sequence never reads the padding; neither may the engines,
    even when it is not finite (0 * NaN would otherwise leak into gradients)."""
    p = make_problem(spec, (6, 5, 4, 7), seed=10, lengths="random", options=options)
    padded = ~p.valid()
    assert padded.any()
    x = p.x.copy()
    x[padded] = garbage
    up = p.upstream("all", seed=11)
    with np.errstate(invalid="ignore", over="ignore"):  # arithmetic on the padding itself
        ours = run(ENGINES[engine], p.replace(x=x), *up)
    assert_matches(_grads_only(ours, spec), torch_nn(p, *up))


@pytest.mark.parametrize("backward_engine", list(ENGINES))
@pytest.mark.parametrize("forward_engine", list(ENGINES))
@pytest.mark.parametrize("spec, options", torch_variant_params())
def test_backward_accepts_a_cache_from_either_engine(
    spec, options, forward_engine, backward_engine
):
    from problems import backward, forward, results

    p = make_problem(spec, (6, 5, 4, 7), seed=8, lengths="random", options=options)
    dout, dstates = p.upstream("all", seed=9)
    out, states_n, cache = forward(ENGINES[forward_engine], p)
    grads = backward(ENGINES[backward_engine], spec, cache, dout, dstates)
    assert_matches(
        _grads_only(results(spec, out, states_n, cache, grads), spec), torch_nn(p, dout, dstates)
    )


# --------------------------------------------------------------------------
# The functional API against the step written in torch autograd
# --------------------------------------------------------------------------
def _step_params():
    for spec in SPECS:
        if spec.name not in TORCH_STEPS:
            continue
        for opts in option_variants(spec):
            for bias in bias_variants(spec):
                yield pytest.param(spec, opts, bias, id=f"{variant_id(spec, opts)}-{bias_id(bias)}")


@pytest.mark.parametrize(
    "lengths", [None, "random", "zeros"], ids=["full", "lengths", "zero_lengths"]
)
@engine_param
@pytest.mark.parametrize("spec, options, bias", list(_step_params()))
def test_matches_torch_autograd_steps(spec, options, bias, engine, lengths):
    for states in (True, False):
        p = make_problem(
            spec, (5, 6, 3, 4), seed=4, lengths=lengths, states=states, bias=bias, options=options
        )
        up = p.upstream("all", seed=5)
        assert_matches(
            _grads_only(run(ENGINES[engine], p, *up), spec),
            torch_steps(p, *up),
            ctx="states" if states else "no states",
        )


@engine_param
@pytest.mark.parametrize(
    "spec, options",
    [
        pytest.param(s, o, id=variant_id(s, o))
        for s in SPECS
        if s.name in TORCH_STEPS
        for o in option_variants(s, "all")
    ],
)
def test_matches_torch_autograd_steps_every_option_combination(spec, options, engine):
    p = make_problem(spec, (5, 3, 4, 6, 2), seed=2, lengths=[5, 3, 1], options=options)
    up = p.upstream("all", seed=6)
    assert_matches(_grads_only(run(ENGINES[engine], p, *up), spec), torch_steps(p, *up))


@pytest.mark.parametrize(
    "spec, options",
    [pytest.param(s, o, id=variant_id(s, o)) for s, o in torch_variants() if s.name in TORCH_STEPS],
)
def test_torch_steps_match_torch_nn(spec, options):
    """The autograd steps are checked against torch.nn where torch has the cell."""
    p = make_problem(spec, (5, 4, 3, 6), seed=6, lengths="random", options=options)
    up = p.upstream("all", seed=7)
    assert_matches(torch_steps(p, *up), torch_nn(p, *up))


# --------------------------------------------------------------------------
# Layers and one-step cells against torch.nn, with torch's state dicts
# --------------------------------------------------------------------------
T, B, I, H = 5, 3, 4, 3


def _layer_grid():
    for spec, opts in torch_variants():
        for layers, bidir, layout, lengths in itertools.product(
            (1, 2, 3), (False, True), ("time_major", "batch_first", "unbatched"), (False, True)
        ):
            if layout == "unbatched" and lengths:
                continue  # packed sequences are batched by definition
            yield pytest.param(
                spec,
                opts,
                layers,
                bidir,
                layout,
                lengths,
                id=f"{variant_id(spec, opts)}-L{layers}-{'bi' if bidir else 'uni'}-"
                f"{layout}{'-lengths' if lengths else ''}",
            )


def _shapes(layers, D, layout):
    if layout == "unbatched":
        return (T, I), (layers * D, H), (T, D * H)
    if layout == "batch_first":
        return (B, T, I), (layers * D, B, H), (B, T, D * H)
    return (T, B, I), (layers * D, B, H), (T, B, D * H)


def _layer_inputs(spec, layers, D, layout, seed=0, dtype=np.float64):
    """x, initial states, dout, dstates (lists, one array per state)."""
    rng = np.random.default_rng(seed)
    x_shape, s_shape, o_shape = _shapes(layers, D, layout)
    x = rng.standard_normal(x_shape).astype(dtype)
    s0 = [(0.5 * rng.standard_normal(s_shape)).astype(dtype) for _ in spec.states]
    dout = rng.standard_normal(o_shape).astype(dtype)
    ds = [rng.standard_normal(s_shape).astype(dtype) for _ in spec.states]
    return x, s0, dout, ds


def _state_arg(spec, parts):
    return tuple(parts) if len(spec.states) > 1 else parts[0]


def _as_list(spec, state):
    return list(state) if len(spec.states) > 1 else [state]


def _torch_layer_run(spec, t_layer, x, s0, lengths, dout, ds, batch_first):
    xt = torch.tensor(x, requires_grad=True)
    s0t = [torch.tensor(s, requires_grad=True) for s in s0]
    if lengths is None:
        out, s_n = t_layer(xt, _state_arg(spec, s0t))
    else:
        packed = pack_padded_sequence(
            xt, torch.as_tensor(lengths), batch_first=batch_first, enforce_sorted=False
        )
        out_p, s_n = t_layer(packed, _state_arg(spec, s0t))
        out, _ = pad_packed_sequence(
            out_p, batch_first=batch_first, total_length=x.shape[1 if batch_first else 0]
        )
    s_n = _as_list(spec, s_n)
    loss = (out * torch.from_numpy(dout)).sum()
    for s, d in zip(s_n, ds):
        loss = loss + (s * torch.from_numpy(d)).sum()
    loss.backward()
    res = {"out": out.detach().numpy(), "dx": xt.grad.numpy()}
    for name, s, s0_ in zip(spec.states, s_n, s0t):
        res[f"{name}_n"] = s.detach().numpy()
        res[f"d{name}0"] = s0_.grad.numpy()
    res.update({"grad." + k: p.grad.numpy() for k, p in t_layer.named_parameters()})
    return res


def _crnn_layer_run(spec, layer, x, s0, lengths, dout, ds):
    out, s_n = layer(x, None if s0 is None else _state_arg(spec, s0), lengths=lengths)
    dx, d0 = layer.backward(dout, _state_arg(spec, ds))
    res = {"out": out, "dx": dx}
    for name, s, d in zip(spec.states, _as_list(spec, s_n), _as_list(spec, d0)):
        res[f"{name}_n"] = s
        res[f"d{name}0"] = d
    res.update({"grad." + k: g.copy() for k, g in layer.grads.items()})
    return res


def _assert_parity(mine, theirs, tol=TOL):
    assert mine.keys() == theirs.keys()
    for k in theirs:
        assert mine[k].shape == theirs[k].shape, (k, mine[k].shape, theirs[k].shape)
        assert_rel_close(mine[k], theirs[k], tol=tol, name=k)


def _torch_layer(spec, options, *args, **kw):
    return getattr(torch.nn, spec.torch_module)(*args, **kw, **options)


@pytest.mark.parametrize("backend", ["c", "numpy"])
@pytest.mark.parametrize("spec, options, layers, bidir, layout, lengths", list(_layer_grid()))
def test_layer_parity(spec, options, layers, bidir, layout, lengths, backend):
    torch.manual_seed(layers * 100 + bidir * 10 + lengths)
    bf = layout == "batch_first"
    t_layer = _torch_layer(
        spec, options, I, H, layers, batch_first=bf, bidirectional=bidir, dtype=torch.float64
    )
    layer = crnn.nn.recurrent_layer(
        spec,
        I,
        H,
        num_layers=layers,
        batch_first=bf,
        bidirectional=bidir,
        dtype=np.float64,
        backend=backend,
        **options,
    )
    layer.load_state_dict(t_layer.state_dict())  # torch tensors as they come
    assert list(layer.params) == list(t_layer.state_dict())
    D = 2 if bidir else 1
    x, s0, dout, ds = _layer_inputs(spec, layers, D, layout)
    lens = np.array([T, 2, 4]) if lengths else None
    theirs = _torch_layer_run(spec, t_layer, x, s0, lens, dout, ds, bf)
    _assert_parity(_crnn_layer_run(spec, layer, x, s0, lens, dout, ds), theirs)


@pytest.mark.parametrize("backend", ["c", "numpy"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("spec, options", torch_variant_params())
def test_layer_parity_without_state_and_bias(spec, options, bias, backend):
    """No initial state: crnn's dstate0 is the gradient w.r.t. the zero state."""
    torch.manual_seed(5)
    t_layer = _torch_layer(
        spec, options, I, H, 2, bias=bias, bidirectional=True, dtype=torch.float64
    )
    layer = crnn.nn.recurrent_layer(
        spec,
        I,
        H,
        num_layers=2,
        bias=bias,
        bidirectional=True,
        dtype=np.float64,
        backend=backend,
        **options,
    )
    layer.load_state_dict(t_layer.state_dict())
    x, s0, dout, ds = _layer_inputs(spec, 2, 2, "time_major", seed=3)
    lens = np.array([3, T, 1])
    theirs = _torch_layer_run(
        spec, t_layer, x, [np.zeros_like(s) for s in s0], lens, dout, ds, False
    )
    _assert_parity(_crnn_layer_run(spec, layer, x, None, lens, dout, ds), theirs)


@pytest.mark.parametrize("backend", ["c", "numpy"])
@pytest.mark.parametrize("spec, options", torch_variant_params())
def test_layer_parity_float32(spec, options, backend):
    torch.manual_seed(2)
    t_layer = _torch_layer(spec, options, I, H, 2, bidirectional=True, batch_first=True)
    layer = crnn.nn.recurrent_layer(
        spec, I, H, num_layers=2, bidirectional=True, batch_first=True, backend=backend, **options
    )
    layer.load_state_dict(t_layer.state_dict())
    x = np.random.default_rng(2).standard_normal((B, T, I)).astype(np.float32)
    out, s_n = layer(x)
    t_out, t_sn = t_layer(torch.from_numpy(x))
    assert out.dtype == np.float32
    assert_rel_close(out, t_out.detach().numpy(), tol=1e-5, name="out")
    for a, b in zip(_as_list(spec, s_n), _as_list(spec, t_sn)):
        assert_rel_close(a, b.detach().numpy(), tol=1e-5, name="state")


@pytest.mark.parametrize("spec, options", torch_variant_params())
def test_load_state_dict_from_torch_variants_and_back(spec, options):
    torch.manual_seed(3)
    t_layer = _torch_layer(spec, options, I, H, 2, bidirectional=True, dtype=torch.float64)
    layer = crnn.nn.recurrent_layer(
        spec, I, H, num_layers=2, bidirectional=True, dtype=np.float32, **options
    )
    # float64 tensors into a float32 layer: cast; parameters that require grad work too
    layer.load_state_dict(dict(t_layer.named_parameters()))
    for k, v in t_layer.named_parameters():
        assert layer.params[k].dtype == np.float32
        np.testing.assert_array_equal(layer.params[k], v.detach().numpy().astype(np.float32))
    # mismatched architectures: a clear error listing the names
    with pytest.raises(ValueError, match="missing keys: .*weight_ih_l1_reverse"):
        crnn.nn.recurrent_layer(
            spec, I, H, num_layers=2, bidirectional=True, **options
        ).load_state_dict(_torch_layer(spec, options, I, H, 2).state_dict())
    with pytest.raises(ValueError, match=r"unexpected keys: .*bias_ih_l0"):
        crnn.nn.recurrent_layer(spec, I, H, bias=False, **options).load_state_dict(
            _torch_layer(spec, options, I, H).state_dict()
        )
    G = spec.gates * H
    with pytest.raises(
        ValueError,
        match=rf"weight_ih_l0: expected shape \({G}, {I}\), "
        rf"got \({G}, {I + 1}\)",
    ):
        crnn.nn.recurrent_layer(spec, I, H, **options).load_state_dict(
            _torch_layer(spec, options, I + 1, H).state_dict()
        )
    # and back: torch loads crnn's state_dict and computes the same thing
    mine = crnn.nn.recurrent_layer(spec, I, H, num_layers=2, dtype=np.float64, seed=0, **options)
    t2 = _torch_layer(spec, options, I, H, 2, dtype=torch.float64)
    t2.load_state_dict({k: torch.from_numpy(v) for k, v in mine.state_dict().items()})
    x = np.random.default_rng(3).standard_normal((T, B, I))
    out, s_n = mine(x)
    t_out, t_sn = t2(torch.from_numpy(x))
    assert_rel_close(out, t_out.detach().numpy(), tol=TOL)
    for a, b in zip(_as_list(spec, s_n), _as_list(spec, t_sn)):
        assert_rel_close(a, b.detach().numpy(), tol=TOL)


def _cell_variants():
    for spec, opts in torch_variants():
        if not spec.uses_output_size:
            for backend in ("c", "numpy"):
                yield pytest.param(spec, opts, backend, id=f"{variant_id(spec, opts)}-{backend}")


@pytest.mark.parametrize("case", ["batched", "unbatched", "no_state", "no_bias"])
@pytest.mark.parametrize("spec, options, backend", list(_cell_variants()))
def test_cell_parity(spec, options, backend, case):
    """RecurrentCell (RNNCell, LSTMCell, GRUCell) against torch.nn.<module>Cell."""
    torch.manual_seed(4)
    bias = case != "no_bias"
    t_cell = getattr(torch.nn, spec.torch_module + "Cell")(
        I, H, bias=bias, dtype=torch.float64, **options
    )
    cell = crnn.nn.RecurrentCell(
        spec, I, H, bias=bias, dtype=np.float64, backend=backend, **options
    )
    cell.load_state_dict(t_cell.state_dict())
    rng = np.random.default_rng(4)
    lead = () if case == "unbatched" else (B,)
    x = rng.standard_normal(lead + (I,))
    s = [
        np.zeros(lead + (H,)) if case == "no_state" else rng.standard_normal(lead + (H,))
        for _ in spec.states
    ]
    ds = [rng.standard_normal(lead + (H,)) for _ in spec.states]
    xt = torch.tensor(x, requires_grad=True)
    st = [torch.tensor(a, requires_grad=True) for a in s]
    new = _as_list(spec, t_cell(xt, _state_arg(spec, st)))
    sum((n * torch.from_numpy(d)).sum() for n, d in zip(new, ds)).backward()
    got = _as_list(spec, cell(x, None if case == "no_state" else _state_arg(spec, s)))
    dx, d0 = cell.backward(_state_arg(spec, ds))
    theirs = {
        "dx": xt.grad.numpy(),
        **{"grad." + k: p.grad.numpy() for k, p in t_cell.named_parameters()},
    }
    mine = {"dx": dx, **{"grad." + k: g for k, g in cell.grads.items()}}
    for name, a, b, d, dt in zip(spec.states, got, new, _as_list(spec, d0), st):
        theirs[name], mine[name] = b.detach().numpy(), a
        theirs["d" + name], mine["d" + name] = dt.grad.numpy(), d
    _assert_parity(mine, theirs)


@pytest.mark.parametrize("spec, options", torch_variant_params())
def test_default_init_matches_torch_bounds(spec, options):
    """Same distributions as torch's defaults (bounds; values differ by generator)."""
    torch.manual_seed(6)
    pairs = [
        (
            crnn.nn.recurrent_layer(spec, 8, 16, num_layers=2, seed=0, **options),
            _torch_layer(spec, options, 8, 16, 2),
        )
    ]
    if not spec.uses_output_size:
        pairs.append(
            (
                crnn.nn.RecurrentCell(spec, 8, 16, seed=0, **options),
                getattr(torch.nn, spec.torch_module + "Cell")(8, 16, **options),
            )
        )
    for ours, theirs in pairs:
        sd = theirs.state_dict()
        assert list(ours.params) == list(sd)
        for k, v in sd.items():
            limit = 1 / np.sqrt(16)
            assert float(v.abs().max()) <= limit + 1e-7
            assert float(np.abs(ours.params[k]).max()) <= limit + 1e-7
            assert tuple(v.shape) == ours.params[k].shape
