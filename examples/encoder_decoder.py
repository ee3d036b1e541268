"""Encoder-decoder: read a sequence, then write another
====================================================

Many-to-many with an encoder-decoder.

`crnn.models.Seq2Seq`: an encoder RNN reads the whole input; its final state
starts a decoder RNN that writes the output one token at a time. Input and
output lengths need not match, and every output may depend on every input.
The task: reverse a sequence of 5 digits. Training uses teacher forcing (the
decoder reads the true previous digit); `greedy_decode` then writes each
output from its own previous answer. Prints the share of new sequences
reversed exactly, and a few examples.

Run:  python examples/encoder_decoder.py    (CRNN_EXAMPLES_QUICK=1: a short run)
"""

import os

import numpy as np

import crnn
from crnn.losses import softmax_cross_entropy
from crnn.models import Seq2Seq, one_hot
from crnn.optim import Adam

QUICK = bool(os.environ.get("CRNN_EXAMPLES_QUICK"))
STEPS = 40 if QUICK else 1200
DIGITS, LENGTH, B = 10, 5, 64
START = DIGITS  # the decoder's start token: one more class than the digits
rng = np.random.default_rng(0)


def make_batch(n):
    src_ids = rng.integers(0, DIGITS, size=(LENGTH, n))
    return src_ids, src_ids[::-1].copy()  # target: the reversed sequence


model = Seq2Seq(src_size=DIGITS, tgt_size=DIGITS + 1, hidden_size=128, seed=0)
opt = Adam(model.params, lr=3e-3, clip_grad_norm=5.0)
# One BLAS thread while training: NumPy's small products between the C
# calls would otherwise spin threads that compete with crnn's.
with crnn.limit_blas_threads():
    for step in range(1, STEPS + 1):
        src_ids, tgt_ids = make_batch(B)
        model.zero_grad()
        logits = model(one_hot(src_ids, DIGITS), model.decoder_inputs(tgt_ids, START))
        loss, dlogits = softmax_cross_entropy(logits, tgt_ids)
        model.backward(dlogits)
        opt.step(model.grads)
        if step == 1 or step % (STEPS // 4) == 0:
            print(f"step {step:5d}  loss {loss:.4f}")

src_ids, tgt_ids = make_batch(1000)
out = model.greedy_decode(one_hot(src_ids, DIGITS), LENGTH, START)
exact = float(np.mean(np.all(out == tgt_ids, axis=0)))
per_digit = float(np.mean(out == tgt_ids))
print(f"reversed exactly: {exact:.1%} of 1000 new sequences ({per_digit:.1%} of digits)")
for b in range(3):
    print("  " + "".join(map(str, src_ids[:, b])) + " -> " + "".join(map(str, out[:, b])))
