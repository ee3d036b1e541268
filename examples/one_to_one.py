"""One-to-one: a single input, a single output
===========================================

No time axis.

An "RNN" run for one step from a zero state is just a linear layer and its
activation, so the one-to-one model is a small perceptron,
`crnn.models.MLPRegressor`. Here it learns y = sin(x) on [-pi, pi] from 256
noisy samples, with mean squared error and Adam, then prints its error on a
clean grid and a few predictions.

Run:  python examples/one_to_one.py        (CRNN_EXAMPLES_QUICK=1: a short run)
"""

import os

import numpy as np

import crnn
from crnn.losses import mse
from crnn.models import MLPRegressor
from crnn.optim import Adam

QUICK = bool(os.environ.get("CRNN_EXAMPLES_QUICK"))
STEPS = 100 if QUICK else 2000

rng = np.random.default_rng(0)
x = rng.uniform(-np.pi, np.pi, size=(256, 1))
y = np.sin(x) + 0.05 * rng.standard_normal(x.shape)
x, y = x.astype(np.float64), y.astype(np.float64)

model = MLPRegressor(1, 32, 1, nonlinearity="tanh", dtype=np.float64, seed=0)
opt = Adam(model.params, lr=1e-2)

# One BLAS thread while training: NumPy's small products between the C
# calls would otherwise spin threads that compete with crnn's.
with crnn.limit_blas_threads():
    for step in range(1, STEPS + 1):
        model.zero_grad()
        loss, dpred = mse(model(x), y)
        model.backward(dpred)
        opt.step(model.grads)
        if step == 1 or step % (STEPS // 4) == 0:
            print(f"step {step:5d}  training MSE {loss:.4f}")

grid = np.linspace(-np.pi, np.pi, 101)[:, None]
test_mse = float(np.mean((model(grid) - np.sin(grid)) ** 2))
print(f"test MSE against sin(x) on a clean grid: {test_mse:.4f}")
for v in (-2.0, -1.0, 0.0, 1.0, 2.0):
    p = float(model(np.array([[v]]))[0, 0])
    print(f"  x = {v:+.1f}   predicted {p:+.3f}   sin(x) = {np.sin(v):+.3f}")
