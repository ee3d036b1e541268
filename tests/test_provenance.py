"""Where the running crnn comes from: build_info()["build"], ["wheel"] and
["describe"], and the second line of ``crnn --version``.

The wheel tag is read from the installed distribution's WHEEL file only when
that distribution installed the very extension that is running; the tests
build fake installed distributions (a dist-info folder with a RECORD and a
WHEEL file) on sys.path to check both answers.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import crnn
from crnn import _provenance


@pytest.fixture(autouse=True)
def _fresh_provenance_caches():
    _provenance.build_stamp.cache_clear()
    _provenance.wheel_tag.cache_clear()
    yield
    _provenance.build_stamp.cache_clear()
    _provenance.wheel_tag.cache_clear()


def test_build_stamp_of_this_build():
    stamp = crnn.build_info()["build"]
    assert stamp["kind"] in ("source", "wheel", "unknown")
    if stamp["kind"] == "unknown":
        pytest.skip("this extension was built without setup.py's build stamp")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp["date"])
    assert stamp["openmp"] == crnn.build_info()["openmp"]
    assert stamp["python"].startswith("%d.%d." % sys.version_info[:2])
    cflags = stamp["cflags"]
    assert "-O3" in cflags or (stamp["sanitize"] and "-O1" in cflags), cflags
    assert stamp["git_revision"] is None or re.fullmatch(
        r"[0-9a-f]{7,40}(-dirty)?", stamp["git_revision"]
    )


def test_build_info_returns_a_copy_of_the_stamp():
    crnn.build_info()["build"]["kind"] = "tampered"
    assert crnn.build_info()["build"]["kind"] != "tampered"


def _fake_extension(monkeypatch, folder: Path, stamp) -> Path:
    """A stand-in for the compiled extension at folder/crnn/_core...so,
    with `stamp` (a dict, or None for none) beside it."""
    package = folder / "crnn"
    package.mkdir(parents=True)
    extension = package / "_core.cpython-312-x86_64-linux-gnu.so"
    extension.write_bytes(b"")
    if stamp is not None:
        (package / _provenance.BUILD_STAMP_NAME).write_text(json.dumps(stamp))

    class FakeCore:
        __file__ = str(extension)

    monkeypatch.setattr(_provenance, "_core", FakeCore)
    return extension


def _fake_dist_info(site: Path, files, tags) -> None:
    """An installed distribution "crnn" in `site` listing `files` in its RECORD."""
    info = site / "crnn-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: crnn\nVersion: 0.1.0\n")
    (info / "WHEEL").write_text(
        "Wheel-Version: 1.0\nRoot-Is-Purelib: false\n" + "".join(f"Tag: {t}\n" for t in tags)
    )
    (info / "RECORD").write_text("".join(f"{f},,\n" for f in files))


def test_wheel_tag_of_an_installed_wheel(tmp_path, monkeypatch):
    site = tmp_path / "site"
    extension = _fake_extension(
        monkeypatch, site, {"kind": "wheel", "date": "2026-01-02T03:04:05Z"}
    )
    _fake_dist_info(
        site,
        ["crnn/__init__.py", f"crnn/{extension.name}"],
        ["cp312-cp312-manylinux_2_17_x86_64", "cp312-cp312-manylinux2014_x86_64"],
    )
    monkeypatch.syspath_prepend(str(site))
    assert _provenance.wheel_tag() == "cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64"
    assert _provenance.describe() == (
        "wheel cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64 of 2026-01-02T03:04:05Z"
    )


def test_no_wheel_tag_when_the_distribution_installed_another_extension(tmp_path, monkeypatch):
    # An editable install, or crnn run from a source tree while another copy is
    # installed: the distribution found does not hold the running extension.
    _fake_extension(monkeypatch, tmp_path / "tree", {"kind": "source", "git_revision": "0123abc"})
    site = tmp_path / "site"
    (site / "crnn").mkdir(parents=True)
    (site / "crnn" / "_core.cpython-312-x86_64-linux-gnu.so").write_bytes(b"")
    _fake_dist_info(
        site, ["crnn/_core.cpython-312-x86_64-linux-gnu.so"], ["cp312-cp312-linux_x86_64"]
    )
    monkeypatch.syspath_prepend(str(site))
    assert _provenance.wheel_tag() is None
    assert _provenance.describe() == "source build, git 0123abc"


def test_without_a_build_stamp(tmp_path, monkeypatch):
    _fake_extension(monkeypatch, tmp_path, None)
    assert _provenance.build_stamp() == {"kind": "unknown"}
    assert _provenance.describe() == "unknown build (no build stamp)"


@pytest.mark.parametrize("content", ["not json", "[1, 2]"])
def test_an_unreadable_build_stamp_reads_as_unknown(tmp_path, monkeypatch, content):
    _fake_extension(monkeypatch, tmp_path, None)
    (tmp_path / "crnn" / _provenance.BUILD_STAMP_NAME).write_text(content)
    assert _provenance.build_stamp() == {"kind": "unknown"}


def test_a_wheel_build_run_from_an_unpacked_wheel(tmp_path, monkeypatch):
    _fake_extension(monkeypatch, tmp_path, {"kind": "wheel", "date": "2026-01-02T03:04:05Z"})
    assert _provenance.describe() == "wheel build of 2026-01-02T03:04:05Z"


def test_version_names_the_build():
    proc = subprocess.run(
        [sys.executable, "-m", "crnn", "--version"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.rstrip("\n").split("\n")
    assert first.startswith(f"crnn {crnn.__version__} (") and "kernels" in first
    assert second == crnn.build_info()["describe"]
