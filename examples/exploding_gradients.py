"""Exploding gradients and gradient-norm clipping
==============================================

The other half of the vanishing-gradient story (Pascanu, Mikolov & Bengio,
2013).

Backpropagation through time multiplies the gradient by the recurrent
Jacobian diag(1 - h_t^2) W_hh once per step. Where that product shrinks the
gradient vanishes (examples/vanishing_gradients.py); where it grows, the
gradient grows geometrically with the distance to the loss: it explodes.

1. Through time. The same tanh RNN (32 units) with its recurrent weights
   drawn from N(0, g^2 / H) for g = 1, 2, 4: ||dL/dh_t|| (the loss on the
   last of 60 steps) is printed for t = T-1 back to 0. At g = 1 it shrinks;
   at g = 4 it grows by about 1.5x per step, to some 10^10 at t = 0.

2. In training. Such an RNN (g = 3) learns to output the sum of the last
   two of 30 inputs, with plain SGD (lr 0.05, 64 sequences per step). The
   gradient norm ||g|| is printed step by step. Without clipping it grows
   from step to step -- each update enlarges the weights that make the next
   gradient larger -- until the loss is inf or NaN. With
   ``crnn.clip_grad_norm(grads, 0.5)`` before each update (PyTorch's
   ``clip_grad_norm_``: the gradients are scaled so that their total norm is at
   most 0.5) no update moves the weights by more than lr * 0.5, the gradient
   norm comes down, and the model learns: its test MSE ends far below the
   baseline of predicting the mean (1/6 = 0.167).

Run:  python examples/exploding_gradients.py [--plot]   (CRNN_EXAMPLES_QUICK=1: a short run)

--plot draws both parts with matplotlib (``pip install "crnn[plot]"``) into
exploding_gradients.png.
"""

import math
import os
import sys

import numpy as np

import crnn
from crnn.losses import mse
from crnn.optim import SGD

BASELINE = 1.0 / 6.0  # Var(U + U) for two uniform values in [0, 1]
SCALES = (1.0, 2.0, 4.0)
MAX_NORM = 0.5


def last_two_batch(rng, T, B, dtype=np.float32):
    """(T, B, 2) inputs and (B, 1) targets: the sum of the values at the last two
    steps. Each step is (value in [0, 1], marker), the marker set on the two
    steps that count."""
    x = np.zeros((T, B, 2), dtype=dtype)
    x[:, :, 0] = rng.uniform(0.0, 1.0, size=(T, B))
    x[-2:, :, 1] = 1.0
    return x, x[-2:, :, 0].sum(axis=0)[:, None].astype(dtype)


class Regressor(crnn.Module):
    """A tanh RNN whose recurrent weights are drawn from N(0, g^2 / H), and a
    linear read-out of its last state."""

    def __init__(self, gain, hidden_size=32, seed=0):
        super().__init__()
        self.gain = gain
        self.rnn = crnn.RNN(2, hidden_size, seed=seed)
        rng = np.random.default_rng(seed)
        w = rng.standard_normal((hidden_size, hidden_size)) * gain / math.sqrt(hidden_size)
        self.rnn.params["weight_hh_l0"][...] = w
        self.head = crnn.Linear(hidden_size, 1, seed=seed + 1)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[-1])

    def backward(self, dy):
        dlast = self.head.backward(dy)
        dout = np.zeros(self.rnn.cache.out_shape, dtype=dlast.dtype)
        dout[-1] = dlast
        self.rnn.backward(dout)


def grad_norms_through_time(model, x, y):
    """||dL/dh_t|| for t = 0 .. T-1 (mean over the batch), L the MSE of the
    prediction after the last step.

    For each t the layer is rerun from step t + 1 with h_t as its initial
    state; the functional backward's dh0 is dL/dh_t.
    """
    layer = model.rnn
    p = [layer.params[k] for k in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")]
    out, _, _ = crnn.rnn_forward(x, None, *p)
    _, dy = mse(model.head(out[-1]), y)
    dh_last = model.head.backward(dy)  # dL/dh_{T-1}
    norms = np.empty(x.shape[0])
    for t in range(x.shape[0]):
        _, _, cache = crnn.rnn_forward(x[t + 1 :], out[t], *p)
        dh = crnn.rnn_backward(None, dh_last, cache).dh0
        norms[t] = np.linalg.norm(dh.astype(np.float64), axis=1).mean()
    model.zero_grad()
    return norms


def grad_norm(grads):
    """The total 2-norm of a model's gradients (as clip_grad_norm measures it)."""
    return math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads.values()))


