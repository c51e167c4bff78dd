"""Synthetic raindrops on a window, like Qian et al.'s AttentiveGAN data (CVPR 2018).

Qian et al. photographed scenes through a glass pane sprayed with water, with
the camera focused on the scene. Each adherent drop is a small convex water
lens a few centimetres from the camera, so in the photo it is:

1. **Irregular and varied.** Small round drops to large ones merged from
   several, some elongated by running down the pane. Drops are rendered as
   metaballs (a union of soft discs whose fields add up), so touching drops
   coalesce with smooth outlines, and a run-down drop is a chain of shrinking
   discs below its head.
2. **Refractive.** A drop gathers light from a wider patch of the scene than it
   covers and inverts it, like a tiny fisheye lens: inside drop ``k`` the pixel
   ``p`` shows the scene at ``c_k - m_k (p - c_k)`` (``c_k`` its centre,
   ``m_k`` its magnification). Drops also look slightly brighter (they catch
   sky light) and lose contrast.
3. **Rimmed.** Light at the drop's steep edge is refracted away or reflected,
   so the rim is dark, most on the side away from the light, with a small soft
   highlight on the side towards it.
4. **Out of focus.** The pane is much nearer than the focus distance, so the
   whole drop layer (its content and its outline) is defocused, rendered as a
   premultiplied layer blurred with one Gaussian and composited over the
   scene. The scene itself is seen through wet glass and is slightly soft.

Ground-truth mask: the drops that visibly change the image, i.e. the
defocused drop matte above 0.5 where the change, averaged over a few pixels,
is above about 13 levels (``visible_drops``; ``add_raindrops`` returns it with
the image). A drop that refracts a flat region into nearly the same colour is
left out: NetL cannot see it, and SPAIR trains NetL on visible distortions only.
Sizes are absolute pixels at the scale of Qian's 720x480 photos (drop radii
from a few px to about 40 px, covering 3-32% of the pane), so training crops
see drops as large as the test photos show them. On BSDS500 val photos the
inputs score 15-38 dB RGB PSNR, median about 23 dB (Qian's test_a inputs:
about 24 dB; BSDS texture makes the same drops cost a little more).
"""

from __future__ import annotations

import cv2
import numpy as np

from .mask import visible_change


# A drop pixel is in the GT mask where the mean RGB change, averaged over
# VISIBLE_SIGMA px, exceeds VISIBLE_CHANGE (about 13 levels of 255).
VISIBLE_CHANGE = 0.05
VISIBLE_SIGMA = 3.0


def _add_ball(field: np.ndarray, cy: float, cx: float, r: float) -> None:
    """Add one metaball ``2^-(d/r)^2`` (equals 0.5 at distance r) to ``field`` in place."""
    h, w = field.shape
    ext = 2.5 * r
    y0, y1 = max(int(cy - ext), 0), min(int(cy + ext) + 1, h)
    x0, x1 = max(int(cx - ext), 0), min(int(cx + ext) + 1, w)
    if y0 >= y1 or x0 >= x1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1]
    d2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / (r * r)
    field[y0:y1, x0:x1] += np.exp2(-d2).astype(np.float32)


