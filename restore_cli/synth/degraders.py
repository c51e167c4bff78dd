"""Per-task degraders: a clean float RGB crop and an rng -> the degraded crop."""

from __future__ import annotations

import numpy as np

from .rain import add_rain, random_regime


def derain_degrader(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rain of a random regime (light, medium or heavy)."""
    return add_rain(clean, rng, random_regime(rng))


DEGRADERS = {"derain": derain_degrader}


def degrader(task: str):
    try:
        return DEGRADERS[task]
    except KeyError:
        raise ValueError(f"no synthesis for task {task!r} yet; available: {', '.join(DEGRADERS)}") from None
