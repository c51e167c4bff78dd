"""Image-quality metrics under the papers' protocols.

Deraining (PReNet/MPRNet/SPAIR tables): PSNR and SSIM on the Y channel of
MATLAB's ``rgb2ycbcr`` (BT.601, studio range, Y in [16, 235]), with the
Gaussian SSIM of Wang et al. as skimage computes it.
"""

from __future__ import annotations

import numpy as np


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2ycbcr`` luma for RGB float in [0, 1]; returns Y in [16, 235] (float64)."""
    rgb = rgb.astype(np.float64)
    return 16.0 + 65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]


def psnr(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(data_range**2 / mse)


def y_psnr(restored: np.ndarray, clean: np.ndarray, round_y: bool = False) -> float:
    """PSNR on MATLAB Y (data range 255). ``round_y`` rounds Y to uint8 as MPRNet does."""
    ya, yb = rgb_to_y(restored), rgb_to_y(clean)
    if round_y:
        ya, yb = np.round(ya), np.round(yb)
    return psnr(ya, yb, 255.0)


def y_ssim(restored: np.ndarray, clean: np.ndarray, round_y: bool = False) -> float:
    """Gaussian SSIM on MATLAB Y, matching the MATLAB ``ssim`` used by the papers."""
    from skimage.metrics import structural_similarity

    ya, yb = rgb_to_y(restored), rgb_to_y(clean)
    if round_y:
        ya, yb = np.round(ya), np.round(yb)
    return float(
        structural_similarity(ya, yb, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    )


def f1_score(pred: np.ndarray, target: np.ndarray) -> float:
    """F1 of a binary prediction against a binary target (1.0 when both are empty)."""
    pred, target = pred.astype(bool), target.astype(bool)
    tp = np.logical_and(pred, target).sum()
    denom = pred.sum() + target.sum()
    return 1.0 if denom == 0 else float(2 * tp / denom)