def drop_field(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """The summed metaball field of a random set of drops; drops are where it exceeds 0.5."""
    r_lo, r_hi = rng.uniform(2.0, 5.0), rng.uniform(10.0, 40.0)
    coverage = rng.uniform(0.03, 0.32)
    mean_r2 = (r_hi**2 - r_lo**2) / (2 * np.log(r_hi / r_lo))
    n = rng.poisson(coverage * h * w / (np.pi * mean_r2 * 1.4))
    field = np.zeros((h, w), np.float32)
    for _ in range(n):
        r = float(np.exp(rng.uniform(np.log(r_lo), np.log(r_hi))))
        cy, cx = rng.uniform(-r, h + r), rng.uniform(-r, w + r)
        _add_ball(field, cy, cx, r)
        for _ in range(int(rng.integers(0, 4))):  # lumpy outline: smaller satellite balls
            a, d = rng.uniform(0, 2 * np.pi), rng.uniform(0.4, 0.9) * r
            _add_ball(field, cy + d * np.sin(a), cx + d * np.cos(a), r * rng.uniform(0.35, 0.75))
        if r > 6 and rng.random() < 0.3:  # a drop running down the pane leaves a trail
            y, rr = cy, r
            for _ in range(int(rng.integers(2, 6))):
                rr *= rng.uniform(0.6, 0.85)
                y += rr * rng.uniform(1.0, 1.6)
                _add_ball(field, y, cx + rng.normal(0, 0.15 * r), rr)
    return field


def add_raindrops(clean: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(degraded, mask)``: ``clean`` (H, W, 3 float32 in [0, 1]) seen through a wet pane."""
    h, w = clean.shape[:2]
    drops = (drop_field(h, w, rng) > 0.5).astype(np.uint8)
    count, labels, _, centres = cv2.connectedComponentsWithStats(drops, connectivity=8)
    area = np.bincount(labels.ravel(), minlength=count).astype(np.float32)
    radius = np.sqrt(area / np.pi)[labels]  # equivalent radius of each pixel's drop
    inside = labels > 0

    # Refraction: each drop shows an inverted, wider view of the scene around it.
    mag = rng.uniform(0.8, 2.5, count)[labels]
    cx, cy = centres[labels, 0], centres[labels, 1]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    up = rng.uniform(0.0, 1.0) * radius  # drops lean towards the brighter sky above
    map_x = np.where(inside, cx - mag * (xx - cx), xx).astype(np.float32)
    map_y = np.where(inside, cy - mag * (yy - cy) - up, yy).astype(np.float32)
    content = cv2.remap(clean, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    content = cv2.GaussianBlur(content, (0, 0), rng.uniform(0.5, 2.0))  # the view through water is soft
    gain, lift = rng.uniform(1.0, 1.2), rng.uniform(0.0, 0.1)
    content = content * gain * (1 - lift) + lift

    # Rim: dark at the edge, darkest away from the light; a soft highlight towards it.
    light = rng.uniform(-np.pi, 0.0)  # light comes from above (image y points down)
    lx, ly = np.cos(light), np.sin(light)
    dist = cv2.distanceTransform(drops, cv2.DIST_L2, 5)
    t = dist / np.maximum(radius, 1.0)  # 0 at the rim, about 1 at the centre
    nx, ny = (xx - cx) / np.maximum(radius, 1.0), (yy - cy) / np.maximum(radius, 1.0)
    away = np.clip(0.5 - 0.5 * (nx * lx + ny * ly), 0.0, 1.0)
    rim = np.exp(-t / rng.uniform(0.12, 0.3)) * (0.35 + 0.65 * away) * rng.uniform(0.3, 0.8)
    spot = np.exp(-(((nx - 0.45 * lx) ** 2 + (ny - 0.45 * ly) ** 2) / 0.03)) * rng.uniform(0.0, 0.3)
    content = content * (1 - rim[..., None]) + spot[..., None]

    # Defocus the whole drop layer (premultiplied) and composite over the softened scene.
    sigma = rng.uniform(1.0, 5.0)
    matte = inside.astype(np.float32)
    alpha = cv2.GaussianBlur(matte, (0, 0), sigma)
    layer = cv2.GaussianBlur(content * matte[..., None], (0, 0), sigma)
    scene = cv2.GaussianBlur(clean, (0, 0), rng.uniform(0.3, 0.8))
    out = np.clip(layer + (1 - alpha[..., None]) * scene, 0.0, 1.0).astype(np.float32)
    return out, visible_drops(out, clean, alpha > 0.5)


def visible_drops(degraded: np.ndarray, clean: np.ndarray, drops: np.ndarray) -> np.ndarray:
    """The drop pixels that visibly change the image: the GT mask.

    A drop over a flat region can refract nearly the same colour and vanish;
    SPAIR trains NetL on visible distortions only.
    """
    return drops & visible_change(degraded, clean, VISIBLE_CHANGE, VISIBLE_SIGMA)
