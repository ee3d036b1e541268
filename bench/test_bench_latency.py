"""Latency benchmarks (pytest-benchmark): one step, sampling and the small
training step, each group's implementations run one after the other;
bench/report.py turns them into ratios and checks the targets. Run::

    pytest bench/test_bench_latency.py --benchmark-only --benchmark-json=out.json
    python bench/report.py --json out.json

Groups (extra_info: impl, kind, and the sizes):

- ``latency-step-{cell}-H{H}``: one step at B = 1, float32, I = H / 4, for
  H in 32, 128, 512 and the RNN, LSTM and GRU: ``layer.step(x, state,
  out=state)`` (impl crnn), the cell's step written in NumPy (numpy), and
  torch's ``RNNCell`` / ``LSTMCell`` / ``GRUCell`` under no_grad (torch).
- ``latency-fixed-H8``: the fixed cost of a step, the RNN at H = I = 8.
- ``latency-sample``: ``CharModel.sample(prime, 10000)`` on a model of the
  demo's size (92 characters, RNN 128): its generation a step at a time
  with prepared weights (crnn) against one forward call per character and
  the sampler of before (per-char-forward), the generation crnn had.
- ``latency-train-T50-B32-V92-H128``: the demo's model, one window: the
  whole training step (forward, softmax cross-entropy, backward, Adam with
  clipping; crnn's TBPTT step) in crnn, crnn.reference and torch; and
  ``latency-trainrnn-...``: its recurrent layer's forward + backward.
- ``latency-threads-fwd-T50-B32-I92-H128``: the recurrent layer's forward
  on 1 and on 2 threads (impl "1 thread" / "2 threads").

Every implementation gets the default thread count (problems.default_threads)
unless the group pins one. No benchmark asserts a timing.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

import crnn
import problems as P
from crnn.apps.training_speed import training_cases
from crnn.data import one_hot
from crnn.models import CharModel

DEFAULT_THREADS = P.default_threads()
STEP_SIZES = (32, 128, 512)
STEP_CELLS = ("rnn", "lstm", "gru")
STEP_IMPLS = ("crnn", "numpy", "torch")
TRAIN = (50, 32, 92, 128)  # T, B, vocabulary, H: the demo's model and window
SAMPLE_LENGTH = 10000


@contextlib.contextmanager
def _threads(n):
    """Every implementation on n threads: crnn, torch (when installed) and
    NumPy's BLAS."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(P._crnn_threads(n))
        stack.enter_context(crnn.limit_blas_threads(n))
        if P.HAVE_TORCH:
            stack.enter_context(P._torch_threads(n))
        yield


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def numpy_step(cell, w, x, state):
    """The cell's step in plain NumPy (one row), as a user writes it."""
    gi = w["weight_ih"] @ x + w["bias_ih"]
    gh = w["weight_hh"] @ state[0] + w["bias_hh"]
    if cell == "rnn":
        return (np.tanh(gi + gh),)
    if cell == "lstm":
        i, f, g, o = np.split(gi + gh, 4)
        c = _sigmoid(f) * state[1] + _sigmoid(i) * np.tanh(g)
        return _sigmoid(o) * np.tanh(c), c
    ir, iz, inn = np.split(gi, 3)
    hr, hz, hn = np.split(gh, 3)
    r, z = _sigmoid(ir + hr), _sigmoid(iz + hz)
    n = np.tanh(inn + r * hn)
    return ((1 - z) * n + z * state[0],)


