"""Inference: NetL predicts the mask, NetR restores, tile by tile.

The whole image stays in host memory as numpy; only one tile (plus its
``tile_pad`` context) is on the device at a time. Tiles overlap by
``tile_pad`` on each side. The restored tiles are blended across the
overlaps with linear ramps (no seams); the mask of each pixel is taken from
the tile whose core holds it, so it is computed with at least ``tile_pad``
pixels of context. On CUDA, a tile that runs out of memory is halved and
retried.

With ``tta`` (test-time augmentation, ``--tta``), the image is restored four
times, as it is and flipped left-right, top-bottom and both, and the four
outputs, flipped back, are averaged: +0.16 to +0.22 dB on the derain val
sets for 4x the time (README, Models). The mask is the pixels flagged in at
least two of the four passes, for ``restore`` and ``mask`` alike. No
transposes: rain falls down, and a turned photo would show the network
sideways streaks it never learnt.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import ImageError
from .models import SPAIR
from .tasks import DEFAULT_TILE, DEFAULT_TILE_PAD, TASKS  # noqa: F401  (TASKS re-exported)

MIN_SIDE = 8  # smaller images carry too little context for the network


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available")
    return torch.device(device)


PRECISIONS = ("auto", "fp32", "bf16")


def native_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (AVX512-BF16 or AMX). There oneDNN's
    bf16 convs and GEMMs run about twice as fast as fp32 ones; elsewhere bf16 is emulated
    and slower than fp32."""
    caps = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
    return bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))


