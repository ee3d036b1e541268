"""crnn.models: gradients (central differences), learning on tiny tasks, save/load.

Every model is checked in float64 on both engines by `crnn.gradcheck`, with
respect to its parameters *and* its inputs; every RNN shape (one-to-one,
one-to-many, many-to-one, many-to-many, encoder-decoder) then learns a small
synthetic task from a fixed seed, on both engines; finally a character-level
model trained with truncated BPTT must clearly lower its loss.
"""

from __future__ import annotations

import numpy as np
import pytest

import crnn
from crnn.losses import mse, softmax_cross_entropy
from crnn.models import CharRNN, MLPRegressor, Seq2Seq, SequenceClassifier, SequenceTagger, one_hot
from crnn.training import TBPTT

BACKENDS = ["c", "numpy"]
F64 = np.float64


def _check(f, params, grads, **kw):
    rep = crnn.gradcheck(f, params, grads, **kw)
    assert rep.ok, str(rep)
    return rep


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def test_one_hot():
    got = one_hot(np.array([[0, 2], [1, 0]]), 3, np.float64)
    assert got.shape == (2, 2, 3) and got.dtype == np.float64
    np.testing.assert_array_equal(got.argmax(-1), [[0, 2], [1, 0]])
    assert got.sum() == 4
    with pytest.raises(ValueError):
        one_hot([3], 3)
    with pytest.raises(TypeError):
        one_hot([0.5], 3)


# --------------------------------------------------------------------------
# Gradient checks, float64, both engines
# --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck_mlp_regressor(backend):
    rng = np.random.default_rng(0)
    m = MLPRegressor(3, 5, 2, nonlinearity="tanh", dtype=F64, seed=1, backend=backend)
    x = rng.standard_normal((4, 3))
    y = rng.standard_normal((4, 2))

    def f():
        return mse(m(x), y)[0]

    m.zero_grad()
    loss, d = mse(m(x), y)
    dx = m.backward(d)
    _check(f, dict(m.params, x=x), dict(m.grads, x=dx))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bidirectional,num_layers", [(False, 2), (True, 1)])
