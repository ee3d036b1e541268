"""Native helpers of the benchmarks: the FP32 FMA peak and the oneDNN harness.

Both are small sources in bench/ compiled on first use with the system
compilers (``$CC`` or ``cc``; ``$CXX`` or ``c++``) and cached under
``bench/.build/`` (or a per-user temporary directory when bench/ is not
writable), keyed by a hash of the source, the flags and the compiler's
version, so an edit or another compiler rebuilds.

- ``fma_peak()``: builds and runs ``fma_peak.c``; returns the best FP32 FMA
  throughput in GFLOP/s for 1 thread and for all threads.
- ``onednn_unavailable_reason()`` / ``OneDNNRNN``: builds ``onednn_rnn.cpp``
  against oneDNN when its header is found (Debian: ``apt-get install
  libdnnl-dev``; elsewhere set ONEDNN_ROOT to the install prefix), loads it
  with ctypes, and wraps one vanilla RNN, LSTM or (linear-before-reset)
  GRU problem. CRNN_BENCH_NO_ONEDNN=1 leaves oneDNN out even when it is
  installed.

No pytest here: the report (bench/report.py) and the benchmarks share it.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import os
import shlex
import subprocess
import sys
import tempfile

import numpy as np

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
FMA_SOURCE = os.path.join(BENCH_DIR, "fma_peak.c")
ONEDNN_SOURCE = os.path.join(BENCH_DIR, "onednn_rnn.cpp")


class BuildError(RuntimeError):
    """A native helper could not be compiled (the message has the compiler output)."""


def build_dir():
    """bench/.build, or a per-user temporary directory if that is not writable."""
    candidates = [
        os.environ.get("CRNN_BENCH_BUILD_DIR"),
        os.path.join(BENCH_DIR, ".build"),
        os.path.join(tempfile.gettempdir(), f"crnn-bench-build-{os.getuid()}"),
    ]
    for d in candidates:
        if not d:
            continue
        try:
            os.makedirs(d, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=d, delete=True)
            probe.close()
            return d
        except OSError:
            continue
    raise BuildError("no writable build directory for the benchmark helpers")


@functools.lru_cache(maxsize=None)
def _compiler_version(compiler):
    try:
        res = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.splitlines()[0] if res.returncode == 0 and res.stdout else None


def _compile(compiler, source, out_name, flags, libs=()):
    """Compile `source` into build_dir()/out_name-<hash>[.so]; cached."""
    cc = shlex.split(compiler)
    version = _compiler_version(cc[0])
    if version is None:
        raise BuildError(f"compiler {compiler!r} not found")
    with open(source, "rb") as fh:
        src = fh.read()
    key = hashlib.sha256(
        b"\0".join([src, " ".join(cc + list(flags) + list(libs)).encode(), version.encode()])
    ).hexdigest()[:16]
    stem, ext = os.path.splitext(out_name)
    target = os.path.join(build_dir(), f"{stem}-{key}{ext}")
    if os.path.exists(target):
        return target
    tmp = f"{target}.tmp{os.getpid()}"
    cmd = cc + list(flags) + [source, "-o", tmp] + list(libs)
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise BuildError(f"{' '.join(cmd)} failed:\n{res.stderr.strip()}")
    os.replace(tmp, target)  # atomic: concurrent builds of the same key are harmless
    return target


# --------------------------------------------------------------------------
# FP32 FMA peak


@functools.lru_cache(maxsize=None)
def fma_peak_binary():
    """Path of the compiled fma_peak (with OpenMP when the compiler has it)."""
    cc = os.environ.get("CC", "cc")
    try:
        return _compile(cc, FMA_SOURCE, "fma_peak", ["-O2", "-fopenmp"])
    except BuildError:
        return _compile(cc, FMA_SOURCE, "fma_peak", ["-O2"])


def fma_peak(seconds=0.05, repetitions=20, threads=None, isa="auto"):
    """The machine's FP32 FMA peak, measured now.

    Returns a dict: ``isa`` (the kernel used: avx512, avx2 or scalar),
    ``threads`` (threads of the parallel run: `threads`, else OpenMP's
    default), ``openmp``, and GFLOP/s by wall time (``gflops_1thread``,
    ``gflops_all_threads``) and by each thread's CPU time
    (``gflops_1thread_cpu``, ``gflops_all_threads_cpu``: the hardware's
    rate even when other processes take turns on the cores). Each figure is
    the best of `repetitions` runs of `seconds` each.
    """
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(int(threads))
    res = subprocess.run(
        [fma_peak_binary(), str(seconds), str(repetitions), isa],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    if res.returncode != 0:
        raise RuntimeError(f"fma_peak failed: {res.stderr.strip()}")
    return json.loads(res.stdout)


# --------------------------------------------------------------------------
# oneDNN harness

_HEADER_CANDIDATES = ("oneapi/dnnl/dnnl.hpp", "dnnl.hpp")


def _include_dirs():
    dirs = []
    for var in ("ONEDNN_ROOT", "DNNLROOT", "CONDA_PREFIX"):
        root = os.environ.get(var)
        if root:
            dirs.append(os.path.join(root, "include"))
    for var in ("CPLUS_INCLUDE_PATH", "CPATH"):
        dirs += [d for d in os.environ.get(var, "").split(os.pathsep) if d]
    dirs += ["/usr/local/include", "/usr/include", os.path.join(sys.prefix, "include")]
    return dirs


def find_onednn_header():
    """The include directory holding oneDNN's C++ header, or None."""
    for d in _include_dirs():
        for h in _HEADER_CANDIDATES:
            if os.path.isfile(os.path.join(d, h)):
                return d
    return None


