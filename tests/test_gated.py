"""LSTM and GRU: the C engine against the NumPy reference, the reference
against central differences and PyTorch, determinism and validation."""
from __future__ import annotations

import numpy as np
import pytest

import crnn
from crnn import reference
from helpers import HAVE_TORCH, assert_rel_close

CELLS = {"lstm": 4, "gru": 3}


def make_problem(cell, T, B, I, H, dtype=np.float64, *, seed=0, state=True, bias=True,
                 lengths=None):
    """Keyword arguments of <cell>_forward with PyTorch-style weights."""
    rng = np.random.default_rng(seed)
    G = CELLS[cell] * H
    k = 1.0 / np.sqrt(max(H, 1))

    def u(*shape):
        return rng.uniform(-k, k, size=shape).astype(dtype)

    args = dict(x=rng.standard_normal((T, B, I)).astype(dtype),
                h0=(0.5 * rng.standard_normal((B, H))).astype(dtype) if state else None,
                weight_ih=u(G, I), weight_hh=u(G, H),
                bias_ih=u(G) if bias else None, bias_hh=u(G) if bias else None)
    if cell == "lstm":
        args["c0"] = (0.5 * rng.standard_normal((B, H))).astype(dtype) if state else None
    if lengths == "random":
        args["lengths"] = rng.integers(min(1, T), T + 1, size=B)
    elif lengths == "zeros":
        lens = rng.integers(0, T + 1, size=B)
        lens[::2] = 0
        args["lengths"] = lens
    return args


def upstream(cell, T, B, H, dtype, seed=1):
    """Random gradients for every output of the forward (dout, dh_n[, dc_n])."""
    rng = np.random.default_rng(seed)
    grads = [rng.standard_normal((T, B, H)).astype(dtype), rng.standard_normal((B, H)).astype(dtype)]
    if cell == "lstm":
        grads.append(rng.standard_normal((B, H)).astype(dtype))
    return grads


def run(engine, cell, args, grads):
    """(forward outputs..., cache arrays..., gradients...) of one engine."""
    if cell == "lstm":
        out, h_n, c_n, cache = engine.lstm_forward(**args)
        g = engine.lstm_backward(*grads, cache)
        return [out, h_n, c_n, cache.gates, cache.cells, *g]
    out, h_n, cache = engine.gru_forward(**args)
    g = engine.gru_backward(*grads, cache)
    return [out, h_n, cache.gates, cache.hn, *g]


# The last runs the backward in chunks of 228 + 228 + 144 steps
# (bptt_chunk_steps in csrc/kernels.inc).
SHAPES = [(9, 7, 5, 17), (1, 1, 1, 1), (0, 3, 2, 4), (4, 0, 2, 3), (12, 40, 20, 36),
          (600, 9, 6, 11)]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "T%d-B%d-I%d-H%d" % s)
@pytest.mark.parametrize("lengths", [None, "random", "zeros"])
@pytest.mark.parametrize("state", [True, False])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_c_engine_matches_reference(cell, dtype, shape, lengths, state, threads):
    T, B, I, H = shape
    args = make_problem(cell, *shape, dtype=dtype, state=state, lengths=lengths)
    grads = upstream(cell, T, B, H, dtype)
    crnn.set_num_threads(threads)
    for isa in crnn.available_isas():
        crnn.set_isa(isa)
        got = run(crnn, cell, args, grads)
        want = run(reference, cell, args, grads)
        for i, (a, b) in enumerate(zip(got, want)):
            if b is None:
                assert a is None
                continue
            assert a.dtype == np.dtype(dtype)
            assert_rel_close(a, b, dtype=dtype, name=f"{cell} output {i} ({isa})")


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_results_do_not_depend_on_threads(cell, dtype):
    T, B, I, H = 20, 96, 48, 96  # large enough that rows and products split
    args = make_problem(cell, T, B, I, H, dtype=dtype, lengths="random")
    grads = upstream(cell, T, B, H, dtype)
    crnn.set_num_threads(1)
    base = run(crnn, cell, args, grads)
    for threads in (2, 3, 4):
        crnn.set_num_threads(threads)
        for a, b in zip(run(crnn, cell, args, grads), base):
            assert (a is None and b is None) or np.array_equal(a, b)


# Batch 1 with W_hh beyond a core's L1 cache: the cells split the hidden units
# across threads, which meet after every step (split_columns in
# csrc/kernels.inc, *_one_row in csrc/gated.inc). H = 70 and 130 leave the
# threads unequal panel counts; 2100 steps cross a BPTT chunk. "zeros" gives
# the single row length 0.
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("isa", crnn.available_isas())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(600, 1, 3, 70), (180, 1, 5, 130), (2100, 1, 2, 56)],
                         ids=lambda s: "T%d-B%d-I%d-H%d" % s)
