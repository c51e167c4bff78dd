"""Synthetic rain streaks that look like the real benchmarks.

Each rain layer follows the Photoshop recipe used to render Rain100L/H
(see ``../shared/notes/real-rain-statistics.md``):

1. a sparse noise layer (random seeds of random intensity),
2. a slight Gaussian blur (streak thickness),
3. a long motion blur at one angle (streak length and direction),
4. a levels stretch so streaks become bright and crisp on a black background,
5. a *screen* blend onto the photo, which adds light the way real rain does:
   ``out = 1 - (1 - photo) * (1 - rain)``.

Heavy rain stacks several dense layers around one dominant, near-vertical
direction and adds a light haze veil. Regimes are calibrated to the measured
input Y-PSNR of the real sets: light (Rain100L) about 25-29 dB, medium
(Test100-style) 17-25 dB, heavy (Rain100H) 11-17 dB. "extreme" covers the
heavier half of Rain100H (8-14 dB, most pixels brightened by 50-100 levels),
which "heavy" (median 14.8 dB, brightening 46) falls short of.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

REGIMES = ("light", "medium", "heavy", "extreme")


@dataclass(frozen=True)
class RainLayer:
    density: float  # fraction of pixels that seed a streak
    angle: float  # degrees from vertical
    length: int  # motion-blur length in pixels
    thickness: float  # Gaussian sigma before the motion blur
    brightness: float  # peak value of the screened layer, 0..1


def _line_kernel(length: int, angle: float) -> np.ndarray:
    """A normalised line (motion-blur) kernel ``length`` px long at ``angle`` deg from vertical."""
    size = length if length % 2 else length + 1
    k = np.zeros((size, size), np.float32)
    c = size // 2
    dx, dy = np.sin(np.radians(angle)), np.cos(np.radians(angle))
    half = (length - 1) / 2
    for t in np.linspace(-half, half, 2 * length):
        k[int(round(c + t * dy)), int(round(c + t * dx))] = 1.0
    return k / k.sum()


def render_layer(h: int, w: int, layer: RainLayer, rng: np.random.Generator) -> np.ndarray:
    """One grey rain layer (H, W) in [0, 1], black background, bright streaks."""
    seeds = (rng.random((h, w)) < layer.density) * rng.uniform(0.5, 1.0, (h, w))
    x = cv2.GaussianBlur(seeds.astype(np.float32), (0, 0), layer.thickness)
    x = cv2.filter2D(x, -1, _line_kernel(layer.length, layer.angle), borderType=cv2.BORDER_REFLECT)
    # Levels stretch: map the streak tail to 0 and the streak body to full brightness.
    lo, hi = np.percentile(x, [50.0, 99.7])
    x = np.clip((x - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    return x * layer.brightness


def sample_layers(regime: str, rng: np.random.Generator) -> tuple[list[RainLayer], float]:
    """Random layer parameters and haze strength for one image of a regime."""
    dominant = rng.uniform(-12.0, 12.0)
    if regime == "light":
        n, dens, length, thick, bright, haze = 1, (0.002, 0.006), (20, 45), (0.4, 0.8), (0.35, 0.75), 0.0
    elif regime == "medium":
        n, dens, length, thick, bright, haze = 2, (0.004, 0.012), (12, 40), (0.5, 1.2), (0.4, 0.8), 0.04
    elif regime == "heavy":
        n, dens, length, thick, bright, haze = 4, (0.02, 0.05), (15, 45), (0.6, 1.4), (0.7, 1.0), 0.2
    elif regime == "extreme":
        n, dens, length, thick, bright, haze = 6, (0.04, 0.09), (20, 50), (0.7, 1.5), (0.8, 1.0), 0.15
    else:
        raise ValueError(f"unknown rain regime {regime!r}; choose from {REGIMES}")
    layers = []
    # (Every regime draws the medium and heavy counts, so the rng sequence, and with it
    # the data of the shipped weights' recipes, stays as it was before "extreme".)
    count = {"light": 1, "medium": int(rng.integers(1, 3)), "heavy": int(rng.integers(2, 5)), "extreme": 0}[regime]
    count = count or int(rng.integers(4, 7))
    for i in range(count):
        # The first layer follows the dominant angle; others may deviate ("several directions").
        angle = dominant if i == 0 else dominant + rng.uniform(-15.0, 15.0)
        layers.append(
            RainLayer(
                density=rng.uniform(*dens),
                angle=angle,
                length=int(rng.integers(*length)),
                thickness=rng.uniform(*thick),
                brightness=rng.uniform(*bright),
            )
        )
    return layers, rng.uniform(0.0, haze)


def add_rain(clean: np.ndarray, rng: np.random.Generator, regime: str = "heavy") -> np.ndarray:
    """Return ``clean`` (H, W, 3 float32 in [0, 1]) with synthetic rain of ``regime``."""
    h, w = clean.shape[:2]
    layers, haze = sample_layers(regime, rng)
    out = clean.astype(np.float32)
    tint = rng.uniform(0.92, 1.0, 3).astype(np.float32)  # rain is near-white, slightly cool
    for layer in layers:
        rain = render_layer(h, w, layer, rng)[..., None] * tint
        out = 1.0 - (1.0 - out) * (1.0 - rain)  # screen blend: light adds
    if haze > 0:
        veil = rng.uniform(0.75, 0.95)
        out = out * (1.0 - haze) + veil * haze
    return np.clip(out, 0.0, 1.0).astype(np.float32)


DEFAULT_MIX = (0.3, 0.3, 0.4, 0.0)  # the mix the shipped derain weights up to derain-lctx trained on


def random_regime(rng: np.random.Generator, weights: tuple[float, ...] = DEFAULT_MIX) -> str:
    """Pick a regime (weights in ``REGIMES`` order) so training covers 4% to 90% of pixels affected."""
    if len(weights) != len(REGIMES) or min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(f"rain mix {list(weights)}: need {len(REGIMES)} non-negative weights for {REGIMES}")
    return REGIMES[int(rng.choice(len(REGIMES), p=np.asarray(weights) / sum(weights)))]