def _lib_dirs(include_dir):
    root = os.path.dirname(include_dir)
    return [d for d in (os.path.join(root, "lib"), os.path.join(root, "lib64")) if os.path.isdir(d)]


@functools.lru_cache(maxsize=None)
def _onednn_library():
    """(ctypes.CDLL, None) or (None, reason)."""
    if os.environ.get("CRNN_BENCH_NO_ONEDNN", "").strip() not in ("", "0"):
        return None, "CRNN_BENCH_NO_ONEDNN is set"
    inc = find_onednn_header()
    if inc is None:
        return None, (
            "oneDNN's header (dnnl.hpp) not found; on Debian/Ubuntu: apt-get install libdnnl-dev"
        )
    flags = ["-O2", "-std=c++17", "-shared", "-fPIC", "-fvisibility=hidden", "-fopenmp"]
    libs = []
    if inc not in ("/usr/include", "/usr/local/include"):
        flags.append("-I" + inc)
        for d in _lib_dirs(inc):
            libs += ["-L" + d, "-Wl,-rpath," + d]
    libs.append("-ldnnl")
    try:
        path = _compile(
            os.environ.get("CXX", "c++"), ONEDNN_SOURCE, "libonednn_rnn.so", flags, libs
        )
        lib = ctypes.CDLL(path)
    except (BuildError, OSError) as exc:
        return None, f"oneDNN harness unavailable: {exc}"
    vp = ctypes.c_void_p
    fp = ctypes.POINTER(ctypes.c_float)
    lib.onednn_rnn_version.restype = ctypes.c_char_p
    lib.onednn_rnn_threading.restype = ctypes.c_char_p
    lib.onednn_rnn_last_error.restype = ctypes.c_char_p
    lib.onednn_rnn_create.restype = vp
    lib.onednn_rnn_create.argtypes = (
        [ctypes.c_int] + [ctypes.c_long] * 4 + [ctypes.c_int, ctypes.c_int]
    )
    lib.onednn_rnn_set_inputs.restype = ctypes.c_int
    lib.onednn_rnn_set_inputs.argtypes = [vp] + [fp] * len(OneDNNRNN.INPUTS)
    lib.onednn_rnn_get_outputs.restype = ctypes.c_int
    lib.onednn_rnn_get_outputs.argtypes = [vp] + [fp] * len(OneDNNRNN.OUTPUTS)
    lib.onednn_rnn_run.restype = ctypes.c_int
    lib.onednn_rnn_run.argtypes = [vp]
    lib.onednn_rnn_destroy.restype = None
    lib.onednn_rnn_destroy.argtypes = [vp]
    return lib, None


def onednn_unavailable_reason():
    """None when the oneDNN harness builds and loads, else why not."""
    return _onednn_library()[1]


def onednn_version():
    lib, _ = _onednn_library()
    return lib.onednn_rnn_version().decode() if lib is not None else None


def _fptr(a):
    if a is None:
        return None
    assert a.dtype == np.float32 and a.flags.c_contiguous
    return a.ctypes.data_as(ctypes.POINTER(ctypes.c_float))


