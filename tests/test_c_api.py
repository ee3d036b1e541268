"""crnn's C API for other extensions: headers, the capsule, C and Cython.

`crnn.get_include()` holds the public headers; `crnn._core._C_API` is a
capsule of crnn_api.h's table. Two tiny extensions (tests/c_api/) are built
against the installed package in a temporary folder with the machine's
compiler -- one in C through crnn_api.h, one in Cython through
crnn/libcrnn.pxd -- and their kernels' results are held against
crnn.reference. Without a compiler (or Python's headers, or Cython) those
builds are skipped.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import numpy as np
import pytest

import crnn
from crnn import _core, cells, reference
from helpers import assert_rel_close
from problems import make_problem

HERE = Path(__file__).parent / "c_api"
HEADERS = ("crnn.h", "crnn_api.h", "crnn_cells.def", "crnn_activations.def", "crnn_isas.def")


def test_get_include_holds_the_public_headers():
    include = Path(crnn.get_include())
    assert include.is_dir(), include
    for name in HEADERS:
        assert (include / name).is_file(), name
    # crnn.h includes nothing but the standard headers and its .def files.
    text = (include / "crnn.h").read_text()
    for line in text.splitlines():
        if line.startswith("#include"):
            target = line.split()[1].strip('"<>')
            assert target == "stdint.h" or (include / target).is_file(), line


def test_libcrnn_pxd_is_installed():
    assert (Path(crnn.__file__).parent / "libcrnn.pxd").is_file()


# --------------------------------------------------------------------------
# The capsule, read with ctypes (no compiler needed)
# --------------------------------------------------------------------------

_api_fields = [("version", ctypes.c_int), ("size", ctypes.c_int)]
_FUNCTIONS = (
    "cell_info_get forward backward total_norm scale clip_value set_num_threads "
    "get_num_threads have_openmp set_isa get_isa isa_supported isa_name "
    "activation_name compiler embedding_backward prepare prepared_update prepared_free "
    "forward_prepared head_loss optimizer_step"
).split()
_api_fields += [(name, ctypes.c_void_p) for name in _FUNCTIONS]


class _Api(ctypes.Structure):
    _fields_ = _api_fields


def _capsule_table() -> _Api:
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype = ctypes.c_void_p
    get.argtypes = [ctypes.py_object, ctypes.c_char_p]
    address = get(_core._C_API, b"crnn._core._C_API")  # raises on a wrong name
    return _Api.from_address(address)


def test_capsule_table_matches_the_header():
    api = _capsule_table()
    header = (Path(crnn.get_include()) / "crnn_api.h").read_text()
    assert f"#define CRNN_API_VERSION {api.version}\n" in header
    assert api.size == ctypes.sizeof(_Api)
    assert all(getattr(api, name) for name in _FUNCTIONS)


def test_capsule_functions_are_crnns():
    api = _capsule_table()
    get_threads = ctypes.CFUNCTYPE(ctypes.c_int)(api.get_num_threads)
    compiler = ctypes.CFUNCTYPE(ctypes.c_char_p)(api.compiler)
    isa_name = ctypes.CFUNCTYPE(ctypes.c_char_p, ctypes.c_int)(api.isa_name)
    get_isa = ctypes.CFUNCTYPE(ctypes.c_int)(api.get_isa)
    assert compiler().decode() == crnn.build_info()["compiler"]
    try:  # the same process-wide settings, not a copy of the library
        for name in crnn.available_isas():
            crnn.set_isa(name)
            assert isa_name(get_isa()).decode() == name
        for n in (1, 3):
            crnn.set_num_threads(n)
            assert get_threads() == (n if crnn.build_info()["openmp"] else 1)
    finally:
        crnn.set_isa("auto")
        crnn.set_num_threads(None)


# --------------------------------------------------------------------------
# Building extensions against the installed package
# --------------------------------------------------------------------------


def _compiler_or_skip() -> None:
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        pytest.skip(f"no C compiler ({cc}) to build an extension with")
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").is_file():
        pytest.skip("Python's headers (Python.h) are not installed")


def _build(tmp_path: Path, source: Path, name: str):
    """Build `source` as extension `name` in tmp_path; import and return it."""
    shutil.copy(source, tmp_path / source.name)
    package_root = str(Path(crnn.__file__).parent.parent)  # where crnn/libcrnn.pxd is
    (tmp_path / "setup.py").write_text(
        textwrap.dedent(
            f"""
            from setuptools import Extension, setup
            ext = Extension({name!r}, [{source.name!r}], include_dirs=[{crnn.get_include()!r}])
            if {source.suffix!r} == ".pyx":
                from Cython.Build import cythonize
                ext = cythonize([ext], include_path=[{package_root!r}], quiet=True)[0]
            setup(name={name!r}, ext_modules=[ext], script_args=["build_ext", "--inplace"])
            """
        )
    )
    env = dict(os.environ, PYTHONPATH=package_root)
    proc = subprocess.run(
        [sys.executable, "setup.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"building {source.name} failed:\n{proc.stdout}\n{proc.stderr}"
    built = next(tmp_path.glob(f"{name}*{sysconfig.get_config_var('EXT_SUFFIX')}"))
    spec = importlib.util.spec_from_file_location(name, built)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def demo_c(tmp_path_factory):
    _compiler_or_skip()
    return _build(tmp_path_factory.mktemp("c_ext"), HERE / "demo_c.c", "crnn_demo_c")


@pytest.fixture(scope="module")
def demo_cython(tmp_path_factory):
    _compiler_or_skip()
    pytest.importorskip("Cython", reason="Cython builds the .pyx extension")
    return _build(tmp_path_factory.mktemp("cy_ext"), HERE / "demo_cython.pyx", "crnn_demo_cython")


def _c_call_arrays(spec, p):
    """The arrays the C forward writes, allocated as crnn_cell_info says."""
    T, B = p.T, p.B
    W = spec.width(p.sizes)
    out = np.empty((T, B, W), p.dtype)
    states_n = tuple(
        np.empty((B, W if k == 0 else p.sizes["H"]), p.dtype) for k in range(len(spec.states))
    )
    saved = tuple(np.empty((T, B, p.sizes[width]), p.dtype) for _, width in spec.saved)
    return out, states_n, saved


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cell", list(cells.REGISTRY))
def test_c_extension_forward_matches_reference(demo_c, cell, dtype):
    spec = cells.get(cell)
    gates, n_states, saved_gates = demo_c.cell_info(cell)
    assert (gates, n_states) == (spec.gates, len(spec.states))
    assert len(saved_gates) == len(spec.saved)
    p = make_problem(spec, (7, 5, 6, 8), dtype, seed=11, lengths="random")
    roles = {w.role: p.weights[w.name] for w in spec.weights}
    weights = tuple(roles.get(r) for r in ("w_ih", "w_hh", "b_ih", "b_hh", "w_ho", "b_ho"))
    options = {o.role: p.options[o.name] for o in spec.options if o.name in p.options}
    out, states_n, saved = _c_call_arrays(spec, p)
    lengths = np.ascontiguousarray(p.lengths, dtype=np.int64)
    status = demo_c.forward(
        cell,
        np.dtype(dtype).name,
        options.get("activation", "tanh"),
        options.get("output_activation", "identity"),
        (p.sizes["I"], p.sizes["H"], p.sizes["O"]),
        weights,
        p.x,
        lengths,
        p.states,
        out,
        states_n,
        saved,
    )
    assert status == 0
    want_out, want_states, _ = reference.forward(
        cell, p.x, p.states, p.weights, lengths=p.lengths, **p.options
    )
    assert_rel_close(out, want_out, dtype, name=f"{cell} out")
    for k, (got, want) in enumerate(zip(states_n, want_states)):
        assert_rel_close(got, want, dtype, name=f"{cell} state {k}")


def test_c_extension_rejects_bad_sizes_with_a_status(demo_c):
    spec = cells.get("rnn")
    p = make_problem(spec, (3, 2, 4, 5), np.float64, seed=1)
    weights = (p.weights["weight_ih"], p.weights["weight_hh"], None, None, None, None)
    out, states_n, saved = _c_call_arrays(spec, p)
    sizes = (p.sizes["I"], -1, 0)  # a negative hidden size
    status = demo_c.forward(
        "rnn", "float64", "tanh", "identity", sizes, weights, p.x, None, (None,), out, states_n, ()
    )
    assert status == 2  # CRNN_ERR_INVALID


def test_c_extension_total_norm_and_facts(demo_c):
    rng = np.random.default_rng(4)
    arrays = tuple(rng.standard_normal(n) for n in (5, 17, 1))
    for p in (1.0, 2.0, float("inf")):
        want = float(np.linalg.norm(np.concatenate(arrays), ord=p))
        assert demo_c.total_norm("float64", arrays, p) == pytest.approx(want, rel=1e-12)
    threads, isa, compiler = demo_c.facts()
    assert (threads, isa, compiler) == (
        crnn.get_num_threads(),
        crnn.build_info()["isa"],
        crnn.build_info()["compiler"],
    )


def test_cython_extension_gru_matches_reference(demo_cython):
    spec = cells.get("gru")
    p = make_problem(spec, (6, 4, 5, 7), np.float64, seed=5, states=False)
    w = p.weights
    out, states_n, saved = _c_call_arrays(spec, p)
    status = demo_cython.gru_forward(
        p.x, w["weight_ih"], w["weight_hh"], w["bias_ih"], w["bias_hh"], out, states_n[0], *saved
    )
    assert status == 0
    want_out, (want_h,), _ = reference.forward("gru", p.x, None, w)
    assert_rel_close(out, want_out, np.float64, name="out")
    assert_rel_close(states_n[0], want_h, np.float64, name="h_n")


def test_cython_extension_scale_and_version(demo_cython):
    a = np.arange(6, dtype=np.float64)
    assert demo_cython.scale(a, 0.5) == 0
    np.testing.assert_array_equal(a, np.arange(6) * 0.5)
    version, size, header_version = demo_cython.version()
    assert version == header_version and size == ctypes.sizeof(_Api)
