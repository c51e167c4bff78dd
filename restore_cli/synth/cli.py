"""``restore synth rain``: write paired (degraded, clean, mask) data to disk."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .mask import DEFAULT_THRESHOLD

app = typer.Typer(help="Synthesise paired training/validation data from clean photos.", no_args_is_help=True)


@app.callback()
def synth() -> None:
    """Synthesise (degraded, clean, mask) triples: one subcommand per degradation."""


def write_pairs(clean_dir: Path, out: Path, n: int, seed: int, task: str, regime: Optional[str],
                threshold: float, crop: Optional[int] = None) -> list[str]:
    """Write ``n`` triples as ``out/{input,target,mask}/NNNN.png``; returns the names.

    Deterministic: pair i depends only on ``(seed, i)``. Source photos are used
    in sorted order, cycling when ``n`` exceeds their count.
    """
    import cv2
    import numpy as np

    from ..train.data import list_images, read_rgb
    from .degraders import degrader
    from .mask import degradation_mask
    from .rain import add_rain

    sources = list_images(clean_dir)
    if not sources:
        raise typer.BadParameter(f"{clean_dir}: no images found")
    degrade = degrader(task) if regime is None else (lambda img, rng: add_rain(img, rng, regime))
    for sub in ("input", "target", "mask"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        clean = read_rgb(sources[i % len(sources)])
        if crop:
            clean = clean[:crop, :crop]
        degraded = degrade(clean, rng)
        mask = degradation_mask(degraded, clean, threshold)
        name = f"{i:04d}.png"
        to8 = lambda a: (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)[..., ::-1]  # noqa: E731
        cv2.imwrite(str(out / "input" / name), to8(degraded))
        cv2.imwrite(str(out / "target" / name), to8(clean))
        cv2.imwrite(str(out / "mask" / name), mask.astype(np.uint8) * 255)
        names.append(name)
    return names


@app.command()
def rain(
    clean: Path = typer.Option(..., "--clean", help="Folder of clean photos."),
    out: Path = typer.Option(..., "--out", help="Output folder (input/, target/, mask/)."),
    n: int = typer.Option(100, "--n", help="Number of pairs."),
    seed: int = typer.Option(0, "--seed"),
    regime: Optional[str] = typer.Option(None, help="light | medium | heavy (default: a random mix)."),
    threshold: float = typer.Option(DEFAULT_THRESHOLD, help="GT mask threshold on mean |rainy - clean| in [0, 1]."),
) -> None:
    """Rainy/clean/mask triples: Photoshop-style streaks, screen-blended, with haze for heavy rain."""
    names = write_pairs(clean, out, n, seed, "derain", regime, threshold)
    typer.echo(f"wrote {len(names)} pairs to {out}")
