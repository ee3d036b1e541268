"""Vanishing gradients: a tanh RNN against an LSTM and a GRU
=========================================================

On the adding problem (Hochreiter & Schmidhuber, 1997).

Each input step is a pair (value in [0, 1], marker in {0, 1}); exactly two
steps are marked, one in the first half of the sequence and one in the second.
The target, read once after the last step, is the sum of the two marked
values. Predicting the mean (1.0) scores an MSE of Var(U + U) = 1/6 ≈ 0.167:
a model that beats it clearly has carried the first marked value across
T/2 steps or more.

The three layers (same hidden size, Adam, gradient-norm clipping) are trained
with the same data and seed. Then, for each trained layer, the gradient of
the loss (on the last step only) with respect to every hidden state,
||dL/dh_t||, is printed for t = T-1 back to 0. It is computed by running the
layer from step t + 1 with the state (h_t[, c_t]) as its initial state and
backpropagating: the gradient with respect to that initial state is dL/dh_t
(for the LSTM, with c_t held). In the tanh RNN it shrinks geometrically as t
moves away from the loss, so the early marker's value never reaches the
weights; the gated cells keep it. (At initialisation the LSTM's gradient
fades too, its forget gates being near 0.5; the point is that training can
open them, while the tanh RNN has no such path.)

Run:  python examples/vanishing_gradients.py [--plot]   (CRNN_EXAMPLES_QUICK=1: a short run)

--plot draws ||dL/dh_t|| against t for the three cells, trained and at
initialisation, with matplotlib (``pip install "crnn[plot]"``) into
vanishing_gradients.png.
"""

import os
import sys

import numpy as np

import crnn
from crnn.losses import mse
from crnn.optim import Adam

BASELINE = 1.0 / 6.0
CELLS = ("rnn", "lstm", "gru")


