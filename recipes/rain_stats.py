"""The statistics of ``../shared/notes/real-rain-statistics.md`` for our synthetic rain.

Photo i of the first N BSDS500 val photos gets rain of each regime with
``rng(i)``; prints, per regime, the median over photos (and the range of the
input Y-PSNR) of: input Y-PSNR (MATLAB ``rgb2ycbcr`` Y), mean brightening in
8-bit levels, % of pixels changed by > 30 and > 10 levels, and the uniform
veil (10th percentile of the difference), to compare with the real sets.

    .venv/bin/python recipes/rain_stats.py [--n 16]
"""

from __future__ import annotations

import argparse

import numpy as np

from restore_cli.metrics import y_psnr
from restore_cli.synth.rain import REGIMES, add_rain
from restore_cli.train.data import list_images, read_rgb


def stats(rainy: np.ndarray, clean: np.ndarray) -> list[float]:
    diff = (rainy - clean).mean(-1) * 255  # over RGB, in 8-bit levels
    changed = np.abs(diff)
    return [y_psnr(rainy, clean), diff.mean(), 100 * (changed > 30).mean(), 100 * (changed > 10).mean(),
            np.percentile(diff, 10)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--val", default="../shared/data/bsds500/val")
    ap.add_argument("--n", type=int, default=16)
    args = ap.parse_args()
    photos = [read_rgb(p) for p in list_images(args.val)[: args.n]]
    print(f"{'regime':8} {'Y-PSNR':>7} {'(range)':>13} {'brighten':>8} {'>30 %':>6} {'>10 %':>6} {'veil':>5}")
    for regime in REGIMES:
        rows = np.array([stats(add_rain(p, np.random.default_rng(i), regime), p) for i, p in enumerate(photos)])
        med = np.median(rows, axis=0)
        print(f"{regime:8} {med[0]:7.1f} {f'({rows[:, 0].min():.1f}-{rows[:, 0].max():.1f})':>13} "
              f"{med[1]:8.1f} {med[2]:6.0f} {med[3]:6.0f} {med[4]:5.1f}")


if __name__ == "__main__":
    main()
