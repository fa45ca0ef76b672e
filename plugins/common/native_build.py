"""Compile a small C source with the system compiler once per machine, and load it with ctypes.

The built shared library is cached under ``mfbench.cache_dir() / "native"`` in a
folder named by a hash of everything that decides the machine code: the source, the
compiler's identity (its ``--version``), the flags and the CPU (``-march=native`` builds
for the CPU it runs on). A second case, or a second run, loads the cached build in
milliseconds; a changed source or another machine sharing the cache builds its own.

The build is written to a temporary name and renamed into place, so two processes
building at once never load a half-written library.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

from mfbench import cache_dir
from mfbench.errors import MfbenchError

#: Environment variable naming the C compiler (as make and setuptools read it).
COMPILER_ENV = "CC"
#: Reordering sums and fusing multiply-adds is allowed (numba's fastmath={reassoc, contract});
#: NaN and infinity keep their meaning (no -ffast-math), so a diverging run still shows as NaN.
FLAGS = (
    "-O3",
    "-march=native",
    "-fopenmp",
    "-std=gnu11",
    "-ffp-contract=fast",
    "-fassociative-math",
    "-fno-signed-zeros",
    "-fno-trapping-math",
    "-shared",
    "-fPIC",
)
#: Seconds a compile may take before it is given up (a few on any machine).
BUILD_TIMEOUT = 120


def compiler() -> str | None:
    """The C compiler to use: ``$CC``, else ``cc``, else ``gcc``; None when none is on the PATH."""
    for name in (os.environ.get(COMPILER_ENV), "cc", "gcc"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def no_compiler_reason() -> str | None:
    """Why nothing can be built here, or None."""
    if compiler() is None:
        return (
            f"no C compiler found (tried ${COMPILER_ENV}, cc, gcc); install one with OpenMP support "
            f"(Debian/Ubuntu: apt-get install gcc) or set {COMPILER_ENV}"
        )
    return None


def cpu_identity() -> str:
    """What ``-march=native`` depends on: the CPU's model and feature flags (Linux), else the platform."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            lines = [line for line in handle if line.startswith(("model name", "flags"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return platform.processor() + platform.machine()


def build_key(source: bytes, cc: str) -> str:
    """The cache folder's name: a hash of the source, the compiler's version, the flags and the CPU."""
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        version = cc
    digest = hashlib.sha256()
    for part in (source, version.encode(), " ".join(FLAGS).encode(), cpu_identity().encode()):
        digest.update(part)
        digest.update(b"\0")
    return digest.hexdigest()[:20]


def build(source_path: Path, name: str) -> Path:
    """The shared library built from ``source_path``: from the cache, or compiled now into it."""
    cc = compiler()
    if cc is None:
        raise MfbenchError(no_compiler_reason() or "no C compiler")
    source = source_path.read_bytes()
    folder = cache_dir() / "native" / build_key(source, cc)
    library = folder / f"lib{name}.so"
    if library.exists():
        return library
    folder.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(prefix=f".lib{name}-", suffix=".so", dir=folder)
    os.close(handle)
    command = [cc, *FLAGS, str(source_path), "-o", scratch]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
        if done.returncode != 0:
            raise MfbenchError(
                f"compiling {source_path.name} failed ({' '.join(command)}): {done.stderr.strip()[-800:]}; "
                f"the compiler needs OpenMP (-fopenmp); set {COMPILER_ENV} to one that has it"
            )
        os.replace(scratch, library)
    except subprocess.TimeoutExpired as exc:
        raise MfbenchError(f"compiling {source_path.name} took over {BUILD_TIMEOUT} s ({' '.join(command)})") from exc
    finally:
        if os.path.exists(scratch):
            os.unlink(scratch)
    return library


def load(source_path: Path, name: str) -> ctypes.CDLL:
    """Build (or find) and load the library; loading the same path twice returns the same handle."""
    return ctypes.CDLL(str(build(source_path, name)))
