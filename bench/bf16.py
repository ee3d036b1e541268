"""crnn's bfloat16 products (precision="bf16") beside its own float32, for
the RNN, LSTM and GRU at the shapes of the throughput targets.

`problem` builds one call pair (forward, forward + backward) for a cell,
shape and precision; test_bench_bf16.py times them with pytest-benchmark,
and ``python bench/bf16.py`` times them interleaved in one process
(float32 and bf16 alternating, call after call, so a busy machine slows
both alike) and prints the min and median of each and the float32 / bf16
ratios.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import crnn

SHAPES = [(50, 64, 512, 1024), (50, 32, 1760, 1760)]
CELLS = {"rnn": 1, "lstm": 4, "gru": 3}
PRECISIONS = ("native", "bf16")


def problem(cell, shape, precision, seed=0):
    """(forward, forward + backward) of `cell` with PyTorch-style weights,
    an initial state and upstream gradients, float32 arrays."""
    T, B, I, H = shape  # noqa: E741
    G = CELLS[cell] * H
    rng = np.random.default_rng(seed)
    k = 1.0 / np.sqrt(H)
    weights = {
        name: rng.uniform(-k, k, size=s).astype(np.float32)
        for name, s in (
            ("weight_ih", (G, I)),
            ("weight_hh", (G, H)),
            ("bias_ih", (G,)),
            ("bias_hh", (G,)),
        )
    }
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    states = [
        (0.5 * rng.standard_normal((B, H))).astype(np.float32) for _ in range(1 + (cell == "lstm"))
    ]
    dout = rng.standard_normal((T, B, H)).astype(np.float32)

    def fwd():
        return crnn.forward(cell, x, states, weights, precision=precision)[0]

    def fwdbwd():
        out, _, cache = crnn.forward(cell, x, states, weights, precision=precision)
        return crnn.backward(dout, None, cache).dx

    return fwd, fwdbwd


def interleaved(cell, shape, mode, rounds):
    """Per precision, the seconds of `rounds` calls, the precisions taking
    turns call after call (after one warm-up call each)."""
    calls = {p: problem(cell, shape, p)[mode == "fwdbwd"] for p in PRECISIONS}
    for fn in calls.values():
        fn()
    times = {p: [] for p in PRECISIONS}
    for _ in range(rounds):
        for p, fn in calls.items():
            t0 = time.perf_counter()
            fn()
            times[p].append(time.perf_counter() - t0)
    return times


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", default="rnn,lstm,gru")
    ap.add_argument("--modes", default="fwd,fwdbwd")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=0, help="0: crnn's default")
    args = ap.parse_args(argv)
    if args.threads:
        crnn.set_num_threads(args.threads)
    print(f"isa {crnn.build_info()['isa']}, threads {crnn.get_num_threads()}, rounds {args.rounds}")
    print(
        f"{'cell':5} {'T,B,I,H':18} {'mode':7} {'f32 min/med ms':>16} {'bf16 min/med ms':>16}  ratio min / med"
    )
    for cell in args.cells.split(","):
        for shape in SHAPES:
            for mode in args.modes.split(","):
                t = interleaved(cell, shape, mode, args.rounds)
                a, b = np.array(t["native"]) * 1e3, np.array(t["bf16"]) * 1e3
                print(
                    f"{cell:5} {','.join(map(str, shape)):18} {mode:7} "
                    f"{a.min():7.1f}/{np.median(a):7.1f} {b.min():7.1f}/{np.median(b):7.1f}  "
                    f"{a.min() / b.min():.2f} / {np.median(a) / np.median(b):.2f}"
                )


if __name__ == "__main__":
    main()