def test_gradcheck_sequence_classifier(backend, bidirectional, num_layers):
    rng = np.random.default_rng(1)
    T, B, I, H, C = 5, 4, 3, 4, 3
    m = SequenceClassifier(
        I,
        H,
        C,
        num_layers=num_layers,
        bidirectional=bidirectional,
        dtype=F64,
        seed=2,
        backend=backend,
    )
    D = 2 if bidirectional else 1
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((num_layers * D, B, H)) * 0.3
    lengths = np.array([5, 2, 0, 3])
    y = np.array([0, 2, 1, 1])

    def f():
        return softmax_cross_entropy(m(x, h0, lengths=lengths), y)[0]

    m.zero_grad()
    _, d = softmax_cross_entropy(m(x, h0, lengths=lengths), y)
    dx, dh0 = m.backward(d)
    assert dx.shape == x.shape and dh0.shape == h0.shape
    assert not dx[3:, 1].any() and not dx[:, 2].any()  # padded steps get no gradient
    _check(f, dict(m.params, x=x, h0=h0), dict(m.grads, x=dx, h0=dh0))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "bidirectional,num_layers,nonlinearity", [(False, 2, "tanh"), (True, 1, "sigmoid")]
)
def test_gradcheck_sequence_tagger(backend, bidirectional, num_layers, nonlinearity):
    rng = np.random.default_rng(2)
    T, B, I, H, O = 4, 3, 2, 3, 2
    m = SequenceTagger(
        I,
        H,
        O,
        num_layers=num_layers,
        bidirectional=bidirectional,
        nonlinearity=nonlinearity,
        dtype=F64,
        seed=3,
        backend=backend,
    )
    D = 2 if bidirectional else 1
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((num_layers * D, B, H)) * 0.3
    lengths = np.array([4, 1, 3])
    mask = np.arange(T)[:, None] < lengths[None, :]
    y = rng.standard_normal((T, B, O))
    w_hn = rng.standard_normal((num_layers * D, B, H))  # a loss on h_n too

    def loss_of(pred, h_n):
        l, d = mse(pred, y, mask=mask[..., None])
        return l + float(np.sum(h_n * w_hn)), d

    def f():
        return loss_of(*m(x, h0, lengths))[0]

    m.zero_grad()
    _, d = loss_of(*m(x, h0, lengths))
    dx, dh0 = m.backward(d, w_hn)
    _check(f, dict(m.params, x=x, h0=h0), dict(m.grads, x=dx, h0=dh0))


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck_char_rnn(backend):
    rng = np.random.default_rng(3)
    V, H, L, T, B = 5, 4, 2, 6, 2
    m = CharRNN(V, H, num_layers=L, dtype=F64, seed=4, backend=backend)
    ids = rng.integers(0, V, size=(T + 1, B))
    x, y = ids[:-1], ids[1:]
    h0 = rng.standard_normal((L, B, H)) * 0.3

    def f():
        return softmax_cross_entropy(m(x, h0)[0], y)[0]

    m.zero_grad()
    logits, h_n = m(x, h0)
    assert logits.shape == (T, B, V) and h_n.shape == (L, B, H)
    _, d = softmax_cross_entropy(logits, y)
    dx, dh0 = m.backward(d)
    assert dx is None  # token ids have no gradient
    _check(f, dict(m.params, h0=h0), dict(m.grads, h0=dh0))
    # Gradient w.r.t. the one-hot inputs, through the float-input path (the
    # same values: ids are read as these vectors).
    xo = one_hot(x, V, F64)
    m.zero_grad()
    np.testing.assert_array_equal(m(xo, h0)[0], logits)
    dxo, _ = m.backward(d)
    assert dxo.shape == (T, B, V)
    _check(lambda: softmax_cross_entropy(m(xo, h0)[0], y)[0], {"x": xo}, {"x": dxo})


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck_seq2seq(backend):
    rng = np.random.default_rng(4)
    S, V, H, L, Ts, Tt, B = 3, 4, 4, 2, 5, 3, 3
    m = Seq2Seq(S, V, H, num_layers=L, dtype=F64, seed=5, backend=backend)
    src = rng.standard_normal((Ts, B, S))
    src_lengths = np.array([5, 2, 4])
    tgt = rng.integers(0, V - 1, size=(Tt, B))
    tgt_in = m.decoder_inputs(tgt, start_id=V - 1)
    np.testing.assert_array_equal(tgt_in[0].argmax(-1), [V - 1] * B)
    np.testing.assert_array_equal(tgt_in[1:].argmax(-1), tgt[:-1])

    def f():
        return softmax_cross_entropy(m(src, tgt_in, src_lengths), tgt)[0]

    m.zero_grad()
    _, d = softmax_cross_entropy(m(src, tgt_in, src_lengths), tgt)
    dsrc, dtgt = m.backward(d)
    assert not dsrc[2:, 1].any()
    _check(f, dict(m.params, src=src, tgt_in=tgt_in), dict(m.grads, src=dsrc, tgt_in=dtgt))


