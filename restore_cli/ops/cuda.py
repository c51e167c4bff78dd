"""SPAIR's sparse ops on CUDA tensors, with the kernels in ``kernels/*.cu``.

CuPy (``pip install 'restore-cli[cuda]'``, imported only when first needed)
compiles each kernel source once with ``cupy.RawModule`` and launches its
kernels on PyTorch's current stream; tensors are handed to CuPy through
DLPack, never copied. Everything between the launches (prefix sum, GEMM,
allocation) is plain PyTorch, so ``KernelOps`` also runs on the CPU with
``kernels/host_shim.py`` as its launcher: that is how the tests check the
kernels and this file without a GPU.

The kernels have no backward: they are for inference (``dispatch`` only
picks them when no gradient is needed). Masks are ``(B, 1, H, W)`` float32;
a pixel is active where ``mask != 0``.
"""

from __future__ import annotations

import importlib.util
import math
from functools import lru_cache
from pathlib import Path
from typing import Protocol, Sequence

import torch

from ..errors import RestoreError
from ..resources import shipped

KERNEL_DIR = shipped("kernels")
BLOCK = 256  # threads per block
CHUNK = 1024  # pixels per partial sum in masked_moment_partials


class Launcher(Protocol):
    """Runs ``kernel`` of the source ``kernels/<module>.cu`` on a 1-D grid."""

    def __call__(self, module: str, kernel: str, grid: int, block: int, args: Sequence) -> None: ...


def _float32(t: torch.Tensor) -> torch.Tensor:
    if t.dtype != torch.float32:
        raise TypeError(f"the sparse kernels take float32 tensors, got {t.dtype}")
    return t.contiguous()


