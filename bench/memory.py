#!/usr/bin/env python3
"""Peak memory of one forward + backward pass, against the unavoidable bytes.

Usage::

    python bench/memory.py                         # crnn and torch, every shape
    python bench/memory.py --impl crnn --shape 50,64,512,1024 --json mem.json

The unavoidable bytes of a forward + backward pass are its inputs (x, h0,
W_ih, W_hh, b_ih, b_hh, dout, dh_n), its outputs (out, h_n) and its
gradients (dx, dh0, dW_ih, dW_hh, db_ih, db_hh). Everything else (caches,
workspaces, packed weights, temporaries) is overhead.

Method: every measurement runs in a fresh Python process, which

1. imports the implementation and runs it once on a tiny problem (loads the
   code, starts the OpenMP threads), then allocates the inputs;
2. resets the kernel's peak-RSS counter (writes 5 to /proc/self/clear_refs,
   Linux >= 4.0) and reads VmRSS (the baseline);
3. runs forward + backward, keeping the outputs and gradients alive, and
   reads VmHWM (the peak resident set since the reset).

peak = input bytes + (VmHWM - baseline), and ratio = peak / unavoidable
(1.0 is the minimum). The process runs with MALLOC_MMAP_THRESHOLD_=65536
and MALLOC_TOP_PAD_=0 (glibc): every block of 64 KiB or more is then its
own mapping, returned to the system when freed, so the resident set follows
the live arrays to the page instead of the allocator's caching. Where
clear_refs cannot be written, the increase of ru_maxrss is used instead and
``method`` says so (an overestimate of nothing, but blind to peaks lower
than the setup's). Problems whose unavoidable bytes are below ~1 MiB are
near the method's resolution (a few pages of interpreter state).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
if BENCH_DIR not in sys.path:
    sys.path.insert(0, BENCH_DIR)

CHILD_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TOP_PAD_": "0"}
RESOLUTION_BYTES = 1 << 20


def _status_kib(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def unavoidable_bytes(shape, itemsize):
    T, B, I, H = shape
    inputs = T * B * I + B * H + H * I + H * H + 2 * H + T * B * H + B * H
    outputs = T * B * H + B * H
    grads = T * B * I + B * H + H * I + H * H + 2 * H
    return {
        "inputs": inputs * itemsize,
        "outputs": outputs * itemsize,
        "gradients": grads * itemsize,
        "total": (inputs + outputs + grads) * itemsize,
    }


def _child(impl, shape, dtype_name, threads):
    """Runs in the fresh process; returns the measurement dict."""
    import numpy as np

    import problems as P

    dtype = np.dtype(dtype_name)
    tiny = (3, 2, 4, 5)

    if impl in ("crnn", "reference"):
        import crnn

        mod = crnn if impl == "crnn" else crnn.reference
        if threads:
            crnn.set_num_threads(threads)

        def prepare(shape):
            args, dout, dh_n = P.make_problem(shape, dtype)

            def run():
                out, h_n, cache = mod.rnn_forward(**args, nonlinearity="tanh")
                g = mod.rnn_backward(dout, dh_n, cache)
                return out, h_n, g

            return run
    elif impl == "torch":
        import torch

        if threads:
            torch.set_num_threads(threads)

        def prepare(shape):
            T, B, I, H = shape
            args, dout, dh_n = P.make_problem(shape, dtype)
            rnn = torch.nn.RNN(I, H, nonlinearity="tanh")
            if dtype == np.float64:
                rnn = rnn.double()
            with torch.no_grad():
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(rnn, name + "_l0").copy_(torch.from_numpy(args.pop(name)))
            x = torch.from_numpy(args["x"]).requires_grad_(True)
            h0 = torch.from_numpy(args["h0"])[None].requires_grad_(True)
            dout_t, dh_n_t = torch.from_numpy(dout), torch.from_numpy(dh_n)[None]

            def run():
                out, h_n = rnn(x, h0)
                torch.autograd.backward([out, h_n], [dout_t, dh_n_t])
                return out, h_n, x.grad, h0.grad, [p.grad for p in rnn.parameters()]

            return run
    else:
        raise ValueError(f"memory: unknown implementation {impl!r}")

    prepare(tiny)()  # load code, start threads
    run = prepare(shape)
    reset = _reset_peak()
    if reset:
        base_kib = _status_kib("VmRSS")
    else:
        base_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    keep = run()  # noqa: F841  (outputs and gradients stay alive until measured)
    peak_kib = _status_kib("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    need = unavoidable_bytes(shape, dtype.itemsize)
    increase = max(0, peak_kib - base_kib) * 1024
    peak = need["inputs"] + increase
    return {
        "impl": impl,
        "shape": list(shape),
        "dtype": dtype.name,
        "threads": threads or None,
        "method": "VmHWM after clear_refs" if reset else "ru_maxrss increase",
        "unavoidable_bytes": need["total"],
        "input_bytes": need["inputs"],
        "output_bytes": need["outputs"],
        "gradient_bytes": need["gradients"],
        "increase_bytes": increase,
        "peak_bytes": peak,
        "overhead_bytes": peak - need["total"],
        "ratio": peak / need["total"],
        "below_resolution": need["total"] < RESOLUTION_BYTES,
    }


def measure(impl, shape, dtype="float32", threads=None, timeout=600):
    """Peak memory of one forward + backward of `impl` at `shape`, measured
    in a fresh process (see the module docstring). Returns a dict, with
    ``error`` set instead of the figures when the child failed."""
    env = dict(os.environ)
    env.update(CHILD_ENV)
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        impl,
        ",".join(str(int(s)) for s in shape),
        dtype,
        str(int(threads or 0)),
    ]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"impl": impl, "shape": list(shape), "dtype": dtype, "error": "timeout"}
    if res.returncode != 0:
        err = (res.stderr.strip().splitlines() or ["exit status %d" % res.returncode])[-1]
        return {"impl": impl, "shape": list(shape), "dtype": dtype, "error": err}
    return json.loads(res.stdout.strip().splitlines()[-1])


def measure_all(shapes, impls=("crnn", "torch"), dtype="float32", threads=None, log=None):
    """measure() for every shape and implementation that can run here."""
    import problems as P

    results = []
    for shape in shapes:
        for impl in impls:
            if impl == "onednn" or P.unavailable(impl) is not None:
                continue
            r = measure(impl, shape, dtype, threads)
            if log:
                log(format_row(r))
            results.append(r)
    return results


def _mib(n):
    return f"{n / 2**20:9.2f}"


def format_header():
    return (
        f"{'impl':<9} {'shape (T,B,I,H)':<20} {'unavoid MiB':>11} {'peak MiB':>9} "
        f"{'overhead':>9} {'ratio':>6}"
    )


def format_row(r):
    shape = ",".join(map(str, r["shape"]))
    if "error" in r:
        return f"{r['impl']:<9} {shape:<20} error: {r['error']}"
    note = "  (below resolution)" if r.get("below_resolution") else ""
    return (
        f"{r['impl']:<9} {shape:<20} {_mib(r['unavoidable_bytes']):>11} {_mib(r['peak_bytes'])} "
        f"{_mib(r['overhead_bytes'])} {r['ratio']:6.2f}{note}"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--impl",
        default="crnn,torch",
        help="comma-separated: crnn, torch, reference (default crnn,torch)",
    )
    parser.add_argument(
        "--shape",
        action="append",
        default=None,
        help="T,B,I,H (repeatable; default: every benchmark shape)",
    )
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--threads", type=int, default=0, help="0: the default count")
    parser.add_argument("--json", help="also save the results here")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        impl, shape, dtype, threads = args.child
        shape = tuple(int(s) for s in shape.split(","))
        print(json.dumps(_child(impl, shape, dtype, int(threads))))
        return 0

    import problems as P

    shapes = (
        [tuple(int(s) for s in sh.split(",")) for sh in args.shape] if args.shape else P.shapes()
    )
    print(format_header())
    results = measure_all(shapes, args.impl.split(","), args.dtype, args.threads or None, log=print)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=1)
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
