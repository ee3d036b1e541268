"""Build script for crnn: one extension, ``crnn._core``.

Metadata lives in pyproject.toml; this file only describes the C extension:
``src/crnn/_core.pyx`` plus every ``csrc/*.c``, compiled with the same flags.

Environment variables read at build time:

  CRNN_NATIVE=1    add -march=native (local builds only: such a binary may
                   crash on an older CPU, so never for wheels you share)
  CRNN_SANITIZE=1  build with AddressSanitizer and UBSan (-O1 -g)
  CRNN_BUILD_KIND  what the build stamp calls this build: "source" (the
                   default: built where it runs) or "wheel" (.ci/wheels sets
                   it for the binary wheels it makes for distribution)
  SOURCE_DATE_EPOCH  the build stamp's date (reproducible builds)

Every build writes a build stamp, ``crnn/_build_stamp.json`` next to the
extension: the kind of build, its date, the git revision of the sources (from
git, or from the GIT_REVISION file that an sdist made from a checkout
carries), the compiler and flags, Python and NumPy built with.
``crnn.build_info()["build"]`` reads it back.

OpenMP is probed with the compiler that builds the extension. If a tiny
program using omp.h does not compile and link with -fopenmp, crnn is built
single-threaded (the C code guards OpenMP with ``#ifdef _OPENMP``).

The public headers (crnn.h, crnn_api.h and the .def files crnn.h includes)
are copied next to the extension, into the package's ``include`` folder,
for other extensions to build against (``crnn.get_include()``).
"""
import contextlib
import datetime
import glob
import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.sdist import sdist

HERE = os.path.dirname(os.path.abspath(__file__))
# Written into an sdist made from a git checkout: the sdist has no .git.
GIT_REVISION_FILE = "GIT_REVISION"
BUILD_STAMP_NAME = "_build_stamp.json"
BUILD_KINDS = ("source", "wheel")

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


def _git(*args):
    """git's output in this source tree, or None (no git, not a checkout)."""
    try:
        out = subprocess.run(
            ["git", "-C", HERE, *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip()


def git_revision():
    """The commit the sources come from ("<sha>-dirty" with local changes), or None.

    An unpacked sdist inside some other repository must not take that
    repository's commit, hence the top-level check.
    """
    top = _git("rev-parse", "--show-toplevel")
    if top and os.path.realpath(top) == os.path.realpath(HERE):
        sha = _git("rev-parse", "--short=12", "HEAD")
        if sha:
            changed = _git("status", "--porcelain", "--untracked-files=no")
            return sha + ("-dirty" if changed else "")
    try:
        with open(os.path.join(HERE, GIT_REVISION_FILE)) as f:
            return f.read().strip() or None
    except OSError:
        return None


def build_date():
    """UTC date and time of the build; SOURCE_DATE_EPOCH fixes it."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = (
        datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc)
        if epoch
        else datetime.datetime.now(datetime.timezone.utc)
    )
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def build_kind():
    kind = os.environ.get("CRNN_BUILD_KIND", "source").strip() or "source"
    if kind not in BUILD_KINDS:
        raise SystemExit(f"CRNN_BUILD_KIND must be one of {BUILD_KINDS}, got {kind!r}")
    return kind


class Sdist(sdist):
    """sdist that records the git revision it was made from (GIT_REVISION)."""

    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        revision = git_revision()
        if revision:
            target = os.path.join(base_dir, GIT_REVISION_FILE)
            if os.path.exists(target):  # a hard link to the tree's own copy
                os.unlink(target)
            with open(target, "w") as f:
                f.write(revision + "\n")


class BuildExt(build_ext):
    """build_ext that picks flags for the compiler actually in use, and
    ships the public headers with the extension."""

    def run(self):
        self._stamps = []
        super().run()
        if self.inplace or getattr(self, "editable_mode", False):
            # setuptools builds in build_lib, then copies only the extension
            # into the source tree; the stamp goes along with it.
            build_py = self.get_finalized_command("build_py")
            for package, stamp in self._stamps:
                target = os.path.join(build_py.get_package_dir(package), BUILD_STAMP_NAME)
                shutil.copy2(stamp, target)
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
        self._write_build_stamp(
            {
                "openmp": have_openmp,
                "native": native,
                "sanitize": sanitize,
                "cflags": cflags,
                "ldflags": ldflags,
            }
        )

    def _write_build_stamp(self, flags):
        """Write crnn/_build_stamp.json beside the extension just built.

        Beside it, so that it goes wherever the extension goes: into the
        wheel (build_lib) or into src/crnn for an in-place build.
        """
        compiler_cmd = getattr(self.compiler, "compiler_so", None) or ["msvc"]
        stamp = {
            "kind": build_kind(),
            "git_revision": git_revision(),
            "compiler_command": os.path.basename(compiler_cmd[0]),
            **flags,
            # distutils adds $CFLAGS and $LDFLAGS to the commands too.
            "env_cflags": os.environ.get("CFLAGS", "").strip(),
            "env_ldflags": os.environ.get("LDFLAGS", "").strip(),
            "python": platform.python_version(),
            "numpy": numpy.__version__,
            "platform": sysconfig.get_platform(),
        }
        for ext in self.extensions:
            built = self.get_ext_fullpath(ext.name)
            path = os.path.join(os.path.dirname(built), BUILD_STAMP_NAME)
            self._stamps.append((ext.name.rpartition(".")[0], path))
            if self._stamp_is_current(path, built, stamp):
                continue  # nothing was rebuilt: keep the date of the last build
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                json.dump({**stamp, "date": build_date()}, f, indent=1, sort_keys=True)
                f.write("\n")

    @staticmethod
    def _stamp_is_current(path, built, stamp):
        try:
            with open(path) as f:
                previous = json.load(f)
            newer = os.path.getmtime(built) > os.path.getmtime(path)
        except (OSError, ValueError):
            return False
        previous.pop("date", None)
        return previous == stamp and not newer

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
# setup.py itself too: its flags change the build (and the tests' build
# check counts it as a build input, so an in-place rebuild must follow it).
C_DEPENDS = sorted(
    glob.glob(os.path.join("csrc", "*.h"))
    + glob.glob(os.path.join("csrc", "*.inc"))
    + glob.glob(os.path.join("csrc", "*.def"))
) + ["setup.py"]

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
    cmdclass={"build_ext": BuildExt, "sdist": Sdist},
)
