"""Many-to-many: an output at every input step
===========================================

Over a long stream, trained with truncated BPTT.

`crnn.models.SequenceTagger` (an RNN with a linear layer at every step)
learns to echo its input with a delay: the target at step t is the bit it
read at step t - 3, so it must remember the last three bits. The training
data is one long stream per batch row (20,000 steps), too long to
backpropagate through in one go, so `crnn.training.TBPTT` cuts it into
windows of 20 steps and carries the hidden state from window to window.
Prints the per-step accuracy on a fresh stream.

Run:  python examples/many_to_many.py       (CRNN_EXAMPLES_QUICK=1: a short run)
"""

import os

import numpy as np

import crnn
from crnn.losses import softmax_cross_entropy
from crnn.models import SequenceTagger, one_hot
from crnn.optim import Adam
from crnn.training import TBPTT

QUICK = bool(os.environ.get("CRNN_EXAMPLES_QUICK"))
T_TOTAL = 1_000 if QUICK else 20_000
DELAY, B = 3, 16
rng = np.random.default_rng(0)


def stream(T, B):
    """Random bits (T, B), one-hot inputs (T, B, 2) and delayed targets (T, B)."""
    bits = rng.integers(0, 2, size=(T, B))
    targets = np.zeros_like(bits)
    targets[DELAY:] = bits[:-DELAY]
    return one_hot(bits, 2), targets


model = SequenceTagger(2, 32, 2, seed=0)
opt = Adam(model.params, lr=3e-3, clip_grad_norm=1.0)
trainer = TBPTT(model, softmax_cross_entropy, opt, k=20)
x, y = stream(T_TOTAL, B)
with crnn.limit_blas_threads():  # one BLAS thread while training (see one_to_many.py)
    losses = trainer.run(x, y)
n = len(losses)
for i in (0, n // 4, n // 2, 3 * n // 4, n - 1):
    print(f"window {i + 1:5d}/{n}  loss {losses[i]:.4f}")

x, y = stream(2000, B)
model.eval()
logits, _ = model(x)
pred = logits.argmax(axis=-1)
accuracy = float(np.mean(pred[DELAY:] == y[DELAY:]))
print(f"per-step accuracy on a new stream (echo {DELAY} steps back): {accuracy:.1%} (chance: 50%)")
print("input bits: " + "".join(str(int(v)) for v in x[:24, 0].argmax(axis=-1)))
print("RNN output: " + "".join(str(int(v)) for v in pred[:24, 0]))