def train(clip, steps, T=30, gain=3.0, lr=0.05, batch=64, seed=0):
    """Train with SGD, clipping the gradient norm at `clip` (None: never).

    Returns (model, history, test MSE): history holds (loss, ||g||) per step,
    ||g|| measured before any clipping. Training goes on after the loss has
    become inf or NaN (which then stays), as a training loop that does not
    check would.
    """
    rng = np.random.default_rng(seed)
    model = Regressor(gain, seed=seed)
    opt = SGD(model.params, lr=lr)
    history = []
    with crnn.limit_blas_threads(), np.errstate(all="ignore"):
        for _ in range(steps):
            x, y = last_two_batch(rng, T, batch)
            model.zero_grad()
            loss, dy = mse(model(x), y)
            model.backward(dy)
            norm = grad_norm(model.grads)
            if clip is not None:
                crnn.clip_grad_norm(model.grads, clip)
            opt.step(model.grads)
            history.append((float(loss), norm))
        x, y = last_two_batch(np.random.default_rng(seed + 12345), T, 1000)
        test, _ = mse(model(x), y)
    return model, history, float(test)


def _fmt(v):
    return f"{v:10.3g}" if math.isfinite(v) else f"{v!s:>10}"


def plot(norms, runs, path="exploding_gradients.png"):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print('--plot needs matplotlib: pip install "crnn[plot]"', file=sys.stderr)
        return
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for g, n in norms.items():
        a.semilogy(n, label=f"g = {g:g}")
    a.set_xlabel("time step t (loss at the last step)")
    a.set_ylabel("||dL/dh_t||")
    a.set_title("through time")
    a.legend()
    for name, (_, hist, _) in runs.items():
        b.semilogy([h[1] for h in hist], label=name)
    b.set_xlabel("training step")
    b.set_ylabel("gradient norm before clipping")
    b.set_title("in training (SGD)")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"\nplot: {path}")


def main():
    quick = bool(os.environ.get("CRNN_EXAMPLES_QUICK"))
    T = 20 if quick else 60
    steps = 80 if quick else 1500

    print(
        f"1. ||dL/dh_t|| through time: tanh RNN, 32 units, T = {T}, recurrent weights "
        f"N(0, g^2/32); mean over 256 sequences"
    )
    x, y = last_two_batch(np.random.default_rng(7), T, 256)
    norms = {g: grad_norms_through_time(Regressor(g, seed=0), x, y) for g in SCALES}
    marks = sorted({T - 1, T - 2, T - 5, T - 10, T // 2, T // 4, 0})[::-1]
    print("   t  " + "".join(f"{'g = ' + format(g, 'g'):>11}" for g in SCALES))
    for t in marks:
        print(f"{t:4d}  " + "".join(f"{norms[g][t]:11.2e}" for g in SCALES))
    for g in SCALES:
        n = norms[g]
        per_step = (n[0] / n[-1]) ** (1.0 / (T - 1))
        print(
            f"g = {g:g}: ||dL/dh_0|| / ||dL/dh_T-1|| = {n[0] / n[-1]:.1e} "
            f"({per_step:.2f}x per step)"
        )

    print(
        f"\n2. training (g = 3, sum of the last two of 30 inputs, SGD lr 0.05, {steps} steps "
        f"of 64 sequences); baseline (always predict 1.0): MSE {BASELINE:.3f}"
    )
    runs = {
        "no clipping": train(None, steps),
        f"clip_grad_norm {MAX_NORM:g}": train(MAX_NORM, steps),
    }
    shown = list(range(min(12, steps))) + list(range(12, steps, max(1, steps // 8)))
    print("  step" + "".join(f"{name + ' loss':>24}{'||g||':>10}" for name in runs))
    for i in shown:
        row = f"{i + 1:6d}"
        for _, hist, _ in runs.values():
            loss, norm = hist[i]
            row += f"{_fmt(loss):>24}{_fmt(norm)}"
        print(row)
    for name, (_, hist, test) in runs.items():
        finite = [n for _, n in hist if math.isfinite(n)]
        largest = max(finite) if finite else float("nan")
        bad = next((i + 1 for i, (loss, _) in enumerate(hist) if not math.isfinite(loss)), None)
        end = f"loss not finite from step {bad} on" if bad else f"test MSE {test:.4g}"
        print(f"{name}: {end}; largest finite ||g|| {largest:.3g}")
    if "--plot" in sys.argv[1:]:
        plot(norms, runs)


if __name__ == "__main__":
    main()
