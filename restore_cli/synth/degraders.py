"""Per-task degraders: a clean float RGB crop and an rng -> the degraded crop.

A degrader returns either the degraded image, whose ground-truth mask is then
SPAIR's thresholded difference (``mask.degradation_mask``), or a pair
``(degraded, mask)`` when the physics gives a better mask (the drops, the
shadow region). ``degrade_with_mask`` hides the difference from callers.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from .blur import add_motion_blur
from .mask import degradation_mask
from .rain import DEFAULT_MIX, add_rain, random_regime
from .raindrop import add_raindrops
from .shadow import add_shadow


def derain_degrader(clean: np.ndarray, rng: np.random.Generator, mix: tuple[float, ...] = DEFAULT_MIX) -> np.ndarray:
    """Rain of a random regime, drawn with the weights ``mix`` (see ``rain.REGIMES``)."""
    return add_rain(clean, rng, random_regime(rng, tuple(mix)))


DEGRADERS = {
    "derain": derain_degrader,
    "deraindrop": add_raindrops,
    "deshadow": add_shadow,
    "deblur": add_motion_blur,
}


def degrader(task: str, **options):
    """The task's degrader; ``options`` (a recipe's ``synth``) are passed to it as keywords."""
    try:
        fn = DEGRADERS[task]
    except KeyError:
        raise ValueError(f"no synthesis for task {task!r} yet; available: {', '.join(DEGRADERS)}") from None
    return partial(fn, **options) if options else fn


def degrade_with_mask(
    degrade, clean: np.ndarray, rng: np.random.Generator, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``degrade`` and return ``(degraded, bool mask)``: its own mask if it gives one, else the thresholded diff."""
    out = degrade(clean, rng)
    if isinstance(out, tuple):
        degraded, mask = out
        return degraded, np.asarray(mask, bool)
    return out, degradation_mask(out, clean, threshold)
