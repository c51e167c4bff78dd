"""The compiled CPU sparse conv (``kernels/sparse_conv_cpu.cpp``), built on first use.

The kernel computes ``reference.masked_conv2d`` straight from the mask, in one
pass, for channels-last float32 maps: see the source's header for how. It is
compiled with the machine's C++ compiler (``$CXX``, else ``c++``/``g++``) for
this CPU (``-march=native``) into ``$XDG_CACHE_HOME/restore/native/`` (else
``~/.cache``), under a name that hashes the source, the compiler, the flags
and the CPU, so an edit or another machine never loads a stale build. The
build is written to a temporary name and renamed, so concurrent first runs
(``restore -j``) are safe; ``make setup`` builds it ahead. It runs its rows
in OpenMP threads; linked against ``libgomp.so.1``, which PyTorch's Linux
wheels load under that name, it shares PyTorch's thread pool.

When there is no compiler, the build fails, ``RESTORE_NATIVE=0`` is set, or
the tensors are not what the kernel takes (gradients needed, not float32 or
channels-last, Cout not a multiple of 8 up to 64), ``sparse_conv2d`` returns
None and the caller runs PyTorch's gather -> GEMM -> scatter instead.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import torch

from ..resources import shipped

SOURCE = shipped("kernels") / "sparse_conv_cpu.cpp"
FLAGS = ["-std=c++17", "-O3", "-march=native", "-shared", "-fPIC", "-fopenmp", "-Wno-psabi"]  # psabi: the vectors never cross an ABI boundary
# RESTORE_NATIVE=0 turns the kernel off (as does setting this to False: the benchmarks' A/B).
ENABLED = os.environ.get("RESTORE_NATIVE", "1") != "0"
_log = logging.getLogger(__name__)


def compiler() -> str | None:
    """The C++ compiler to build with, or None."""
    found = (shutil.which(name) for name in (os.environ.get("CXX"), "c++", "g++", "clang++") if name)
    return next((path for path in found if path), None)


def _cpu() -> str:
    """What ``-march=native`` compiles for: the CPU model and its feature flags."""
    try:
        info = Path("/proc/cpuinfo").read_text()
        return "\n".join(sorted({line for line in info.splitlines() if line.startswith(("model name", "flags"))}))
    except OSError:
        return platform.processor() or platform.machine()


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "restore" / "native"


class BuildError(Exception):
    """The kernel did not compile; ``first`` is False when an earlier run found so already."""

    def __init__(self, message: str, first: bool = True):
        super().__init__(message)
        self.first = first


def build(cxx: str, out_dir: Path) -> Path:
    """Compile the kernel, once: the library's name hashes what it is built from, and a
    failed build leaves a ``.failed`` file of that name, so it is not tried on every run."""
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=True).stdout
    key = hashlib.sha256("\0".join([SOURCE.read_text(), version, *FLAGS, _cpu()]).encode()).hexdigest()[:16]
    lib = out_dir / f"sparse_conv_cpu-{key}.so"
    failed = lib.with_suffix(".failed")
    if lib.exists():
        return lib
    if failed.exists():
        raise BuildError(f"it failed before (see {failed})", first=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{lib.name}.", suffix=".tmp")
    os.close(fd)
    try:
        done = subprocess.run([cxx, *FLAGS, str(SOURCE), "-o", tmp], capture_output=True, text=True)
        if done.returncode:
            failed.write_text(done.stderr)
            raise BuildError((done.stderr.strip().splitlines() or [f"{cxx} exited with {done.returncode}"])[-1])
        os.replace(tmp, lib)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return lib


@lru_cache(maxsize=None)
def library() -> ctypes.CDLL | None:
    """The built kernel, or None (no compiler, or the build failed: logged the first time)."""
    cxx = compiler()
    if cxx is None or not SOURCE.exists():
        _log.info("no C++ compiler or no %s: the sparse conv runs in PyTorch", SOURCE)
        return None
    try:
        lib = ctypes.CDLL(str(build(cxx, cache_dir())))
    except (OSError, subprocess.CalledProcessError, BuildError) as e:
        detail = (getattr(e, "stderr", "") or str(e)).strip().splitlines() or [str(e)]
        level = logging.INFO if isinstance(e, BuildError) and not e.first else logging.WARNING
        _log.log(level, "building %s failed, the sparse conv runs in PyTorch: %s", SOURCE.name, detail[-1])
        return None
    return bind(lib)


def bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    """Declare the kernel's C signature on a loaded library."""
    fn = lib.sparse_conv2d_nhwc
    p, i, n = ctypes.c_void_p, ctypes.c_int, ctypes.c_long
    fn.argtypes = [p, n, p, p, p, i, i, i, i, i, i, p, n, i]
    fn.restype = i
    return lib


def sparse_conv2d(
    x: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor | None:
    """``reference.masked_conv2d`` by the kernel, channels-last; None where it does not apply."""
    cout, cin, kh, kw = weight.shape
    b, _, h, w = x.shape
    applies = (
        ENABLED
        and not (torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, mask, weight, bias)))
        and all(t is None or (t.device.type == "cpu" and t.dtype == torch.float32) for t in (x, mask, weight, bias))
        and mask.shape == (b, 1, h, w) and x.is_contiguous(memory_format=torch.channels_last)
        and kh == kw and kh % 2 == 1 and cout % 8 == 0 and cout <= 64 and b * h < 2**31
    )
    if not applies or (lib := library()) is None:
        return None
    mask = mask.contiguous()
    taps = weight.permute(2, 3, 1, 0).contiguous()  # (k, k, Cin, Cout)
    bias = bias.contiguous() if bias is not None else None
    out = torch.empty(b, h, w, cout)
    failed = lib.sparse_conv2d_nhwc(
        x.data_ptr(), cin, mask.data_ptr(), taps.data_ptr(), bias.data_ptr() if bias is not None else None,
        b, h, w, cin, cout, kh, out.data_ptr(), cout, torch.get_num_threads(),
    )
    return None if failed else out.permute(0, 3, 1, 2)


def main() -> None:
    """Build the kernel now and say where it is (``make setup`` runs this ahead of the first run)."""
    logging.basicConfig(format="%(message)s")
    if not ENABLED:
        print("sparse conv kernel: turned off (RESTORE_NATIVE=0), PyTorch's path runs")
    elif lib := library():
        print(f"sparse conv kernel: {lib._name}")
    else:
        print("sparse conv kernel: not built, PyTorch's path runs")
