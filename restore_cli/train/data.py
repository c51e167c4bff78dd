"""Training batches: synthetic pairs made on the fly, or real paired folders.

Every batch is a pure function of ``(seed, step)``, so a resumed run sees
exactly the batches an uninterrupted run would have seen, and worker
processes can make the coming steps' batches ahead (``step_batches``) with
no change to what the run sees.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch

from ..inputs import is_image_name
from ..synth.degraders import degrade_with_mask
from ..synth.mask import DEFAULT_THRESHOLD, degradation_mask

# A degrader turns a clean float RGB crop into a degraded one, or into (degraded, its own GT mask).
Degrader = Callable[[np.ndarray, np.random.Generator], np.ndarray | tuple[np.ndarray, np.ndarray]]


def list_images(folder: str | Path) -> list[Path]:
    """The image files directly in ``folder``, sorted (the names ``restore`` itself reads)."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and is_image_name(p))


def read_rgb(path: str | Path) -> np.ndarray:
    """Float32 RGB in [0, 1] (training data only; the CLI has its own careful reader)."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"{path}: cannot read image")
    return img[..., ::-1].astype(np.float32) / 255.0


def _augment(rng: np.random.Generator, *arrays: np.ndarray) -> list[np.ndarray]:
    flip_h, flip_v = rng.random() < 0.5, rng.random() < 0.5
    out = []
    for a in arrays:
        a = a[:, ::-1] if flip_h else a
        a = a[::-1] if flip_v else a
        out.append(np.ascontiguousarray(a))
    return out


def relight(clean: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """The same scene in other light: exposure (mostly darker), gamma, white balance, and a
    smooth illumination falloff across the frame; ``strength`` 1 gives a wide range.

    Applied to the clean crop before it is degraded (so the target is relit too), it
    shows NetL dark and bluish regions that are not shadows: dusk skies, dim foliage,
    dark rock. Without it every training photo is a well-exposed daylight one, and NetL
    learns that dark-and-blue alone means shadow.
    """
    h, w = clean.shape[:2]
    exposure = np.exp(rng.uniform(-0.9, 0.3) * strength)
    gamma = np.exp(rng.uniform(-0.3, 0.3) * strength)
    balance = np.exp(rng.normal(0.0, 0.08 * strength, 3)).astype(np.float32)
    falloff = rng.uniform(1.0 - 0.5 * strength, 1.0, (3, 3)).astype(np.float32)
    falloff = cv2.resize(falloff, (w, h), interpolation=cv2.INTER_CUBIC)[..., None]
    return np.clip(clean**gamma * (exposure * balance) * falloff, 0.0, 1.0).astype(np.float32)


def _to_tensor(batch: list[np.ndarray]) -> torch.Tensor:
    arr = np.stack(batch)
    if arr.ndim == 3:
        arr = arr[..., None]
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float().contiguous()


class SyntheticPairs:
    """Clean photos + a degrader -> (degraded, clean, mask) batches, made on the fly.

    The degradation is rendered on a crop with a margin, then the margin is cut,
    so streaks and blurs have no border artefacts.
    """

    def __init__(
        self,
        clean_dir: str | Path,
        degrade: Degrader,
        crop: int,
        threshold: float = DEFAULT_THRESHOLD,
        margin: int = 24,
        relight: float = 0.0,
    ):
        self.images = [read_rgb(p) for p in list_images(clean_dir)]
        if not self.images:
            raise ValueError(f"{clean_dir}: no images found")
        self.degrade, self.crop, self.threshold, self.margin = degrade, crop, threshold, margin
        self.relight = relight

    def sample(self, rng: np.random.Generator, crop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        img = self.images[int(rng.integers(len(self.images)))]
        size = min(crop + 2 * self.margin, *img.shape[:2])
        y = int(rng.integers(img.shape[0] - size + 1))
        x = int(rng.integers(img.shape[1] - size + 1))
        clean = img[y : y + size, x : x + size]
        if self.relight:
            clean = relight(clean, rng, self.relight)
        degraded, mask = degrade_with_mask(self.degrade, clean, rng, self.threshold)
        m = (size - crop) // 2
        clean, degraded, mask = (a[m : m + crop, m : m + crop] for a in (clean, degraded, mask))
        clean, degraded, mask = _augment(rng, clean, degraded, mask)
        return degraded, clean, mask.astype(np.float32)

    def batch(
        self, seed: int, step: int, size: int, crop: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``size`` crops of ``crop`` px (default: the crop given at construction)."""
        rng = np.random.default_rng([seed, step])
        samples = [self.sample(rng, crop or self.crop) for _ in range(size)]
        return tuple(_to_tensor([s[i] for s in samples]) for i in range(3))  # type: ignore[return-value]


class PairedFolder(SyntheticPairs):
    """Real pairs: ``input/`` and ``target/`` with the same file names (e.g. Rain13K)."""

    def __init__(self, root: str | Path, crop: int, threshold: float = DEFAULT_THRESHOLD):
        root = Path(root)
        inputs = list_images(root / "input")
        if not inputs:
            raise ValueError(f"{root}/input: no images found")
        self.pairs = [(read_rgb(p), read_rgb(root / "target" / p.name)) for p in inputs]
        self.crop, self.threshold = crop, threshold

    def sample(self, rng: np.random.Generator, crop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        degraded, clean = self.pairs[int(rng.integers(len(self.pairs)))]
        size = min(crop, *clean.shape[:2])
        y = int(rng.integers(clean.shape[0] - size + 1))
        x = int(rng.integers(clean.shape[1] - size + 1))
        degraded, clean = _augment(rng, degraded[y : y + size, x : x + size], clean[y : y + size, x : x + size])
        return degraded, clean, degradation_mask(degraded, clean, self.threshold).astype(np.float32)


class StepBatches(torch.utils.data.Dataset):
    """The batches of a run's steps ``start`` to ``total - 1``: item ``i`` is step ``start + i``'s,
    ``data.batch(seed, step, size, crop_at(step))``."""

    def __init__(self, data: SyntheticPairs, seed: int, start: int, total: int, size: int,
                 crop_at: Callable[[int], int]):
        self.data, self.seed, self.start, self.total, self.size, self.crop_at = data, seed, start, total, size, crop_at

    def __len__(self) -> int:
        return max(self.total - self.start, 0)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        step = self.start + i
        return self.data.batch(self.seed, step, self.size, self.crop_at(step))


def step_batches(batches: StepBatches, workers: int = 0, pin_memory: bool = False) -> torch.utils.data.DataLoader:
    """``batches`` in step order; with ``workers`` > 0 made ahead by that many processes
    (a few steps each), so that a fast device is not kept waiting by the synthesis."""
    return torch.utils.data.DataLoader(
        batches, batch_size=None, num_workers=workers, pin_memory=pin_memory,
        prefetch_factor=4 if workers else None,
    )


def fixed_val_set(
    clean_dir: str | Path, degrade: Degrader, n: int, seed: int, crop: int, threshold: float = DEFAULT_THRESHOLD
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A fixed validation batch, identical on every call with the same arguments."""
    return SyntheticPairs(clean_dir, degrade, crop, threshold).batch(seed, 0, n)