@pytest.mark.parametrize("backend", BACKENDS)
def test_engines_agree_on_model_gradients(backend):
    """The two engines give the same model gradients (float64, 1e-12)."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 3, 2))
    y = np.array([0, 1, 1])
    grads = {}
    for b in BACKENDS:
        m = SequenceClassifier(2, 5, 2, num_layers=2, dtype=F64, seed=6, backend=b)
        _, d = softmax_cross_entropy(m(x, lengths=[6, 3, 1]), y)
        m.backward(d)
        grads[b] = m.grads
    for k in grads["c"]:
        np.testing.assert_allclose(grads["c"][k], grads["numpy"][k], rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------
# Plumbing: names, modes, save/load, validation
# --------------------------------------------------------------------------


def _all_models(backend="c", dtype=np.float32):
    return [
        MLPRegressor(3, 4, 2, dtype=dtype, seed=0, backend=backend),
        SequenceClassifier(
            3, 4, 2, num_layers=2, bidirectional=True, dtype=dtype, seed=0, backend=backend
        ),
        SequenceTagger(3, 4, 2, dtype=dtype, seed=0, backend=backend),
        CharRNN(5, 4, num_layers=2, dropout=0.25, dtype=dtype, seed=0, backend=backend),
        Seq2Seq(3, 5, 4, dtype=dtype, seed=0, backend=backend),
    ]


def test_param_names_are_namespaced_and_shared_with_children():
    m = SequenceTagger(3, 4, 2, seed=0)
    assert list(m.params) == [
        "rnn.weight_ih_l0",
        "rnn.weight_hh_l0",
        "rnn.bias_ih_l0",
        "rnn.bias_hh_l0",
        "head.weight",
        "head.bias",
    ]
    assert m.params["head.weight"] is m.head.params["weight"]
    assert m.grads["rnn.weight_hh_l0"] is m.rnn.grads["weight_hh_l0"]
    s = Seq2Seq(3, 5, 4, seed=0)
    assert {k.split(".")[0] for k in s.params} == {"encoder", "decoder", "head"}


def test_seeds_make_models_reproducible_and_children_differ():
    a, b = CharRNN(5, 4, seed=7), CharRNN(5, 4, seed=7)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    c = CharRNN(5, 4, seed=8)
    assert not np.array_equal(a.params["head.weight"], c.params["head.weight"])
    s = Seq2Seq(4, 4, 4, seed=0)  # encoder and decoder are not initialised alike
    assert not np.array_equal(s.params["encoder.weight_hh_l0"], s.params["decoder.weight_hh_l0"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_save_load_roundtrip(tmp_path, backend):
    rng = np.random.default_rng(0)
    for i, m in enumerate(_all_models(backend)):
        for p in m.params.values():  # make sure weights, not seeds, are what is restored
            p += rng.standard_normal(p.shape).astype(p.dtype) * 0.1
        path = tmp_path / f"m{i}.npz"
        crnn.save(m, path)
        m2 = crnn.load(path)
        assert type(m2) is type(m) and m2.config() == m.config()
        for k in m.params:
            np.testing.assert_array_equal(m2.params[k], m.params[k])
        m3 = crnn.load(path, backend="numpy")
        kids = [v for v in vars(m3).values() if isinstance(v, crnn.Module)]
        assert kids and m3.backend == "numpy" and all(c.backend == "numpy" for c in kids)


def test_train_eval_reach_children_and_generate_restores_mode():
    m = CharRNN(5, 4, num_layers=2, dropout=0.5, seed=0)
    assert m.rnn.training
    m.eval()
    assert not m.rnn.training and not m.head.training
    m.train()
    m.generate([1, 2], 3, rng=0)
    assert m.training and m.rnn.training
    m.eval()
    m.generate([1, 2], 3, rng=0)
    assert not m.rnn.training


def test_models_reject_wrong_dtype_and_shape():
    m = SequenceClassifier(3, 4, 2, seed=0)
    with pytest.raises(TypeError):
        m(np.zeros((2, 1, 3), dtype=np.float64))
    with pytest.raises(ValueError):
        m(np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(RuntimeError):
        SequenceClassifier(3, 4, 2, seed=0).backward(np.zeros((1, 2), np.float32))
    with pytest.raises(ValueError):
        MLPRegressor(2, 2, 2, nonlinearity="gelu")
    with pytest.raises(ValueError):
        CharRNN(5, 4).generate([], 3)
    with pytest.raises(ValueError):
        CharRNN(5, 4).generate([1], 3, temperature=-1.0)


# --------------------------------------------------------------------------
# One-to-many: generation
# --------------------------------------------------------------------------


def test_generate_shapes_determinism_and_greedy():
    m = CharRNN(6, 8, seed=0)
    g1 = m.generate([1, 2, 3], 10, temperature=1.0, rng=42)
    g2 = m.generate(np.array([1, 2, 3]), 10, temperature=1.0, rng=np.random.default_rng(42))
    assert g1.shape == (10,) and g1.dtype == np.int64
    np.testing.assert_array_equal(g1, g2)
    assert g1.min() >= 0 and g1.max() < 6
    gb = m.generate(np.array([[1, 1], [2, 2], [3, 3]]), 5, temperature=0)
    assert gb.shape == (5, 2)
    np.testing.assert_array_equal(gb[:, 0], gb[:, 1])  # identical primes, greedy
    # Greedy generation is the argmax chain, fed back step by step.
    h = None
    prev = np.array([[1], [2], [3]])
    want = []
    for _ in range(5):
        logits, h = m(prev, h)
        nxt = int(np.argmax(logits[-1, 0]))
        want.append(nxt)
        prev = np.array([[nxt]])
    np.testing.assert_array_equal(gb[:, 0], want)
    # top_k=1 is greedy whatever the temperature.
    np.testing.assert_array_equal(
        m.generate([1, 2, 3], 5, temperature=5.0, top_k=1, rng=0), gb[:, 0]
    )
    assert m.generate([1], 0).shape == (0,)


# --------------------------------------------------------------------------
# Learning: each RNN shape on a tiny synthetic task, both engines
# --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_to_one_learns_a_smooth_function(backend):
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, size=(128, 1)).astype(np.float32)
    y = np.sin(x).astype(np.float32)
    m = MLPRegressor(1, 16, 1, seed=0, backend=backend)
    opt = crnn.optim.Adam(m.params, lr=0.02)
    losses = []
    for _ in range(300):
        m.zero_grad()
        loss, d = mse(m(x), y)
        m.backward(d)
        opt.step(m.grads)
        losses.append(loss)
    assert losses[-1] < 0.05 * losses[0], (losses[0], losses[-1])


def _sign_of_sum_batch(rng, B, T=8):
    x = rng.standard_normal((T, B, 1)).astype(np.float32)
    lengths = rng.integers(2, T + 1, size=B)
    valid = np.arange(T)[:, None] < lengths[None, :]
    y = (np.sum(x[..., 0] * valid, axis=0) > 0).astype(np.int64)
    return x, lengths, y


@pytest.mark.parametrize("backend", BACKENDS)
def test_many_to_one_learns_sign_of_sum(backend):
    rng = np.random.default_rng(1)
    m = SequenceClassifier(1, 16, 2, seed=1, backend=backend)
    opt = crnn.optim.Adam(m.params, lr=0.02, clip_grad_norm=5.0)
    xt, lt, yt = _sign_of_sum_batch(np.random.default_rng(99), 256)
    first = softmax_cross_entropy(m(xt, lengths=lt), yt)[0]
    for _ in range(200):
        x, lengths, y = _sign_of_sum_batch(rng, 64)
        m.zero_grad()
        _, d = softmax_cross_entropy(m(x, lengths=lengths), y)
        m.backward(d)
        opt.step(m.grads)
    last = softmax_cross_entropy(m(xt, lengths=lt), yt)[0]
    acc = np.mean(m.predict(xt, lengths=lt) == yt)
    assert last < 0.4 * first and acc > 0.9, (first, last, acc)


@pytest.mark.parametrize("backend", BACKENDS)
def test_many_to_many_learns_delayed_copy(backend):
    V, T, B = 4, 10, 32
    rng = np.random.default_rng(2)

    def batch():
        ids = rng.integers(0, V, size=(T, B))
        y = np.concatenate([np.zeros((1, B), np.int64), ids[:-1]])  # y_t = x_{t-1}
        return one_hot(ids, V), y

    m = SequenceTagger(V, 16, V, seed=2, backend=backend)
    opt = crnn.optim.Adam(m.params, lr=0.02)
    losses = []
    for _ in range(150):
        x, y = batch()
        m.zero_grad()
        pred, _ = m(x)
        loss, d = softmax_cross_entropy(pred, y)
        m.backward(d)
        opt.step(m.grads)
        losses.append(loss)
    x, y = batch()
    acc = np.mean(m(x)[0].argmax(-1)[1:] == y[1:])
    assert np.mean(losses[-10:]) < 0.2 * losses[0] and acc > 0.95, (losses[0], losses[-1], acc)


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_to_many_generates_a_fixed_pattern_from_a_start_token(backend):
    # Vocabulary: 0 is the start token; the pattern never contains it.
    pattern = np.array([1, 2, 3, 3, 2, 4, 1, 4, 4, 2, 3, 1])
    seq = np.concatenate([[0], pattern])[:, None]  # (13, 1)
    m = CharRNN(5, 24, seed=3, backend=backend)
    opt = crnn.optim.Adam(m.params, lr=0.02)
    before = m.generate([0], len(pattern), temperature=0)
    assert not np.array_equal(before, pattern)
    for _ in range(200):
        m.zero_grad()
        logits, _ = m(seq[:-1])
        _, d = softmax_cross_entropy(logits, seq[1:])
        m.backward(d)
        opt.step(m.grads)
    # One-to-many: only the start token goes in; each output is fed back.
    np.testing.assert_array_equal(m.generate([0], len(pattern), temperature=0), pattern)


@pytest.mark.parametrize("backend", BACKENDS)
def test_encoder_decoder_learns_to_reverse(backend):
    V, T, B = 4, 4, 64
    START = V  # the target vocabulary is the V symbols plus a start token
    rng = np.random.default_rng(4)
    m = Seq2Seq(V, V + 1, 32, seed=4, backend=backend)
    opt = crnn.optim.Adam(m.params, lr=0.02, clip_grad_norm=5.0)

    def batch(n):
        ids = rng.integers(0, V, size=(T, n))
        return one_hot(ids, V), ids[::-1].copy()

    losses = []
    for _ in range(200):
        src, tgt = batch(B)
        m.zero_grad()
        logits = m(src, m.decoder_inputs(tgt, START))
        loss, d = softmax_cross_entropy(logits, tgt)
        m.backward(d)
        opt.step(m.grads)
        losses.append(loss)
    src, tgt = batch(256)
    acc = np.mean(m.greedy_decode(src, T, START) == tgt)
    assert np.mean(losses[-10:]) < 0.2 * losses[0] and acc > 0.9, (losses[0], losses[-1], acc)


# --------------------------------------------------------------------------
# The character-level learning test: TBPTT over a small repetitive text
# --------------------------------------------------------------------------

TEXT = (
    "the cat sat on the mat. the dog sat on the log. a cat and a dog sat on a mat and a log. "
) * 12


@pytest.mark.parametrize("backend", BACKENDS)
def test_char_rnn_learns_text_with_tbptt(backend):
    chars = sorted(set(TEXT))
    ids = np.array([chars.index(c) for c in TEXT], dtype=np.int64)
    V, B = len(chars), 8
    # B parallel streams over the text (each a contiguous chunk), time-major.
    L = (len(ids) - 1) // B
    x = ids[: B * L].reshape(B, L).T.copy()
    y = ids[1 : B * L + 1].reshape(B, L).T.copy()
    m = CharRNN(V, 64, seed=0, backend=backend)
    opt = crnn.optim.Adam(m.params, lr=0.01, clip_grad_norm=5.0)
    tb = TBPTT(m, softmax_cross_entropy, opt, k=20)
    initial = tb.run(x, y, update=False)  # one pass without updates: the untrained loss
    tb.reset()
    losses = []
    epochs = 0
    while len(losses) < 300:
        tb.reset()
        losses += tb.run(x, y)
        epochs += 1
    n = len(initial)
    before, after = float(np.mean(initial)), float(np.mean(losses[-n:]))
    assert after < 0.5 * before, (before, after)
    assert after < 1.0  # well below log(V) ~ 2.9 for uniform guessing
    # It writes something that looks like the text.
    sample = "".join(chars[i] for i in m.generate(ids[:10], 40, temperature=0))
    assert " sat on " in sample or " on the " in sample or " and a " in sample, sample


# --------------------------------------------------------------------------
# Every model with every cell it takes (the registry's cells without an
# output size): gradients by central differences, float64, C engine
# --------------------------------------------------------------------------
def _model_cells():
    return [
        pytest.param(s.name, id=s.name)
        for s in crnn.cells.REGISTRY.values()
        if not s.uses_output_size
    ]


@pytest.mark.parametrize("cell", _model_cells())
@pytest.mark.parametrize("model", ["classifier", "tagger", "char_rnn", "seq2seq"])
def test_gradcheck_every_model_with_every_cell(model, cell):
    rng = np.random.default_rng(6)
    T, B, I, H = 4, 3, 2, 3
    if model == "classifier":
        m = SequenceClassifier(I, H, 3, num_layers=2, dtype=F64, seed=2, cell=cell)
        x, lengths, y = rng.standard_normal((T, B, I)), np.array([4, 1, 3]), np.array([0, 2, 1])
        run = lambda: softmax_cross_entropy(m(x, lengths=lengths), y)  # noqa: E731
        inputs = {"x": x}
    elif model == "tagger":
        m = SequenceTagger(I, H, 2, bidirectional=True, dtype=F64, seed=3, cell=cell)
        x, y = rng.standard_normal((T, B, I)), rng.standard_normal((T, B, 2))
        run = lambda: mse(m(x, lengths=[4, 2, 3])[0], y)  # noqa: E731
        inputs = {"x": x}
    elif model == "char_rnn":
        m = CharRNN(5, H, num_layers=2, dtype=F64, seed=4, cell=cell)
        ids = rng.integers(0, 5, size=(T + 1, B))
        x = one_hot(ids[:-1], 5, F64)
        run = lambda: softmax_cross_entropy(m(x)[0], ids[1:])  # noqa: E731
        inputs = {"x": x}
    else:
        m = Seq2Seq(3, 4, H, dtype=F64, seed=5, cell=cell)
        src, tgt = rng.standard_normal((5, B, 3)), rng.integers(0, 3, size=(3, B))
        tgt_in = m.decoder_inputs(tgt, start_id=3)
        run = lambda: softmax_cross_entropy(m(src, tgt_in, np.array([5, 2, 4])), tgt)  # noqa: E731
        inputs = {"src": src, "tgt_in": tgt_in}
    assert m.rnn.spec.name == cell if hasattr(m, "rnn") else True
    m.zero_grad()
    _, d = run()
    back = m.backward(d)
    grads = back[0] if isinstance(back, tuple) else back
    analytic = dict(m.grads)
    if model == "seq2seq":
        analytic.update(src=back[0], tgt_in=back[1])
    else:
        analytic["x"] = grads
    _check(lambda: run()[0], dict(m.params, **inputs), analytic)
