"""Synthetic motion blur that looks like GoPro, HIDE and RealBlur.

GoPro (Nah et al., CVPR 2017) and HIDE average 7-13 consecutive frames of a
240 fps hand-held camera after undoing the camera's gamma curve, and keep the
middle frame as the sharp target. The blur therefore comes from two motions,
camera shake and moving objects, and it varies across the frame. This module
renders the same thing from one sharp photo:

1. **Trajectories.** A random-walk path with inertia, a Gaussian change of
   direction at every step, a weak pull back towards the start and, rarely,
   a sudden jerk (Boracchi and Foi, TIP 2012), at a smoothly drifting speed.
   The kernel is the time spent at each point of the path, drawn with
   sub-pixel accuracy and centred on the middle instant, since the sharp
   target is the middle frame.
2. **Camera shake varies across the frame.** Rotation about an axis and depth
   change the blur from one side to the other, so a second kernel, the first
   one turned and rescaled, is blended in along a smooth ramp.
3. **Moving objects.** Up to two soft-edged object regions (people, cars) get
   their own, usually longer and straighter, trajectory. They are layered
   over the camera-blurred background: the object's matte is smeared by its
   own kernel, so its edges become semi-transparent as in real frame averages.
4. **Linear light.** All blurring happens on linear intensities (the sRGB curve
   is undone first and reapplied last), so bright lights smear into bright
   streaks rather than dim grey ones.
5. **Noise.** Mild sensor noise, added in linear light: Gaussian read noise plus
   Poisson-like shot noise whose variance grows with the signal.

Ground-truth mask: where the blur is strong, i.e. SPAIR's thresholded
|blurred - sharp| (Sec. 3.1) with the change first averaged over a few pixels
(``synth.mask.visible_change``, computed before the noise is added). Blur
damages edges and texture, not flat areas; the plain per-pixel rule marks
scattered edge pixels that NetL could not learn to find (mask F1 0.46 after
2500 steps), the averaged rule the solid regions where edges were smeared.

Lengths are in pixels of the image being degraded (camera paths 3-28 px,
objects up to ``MAX_LENGTH``). On BSDS500 val photos the blurred inputs score
16-35 dB RGB PSNR, median about 24.5 dB: the mid-20s of GoPro's inputs, and
as hard as HIDE's on the busiest photos.
"""

from __future__ import annotations

import cv2
import numpy as np

from .color import to_linear, to_srgb
from .mask import visible_change

# GT mask: mean RGB change averaged over MASK_SIGMA px above MASK_CHANGE (about 15 levels).
MASK_CHANGE = 0.06
MASK_SIGMA = 3.0
MAX_LENGTH = 40  # px; keeps the kernel radius within SyntheticPairs' 24 px margin
SCENE_SIZE = 480  # px: object sizes are relative to a frame this big (or the image, if larger)


def trajectory(rng: np.random.Generator, length: float, shake: float, steps: int = 48) -> np.ndarray:
    """Positions (complex, px) of a random camera/object path at ``steps`` equal time intervals.

    The path has total ``length``. ``shake`` is the spread of the random change
    of direction per step: about 0 gives a straight line, 1 a wandering hand-held
    shake. The speed drifts smoothly, so the kernel is brighter where the motion
    was slow, as in real shake.
    """
    speed = np.exp(np.cumsum(rng.normal(0.0, 0.08 + 0.12 * shake, steps - 1)))
    speed *= length / speed.sum()
    centripetal = rng.uniform(0.0, 0.2)
    jerk_prob = rng.uniform(0.0, 0.04) * shake
    v = np.exp(1j * rng.uniform(0.0, 2 * np.pi))
    turns = shake * 0.35 * (rng.standard_normal(steps) + 1j * rng.standard_normal(steps))
    jerks = rng.random(steps) < jerk_prob
    x = np.zeros(steps, np.complex128)
    for t in range(steps - 1):
        v = v + turns[t] - centripetal * x[t] / max(length, 1.0)
        if jerks[t]:  # a sudden, roughly opposite twitch of the hand
            v = -v * np.exp(1j * rng.uniform(-0.5, 0.5))
        v = v / max(abs(v), 1e-9)
        x[t + 1] = x[t] + v * speed[t]
    return x


