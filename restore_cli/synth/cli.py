"""``restore synth rain|raindrop|shadow|blur``: write paired (degraded, clean, mask) data to disk."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .mask import DEFAULT_THRESHOLD

app = typer.Typer(help="Synthesise paired training/validation data from clean photos.", no_args_is_help=True)

CleanOpt = typer.Option(..., "--clean", help="Folder of clean photos.")
OutOpt = typer.Option(..., "--out", help="Output folder (input/, target/, mask/).")
NOpt = typer.Option(100, "--n", help="Number of pairs.")
SeedOpt = typer.Option(0, "--seed")
ThresholdOpt = typer.Option(DEFAULT_THRESHOLD, help="GT mask threshold on mean |degraded - clean| in [0, 1].")


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
    from .degraders import degrade_with_mask, degrader
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
        degraded, mask = degrade_with_mask(degrade, clean, rng, threshold)
        name = f"{i:04d}.png"
        to8 = lambda a: (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)[..., ::-1]  # noqa: E731
        cv2.imwrite(str(out / "input" / name), to8(degraded))
        cv2.imwrite(str(out / "target" / name), to8(clean))
        cv2.imwrite(str(out / "mask" / name), mask.astype(np.uint8) * 255)
        names.append(name)
    return names


def _write(task: str, clean: Path, out: Path, n: int, seed: int, regime: Optional[str] = None,
           threshold: float = DEFAULT_THRESHOLD) -> None:
    names = write_pairs(clean, out, n, seed, task, regime, threshold)
    typer.echo(f"wrote {len(names)} pairs to {out}")


@app.command()
def rain(
    clean: Path = CleanOpt,
    out: Path = OutOpt,
    n: int = NOpt,
    seed: int = SeedOpt,
    regime: Optional[str] = typer.Option(None, help="light | medium | heavy | extreme (default: the mix the shipped derain weights trained on)."),
    threshold: float = ThresholdOpt,
) -> None:
    """Rainy/clean/mask triples: Photoshop-style streaks, screen-blended, with haze for heavy rain."""
    _write("derain", clean, out, n, seed, regime, threshold)


@app.command()
def raindrop(clean: Path = CleanOpt, out: Path = OutOpt, n: int = NOpt, seed: int = SeedOpt) -> None:
    """Raindrop/clean/mask triples: refractive, defocused drops on a pane (Qian et al.); mask = the drops."""
    _write("deraindrop", clean, out, n, seed)


@app.command()
def shadow(clean: Path = CleanOpt, out: Path = OutOpt, n: int = NOpt, seed: int = SeedOpt) -> None:
    """Shadow/clean/mask triples: projected silhouettes, soft penumbra, bluish darkening (ISTD); mask = the shadow."""
    _write("deshadow", clean, out, n, seed)


@app.command()
def blur(clean: Path = CleanOpt, out: Path = OutOpt, n: int = NOpt, seed: int = SeedOpt,
         threshold: float = ThresholdOpt) -> None:
    """Blurred/sharp/mask triples: camera shake and moving objects in linear light, mild noise (GoPro)."""
    _write("deblur", clean, out, n, seed, threshold=threshold)
