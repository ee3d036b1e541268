"""Many-to-one: read a whole sequence, answer once
===============================================

`crnn.models.SequenceClassifier` runs an RNN over each sequence and
classifies the state after the sequence's last valid step. The task: given a
sequence of 5 to 20 numbers drawn from [-1, 1], is their sum positive? The
sequences have different lengths, so they are padded into one time-major
batch and the true lengths are passed along (`lengths=`): padding never
leaks into the answer. Prints the accuracy on fresh sequences.

Run:  python examples/many_to_one.py        (CRNN_EXAMPLES_QUICK=1: a short run)
"""

import os

import numpy as np

import crnn
from crnn.losses import softmax_cross_entropy
from crnn.models import SequenceClassifier
from crnn.optim import Adam

QUICK = bool(os.environ.get("CRNN_EXAMPLES_QUICK"))
STEPS = 40 if QUICK else 1500
T_MAX, B = 20, 64
rng = np.random.default_rng(0)


def make_batch(n):
    """(T_MAX, n, 1) padded inputs, their lengths and labels (sum > 0)."""
    lengths = rng.integers(5, T_MAX + 1, size=n)
    x = np.zeros((T_MAX, n, 1), dtype=np.float32)
    for b, L in enumerate(lengths):
        x[:L, b, 0] = rng.uniform(-1, 1, size=L)
    labels = (x[:, :, 0].sum(axis=0) > 0).astype(np.int64)
    return x, lengths, labels


model = SequenceClassifier(1, 32, 2, seed=0)
opt = Adam(model.params, lr=3e-3, clip_grad_norm=1.0)
# One BLAS thread while training: NumPy's small products between the C
# calls would otherwise spin threads that compete with crnn's.
with crnn.limit_blas_threads():
    for step in range(1, STEPS + 1):
        x, lengths, labels = make_batch(B)
        model.zero_grad()
        logits = model(x, lengths=lengths)
        loss, dlogits = softmax_cross_entropy(logits, labels)
        model.backward(dlogits)
        opt.step(model.grads)
        if step == 1 or step % (STEPS // 4) == 0:
            print(f"step {step:5d}  loss {loss:.4f}")

x, lengths, labels = make_batch(2000)
model.eval()
accuracy = float(np.mean(model.predict(x, lengths=lengths) == labels))
print(f"accuracy on 2000 new sequences: {accuracy:.1%} (chance: about 50%)")
for b in range(3):
    seq = x[: lengths[b], b, 0]
    guess = model.predict(x[:, b : b + 1], lengths=lengths[b : b + 1])[0]
    print(
        f"  {len(seq):2d} numbers, sum {seq.sum():+.2f} -> predicted "
        f"{'positive' if guess else 'not positive'}"
    )
