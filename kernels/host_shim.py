"""Build the CUDA kernels in this folder for the CPU and launch them via ctypes.

``build(out_dir)`` compiles every ``*.cu`` here with g++ and ``host_shim.h``
(one shared library per source, like one ``cupy.RawModule`` per source) and
returns a ``HostShim``: a launcher with the same call signature as
``restore_cli.ops.cuda.CupyLauncher``, taking contiguous CPU tensors. So
``KernelOps(build(tmp))`` runs the very kernels and host code the GPU runs,
on the CPU, which is how tests check them without a GPU.
"""

from __future__ import annotations

import ctypes
import re
import subprocess
from pathlib import Path
from typing import Sequence

import torch

KERNEL_DIR = Path(__file__).resolve().parent
KERNEL_DECL = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)')


def kernel_names(source: Path) -> list[str]:
    """The ``extern "C" __global__`` kernels a .cu file defines."""
    return KERNEL_DECL.findall(source.read_text())


def compile_source(source: Path, out_dir: Path) -> Path:
    """g++ one .cu file with the host shim into ``out_dir/<stem>.so``."""
    driver = out_dir / f"{source.stem}_shim.cpp"
    exports = "".join(f"SHIM_EXPORT({name})\n" for name in kernel_names(source))
    driver.write_text(f'#include "{source}"\n{exports}')
    lib = out_dir / f"{source.stem}.so"
    cmd = ["g++", "-std=c++17", "-O2", "-shared", "-fPIC", "-Wall", "-Werror",
           "-include", str(KERNEL_DIR / "host_shim.h"), str(driver), "-o", str(lib)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{source}: g++ failed:\n{done.stderr}")
    return lib


def _c_arg(arg: object) -> ctypes._SimpleCData:
    if isinstance(arg, torch.Tensor):
        if arg.device.type != "cpu" or not arg.is_contiguous():
            raise ValueError("host shim kernels take contiguous CPU tensors")
        return ctypes.c_void_p(arg.data_ptr())
    if isinstance(arg, int):
        return ctypes.c_int32(arg)
    if isinstance(arg, float):
        return ctypes.c_float(arg)
    raise TypeError(f"unsupported kernel argument {type(arg).__name__}")


class HostShim:
    """Launch kernels compiled by ``compile_source``: ``shim(module, kernel, grid, block, args)``."""

    def __init__(self, libs: dict[str, Path]):
        self._libs = {module: ctypes.CDLL(str(path)) for module, path in libs.items()}

    def __call__(self, module: str, kernel: str, grid: int, block: int, args: Sequence) -> None:
        values = [_c_arg(a) for a in args]
        pointers = (ctypes.c_void_p * len(values))(
            *(ctypes.cast(ctypes.pointer(v), ctypes.c_void_p) for v in values)
        )
        launch = getattr(self._libs[module], f"shim_launch_{kernel}")
        launch.argtypes = [ctypes.c_uint] * 6 + [ctypes.c_void_p]
        launch(grid, 1, 1, block, 1, 1, pointers)


def build(out_dir: Path) -> HostShim:
    """Compile every kernel source in this folder into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = sorted(KERNEL_DIR.glob("*.cu"))
    return HostShim({src.stem: compile_source(src, out_dir) for src in sources})