class KernelOps:
    """The three sparse ops (same results as ``ops.reference``) built on the kernels."""

    def __init__(self, launch: Launcher):
        self._launch = launch

    def _run(self, module: str, kernel: str, threads: int, *args) -> None:
        if threads > 0:
            self._launch(module, kernel, -(-threads // BLOCK), BLOCK, args)

    def active_index(self, mask: torch.Tensor) -> torch.Tensor:
        """Flat indices ``b*H*W + y*W + x`` (int32, raster order) of the pixels where mask != 0."""
        mask = _float32(mask)
        b, _, h, w = mask.shape
        if mask.numel() >= 2**31:
            raise ValueError("the sparse kernels index pixels with int32: the mask is too large")
        rows = b * h
        counts = torch.empty(rows, dtype=torch.int32, device=mask.device)
        self._run("sparse_conv", "count_active_rows", rows, mask, rows, w, counts)
        ends = torch.cumsum(counts, 0, dtype=torch.int32)
        index = torch.empty(int(ends[-1]) if rows else 0, dtype=torch.int32, device=mask.device)
        self._run("sparse_conv", "write_active_rows", rows, mask, rows, w, ends - counts, index)
        return index

    def masked_conv2d(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None = None,
        index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``reference.masked_conv2d`` computed at the active pixels only.

        ``index`` is ``active_index(mask)``; pass it to share it between convs.
        """
        x, mask, weight = _float32(x), _float32(mask), _float32(weight)
        b, c, h, w = x.shape
        cout, _, k, _ = weight.shape
        index = self.active_index(mask) if index is None else index
        n = index.numel()
        cols = x.new_empty(n, c * k * k)
        self._run("sparse_conv", "gather_patches", cols.numel(), x, mask, index, n, c, h, w, k, cols)
        rows = (cols @ weight.reshape(cout, -1).T).contiguous()
        bias = x.new_zeros(cout) if bias is None else _float32(bias)
        out = x.new_zeros(b, cout, h, w)
        self._run("sparse_conv", "scatter_rows", rows.numel(), rows, bias, mask, index, n, cout, h * w, out)
        return out

    def _moment(
        self, x: torch.Tensor, mask: torch.Tensor, center: torch.Tensor, power: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per (b, c): sum(mask * (x - center)^power) / max(count, 1), and count = sum(mask)."""
        b, c, h, w = x.shape
        chunks = max(1, -(-h * w // CHUNK))
        sums = x.new_empty(b * c * chunks)
        counts = torch.empty_like(sums)
        self._run(
            "masked_stats", "masked_moment_partials", sums.numel(),
            x, mask, center, power, c, h * w, CHUNK, chunks, sums.numel(), sums, counts,
        )
        moment, count = x.new_empty(b, c), x.new_empty(b, c)
        self._run("masked_stats", "masked_moment_finish", b * c, sums, counts, chunks, b * c, moment, count)
        return moment, count

    def masked_mean_std(
        self, x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-5
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``reference.masked_mean_std``: ``(mean, std, count)``."""
        x, mask = _float32(x), _float32(mask)
        b, c = x.shape[:2]
        mean, count = self._moment(x, mask, x.new_zeros(b, c), 1)
        var, _ = self._moment(x, mask, mean, 2)
        std = torch.sqrt(var + eps)
        return mean.view(b, c, 1, 1), std.view(b, c, 1, 1), count[:, :1].reshape(b, 1, 1, 1)

    def directional_attention(
        self, x: torch.Tensor, mask: torch.Tensor, index: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``reference.directional_attention``: ``(B, 4, C, H, W)``, one thread per active pixel and direction."""
        x, mask = _float32(x), _float32(mask)
        b, c, h, w = x.shape
        index = self.active_index(mask) if index is None else index
        n = index.numel()
        out = x.new_zeros(b, 4, c, h, w)
        scale = 1.0 / math.sqrt(c)
        self._run("directional_attention", "directional_attention", 4 * n, x, mask, index, n, c, h, w, scale, out)
        return out


def available() -> bool:
    """Whether CuPy is installed (it is imported only when a kernel first runs)."""
    return importlib.util.find_spec("cupy") is not None


def require_cupy():
    """Import CuPy, or raise a one-line ``RestoreError`` saying how to install it."""
    try:
        import cupy
    except ImportError as err:
        raise RestoreError(
            "the CUDA sparse kernels need CuPy: pip install 'restore-cli[cuda]'"
        ) from err
    return cupy


class CupyLauncher:
    """Launches the kernels with CuPy, one ``RawModule`` per source file."""

    def __init__(self, kernel_dir: Path = KERNEL_DIR):
        self._cupy = require_cupy()
        self._dir = kernel_dir
        self._modules: dict[str, object] = {}
        self._streams: dict[tuple, object] = {}

    def _module(self, name: str):
        if name not in self._modules:
            source = self._dir / f"{name}.cu"
            if not source.is_file():
                raise RestoreError(f"{source}: CUDA kernel source not found")
            self._modules[name] = self._cupy.RawModule(code=source.read_text())
        return self._modules[name]

    def _arg(self, arg: object):
        if isinstance(arg, torch.Tensor):
            # detach: a module's weights require grad even under inference_mode, and DLPack
            # refuses to export them (the kernels have no backward; dispatch only picks
            # them when no gradient is recorded)
            return self._cupy.from_dlpack(arg.detach())
        if isinstance(arg, int):
            return self._cupy.int32(arg)
        if isinstance(arg, float):
            return self._cupy.float32(arg)
        raise TypeError(f"unsupported kernel argument {type(arg).__name__}")

    def _stream(self, device: torch.device):
        """PyTorch's current stream on ``device`` as a CuPy stream, made once per stream."""
        torch_stream = torch.cuda.current_stream(device)
        key = (device.index, torch_stream.cuda_stream)
        if key not in self._streams:
            self._streams[key] = self._cupy.cuda.ExternalStream(torch_stream.cuda_stream, device.index)
        return self._streams[key]

    def __call__(self, module: str, kernel: str, grid: int, block: int, args: Sequence) -> None:
        device = next(a.device for a in args if isinstance(a, torch.Tensor))
        function = self._module(module).get_function(kernel)
        with self._cupy.cuda.Device(device.index), self._stream(device):
            function((grid,), (block,), tuple(self._arg(a) for a in args))


@lru_cache(maxsize=1)
def kernel_ops() -> KernelOps:
    """The CuPy-backed ops, built on first use."""
    return KernelOps(CupyLauncher())