def pick_precision(precision: str, device: torch.device) -> torch.dtype:
    """The dtype the networks compute in: ``auto`` is bf16 on a CPU with native bf16,
    fp32 elsewhere (the CUDA kernels are fp32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: choose from {', '.join(PRECISIONS)}")
    if device.type != "cpu":
        if precision == "bf16":
            raise ValueError("--precision bf16 runs on the CPU only (the CUDA kernels compute in fp32)")
        return torch.float32
    if precision == "auto":
        return torch.bfloat16 if native_bf16() else torch.float32
    return torch.bfloat16 if precision == "bf16" else torch.float32


def _layout(device: torch.device) -> torch.memory_format:
    """Channels-last on the CPU, where oneDNN's convs and the sparse ops' gathers run
    faster on it (benchmarks/end_to_end.py); the CUDA kernels take NCHW."""
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format


def _ramp(before: int, core: int, after: int) -> np.ndarray:
    """Blend weights along one side of a padded tile: ramps over the pads, 1 on the core."""
    up = np.arange(1, before + 1, dtype=np.float32) / (before + 1)
    down = np.arange(after, 0, -1, dtype=np.float32) / (after + 1)
    return np.concatenate([up, np.ones(core, np.float32), down])


# The flips ``tta`` averages over: (left-right, top-bottom). Each is its own inverse.
FLIPS = ((False, False), (True, False), (False, True), (True, True))


def _flip(a: np.ndarray, lr: bool, tb: bool) -> np.ndarray:
    """``a`` (H, W, ...) flipped left-right and/or top-bottom (a view)."""
    return a[::-1 if tb else 1, ::-1 if lr else 1]


def _tiles(size: int, tile: int) -> list[tuple[int, int]]:
    """Start/stop pairs covering ``range(size)`` with cores of at most ``tile``."""
    if tile <= 0 or size <= tile:
        return [(0, size)]
    return [(s, min(s + tile, size)) for s in range(0, size, tile)]


@dataclass
class Pipeline:
    model: SPAIR
    task: str
    weights_id: str = "unsaved"
    sha256: str = ""
    device: torch.device = torch.device("cpu")
    tile: int = DEFAULT_TILE
    tile_pad: int = DEFAULT_TILE_PAD
    # bf16: convolutions and matrix products in bf16 (torch.autocast), so the features
    # between them are bf16 too; the weights stay fp32, and NetR's residual is added to
    # the fp32 photo in fp32.
    dtype: torch.dtype = torch.float32
    tta: bool = False  # average over the four flips (see the module docstring)

    @classmethod
    def from_model(
        cls, model: SPAIR, task: str, device: str = "auto", precision: str = "fp32", **kw
    ) -> "Pipeline":
        dev = pick_device(device)
        dtype = pick_precision(precision, dev)
        return cls(model.to(dev, memory_format=_layout(dev)).eval(), task, device=dev, dtype=dtype, **kw)

    @property
    def precision(self) -> str:
        return "bf16" if self.dtype == torch.bfloat16 else "fp32"

    def _run_tile(
        self, rgb: np.ndarray, restore: bool, given: np.ndarray | None = None
    ) -> tuple[np.ndarray | None, np.ndarray]:
        # An (H, W, 3) array is already channels-last memory: no copy on the CPU.
        x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None]
        x = x.to(self.device).contiguous(memory_format=_layout(self.device))
        bf16 = torch.autocast(self.device.type, torch.bfloat16, enabled=self.dtype == torch.bfloat16)
        with torch.inference_mode(), bf16:
            if restore:
                override = None  # a mask that replaces NetL's
                if given is not None:
                    override = torch.from_numpy(given.astype(np.float32))[None, None].to(self.device)
                out, mask = self.model(x, override)
                return out[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy(), (mask[0, 0] > 0.5).cpu().numpy()
            return None, (self.model.predict_mask(x)[0, 0] > 0.5).cpu().numpy()

    def _tiled(
        self, rgb: np.ndarray, restore: bool, given: np.ndarray | None = None
    ) -> tuple[np.ndarray | None, np.ndarray]:
        h, w = rgb.shape[:2]
        if min(h, w) < MIN_SIDE:
            raise ImageError(f"image is {w}x{h}; the network needs at least {MIN_SIDE}x{MIN_SIDE}")
        rgb = rgb.astype(np.float32, copy=False)
        tile = self.tile
        while True:
            try:
                return self._stitch(rgb, tile, self.tile_pad, restore, given)
            except torch.cuda.OutOfMemoryError:
                if self.device.type != "cuda" or tile and tile <= 64:
                    raise
                torch.cuda.empty_cache()
                tile = (tile or max(h, w)) // 2
            except RuntimeError as err:  # torch reports a failed CPU allocation as a RuntimeError
                if "DefaultCPUAllocator" in str(err):
                    raise MemoryError(f"at tile size {tile or 'none'}, try a smaller --tile") from err
                raise

    def _stitch(
        self, rgb: np.ndarray, tile: int, pad: int, restore: bool, given: np.ndarray | None
    ) -> tuple[np.ndarray | None, np.ndarray]:
        h, w = rgb.shape[:2]
        acc = np.zeros_like(rgb) if restore else None
        weight = np.zeros((h, w, 1), np.float32) if restore else None
        mask = np.empty((h, w), bool)
        for y0, y1 in _tiles(h, tile):
            for x0, x1 in _tiles(w, tile):
                py0, py1, px0, px1 = max(y0 - pad, 0), min(y1 + pad, h), max(x0 - pad, 0), min(x1 + pad, w)
                given_tile = None if given is None else given[py0:py1, px0:px1]
                o, m = self._run_tile(rgb[py0:py1, px0:px1], restore, given_tile)
                mask[y0:y1, x0:x1] = m[y0 - py0 : y1 - py0, x0 - px0 : x1 - px0]
                if restore:
                    wy = _ramp(y0 - py0, y1 - y0, py1 - y1)
                    wx = _ramp(x0 - px0, x1 - x0, px1 - x1)
                    tw = (wy[:, None] * wx[None, :])[..., None]
                    acc[py0:py1, px0:px1] += tw * o
                    weight[py0:py1, px0:px1] += tw
        return (acc / weight if restore else None), mask

    def restore(self, rgb: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """float32 RGB (H, W, 3) in [0, 1] -> (restored RGB, same shape; mask bool (H, W)).

        ``mask`` (bool (H, W)), if given, replaces NetL's: e.g. a synthesis's
        ground truth, to score what a perfect NetL would give (``recipes/eval.py --mask gt``).
        """
        out, used_mask = self._passes(rgb, restore=True, given=mask)
        assert out is not None
        return out, used_mask

    def mask(self, rgb: np.ndarray) -> np.ndarray:
        """The predicted degradation mask, bool (H, W)."""
        return self._passes(rgb, restore=False)[1]

    def _passes(
        self, rgb: np.ndarray, restore: bool, given: np.ndarray | None = None
    ) -> tuple[np.ndarray | None, np.ndarray]:
        """One ``_tiled`` pass, or with ``tta`` one per flip: the outputs, flipped back,
        averaged, and the mask of pixels flagged in at least half of the passes."""
        if not self.tta:
            return self._tiled(rgb, restore, given)
        out = np.zeros(rgb.shape, np.float32) if restore else None
        votes = np.zeros(rgb.shape[:2], np.int8)
        for lr, tb in FLIPS:
            flip = lambda a: None if a is None else _flip(a, lr, tb)  # noqa: E731
            o, m = self._tiled(flip(rgb), restore, flip(given))  # each tile is made contiguous
            if out is not None:
                out += flip(o)
            votes += flip(m)
        return (None if out is None else out / len(FLIPS)), votes * 2 >= len(FLIPS)


def load_pipeline(
    task: str,
    weights: str | Path | None = None,
    device: str = "auto",
    tile: int = DEFAULT_TILE,
    tile_pad: int = DEFAULT_TILE_PAD,
    precision: str = "fp32",
    tta: bool = False,
) -> Pipeline:
    """Resolve the task's weights (see ``restore_cli.weights``) and build its pipeline.

    Raises ``WeightsError`` with a one-line message when there are no trained
    weights for ``task`` or they fail verification.
    """
    from .weights import load_model

    model, weights_id, sha = load_model(task, weights)
    return Pipeline.from_model(
        model, task, device, precision, weights_id=weights_id, sha256=sha, tile=tile, tile_pad=tile_pad, tta=tta
    )
