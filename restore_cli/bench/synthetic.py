"""The built-in ``synthetic-rain`` set: seeded rain on crops of the bundled example photo.

Works offline: it needs only ``examples/clean.png`` from the repository.
Crops cycle through light, heavy and medium rain, so the set covers sparse
and dense masks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..imageio import read_image
from ..resources import shipped
from ..synth.rain import add_rain
from .protocols import to_uint8

EXAMPLE = shipped("examples") / "clean.png"
REGIMES = ("light", "heavy", "medium")
COUNT, SIDE, SEED = 6, 128, 0


def build(dest: Path, source: Path = EXAMPLE, count: int = COUNT, side: int = SIDE, seed: int = SEED) -> Path:
    """Write ``count`` rainy/clean crops of ``source`` to ``dest/input`` and ``dest/target``."""
    clean = read_image(source).rgb
    rng = np.random.default_rng(seed)
    h, w = clean.shape[:2]
    side = min(side, h, w)
    for d in ("input", "target"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = clean[y : y + side, x : x + side]
        regime = REGIMES[i % len(REGIMES)]
        rainy = add_rain(crop, rng, regime)
        name = f"{i:02d}-{regime}.png"
        Image.fromarray(to_uint8(rainy)).save(dest / "input" / name)
        Image.fromarray(to_uint8(crop)).save(dest / "target" / name)
    return dest