class OneDNNRNN:
    """One oneDNN recurrent problem (float32, one layer): create once, run often.

    ``cell`` is "rnn" (vanilla, tanh), "lstm" or "gru" (oneDNN's
    linear-before-reset GRU, which is PyTorch's and crnn's); inputs and
    outputs are in crnn's (PyTorch's) layout and gate order, the harness
    converts them (see onednn_rnn.cpp). ``run()`` is one forward pass
    (forward_inference), or with ``backward=True`` one forward_training pass
    and one backward pass, including the weight reorders. ``threads`` > 0
    fixes OpenMP's thread count during run(); 0 leaves OpenMP's default.
    """

    CELLS = ("rnn", "lstm", "gru")  # the harness's cell numbers
    GATES = {"rnn": 1, "lstm": 4, "gru": 3}
    # argument order of onednn_rnn_set_inputs / onednn_rnn_get_outputs
    INPUTS = (
        "x",
        "h0",
        "c0",
        "weight_ih",
        "weight_hh",
        "bias_ih",
        "bias_hh",
        "dout",
        "dh_n",
        "dc_n",
    )
    OUTPUTS = (
        "out",
        "h_n",
        "c_n",
        "dx",
        "dh0",
        "dc0",
        "dweight_ih",
        "dweight_hh",
        "dbias_ih",
        "dbias_hh",
    )

    def __init__(self, T, B, I, H, threads=0, backward=False, cell="rnn"):
        lib, reason = _onednn_library()
        if lib is None:
            raise RuntimeError(reason)
        if cell not in self.CELLS:
            raise ValueError(f"cell must be one of {self.CELLS}, not {cell!r}")
        self._lib = lib
        self.cell = cell
        self.shape = (T, B, I, H)
        self.backward = bool(backward)
        self._h = lib.onednn_rnn_create(
            self.CELLS.index(cell), T, B, I, H, int(threads or 0), int(self.backward)
        )
        if not self._h:
            raise RuntimeError(lib.onednn_rnn_last_error().decode())

    def _check(self, rc):
        if rc != 0:
            raise RuntimeError(self._lib.onednn_rnn_last_error().decode())

    def set_inputs(self, **arrays):
        """Inputs by the names of INPUTS, in crnn's layout (float32); c0 and
        dc_n are the LSTM's; an absent one is left as it is (an absent bias
        counts as zeros when the other is given)."""
        unknown = set(arrays) - set(self.INPUTS)
        if unknown:
            raise TypeError(f"unknown inputs {sorted(unknown)}")
        arrays = {
            k: np.ascontiguousarray(a, dtype=np.float32) for k, a in arrays.items() if a is not None
        }
        self._check(
            self._lib.onednn_rnn_set_inputs(self._h, *[_fptr(arrays.get(n)) for n in self.INPUTS])
        )

    def run(self):
        self._check(self._lib.onednn_rnn_run(self._h))

    def _output_shapes(self):
        T, B, I, H = self.shape
        G = self.GATES[self.cell] * H
        shapes = {"out": (T, B, H), "h_n": (B, H)}
        if self.backward:
            shapes.update(
                dx=(T, B, I),
                dh0=(B, H),
                dweight_ih=(G, I),
                dweight_hh=(G, H),
                dbias_ih=(G,),
                dbias_hh=(G,),
            )
        if self.cell == "lstm":
            shapes["c_n"] = (B, H)
            if self.backward:
                shapes["dc0"] = (B, H)
        return shapes

    def outputs(self):
        """dict of out, h_n (and c_n for the LSTM) and, for a backward handle,
        dx, dh0 (dc0), dweight_ih, dweight_hh, dbias_ih, dbias_hh (for the
        RNN and the LSTM both are the gradient of b_ih + b_hh)."""
        res = {n: np.empty(s, np.float32) for n, s in self._output_shapes().items()}
        self._check(
            self._lib.onednn_rnn_get_outputs(self._h, *[_fptr(res.get(n)) for n in self.OUTPUTS])
        )
        return res

    def close(self):
        if getattr(self, "_h", None):
            self._lib.onednn_rnn_destroy(self._h)
            self._h = None

    __del__ = close


if __name__ == "__main__":  # python bench/native.py: quick check of both helpers
    print("FMA peak:", fma_peak())
    reason = onednn_unavailable_reason()
    print("oneDNN:", reason or f"harness OK (oneDNN {onednn_version()})")