@pytest.mark.parametrize("lengths", [None, "random", "zeros"])
@pytest.mark.parametrize("state", [True, False])
def test_batch1_unit_split(cell, isa, dtype, shape, lengths, state):
    T, B, I, H = shape
    args = make_problem(cell, *shape, dtype=dtype, state=state, lengths=lengths, seed=11)
    grads = upstream(cell, T, B, H, dtype, seed=12)
    crnn.set_isa(isa)
    results = {}
    for threads in (1, 2, 4):
        crnn.set_num_threads(threads)
        results[threads] = run(crnn, cell, args, grads)
    for i, (a, b) in enumerate(zip(results[1], run(reference, cell, args, grads))):
        assert (a is None) == (b is None)
        if b is not None:
            assert_rel_close(a, b, dtype=dtype, name=f"{cell} output {i} ({isa})")
    for threads in (2, 4):
        for i, (a, b) in enumerate(zip(results[threads], results[1])):
            assert (a is None and b is None) or np.array_equal(a, b), \
                f"{cell} output {i}: {threads} threads differ from 1"


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("lengths", [None, "zeros"])
@pytest.mark.parametrize("bias", [True, False])
def test_reference_gradients_match_central_differences(cell, lengths, bias):
    T, B, I, H = 4, 3, 2, 3
    args = make_problem(cell, T, B, I, H, bias=bias, lengths=lengths, seed=3)
    grads = upstream(cell, T, B, H, np.float64, seed=4)
    n_out = 3 if cell == "lstm" else 2
    forward = getattr(reference, f"{cell}_forward")

    def loss():
        outs = forward(**args)[:n_out]
        return sum(float(np.sum(g * o)) for g, o in zip(grads, outs))

    analytic = run(reference, cell, args, grads)[n_out + 2:]
    names = ["x", "h0"] + (["c0"] if cell == "lstm" else []) + ["weight_ih", "weight_hh",
                                                                 "bias_ih", "bias_hh"]
    for name, g in zip(names, analytic):
        if args[name] is None:
            assert g is None
            continue
        value = args[name]
        numeric = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            keep = value[idx]
            value[idx] = keep + 1e-6
            up = loss()
            value[idx] = keep - 1e-6
            down = loss()
            value[idx] = keep
            numeric[idx] = (up - down) / 2e-6
        np.testing.assert_allclose(g, numeric, rtol=1e-6, atol=1e-8, err_msg=f"{cell} d{name}")


@pytest.mark.skipif(not HAVE_TORCH, reason="torch is not installed")
@pytest.mark.parametrize("engine", [crnn, reference], ids=["c_engine", "reference"])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("lengths", [None, "random"])
def test_matches_pytorch(engine, cell, lengths):
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    T, B, I, H = 7, 5, 4, 6
    args = make_problem(cell, T, B, I, H, lengths=lengths, seed=5)
    grads = upstream(cell, T, B, H, np.float64, seed=6)
    module = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(I, H).double()
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(module, name + "_l0").copy_(torch.from_numpy(args[name]))
    x = torch.tensor(args["x"], requires_grad=True)
    h0 = torch.tensor(args["h0"][None], requires_grad=True)
    state = h0
    if cell == "lstm":
        c0 = torch.tensor(args["c0"][None], requires_grad=True)
        state = (h0, c0)
    lens = args.get("lengths")
    if lens is not None:
        packed = pack_padded_sequence(x, torch.as_tensor(lens), enforce_sorted=False)
        out, final = module(packed, state)
        out = pad_packed_sequence(out, total_length=T)[0]
    else:
        out, final = module(x, state)
    finals = list(final) if cell == "lstm" else [final]
    torch.autograd.backward([out] + [f[0] for f in finals],
                            [torch.from_numpy(g) for g in grads])
    got = run(engine, cell, args, grads)
    n_out = len(finals) + 1
    want_fwd = [out.detach().numpy()] + [f[0].detach().numpy() for f in finals]
    for a, b in zip(got[:n_out], want_fwd):
        assert_rel_close(a, b, tol=1e-10)
    g = got[n_out + 2:]
    want = [x.grad.numpy(), h0.grad[0].numpy()]
    if cell == "lstm":
        want.append(c0.grad[0].numpy())
    want += [getattr(module, n + "_l0").grad.numpy()
             for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    for i, (a, b) in enumerate(zip(g, want)):
        assert_rel_close(a, b, tol=1e-10, name=f"{cell} gradient {i}")


@pytest.mark.parametrize("engine", [crnn, reference], ids=["c_engine", "reference"])
def test_bad_inputs_name_the_argument(engine):
    args = make_problem("lstm", 3, 2, 4, 5)
    with pytest.raises(ValueError, match="weight_ih"):
        engine.lstm_forward(**{**args, "weight_ih": args["weight_ih"][:-1]})
    with pytest.raises(ValueError, match="c0"):
        engine.lstm_forward(**{**args, "c0": args["c0"][:, :-1]})
    with pytest.raises(TypeError, match="c0"):
        engine.lstm_forward(**{**args, "c0": args["c0"].astype(np.float32)})
    with pytest.raises(ValueError, match="weight_hh"):
        engine.lstm_forward(**{**args, "weight_hh": args["weight_hh"][:, :-1]})
    with pytest.raises(ValueError, match="lengths"):
        engine.lstm_forward(**{**args, "lengths": [4, 1]})
    gargs = make_problem("gru", 3, 2, 4, 5)
    with pytest.raises(ValueError, match="weight_ih"):
        engine.gru_forward(**{**gargs, "weight_ih": np.zeros((16, 4))})
    with pytest.raises(TypeError, match="x"):
        engine.gru_forward(**{**gargs, "x": gargs["x"].astype(np.int64)})
    out, h_n, cache = engine.gru_forward(**gargs)
    with pytest.raises(ValueError, match="dout"):
        engine.gru_backward(out[:, :1], None, cache)
    with pytest.raises(TypeError, match="cache"):
        engine.lstm_backward(None, None, None, cache)


@pytest.mark.parametrize("cell", CELLS)
def test_inputs_are_not_modified(cell):
    args = make_problem(cell, 5, 3, 4, 6, lengths="random")
    before = {k: None if v is None else v.copy() for k, v in args.items()}
    grads = upstream(cell, 5, 3, 6, np.float64)
    grads_before = [g.copy() for g in grads]
    run(crnn, cell, args, grads)
    for k, v in args.items():
        assert (v is None and before[k] is None) or np.array_equal(v, before[k])
    for g, g0 in zip(grads, grads_before):
        assert np.array_equal(g, g0)
