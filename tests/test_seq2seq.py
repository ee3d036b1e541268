"""Seq2Seq with attention and embeddings; greedy decoding, sampling, beam search.

- every cell x attention x embedding gradchecked (float64) on both engines,
  and the engines agree on the model's gradients;
- beam search against an exhaustive search over a tiny vocabulary (a beam
  wider than the hypothesis space must find the best one), against a naive
  beam search written here from teacher-forced scores, and with
  beam_width = 1 equal to greedy decoding up to the end token;
- sampling: temperature 0 and top_k = 1 are greedy, a seed reproduces;
- an attention model with embeddings learns to reverse sequences;
- bad arguments.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import crnn
from crnn.losses import softmax_cross_entropy
from crnn.models import BeamSearchResult, Seq2Seq

BACKENDS = ["c", "numpy"]
CELLS = ["rnn", "lstm", "gru"]
ATTENTION = [None, "dot", "general", "additive"]
F64 = np.float64


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _source(model, rng, T, B):
    if model.embedding_dim is not None:
        return rng.integers(0, model.src_size, size=(T, B))
    return rng.standard_normal((T, B, model.src_size))


# --------------------------------------------------------------------------
# Gradients
# --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("attention", ATTENTION)
@pytest.mark.parametrize("embedding_dim", [None, 2])
def test_gradcheck(backend, cell, attention, embedding_dim):
    rng = np.random.default_rng(hash((cell, str(attention), embedding_dim)) % 2**32)
    S, V, H, Ts, Tt, B = 3, 4, 3, 4, 3, 3
    m = Seq2Seq(
        S,
        V,
        H,
        num_layers=2 if attention is None else 1,
        dtype=F64,
        seed=5,
        backend=backend,
        cell=cell,
        attention=attention,
        embedding_dim=embedding_dim,
        attention_size=2 if attention == "additive" else None,
    )
    src = _source(m, rng, Ts, B)
    src_lengths = np.array([4, 2, 3])
    tgt = rng.integers(0, V - 1, size=(Tt, B))
    tgt_in = m.decoder_inputs(tgt, start_id=V - 1)
    tgt_lengths = np.array([3, 3, 2])
    mask = np.arange(Tt)[:, None] < tgt_lengths[None, :]

    def loss():
        return softmax_cross_entropy(m(src, tgt_in, src_lengths, tgt_lengths), tgt, mask=mask)[0]

    m.zero_grad()
    _, d = softmax_cross_entropy(m(src, tgt_in, src_lengths, tgt_lengths), tgt, mask=mask)
    dsrc, dtgt = m.backward(d)
    params, grads = dict(m.params), dict(m.grads)
    if embedding_dim is None:
        assert not dsrc[2:, 1].any()  # padded source steps get no gradient
        params.update(src=src, tgt_in=tgt_in)
        grads.update(src=dsrc, tgt_in=dtgt)
    else:
        assert dsrc is None and dtgt is None
        # Rows of ids never read (padding, unused words) get no gradient.
        used = np.unique(np.concatenate([src[:2, 1], src[:4, 0], src[:3, 2]]))
        unused = np.setdiff1d(np.arange(S), used)
        assert not m.grads["src_embed.weight"][unused].any()
    rep = crnn.gradcheck(loss, params, grads, atol=1e-9, max_checks_per_param=15, rng=0)
    assert rep.ok, str(rep)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("attention", ATTENTION[1:])
def test_engines_agree_on_gradients(cell, attention):
    rng = np.random.default_rng(7)
    grads, logits = {}, {}
    src = rng.integers(0, 6, size=(7, 4))
    tgt = rng.integers(0, 5, size=(5, 4))
    for backend in BACKENDS:
        m = Seq2Seq(
            6,
            5,
            8,
            dtype=F64,
            seed=1,
            backend=backend,
            cell=cell,
            attention=attention,
            embedding_dim=4,
        )
        y = m(src, m.decoder_inputs(tgt, 4), src_lengths=[7, 3, 1, 5])
        _, d = softmax_cross_entropy(y, tgt)
        m.backward(d)
        grads[backend], logits[backend] = m.grads, y
    np.testing.assert_allclose(logits["c"], logits["numpy"], rtol=1e-12, atol=1e-13)
    for k in grads["c"]:
        np.testing.assert_allclose(
            grads["c"][k], grads["numpy"][k], rtol=1e-10, atol=1e-13, err_msg=k
        )


# --------------------------------------------------------------------------
# Beam search
# --------------------------------------------------------------------------


def _lp(n, alpha):
    return ((5.0 + n) / 6.0) ** alpha


class _Scorer:
    """Teacher-forced log-probabilities of one source row (no decoding code)."""

    def __init__(self, model, src, b, length, start_id):
        self.model, self.start = model, start_id
        self.src = src[:, b : b + 1]
        self.length = [length]

    def next_logp(self, prefix):
        """log p(. | prefix), shape (V,)."""
        tgt = np.array(list(prefix) + [0], dtype=np.int64)[:, None]
        logits = self.model(self.src, self.model.decoder_inputs(tgt, self.start), self.length)
        return _log_softmax(logits[-1, 0])

    def logp(self, seq):
        if not seq:
            return 0.0
        tgt = np.array(seq, dtype=np.int64)[:, None]
        logits = self.model(self.src, self.model.decoder_inputs(tgt, self.start), self.length)
        lsm = _log_softmax(logits[:, 0])
        return float(sum(lsm[t, v] for t, v in enumerate(seq)))


def _exhaustive(scorer, V, max_len, end_id, alpha):
    """The best hypothesis over every finished one and every one cut at max_len."""
    words = [v for v in range(V) if v != end_id]
    best = None
    for n in range(max_len + 1):
        for body in itertools.product(words, repeat=n):
            options = []
            if n < max_len:
                options.append((list(body) + [end_id], True))
            if n == max_len:
                options.append((list(body), False))
            for seq, fin in options:
                total = scorer.logp(seq)
                score = total / _lp(len(seq), alpha)
                if best is None or score > best[0]:
                    best = (score, total, seq[:-1] if fin else seq, fin)
    return best


def _naive_beam(scorer, V, K, max_len, end_id, alpha):
    """Beam search written plainly: lists of (prefix, log P), no early stop."""
    live = [((), 0.0)]
    best = None
    steps = 0
    for t in range(max_len):
        if not live:
            break
        steps = t + 1
        cands = []
        for prefix, total in live:
            lsm = scorer.next_logp(prefix)
            cands += [(total + lsm[v], prefix + (v,)) for v in range(V)]
        cands = sorted(cands, key=lambda c: -c[0])[:K]  # stable: ties keep the lower index
        live = []
        for total, seq in cands:
            if seq[-1] == end_id:
                score = total / _lp(len(seq), alpha)
                if best is None or score > best[0]:
                    best = (score, total, list(seq[:-1]), True)
            else:
                live.append((seq, total))
    if steps == max_len:
        for seq, total in live:
            score = total / _lp(max_len, alpha)
            if best is None or score > best[0]:
                best = (score, total, list(seq), False)
    return best


def _model(cell, attention, embedding_dim, seed=0, V=4, scale=1.5, backend="c"):
    m = Seq2Seq(
        5,
        V,
        6,
        dtype=F64,
        seed=seed,
        cell=cell,
        attention=attention,
        embedding_dim=embedding_dim,
        backend=backend,
    )
    m.head.params["weight"] *= scale  # sharper distributions: the choices matter
    return m


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize(
    "attention,embedding_dim", [(None, None), ("dot", 3), ("general", None), ("additive", 3)]
)
@pytest.mark.parametrize("alpha", [0.0, 0.6, 2.0])
def test_beam_search_is_exhaustive_when_wide(cell, attention, embedding_dim, alpha):
    V, end_id, start_id, max_len = 4, 0, 3, 3
    m = _model(cell, attention, embedding_dim, seed=11)
    rng = np.random.default_rng(2)
    src = _source(m, rng, 4, 3)
    lengths = np.array([4, 1, 3])
    res = m.beam_search(
        src, 64, max_len, end_id, start_id, length_penalty=alpha, src_lengths=lengths
    )
    assert isinstance(res, BeamSearchResult)
    for b in range(3):
        assert end_id not in res.sequences[b].tolist()
        scorer = _Scorer(m, src, b, lengths[b], start_id)
        score, total, seq, fin = _exhaustive(scorer, V, max_len, end_id, alpha)
        assert res.sequences[b].tolist() == seq, (b, res.sequences[b], seq)
        assert res.finished[b] == fin
        np.testing.assert_allclose(res.scores[b], score, rtol=1e-10)
        np.testing.assert_allclose(res.log_probs[b], total, rtol=1e-10)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("attention", [None, "general", "additive"])
@pytest.mark.parametrize("K", [2, 3])
def test_beam_search_matches_a_naive_beam(cell, attention, K):
    V, end_id, start_id, max_len = 5, 1, 4, 6
    m = _model(cell, attention, 3, seed=K, V=V, scale=1.0)
    rng = np.random.default_rng(K)
    src = _source(m, rng, 5, 4)
    lengths = np.array([5, 2, 4, 3])
    res = m.beam_search(src, K, max_len, end_id, start_id, length_penalty=0.6, src_lengths=lengths)
    for b in range(4):
        scorer = _Scorer(m, src, b, lengths[b], start_id)
        score, total, seq, fin = _naive_beam(scorer, V, K, max_len, end_id, 0.6)
        assert res.sequences[b].tolist() == seq, (b, res.sequences[b], seq)
        assert res.finished[b] == fin
        np.testing.assert_allclose([res.scores[b], res.log_probs[b]], [score, total], rtol=1e-10)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("attention", ATTENTION)
def test_beam_width_one_is_greedy(cell, attention):
    V, start_id = 6, 5
    m = _model(cell, attention, None, seed=3, V=V, scale=3.0)
    rng = np.random.default_rng(4)
    src = _source(m, rng, 6, 8)
    lengths = rng.integers(1, 7, size=8)
    greedy = m.greedy_decode(src, 12, start_id, src_lengths=lengths)
    end_id = int(greedy[2, 0])  # so that at least row 0 ends early
    res = m.beam_search(src, 1, 12, end_id, start_id, src_lengths=lengths)
    n_finished = 0
    for b in range(8):
        g = greedy[:, b].tolist()
        want = g[: g.index(end_id)] if end_id in g else g
        assert res.sequences[b].tolist() == want
        assert res.finished[b] == (end_id in g)
        n_finished += end_id in g
    assert n_finished >= 1
    # Without an end token every row runs to max_len, exactly as greedy does.
    res = m.beam_search(src, 1, 12, None, start_id, src_lengths=lengths)
    np.testing.assert_array_equal(np.stack(res.sequences, axis=1), greedy)


@pytest.mark.parametrize("alpha", [0.0, 1.0, 5.0])
@pytest.mark.parametrize("K", [1, 2, 4])
def test_beam_search_does_not_stop_too_early(alpha, K):
    """A model whose next-token distribution never changes: p(end) = 0.45,
    p(1) = 0.4. Every length's best hypothesis is 1 1 ... 1 end, and a
    strong length penalty makes the longest win although each finished
    hypothesis beats the live one of its length; a search that stopped at
    the first finished hypothesis, or kept extending finished ones, would
    return something else."""
    V, end_id, start_id, max_len = 4, 0, 3, 5
    m = Seq2Seq(2, V, 3, dtype=F64, seed=0, attention="dot")
    p = np.array([0.45, 0.4, 0.1, 0.05])
    m.head.params["weight"][...] = 0
    m.head.params["bias"][...] = np.log(p)
    src = np.random.default_rng(0).standard_normal((3, 2, 2))
    res = m.beam_search(src, K, max_len, end_id, start_id, length_penalty=alpha)
    scorer = _Scorer(m, src, 0, 3, start_id)
    if K == 1:  # greedy: the end token is the top choice at once
        score, total, seq, fin = _naive_beam(scorer, V, K, max_len, end_id, alpha)
        assert seq == [] and fin
    else:  # two hypotheses suffice to keep every length's best: exhaustive
        score, total, seq, fin = _exhaustive(scorer, V, max_len, end_id, alpha)
        assert _naive_beam(scorer, V, K, max_len, end_id, alpha)[2] == seq
        if alpha == 5.0:
            assert seq == [1] * (max_len - 1) and fin  # the longest: 1 1 1 1 end
        elif alpha == 0.0:
            assert seq == [] and fin  # the end token at once
    for b in range(2):
        assert res.sequences[b].tolist() == seq and res.finished[b] == fin
        np.testing.assert_allclose([res.scores[b], res.log_probs[b]], [score, total], rtol=1e-12)


def test_beam_search_attention_and_lengths():
    m = _model("lstm", "additive", 3, seed=6, V=5)
    rng = np.random.default_rng(0)
    src = _source(m, rng, 6, 3)
    lengths = np.array([6, 2, 4])
    res = m.beam_search(src, 3, 7, 0, 4, src_lengths=lengths)
    for b in range(3):
        a = res.attention[b]
        assert a.shape == (len(res.sequences[b]), lengths[b]) and a.dtype == F64
        np.testing.assert_allclose(a.sum(axis=1), 1, rtol=1e-12)
    # The first step's attention is what greedy decoding sees at its first step.
    _, alpha = m.greedy_decode(src, 1, 4, src_lengths=lengths, return_attention=True)
    for b in range(3):
        if len(res.sequences[b]):
            np.testing.assert_allclose(res.attention[b][0], alpha[0, b, : lengths[b]], rtol=1e-12)
    assert (
        _model("rnn", None, None)
        .beam_search(_source(_model("rnn", None, None), rng, 3, 2), 2, 4, 0, 3)
        .attention
        is None
    )
    # max_len 0: the empty hypothesis, score 0.
    res = m.beam_search(src, 2, 0, 0, 4, src_lengths=lengths)
    assert all(len(s) == 0 for s in res.sequences) and not res.finished.any()
    np.testing.assert_array_equal(res.scores, 0)


def test_wider_beams_score_at_least_as_well_when_exhaustive():
    m = _model("gru", "general", 3, seed=9, V=4)
    src = _source(m, np.random.default_rng(1), 4, 5)
    scores = [m.beam_search(src, k, 3, 0, 3, length_penalty=1.0).scores for k in (1, 2, 64)]
    assert np.all(scores[2] >= scores[0] - 1e-12) and np.all(scores[2] >= scores[1] - 1e-12)


# --------------------------------------------------------------------------
# Greedy and sampling
# --------------------------------------------------------------------------


@pytest.mark.parametrize("attention", [None, "dot"])
def test_sample(attention):
    m = _model("lstm", attention, 3, seed=2, V=6)
    src = _source(m, np.random.default_rng(3), 5, 4)
    greedy = m.greedy_decode(src, 7, 5, src_lengths=[5, 1, 3, 2])
    np.testing.assert_array_equal(m.sample(src, 7, 5, [5, 1, 3, 2], temperature=0), greedy)
    np.testing.assert_array_equal(m.sample(src, 7, 5, [5, 1, 3, 2], top_k=1, rng=0), greedy)
    a = m.sample(src, 7, 5, [5, 1, 3, 2], temperature=1.5, top_k=3, rng=1)
    np.testing.assert_array_equal(
        a, m.sample(src, 7, 5, [5, 1, 3, 2], temperature=1.5, top_k=3, rng=np.random.default_rng(1))
    )
    assert a.shape == (7, 4) and a.dtype == np.int64 and not np.array_equal(a, greedy)
    assert m.training  # the mode is restored


def test_embeddings_change_the_inputs_not_the_meaning():
    """An embedding whose rows are the one-hot vectors computes what the
    one-hot model computes (the encoder then reads identity-embedded ids)."""
    rng = np.random.default_rng(0)
    V, S = 5, 4
    one = Seq2Seq(S, V, 6, dtype=F64, seed=1, cell="gru", attention="general")
    emb = Seq2Seq(
        S, V, 6, dtype=F64, seed=1, cell="gru", attention="general", embedding_dim=max(S, V)
    )
    for name, value in one.params.items():
        target = emb.params[name]
        target[...] = 0
        target[tuple(slice(0, n) for n in value.shape)] = value
    emb.params["src_embed.weight"][...] = np.eye(S, max(S, V))
    emb.params["tgt_embed.weight"][...] = np.eye(V, max(S, V))
    src_ids = rng.integers(0, S, size=(5, 3))
    tgt = rng.integers(0, V, size=(4, 3))
    y1 = one(crnn.models.one_hot(src_ids, S, F64), one.decoder_inputs(tgt, 4), [5, 2, 3])
    y2 = emb(src_ids, emb.decoder_inputs(tgt, 4), [5, 2, 3])
    np.testing.assert_allclose(y1, y2, rtol=1e-12, atol=1e-13)
    np.testing.assert_array_equal(
        one.greedy_decode(crnn.models.one_hot(src_ids, S, F64), 6, 4, [5, 2, 3]),
        emb.greedy_decode(src_ids, 6, 4, [5, 2, 3]),
    )


# --------------------------------------------------------------------------
# Learning
# --------------------------------------------------------------------------


def test_attention_model_with_embeddings_learns_to_reverse():
    rng = np.random.default_rng(0)
    V, T, B = 8, 5, 32  # ids 0..5 are symbols, 6 is the start token
    m = Seq2Seq(V, V, 32, seed=0, cell="gru", attention="general", embedding_dim=16)
    opt = crnn.optim.Adam(m.params, lr=0.02)
    for _ in range(150):
        src = rng.integers(0, 6, size=(T, B))
        tgt = src[::-1]
        m.zero_grad()
        _, d = softmax_cross_entropy(m(src, m.decoder_inputs(tgt, 6)), tgt)
        m.backward(d)
        opt.step(m.grads)
    src = rng.integers(0, 6, size=(T, 200))
    out = m.greedy_decode(src, T, 6)
    acc = np.mean(out == src[::-1])
    res = m.beam_search(src[:, :20], 3, T, None, 6)
    beam_acc = np.mean(np.stack(res.sequences, axis=1) == src[::-1, :20])
    assert acc > 0.9 and beam_acc > 0.9, (acc, beam_acc)


# --------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------


def test_bad_arguments():
    with pytest.raises(ValueError, match="attention must be None or one of"):
        Seq2Seq(3, 4, 5, attention="luong")
    with pytest.raises(ValueError, match="attention_size applies to attention='additive' only"):
        Seq2Seq(3, 4, 5, attention="dot", attention_size=3)
    with pytest.raises(ValueError, match="embedding_dim must be >= 1"):
        Seq2Seq(3, 4, 5, embedding_dim=0)
    m = Seq2Seq(3, 4, 5, embedding_dim=2, attention="dot", seed=0)
    src = np.array([[0, 1], [2, 2]])
    with pytest.raises(
        TypeError, match="src must be an array of integer token ids, got dtype float64"
    ):
        m(src.astype(float), m.decoder_inputs(src, 3))
    with pytest.raises(ValueError, match=r"src must lie in \[0, num_embeddings\) = \[0, 3\)"):
        m(src + 1, m.decoder_inputs(src, 3))
    with pytest.raises(ValueError, match=r"src must be token ids of shape \(T, B\)"):
        m(src[0], m.decoder_inputs(src, 3))
    with pytest.raises(ValueError, match=r"tgt_in must lie in \[0, num_embeddings\) = \[0, 4\)"):
        m(src, src + 3)
    with pytest.raises(
        ValueError, match=r"start_id must be a target id in \[0, tgt_size\) = \[0, 4\)"
    ):
        m.greedy_decode(src, 3, 4)
    with pytest.raises(ValueError, match="beam_width must be >= 1"):
        m.beam_search(src, 0, 3, 0, 3)
    with pytest.raises(ValueError, match="end_id must be a target id"):
        m.beam_search(src, 2, 3, 9, 3)
    with pytest.raises(ValueError, match="length_penalty must be a number >= 0"):
        m.beam_search(src, 2, 3, 0, 3, length_penalty=-1)
    with pytest.raises(ValueError, match="temperature must be a number >= 0"):
        m.sample(src, 3, 3, temperature=-0.5)
    with pytest.raises(ValueError, match="return_attention needs a model with attention"):
        Seq2Seq(3, 4, 5).greedy_decode(np.zeros((2, 1, 3), np.float32), 2, 0, return_attention=True)
    assert m.training
