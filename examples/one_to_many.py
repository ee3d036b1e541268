"""One-to-many: one input, a whole sequence out
============================================

A character-level language model, `crnn.models.CharRNN`, is trained
many-to-many (predict the next character at every step) on a short verse.
Then it is run one-to-many: `generate` is given a single character and
produces the rest, feeding each character it writes back in as its next
input. Prints the text written from one starting character, greedily
(temperature 0) and by sampling.

Run:  python examples/one_to_many.py        (CRNN_EXAMPLES_QUICK=1: a short run)
"""

import os

import numpy as np

import crnn
from crnn.losses import softmax_cross_entropy
from crnn.models import CharRNN
from crnn.optim import Adam

QUICK = bool(os.environ.get("CRNN_EXAMPLES_QUICK"))
STEPS = 30 if QUICK else 400

TEXT = (
    "twinkle, twinkle, little star, how I wonder what you are! "
    "up above the world so high, like a diamond in the sky. "
)
chars = sorted(set(TEXT))
stoi = {c: i for i, c in enumerate(chars)}
ids = np.array([stoi[c] for c in TEXT * 3], dtype=np.int64)

# Training windows: 16 random slices of 40 characters; the target of each
# position is the next character.
T, B = 40, 16
rng = np.random.default_rng(0)
model = CharRNN(len(chars), 64, seed=0)
opt = Adam(model.params, lr=3e-3, clip_grad_norm=5.0)
# One BLAS thread while training: NumPy's small products between the C
# calls would otherwise spin threads that compete with crnn's.
with crnn.limit_blas_threads():
    for step in range(1, STEPS + 1):
        starts = rng.integers(0, len(ids) - T - 1, size=B)
        x = np.stack([ids[s : s + T] for s in starts], axis=1)  # (T, B)
        y = np.stack([ids[s + 1 : s + T + 1] for s in starts], axis=1)  # (T, B)
        model.zero_grad()
        logits, _ = model(x)
        loss, dlogits = softmax_cross_entropy(logits, y)
        model.backward(dlogits)
        opt.step(model.grads)
        if step == 1 or step % (STEPS // 4) == 0:
            print(f"step {step:4d}  loss {loss:.3f}")

prime = np.array([stoi["t"]])
greedy = model.generate(prime, len(TEXT) - 1, temperature=0)
print("one input 't', greedy:  t" + "".join(chars[i] for i in greedy))
sampled = model.generate(prime, 60, temperature=0.8, rng=1)
print("one input 't', sampled: t" + "".join(chars[i] for i in sampled))
