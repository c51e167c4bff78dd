"""The sRGB transfer curve: degradations that are physical (blur, shadow) happen in linear light."""

from __future__ import annotations

import numpy as np


def to_linear(srgb: np.ndarray) -> np.ndarray:
    """Undo the sRGB transfer curve (IEC 61966-2-1): [0, 1] sRGB -> linear light."""
    x = np.clip(srgb, 0.0, 1.0)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def to_srgb(linear: np.ndarray) -> np.ndarray:
    """Apply the sRGB transfer curve: linear light -> [0, 1] sRGB."""
    x = np.clip(linear, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055).astype(np.float32)
