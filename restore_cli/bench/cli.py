"""``restore bench``: score a model (or the input itself) on a benchmark and write a report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import RestoreError
from ..tasks import DEFAULT_TILE, DEFAULT_TILE_PAD, check_tile
from .datasets import DATASETS, SYNTHETIC

# Only light modules above (torch, numpy, skimage load when the command runs), so the
# names of protocols.CONVENTIONS are spelled out here; tests check they stay in sync.
MODELS = ("spair", "identity")
DEVICES = ("auto", "cpu", "cuda")
CONVENTION_HELP = (
    "Metric convention (default: the dataset's): y-matlab-round (MPRNet), y-matlab (PReNet), "
    "y-opencv (Qian et al.), rgb (deblurring), lab-mae (ISTD)."
)


def bench(
    dataset: str = typer.Option(..., "--dataset", "-d", help=f"One of: {', '.join(DATASETS)}."),
    model: str = typer.Option("spair", "--model", help="spair (the task's weights, or --weights) or identity (score the input)."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Score this checkpoint instead of the task's weights."),
    root: Optional[Path] = typer.Option(None, "--root", help="Folder of datasets, one subfolder each (default: $RESTORE_DATA, else ~/.cache/restore/datasets)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Report folder (default: bench/DATASET-MODEL)."),
    convention: Optional[str] = typer.Option(None, "--convention", help=CONVENTION_HELP),
    save_outputs: bool = typer.Option(False, "--save-outputs", help="Also write the restored images to OUT/outputs/ (PNG)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Score only the first N pairs."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    precision: str = typer.Option("auto", "--precision", help="auto, fp32 or bf16, as for restore."),
    tile: int = typer.Option(DEFAULT_TILE, "--tile", "-t", min=0, callback=check_tile, help="Tiles of N x N px (0 = the whole image at once)."),
    tile_pad: int = typer.Option(DEFAULT_TILE_PAD, "--tile-pad", min=0, help="Context px around each tile."),
    tta: bool = typer.Option(False, "--tta", help="Average over the four flips of each image, as restore --tta."),
) -> None:
    """Score on a benchmark (PSNR/SSIM or Lab error, as the papers compute them) and write report.{json,csv,md,html}."""
    out = out or Path("bench") / f"{dataset}-{model}"
    try:
        paths, result = _run(dataset, model, weights, root, out, convention, save_outputs, limit, device, tile, tile_pad,
                             precision, tta)
    except RestoreError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    from .report import fmt

    scores = ", ".join(f"{k} {fmt(k, v)}" for k, v in result.mean().items())
    typer.echo(f"{dataset} ({len(result.images)} images, {len(result.skipped)} skipped, {result.convention.name}): {scores}")
    typer.echo(f"report: {paths['md']} {paths['html']}")


def _run(dataset, model, weights, root, out, convention, save_outputs, limit, device, tile, tile_pad,
         precision, tta):
    from ..pipeline import load_pipeline
    from . import synthetic
    from .datasets import find_pairs, locate
    from .protocols import CONVENTIONS
    from .report import write_all
    from .run import benchmark

    if model not in MODELS:
        raise RestoreError(f"--model {model!r}: choose from {', '.join(MODELS)}")
    if dataset not in DATASETS:
        raise RestoreError(f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}")
    if model == "identity" and (weights is not None or tta):
        raise RestoreError(f"{'--weights' if weights is not None else '--tta'} has no effect with --model identity")
    spec = DATASETS[dataset]
    conv = CONVENTIONS.get(convention or spec.convention)
    if conv is None:
        raise RestoreError(f"--convention {convention!r}: choose from {', '.join(CONVENTIONS)}")
    if device not in DEVICES:
        raise RestoreError(f"--device {device!r}: choose from {', '.join(DEVICES)}")
    pipeline = None
    if model == "spair":
        try:
            pipeline = load_pipeline(spec.task, weights, device, tile, tile_pad, precision, tta)
        except ValueError as err:  # e.g. --device cuda without a GPU, or an unknown --precision
            raise RestoreError(str(err)) from None
    folder = synthetic.build(out / SYNTHETIC) if dataset == SYNTHETIC else locate(dataset, root)
    found = find_pairs(folder)
    if limit:
        found.pairs = found.pairs[:limit]
    result = benchmark(found, dataset, spec.task, conv, pipeline, out if save_outputs else None,
                       log=lambda line: typer.echo(line, err=True))
    return write_all(result, out), result
