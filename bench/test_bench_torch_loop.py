"""The demo's model trained in a PyTorch loop: torch.nn against crnn.torch.

The model is `crnn demo`'s character model written in torch (one-hot ids ->
recurrent layer -> Linear logits), one training step being what the demo
does per window: forward, cross-entropy, backward, gradient-norm clipping at
5, Adam, the final state carried (detached) into the next window. At each
grid shape (T, B, I, H) of problems.shapes() (I is the vocabulary, H the
hidden size; float32, default thread count) and for each cell with a torch
module (RNN, LSTM, GRU), the same loop runs twice from the same weights:
with ``torch.nn.<cell>``, and with the model converted by
``crnn.torch.convert`` (so only the recurrent layer changes).

Two ways to run it:

- ``pytest bench/test_bench_torch_loop.py --benchmark-only``: one step per
  benchmark, groups ``torchloop-<cell>-T..``, impl ``torch`` / ``crnn.torch``
  (pytest-benchmark's table gives the ratios within each group). Under
  ``--benchmark-disable`` the large shapes run as problems.smoke_shape
  stand-ins.
- ``python bench/test_bench_torch_loop.py [--quick] [--budget S]``: the two
  loops interleaved step by step in one process (a burst of load from
  elsewhere hits both), several rounds per case; prints min and median per
  implementation and torch's time over crnn.torch's.

No benchmark asserts a timing; each checks that the loss is finite.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time

import numpy as np
import pytest

import problems as P

torch = pytest.importorskip("torch") if __name__ != "__main__" else __import__("torch")
import crnn  # noqa: E402
import crnn.torch as ct  # noqa: E402

CELLS = ("RNN", "LSTM", "GRU")
IMPLS = ("torch", "crnn.torch")
DEFAULT_THREADS = P.default_threads()
CLIP = 5.0
LR = 3e-3


class DemoModel(torch.nn.Module):
    """`crnn demo`'s model in torch: one-hot ids -> recurrent layer -> Linear logits."""

    def __init__(self, cell: str, vocab_size: int, hidden_size: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.rnn = getattr(torch.nn, cell)(vocab_size, hidden_size)
        self.head = torch.nn.Linear(hidden_size, vocab_size)

    def forward(self, ids, state=None):
        x = torch.nn.functional.one_hot(ids, self.vocab_size).to(self.head.weight.dtype)
        out, state = self.rnn(x, state)
        return self.head(out), state


class Loop:
    """One training loop of a DemoModel on one window of random ids."""

    def __init__(self, model: DemoModel, ids) -> None:
        self.model = model
        self.optimizer = torch.optim.Adam(model.parameters(), lr=LR)
        self.inputs, self.targets = ids[:-1], ids[1:].reshape(-1)
        self.state = None

    def step(self) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        logits, state = self.model(self.inputs, self.state)
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, self.model.vocab_size), self.targets
        )
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), CLIP)
        self.optimizer.step()
        # Stateful truncated BPTT: the next window starts where this one ended.
        self.state = (
            tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
        )
        return loss.detach().item()


def loops(cell: str, shape, seed: int = 0):
    """{impl: Loop} from the same initial weights and the same window of ids."""
    T, B, I, H = shape
    torch.manual_seed(seed)
    model = DemoModel(cell, I, H)
    ids = torch.from_numpy(np.random.default_rng(seed).integers(0, I, size=(T + 1, B)))
    return {"torch": Loop(model, ids), "crnn.torch": Loop(ct.convert(copy.deepcopy(model)), ids)}


# --------------------------------------------------------------------------
# pytest-benchmark
# --------------------------------------------------------------------------


def _cases():
    return [
        pytest.param(cell, shape, impl, id=f"{cell}-{P.shape_id(shape)}-{impl}")
        for cell in CELLS
        for shape in P.shapes()
        for impl in IMPLS
    ]


@pytest.mark.parametrize("cell, shape, impl", _cases())
def test_torch_loop(timed, smoke, cell, shape, impl):
    real_shape = P.smoke_shape(shape) if smoke else tuple(shape)
    torch.set_num_threads(DEFAULT_THREADS)
    loop = loops(cell, real_shape)[impl]
    loss = timed(
        loop.step,
        group=f"torchloop-{cell}-{P.shape_id(shape)}",
        impl=impl,
        mode="train-step",
        shape=list(shape),
        dtype="float32",
        threads=DEFAULT_THREADS,
    )
    assert np.isfinite(loss)


# --------------------------------------------------------------------------
# Interleaved run: python bench/test_bench_torch_loop.py
# --------------------------------------------------------------------------


def measure(cell: str, shape, budget: float, min_rounds: int = 3, max_rounds: int = 30):
    """{impl: [seconds per step]}: the implementations in turns (order
    alternating each round) after one warm-up step each, until `budget`
    seconds are spent (at least `min_rounds` rounds)."""
    by_impl = loops(cell, shape)
    first_loss = {impl: loop.step() for impl, loop in by_impl.items()}  # warm-up
    times = {impl: [] for impl in by_impl}
    start = time.perf_counter()
    for r in range(max_rounds):
        order = IMPLS if r % 2 == 0 else IMPLS[::-1]
        for impl in order:
            t0 = time.perf_counter()
            by_impl[impl].step()
            times[impl].append(time.perf_counter() - t0)
        if r + 1 >= min_rounds and time.perf_counter() - start > budget:
            break
    return times, first_loss


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:9.2f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="problems.QUICK_SHAPES only")
    parser.add_argument("--budget", type=float, default=3.0, help="seconds per case (default 3)")
    parser.add_argument("--cells", default=",".join(CELLS), help="default RNN,LSTM,GRU")
    parser.add_argument(
        "--threads", type=int, default=DEFAULT_THREADS, help="for torch and crnn (default: all)"
    )
    args = parser.parse_args(argv)
    shapes = P.QUICK_SHAPES if args.quick else P.SHAPES
    torch.set_num_threads(args.threads)
    crnn.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, crnn {crnn.__version__}, {args.threads} threads for both; "
        "ms per training step (forward, loss, backward, clip, Adam)"
    )
    header = (
        f"{'cell':5} {'T,B,I,H':>18} | {'torch min':>9} {'median':>9} | "
        f"{'crnn min':>9} {'median':>9} | {'ratio min':>9} {'median':>7} | first loss equal"
    )
    print(header)
    print("-" * len(header))
    for cell in args.cells.split(","):
        for shape in shapes:
            times, loss = measure(cell, shape, args.budget)
            t, c = times["torch"], times["crnn.torch"]
            same = abs(loss["torch"] - loss["crnn.torch"]) <= 1e-5 * abs(loss["torch"])
            print(
                f"{cell:5} {','.join(map(str, shape)):>18} | {_ms(min(t))} "
                f"{_ms(statistics.median(t))} | {_ms(min(c))} {_ms(statistics.median(c))} | "
                f"{min(t) / min(c):8.2f}x {statistics.median(t) / statistics.median(c):6.2f}x | "
                f"{'yes' if same else 'NO'} ({len(t)} rounds)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
