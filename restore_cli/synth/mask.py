"""Ground-truth degradation masks, as SPAIR Sec. 3.1 derives them."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported when used, keeping `restore --help` fast
    import numpy as np

DEFAULT_THRESHOLD = 0.1  # mean |degraded - clean| over RGB, in [0, 1] units (~25 levels)


def degradation_mask(degraded: np.ndarray, clean: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Binary mask (H, W) bool: pixels whose mean absolute RGB change exceeds ``threshold``.

    SPAIR trains NetL on severe distortions only, so the threshold is a setting.
    """
    return mean_change(degraded, clean) > threshold


def visible_change(degraded: np.ndarray, clean: np.ndarray, threshold: float, sigma: float) -> np.ndarray:
    """Binary mask (H, W) bool: where the mean absolute RGB change, averaged over a
    Gaussian of ``sigma`` px, exceeds ``threshold``.

    The averaging turns scattered changed pixels (blurred edges, a drop's
    refracted texture) into the solid regions they belong to.
    """
    import cv2

    return cv2.GaussianBlur(mean_change(degraded, clean), (0, 0), sigma) > threshold


def mean_change(degraded: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """Per-pixel mean absolute RGB change (H, W) float32, in [0, 1] units."""
    import numpy as np

    return np.abs(degraded.astype(np.float32) - clean.astype(np.float32)).mean(axis=-1)