def adding_batch(rng, T, B, dtype=np.float32):
    """(T, B, 2) inputs and (B, 1) targets of the adding problem."""
    x = np.zeros((T, B, 2), dtype=dtype)
    x[:, :, 0] = rng.uniform(0.0, 1.0, size=(T, B))
    first = rng.integers(0, T // 2, size=B)
    second = rng.integers(T // 2, T, size=B)
    rows = np.arange(B)
    x[first, rows, 1] = 1.0
    x[second, rows, 1] = 1.0
    y = (x[first, rows, 0] + x[second, rows, 0])[:, None]
    return x, y.astype(dtype)


class Regressor(crnn.Module):
    """A recurrent layer (tanh RNN, LSTM or GRU) and a linear read-out of its
    last state."""

    def __init__(self, cell, hidden_size, seed=0):
        super().__init__()
        self.cell = cell
        layer_cls = {"rnn": crnn.RNN, "lstm": crnn.LSTM, "gru": crnn.GRU}[cell]
        self.rnn = layer_cls(2, hidden_size, seed=seed)
        self.head = crnn.Linear(hidden_size, 1, seed=seed + 1)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[-1])

    def backward(self, dy):
        dlast = self.head.backward(dy)
        dout = np.zeros(self.rnn.cache.out_shape, dtype=dlast.dtype)
        dout[-1] = dlast
        self.rnn.backward(dout)


def train(cell, T, steps, hidden_size=32, batch=64, lr=1e-2, seed=0):
    """Train one model on fresh batches; returns (model, MSE on 1000 new sequences)."""
    rng = np.random.default_rng(seed)
    model = Regressor(cell, hidden_size, seed=seed)
    opt = Adam(model.params, lr=lr, clip_grad_norm=1.0)
    with crnn.limit_blas_threads():  # one BLAS thread while training (see one_to_many.py)
        for _ in range(steps):
            x, y = adding_batch(rng, T, batch)
            model.zero_grad()
            _, dy = mse(model(x), y)
            model.backward(dy)
            opt.step(model.grads)
    x, y = adding_batch(np.random.default_rng(seed + 12345), T, 1000)
    loss, _ = mse(model(x), y)
    return model, float(loss)


def grad_norms_through_time(model, x, y):
    """||dL/dh_t|| for t = 0 .. T-1 (mean over the batch), L the MSE of the
    prediction after the last step.

    For each t the layer is rerun from step t + 1 with (h_t[, c_t]) as its
    initial state; the functional backward's dh0 is dL/dh_t.
    """
    layer = model.rnn
    p = [layer.params[k] for k in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")]
    T = x.shape[0]
    pred = model.head(model.rnn(x)[0][-1])
    _, dy = mse(pred, y)
    dh_last = model.head.backward(dy)  # dL/dh_{T-1}
    if model.cell == "lstm":
        out, _, _, cache = crnn.lstm_forward(x, None, None, *p)
        cells = cache.cells
    elif model.cell == "gru":
        out, _, _ = crnn.gru_forward(x, None, *p)
    else:
        out, _, _ = crnn.rnn_forward(x, None, *p, nonlinearity=layer.nonlinearity)
    norms = np.empty(T)
    for t in range(T):
        rest = x[t + 1 :]
        if model.cell == "lstm":
            _, _, _, c = crnn.lstm_forward(rest, out[t], cells[t], *p)
            dh = crnn.lstm_backward(None, dh_last, None, c).dh0
        elif model.cell == "gru":
            _, _, c = crnn.gru_forward(rest, out[t], *p)
            dh = crnn.gru_backward(None, dh_last, c).dh0
        else:
            _, _, c = crnn.rnn_forward(rest, out[t], *p, nonlinearity=layer.nonlinearity)
            dh = crnn.rnn_backward(None, dh_last, c).dh0
        norms[t] = np.linalg.norm(dh.astype(np.float64), axis=1).mean()
    model.zero_grad()
    return norms


def plot(norms, fresh, path="vanishing_gradients.png"):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print('--plot needs matplotlib: pip install "crnn[plot]"', file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for cell in CELLS:
        (line,) = ax.semilogy(norms[cell], label=f"{cell}, trained")
        ax.semilogy(fresh[cell], linestyle="--", color=line.get_color(), label=f"{cell}, at init")
    ax.set_xlabel("time step t (loss at the last step)")
    ax.set_ylabel("||dL/dh_t||")
    ax.set_title("gradient through time, adding problem")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"\nplot: {path}")


def main():
    quick = bool(os.environ.get("CRNN_EXAMPLES_QUICK"))
    T = 20 if quick else 60
    steps = 30 if quick else 1500
    print(f"adding problem, T = {T}, {steps} Adam steps of 64 sequences, hidden size 32")
    print(f"baseline (always predict 1.0): MSE {BASELINE:.3f}")
    results = {}
    for cell in CELLS:
        model, loss = train(cell, T, steps)
        results[cell] = model
        print(f"{cell:>4}: test MSE {loss:.4f} ({loss / BASELINE:.0%} of the baseline)")
    x, y = adding_batch(np.random.default_rng(7), T, 256)
    print("\n||dL/dh_t|| (loss on the last step only), mean over 256 sequences:")
    marks = sorted({T - 1, T - 2, T - 5, T - 10, T // 2, T // 4, 0})[::-1]
    print("   t  " + "".join(f"{c:>11}" for c in CELLS))
    norms = {cell: grad_norms_through_time(results[cell], x, y) for cell in CELLS}
    for t in marks:
        print(f"{t:4d}  " + "".join(f"{norms[c][t]:11.2e}" for c in CELLS))
    print("\n||dL/dh_0|| / ||dL/dh_T-1||, after training and (in brackets) at initialisation:")
    fresh = {cell: grad_norms_through_time(Regressor(cell, 32, seed=0), x, y) for cell in CELLS}
    for cell in CELLS:
        ratio = norms[cell][0] / norms[cell][-1]
        print(f"{cell:>4}: {ratio:.1e}  ({fresh[cell][0] / fresh[cell][-1]:.1e})")
    if "--plot" in sys.argv[1:]:
        plot(norms, fresh)


if __name__ == "__main__":
    main()
