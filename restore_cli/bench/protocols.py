"""Metric conventions of the papers' evaluation scripts.

Every convention scores 8-bit images: the restored float output is rounded
to uint8 first (``to_uint8``), exactly what is saved as PNG and what the
papers' scripts read back. PSNR is per image, averaged over images.

- ``y-matlab-round`` (deraining default; MPRNet/SPAIR ``evaluate_PSNR_SSIM.m``):
  Y of MATLAB ``rgb2ycbcr`` on uint8 input, which MATLAB rounds to uint8;
  PSNR with peak 255; SSIM of Wang et al. with an 11x11 Gaussian window
  (sigma 1.5, population covariance, L = 255), as skimage
  ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)``.
- ``y-matlab`` (PReNet's scripts): the same on unrounded Y (``im2double`` then ``rgb2ycbcr``).
- ``y-opencv`` (raindrop default; Qian et al.'s released ``eval.py``): Y of
  OpenCV ``COLOR_RGB2YCrCb`` on uint8 (full range, rounded); PSNR peak 255;
  skimage's default SSIM (7x7 uniform window, sample covariance), as their
  ``compare_ssim`` call.
- ``rgb`` (deblurring default): PSNR over all RGB values with peak 255; SSIM
  per channel (``channel_axis=-1``) with the Gaussian settings above,
  averaged over channels. MPRNet's MATLAB ``ssim`` on an RGB array filters
  it as a 3-D volume instead, and RealBlur's script aligns images first;
  expect a few hundredths of difference.
- ``lab-mae`` (shadow default; the ISTD evaluation script used since
  Guo et al. and ST-CGAN, and in SPAIR Table 4): both images to CIE Lab
  (skimage ``rgb2lab``, D65; MATLAB's ``applycform(srgb2lab)`` adapts to
  D50), the per-pixel error is ``|dL| + |da| + |db|``, and the tables'
  "RMSE" is that error averaged over the pixels of all images pooled
  together (shadow: mask > 0, non-shadow: mask == 0, all). No resizing to
  256x256 (some later papers resize first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np
from skimage.color import rgb2lab
from skimage.metrics import structural_similarity

from ..metrics import psnr, y_psnr, y_ssim


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """Float RGB in [0, 1] -> uint8, rounded to nearest."""
    return np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


def _unit(u8: np.ndarray) -> np.ndarray:
    return u8.astype(np.float64) / 255.0


def y_matlab(round_y: bool) -> Callable:
    def score(out: np.ndarray, target: np.ndarray, mask=None) -> dict:
        a, b = _unit(out), _unit(target)
        return {"psnr": y_psnr(a, b, round_y), "ssim": y_ssim(a, b, round_y)}

    return score


def y_opencv(out: np.ndarray, target: np.ndarray, mask=None) -> dict:
    ya, yb = (cv2.cvtColor(x, cv2.COLOR_RGB2YCrCb)[..., 0] for x in (out, target))
    return {"psnr": psnr(ya, yb, 255.0), "ssim": float(structural_similarity(ya, yb, data_range=255))}


def rgb_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Gaussian SSIM per RGB channel, averaged; uint8 inputs."""
    return float(
        structural_similarity(
            a, b, channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
        )
    )


def rgb(out: np.ndarray, target: np.ndarray, mask=None) -> dict:
    return {"psnr": psnr(out, target, 255.0), "ssim": rgb_ssim(out, target)}


def lab_error(out: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-pixel ``|dL| + |da| + |db|`` between two uint8 RGB images (H, W)."""
    return np.abs(rgb2lab(out) - rgb2lab(target)).sum(axis=-1)


def lab_mae(out: np.ndarray, target: np.ndarray, mask: np.ndarray) -> dict:
    """Per-image Lab errors and pixel counts; ``pooled`` turns them into the tables' numbers."""
    err, shadow = lab_error(out, target), mask.astype(bool)
    ns, n = int(shadow.sum()), shadow.size

    def mean(sel: np.ndarray) -> float | None:
        return float(err[sel].mean()) if sel.any() else None

    return {"rmse_s": mean(shadow), "rmse_ns": mean(~shadow), "rmse": float(err.mean()), "shadow_pixels": ns, "pixels": n}


def mean_over_images(records: list[dict], metrics: tuple[str, ...], prefix: str = "") -> dict:
    """Mean of each per-image metric (``prefix`` picks e.g. the input's own ``input_psnr``)."""
    return {k: float(np.mean([r[prefix + k] for r in records])) if records else None for k in metrics}


def pooled_over_pixels(records: list[dict], metrics: tuple[str, ...], prefix: str = "") -> dict:
    """Pixel-pooled Lab errors: sum of errors over all images / number of pixels, per region."""
    counts = {
        "rmse_s": lambda r: r["shadow_pixels"],
        "rmse_ns": lambda r: r["pixels"] - r["shadow_pixels"],
        "rmse": lambda r: r["pixels"],
    }
    out = {}
    for k in metrics:
        vals = [(r[prefix + k], counts[k](r)) for r in records if counts[k](r)]
        total = sum(c for _, c in vals)
        out[k] = float(sum(v * c for v, c in vals) / total) if total else None
    return out


@dataclass(frozen=True)
class Convention:
    name: str
    metrics: tuple[str, ...]
    rank_by: str  # the metric that orders the gallery and the plot
    higher_is_better: bool
    score: Callable[..., dict]  # (out uint8, target uint8, mask bool | None) -> per-image dict
    aggregate: Callable[..., dict]  # (records, metrics, prefix) -> {metric: mean}
    needs_mask: bool = False
    source: str = ""


PSNR_SSIM = ("psnr", "ssim")
LAB = ("rmse_s", "rmse_ns", "rmse")
CONVENTIONS = {
    c.name: c
    for c in (
        Convention("y-matlab-round", PSNR_SSIM, "psnr", True, y_matlab(True), mean_over_images,
                   source="MPRNet evaluate_PSNR_SSIM.m: MATLAB rgb2ycbcr Y rounded to uint8, Gaussian SSIM"),
        Convention("y-matlab", PSNR_SSIM, "psnr", True, y_matlab(False), mean_over_images,
                   source="PReNet: MATLAB rgb2ycbcr Y of im2double images (unrounded), Gaussian SSIM"),
        Convention("y-opencv", PSNR_SSIM, "psnr", True, y_opencv, mean_over_images,
                   source="Qian et al. eval.py: OpenCV YCrCb Y (uint8), skimage default SSIM (7x7 uniform)"),
        Convention("rgb", PSNR_SSIM, "psnr", True, rgb, mean_over_images,
                   source="uint8 RGB PSNR; Gaussian SSIM per channel (skimage channel_axis), averaged"),
        Convention("lab-mae", LAB, "rmse", False, lab_mae, pooled_over_pixels, needs_mask=True,
                   source="ISTD script: Lab |dL|+|da|+|db| per pixel, pooled over all images' shadow/non-shadow/all pixels"),
    )
}
