"""Build script for crnn: one extension, ``crnn._core``.

Metadata lives in pyproject.toml; this file only describes the C extension:
``src/crnn/_core.pyx`` plus every ``csrc/*.c``, compiled with the same flags.

Environment variables read at build time:

  CRNN_NATIVE=1    add -march=native (local builds only: such a binary may
                   crash on an older CPU, so never for wheels you share)
  CRNN_SANITIZE=1  build with AddressSanitizer and UBSan (-O1 -g)

OpenMP is probed with the compiler that builds the extension. If a tiny
program using omp.h does not compile and link with -fopenmp, crnn is built
single-threaded (the C code guards OpenMP with ``#ifdef _OPENMP``).

The public headers (crnn.h, crnn_api.h and the .def files crnn.h includes)
are copied next to the extension, into the package's ``include`` folder,
for other extensions to build against (``crnn.get_include()``).
"""
import contextlib
import glob
import os
import shutil
import sys
import tempfile

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

CYTHON_DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "embedsignature": True,
}

OPENMP_PROBE = r"""
#include <omp.h>
#include <stdio.h>
int main(void) {
    int n = 0;
#pragma omp parallel reduction(+:n)
    n += 1;
    printf("%d %d\n", omp_get_max_threads(), n);
    return 0;
}
"""


def _env_flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@contextlib.contextmanager
def _silenced_fds():
    """Hide the compiler's output while probing (a failed probe is expected)."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (devnull, *saved):
            os.close(fd)


# The headers another extension builds against: crnn.h and what it includes.
PUBLIC_HEADERS = [
    os.path.join("csrc", name)
    for name in (
        "crnn.h",
        "crnn_api.h",
        "crnn_cells.def",
        "crnn_activations.def",
        "crnn_isas.def",
    )
]


class BuildExt(build_ext):
    """build_ext that picks flags for the compiler actually in use, and
    ships the public headers with the extension."""

    def run(self):
        super().run()
        self._copy_public_headers()

    def _copy_public_headers(self):
        """Into crnn/include beside the built extension (the source tree's
        package for an in-place or editable build)."""
        if self.inplace or getattr(self, "editable_mode", False):
            package = self.get_finalized_command("build_py").get_package_dir("crnn")
        else:
            package = os.path.join(self.build_lib, "crnn")
        target = os.path.join(package, "include")
        os.makedirs(target, exist_ok=True)
        for header in PUBLIC_HEADERS:
            self.copy_file(header, os.path.join(target, os.path.basename(header)))

    def finalize_options(self):
        super().finalize_options()
        # Compile the C files in parallel unless the user chose (-j N).
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1

    def _probe_openmp(self, compile_flag, link_flag):
        tmp = tempfile.mkdtemp(prefix="crnn-omp-")
        try:
            src = os.path.join(tmp, "omp_probe.c")
            with open(src, "w") as f:
                f.write(OPENMP_PROBE)
            with _silenced_fds():
                objs = self.compiler.compile(
                    [src], output_dir=tmp, extra_postargs=[compile_flag]
                )
                self.compiler.link_executable(
                    objs,
                    "omp_probe",
                    output_dir=tmp,
                    extra_postargs=[link_flag] if link_flag else [],
                )
            return True
        except Exception:  # CompileError, LinkError, missing compiler ...
            return False
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def build_extensions(self):
        msvc = self.compiler.compiler_type == "msvc"
        # CRNN_SANITIZE / CRNN_NATIVE apply to GCC and Clang only.
        sanitize = _env_flag("CRNN_SANITIZE") and not msvc
        native = _env_flag("CRNN_NATIVE") and not msvc

        if msvc:
            # Not exercised by CI (Linux/GCC).
            cflags, ldflags = ["/O2"], []
            omp_compile, omp_link = "/openmp", None
        else:
            cflags = [
                "-std=gnu11",
                "-ffp-contract=fast",
                "-fno-math-errno",
                "-fvisibility=hidden",
            ]
            if sanitize:
                cflags += [
                    "-O1",
                    "-g",
                    "-fsanitize=address,undefined",
                    "-fno-omit-frame-pointer",
                ]
            else:
                cflags.insert(0, "-O3")
            ldflags = ["-fsanitize=address,undefined"] if sanitize else []
            if native:
                cflags.append("-march=native")
            omp_compile, omp_link = "-fopenmp", "-fopenmp"

        have_openmp = self._probe_openmp(omp_compile, omp_link)
        if have_openmp:
            cflags.append(omp_compile)
            if omp_link:
                ldflags.append(omp_link)
            print("crnn: OpenMP found, building with " + omp_compile)
        else:
            if not msvc:
                # The C code's "#pragma omp" lines are inert without OpenMP.
                cflags.append("-Wno-unknown-pragmas")
            print(
                "crnn: OpenMP not available, building single-threaded",
                file=sys.stderr,
            )
        if native:
            print("crnn: CRNN_NATIVE=1, building with -march=native")
        if sanitize:
            print("crnn: CRNN_SANITIZE=1, building with ASan/UBSan")

        for ext in self.extensions:
            ext.extra_compile_args = list(ext.extra_compile_args or []) + cflags
            ext.extra_link_args = list(ext.extra_link_args or []) + ldflags
        self._force_if_flags_changed(cflags + ["|"] + ldflags)
        super().build_extensions()

    def _force_if_flags_changed(self, flags):
        """Rebuild when the flags differ from the last build in this tree.

        setuptools only compares timestamps, so without this an in-tree
        rebuild with CRNN_SANITIZE=1 (say) would silently reuse the old .so.
        """
        stamp = os.path.join(self.build_temp, "crnn-build-flags.txt")
        signature = " ".join(flags) + "\n"
        try:
            with open(stamp) as f:
                previous = f.read()
        except OSError:
            previous = None
        if previous != signature:
            self.force = True
            os.makedirs(self.build_temp, exist_ok=True)
            with open(stamp, "w") as f:
                f.write(signature)


C_SOURCES = sorted(glob.glob(os.path.join("csrc", "*.c")))
C_DEPENDS = sorted(
    glob.glob(os.path.join("csrc", "*.h"))
    + glob.glob(os.path.join("csrc", "*.inc"))
    + glob.glob(os.path.join("csrc", "*.def"))
)

extensions = [
    Extension(
        "crnn._core",
        sources=[os.path.join("src", "crnn", "_core.pyx")] + C_SOURCES,
        depends=C_DEPENDS,
        include_dirs=["csrc", numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
]

setup(
    ext_modules=cythonize(extensions, compiler_directives=CYTHON_DIRECTIVES),
    cmdclass={"build_ext": BuildExt},
)