def kernel_from_path(path: np.ndarray) -> np.ndarray:
    """Rasterise a path sampled at equal times into a normalised kernel centred on its middle instant.

    Each time step is subdivided finely enough for 1/4 px spacing and splatted
    bilinearly, so the kernel holds the time spent at each position. It is
    returned ready for ``cv2.filter2D`` (correlation), i.e. already mirrored.
    """
    sub = max(int(np.ceil(np.abs(np.diff(path)).max() * 4)), 1)
    f = np.arange(sub) / sub
    pts = np.concatenate([(path[:-1, None] + np.diff(path)[:, None] * f).ravel(), path[-1:]])
    pts = -(pts - pts[len(pts) // 2])  # centre on the middle frame; mirror for correlation
    radius = int(np.ceil(np.abs(pts).max())) + 1
    k = np.zeros((2 * radius + 1, 2 * radius + 1), np.float64)
    x, y = pts.real + radius, pts.imag + radius
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    for dy, dx, w in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)), (1, 0, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(k, (y0 + dy, x0 + dx), w)
    return (k / k.sum()).astype(np.float32)


def random_kernel(rng: np.random.Generator, length: float, shake: float) -> np.ndarray:
    """A blur kernel along a fresh random trajectory (see ``trajectory``)."""
    return kernel_from_path(trajectory(rng, length, shake))


def blur_linear(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Blur an sRGB image with ``kernel`` in linear light, returning sRGB."""
    return to_srgb(_filter(to_linear(img), kernel))


def _filter(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    return cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT)


def _ramp(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth 0..1 ramp across the frame in a random direction."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, 2 * np.pi)
    r = np.cos(a) * xx + np.sin(a) * yy
    r = (r - r.min()) / max(float(r.max() - r.min()), 1e-6)
    return r[..., None]


def _object_matte(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A soft, irregular object region (a random star-shaped polygon), 0..1, (H, W, 1)."""
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    size = rng.uniform(0.1, 0.35) * max(h, w, SCENE_SIZE)
    n = int(rng.integers(6, 13))
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    rad = size * rng.uniform(0.5, 1.0, n)
    aspect = rng.uniform(0.5, 1.6)  # upright people are tall, cars are wide
    pts = np.stack([cx + rad * np.cos(ang), cy + aspect * rad * np.sin(ang)], -1)
    m = np.zeros((h, w), np.float32)
    cv2.fillPoly(m, [np.round(pts * 16).astype(np.int32)], 1.0, cv2.LINE_AA, shift=4)
    return cv2.GaussianBlur(m, (0, 0), 1.0)[..., None]


def add_motion_blur(clean: np.ndarray, rng: np.random.Generator, still: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(blurred, mask)``: ``clean`` (H, W, 3 float32 in [0, 1]) with spatially
    varying motion blur and mild noise, and where that blur is strong.

    ``still`` is the probability that the camera holds still: then only moving
    objects (one or two) are blurred and the rest of the frame stays sharp, so
    that NetL learns that sharp detail is not blur. At 0 (the default, which
    made the fixed val set) no random number is drawn for it.
    """
    h, w = clean.shape[:2]
    lin = to_linear(clean)
    camera_still = still > 0 and rng.random() < still
    # Camera shake: mostly short-to-medium, sometimes long; two variants across the frame.
    length = float(np.exp(rng.uniform(np.log(3.0), np.log(28.0))))
    shake = rng.uniform(0.0, 1.0) ** 2
    path = trajectory(rng, length, shake)
    turned = path * rng.uniform(0.5, 1.3) * np.exp(1j * np.radians(rng.uniform(-25, 25)))
    if np.abs(turned - turned[len(turned) // 2]).max() > MAX_LENGTH / 2:
        turned = path
    ramp = _ramp(h, w, rng)
    out = lin if camera_still else (1 - ramp) * _filter(lin, kernel_from_path(path)) + ramp * _filter(
        lin, kernel_from_path(turned))
    # Moving objects, layered over the background with their own, straighter motion.
    objects = int(rng.choice(3, p=[0.45, 0.4, 0.15]))
    for _ in range(max(objects, camera_still)):
        obj_len = float(min(length * rng.uniform(1.0, 3.0) + rng.uniform(2, 8), MAX_LENGTH))
        k = random_kernel(rng, obj_len, rng.uniform(0.0, 0.3))
        matte = _object_matte(h, w, rng)
        smeared = _filter(matte, k)[..., None]
        out = _filter(lin * matte, k) + (1 - smeared) * out
    mask = visible_change(to_srgb(out), clean, MASK_CHANGE, MASK_SIGMA)
    # Sensor noise in linear light: read noise plus signal-dependent shot noise.
    read, shot = rng.uniform(0.0, 0.002), rng.uniform(0.0, 4e-4)
    out = out + np.sqrt(read**2 + shot * np.clip(out, 0, 1)) * rng.standard_normal(out.shape).astype(np.float32)
    return to_srgb(out), mask