def _step_case(cell, H, impl):
    """fn() running one step of `impl`, with the state carried over."""
    I = max(H // 4, 1)  # noqa: E741
    layer = crnn.nn.recurrent_layer(cell, I, H, dtype=np.float32, seed=0).eval()
    w = {k[:-3]: v for k, v in layer.params.items()}  # "weight_ih_l0" -> "weight_ih"
    x = np.random.default_rng(0).standard_normal(I).astype(np.float32) * 0.5
    n_states = len(layer.spec.states)
    if impl == "crnn":
        x2 = x[None]
        state = tuple(np.zeros((1, 1, H), np.float32) for _ in range(n_states))
        state = state if n_states > 1 else state[0]
        return lambda: layer.step(x2, state, out=state)
    if impl == "numpy":
        holder = [tuple(np.zeros(H, np.float32) for _ in range(n_states))]

        def run():
            holder[0] = numpy_step(cell, w, x, holder[0])

        return run
    import torch

    mod = getattr(torch.nn, f"{layer.spec.torch_module}Cell")(I, H)
    with torch.no_grad():
        for name, p in mod.named_parameters():
            p.copy_(torch.from_numpy(w[name]))
    xt = torch.from_numpy(x)[None]
    holder = [None]

    def run_torch():
        with torch.no_grad():
            holder[0] = mod(xt, holder[0])

    return run_torch


def _step_params():
    out = []
    for cell in STEP_CELLS:
        for H in STEP_SIZES:
            for impl in STEP_IMPLS:
                marks = (
                    [pytest.mark.skip(reason=P.unavailable("torch"))]
                    if impl == "torch" and P.unavailable("torch")
                    else []
                )
                out.append(pytest.param(cell, H, impl, marks=marks, id=f"{cell}-H{H}-{impl}"))
    return out


@pytest.mark.parametrize("cell, H, impl", _step_params())
def test_step(timed, cell, H, impl):
    with _threads(DEFAULT_THREADS):
        timed(
            _step_case(cell, H, impl),
            f"latency-step-{cell}-H{H}",
            impl=impl,
            kind="step",
            cell=cell,
            H=H,
            threads=DEFAULT_THREADS,
        )


def test_fixed_cost(timed):
    layer = crnn.RNN(8, 8, dtype=np.float32, seed=0)
    x = np.zeros((1, 8), np.float32)
    h = np.zeros((1, 1, 8), np.float32)
    timed(lambda: layer.step(x, h, out=h), "latency-fixed-H8", impl="crnn", kind="fixed", H=8)


# --------------------------------------------------------------------------
# Sampling: the generation of today against the one before
# --------------------------------------------------------------------------


def _previous_sample(logits, temperature, rng):
    """crnn.models' sampler before prepared steps (normalised softmax, then
    the inverse CDF), kept here to time the generation of before."""
    z = logits.astype(np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=-1, keepdims=True)
    u = rng.random((p.shape[0], 1))
    return np.minimum((np.cumsum(p, axis=-1) < u).sum(axis=-1), p.shape[-1] - 1)


def _per_char_forward(model, prime, n, seed):
    """CharRNN.generate before prepared steps: one forward call (one-hot
    input, validation, packing) per character."""
    rng = np.random.default_rng(seed)
    ids = model.encode(prime)[:, None]
    logits, h = model(one_hot(ids, model.vocab_size, model.dtype))
    out = np.empty(n, np.int64)
    for t in range(n):
        nxt = _previous_sample(logits[-1], 1.0, rng)
        out[t] = nxt[0]
        logits, h = model(one_hot(nxt[None, :], model.vocab_size, model.dtype), h)
    return out


@pytest.mark.parametrize("impl", ["crnn", "per-char-forward"])
def test_sample(timed, smoke, impl):
    chars = "".join(chr(c) for c in range(33, 33 + TRAIN[2] - 1))  # 91 + the unknown: 92 ids
    model = CharModel(chars, TRAIN[3], seed=0).eval()
    n = 50 if smoke else SAMPLE_LENGTH
    if impl == "crnn":
        fn = lambda: model.sample("Return the ", n, rng=1)  # noqa: E731
    else:
        fn = lambda: _per_char_forward(model, "Return the ", n, 1)  # noqa: E731
    with _threads(DEFAULT_THREADS):
        timed(fn, "latency-sample", impl=impl, kind="sample", length=n, threads=DEFAULT_THREADS)


# --------------------------------------------------------------------------
# The demo's training step, and thread scaling at its size
# --------------------------------------------------------------------------


def _train_params():
    out = []
    for impl in ("crnn", "reference", "torch"):
        reason = P.unavailable("torch") if impl == "torch" else None
        out.append(
            pytest.param(impl, marks=[pytest.mark.skip(reason=reason)] if reason else [], id=impl)
        )
    return out


@pytest.mark.parametrize("kind", ["step", "rnn"])
@pytest.mark.parametrize("impl", _train_params())
def test_training(timed, smoke, kind, impl):
    T, B, V, H = (4, 2, 8, 8) if smoke else TRAIN
    chars = "".join(chr(c) for c in range(33, 33 + V - 1))
    model = CharModel(chars, H, seed=0)
    ids = np.random.default_rng(0).integers(0, V, size=(T + 1, B))
    fn = training_cases(
        model, {"crnn": "c", "reference": "numpy"}.get(impl, impl), ids[:-1], ids[1:]
    )[kind]
    group = "latency-train" if kind == "step" else "latency-trainrnn"
    with _threads(DEFAULT_THREADS):
        timed(
            fn,
            f"{group}-T{T}-B{B}-V{V}-H{H}",
            impl=impl,
            kind=f"train-{kind}",
            shape=[T, B, V, H],
            threads=DEFAULT_THREADS,
        )


@pytest.mark.parametrize("threads", [1, 2])
def test_forward_threads(timed, smoke, threads):
    T, B, V, H = (4, 2, 8, 8) if smoke else TRAIN
    args = P.make_problem((T, B, V, H))[0]
    with P._crnn_threads(threads):
        timed(
            lambda: crnn.rnn_forward(**args),
            f"latency-threads-fwd-T{T}-B{B}-I{V}-H{H}",
            impl=f"{threads} thread{'s' if threads > 1 else ''}",
            kind="threads",
            shape=[T, B, V, H],
            threads=threads,
        )
