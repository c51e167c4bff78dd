"""The benchmark loop: restore every pair, score it and the input under one convention, time it.

``seconds`` per image is the wall time of ``Pipeline.restore`` alone (NetL +
NetR over all tiles, host<->device copies), not reading, scoring or writing.
Peak memory is the process's peak resident set size (``getrusage``
``ru_maxrss``: model, Python and images included); on CUDA the peak of
``torch.cuda.max_memory_allocated`` is given too.
"""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from ..errors import ImageError, RestoreError
from ..imageio import read_image
from ..pipeline import Pipeline
from ..synth.mask import DEFAULT_THRESHOLD, degradation_mask
from .datasets import Found, Pair
from .gallery import thumbnail
from .protocols import Convention, to_uint8


def read_rgb(path: Path) -> np.ndarray:
    """uint8 RGB (H, W, 3) as the papers' scripts read it; ImageError naming the file if it cannot be."""
    return to_uint8(read_image(path).rgb)


def read_mask(path: Path) -> np.ndarray:
    """A dataset mask as bool (H, W): any non-zero pixel is degraded (ISTD: 255 = shadow)."""
    return read_image(path).rgb.max(axis=-1) > 0


@dataclass
class Result:
    dataset: str
    task: str
    layout: str
    convention: Convention
    model: str  # "spair" or "identity"
    weights_id: str
    sha256: str
    device: str
    images: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    timing: dict = field(default_factory=dict)
    thumbs: dict[str, dict[str, bytes]] = field(default_factory=dict)  # name -> JPEG thumbnails

    @property
    def mask_source(self) -> str:
        return f"reference |input - target| > {DEFAULT_THRESHOLD}" if self.model == "identity" else "predicted by NetL"

    def mean(self, prefix: str = "") -> dict:
        """Dataset scores; ``prefix="input_"`` gives the input's own (identity) scores."""
        return self.convention.aggregate(self.images, self.convention.metrics, prefix)


def _check_size(pair: Pair, inp: np.ndarray, other: np.ndarray, path: Path) -> None:
    if other.shape[:2] != inp.shape[:2]:
        (h, w), (oh, ow) = inp.shape[:2], other.shape[:2]
        raise ImageError(f"{pair.input.name} is {w}x{h} but {path.name} is {ow}x{oh}")


def score_pair(pair: Pair, pipeline: Pipeline | None, convention: Convention) -> tuple[dict, dict, np.ndarray]:
    """One image: (record, thumbnails, restored uint8). Raises ImageError for a bad pair."""
    inp, tgt = read_rgb(pair.input), read_rgb(pair.target)
    _check_size(pair, inp, tgt, pair.target)
    mask = read_mask(pair.mask) if pair.mask else None
    if mask is not None:
        _check_size(pair, inp, mask, pair.mask)
    x = inp.astype(np.float32) / 255.0
    if pipeline is None:  # identity: the input is the output; the mask is the reference one
        out, pred, seconds = inp, degradation_mask(x, tgt.astype(np.float32) / 255.0), 0.0
    else:
        start = time.perf_counter()
        restored, pred = pipeline.restore(x)
        seconds = time.perf_counter() - start
        out = to_uint8(restored)
    scores = convention.score(out, tgt, mask)
    own = scores if pipeline is None else convention.score(inp, tgt, mask)
    record = {"name": pair.name, **scores, **{f"input_{k}": own[k] for k in convention.metrics},
              "seconds": seconds, "mask_density": float(pred.mean())}
    thumbs = {"input": thumbnail(inp), "mask": thumbnail(pred), "output": thumbnail(out), "target": thumbnail(tgt)}
    return record, thumbs, out


def _peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, KiB on Linux


def timing(seconds: list[float], pipeline: Pipeline | None) -> dict:
    total = float(np.sum(seconds)) if seconds else 0.0
    t = {
        "median_seconds": float(np.median(seconds)) if seconds else None,
        "images_per_second": len(seconds) / total if total > 0 else None,
        "peak_memory_mb": round(_peak_rss_mb(), 1),
        "memory_measure": "process peak RSS, getrusage ru_maxrss",
        "seconds_measure": "wall time of Pipeline.restore per image",
    }
    if pipeline is not None and pipeline.device.type == "cuda":
        import torch

        t["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated(pipeline.device) / 2**20, 1)
    return t


def benchmark(
    found: Found,
    dataset: str,
    task: str,
    convention: Convention,
    pipeline: Pipeline | None,
    out: Path | None = None,
    log: Callable[[str], None] = print,
) -> Result:
    """Score every pair of ``found``; restored PNGs go to ``out/outputs/`` when ``out`` is given."""
    if convention.needs_mask and any(p.mask is None for p in found.pairs):
        raise RestoreError(f"convention {convention.name} needs the dataset's masks; {dataset} has none")
    result = Result(dataset, task, found.layout, convention, "identity" if pipeline is None else "spair",
                    pipeline.weights_id if pipeline else "none", pipeline.sha256 if pipeline else "",
                    f"{pipeline.device} ({pipeline.precision}{', tta' if pipeline.tta else ''})" if pipeline else "none")
    if pipeline is not None and pipeline.device.type == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats(pipeline.device)
    for item in found.unmatched:
        result.skipped.append(item)
        log(f"skipped {item['name']}: {item['reason']}")
    for pair in found.pairs:
        try:
            record, thumbs, restored = score_pair(pair, pipeline, convention)
        except ImageError as e:
            result.skipped.append({"name": pair.name, "reason": str(e)})
            log(f"skipped {pair.name}: {e}")
            continue
        result.images.append(record)
        result.thumbs[pair.name] = thumbs
        if out is not None:
            dest = out / "outputs" / f"{pair.name}.png"
            dest.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(restored).save(dest)
    result.timing = timing([r["seconds"] for r in result.images], pipeline)
    return result
