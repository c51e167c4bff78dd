"""``restore train netl|netr|export``: the training commands."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="Train NetL and NetR, and export shipped weights.", no_args_is_help=True)

RecipeOpt = typer.Option(..., "--recipe", help="Recipe JSON (model config + hyper-parameters).")
DataOpt = typer.Option(..., "--data", help="Clean photos (synthesised on the fly) or a paired folder with input/ and target/.")
ValOpt = typer.Option(..., "--val", help="Clean photos for the fixed synthetic validation batch.")
OutOpt = typer.Option(..., "--out", help="Run directory for checkpoints and logs.")
DeviceOpt = typer.Option("cpu", "--device", help="Where the steps run: cpu, cuda or cuda:N.")
WorkersOpt = typer.Option(0, "--workers", min=0, help="Processes making the coming batches ahead (for a fast --device).")


def _run(stage: str, recipe_path: Path, data: Path, val: Path, out: Path, steps: Optional[int], resume: bool,
         init: Optional[Path], threads: Optional[int], device: str, workers: int) -> None:
    import torch

    from ..memory import keep_freed_memory
    from .loop import train
    from .recipe import Recipe

    if threads:
        torch.set_num_threads(threads)
    keep_freed_memory()
    recipe = Recipe.load(recipe_path)
    pairs, val_batch = datasets(recipe, data, val)
    path = train(stage, recipe, pairs, val_batch, out, steps=steps, resume=resume, init=init, device=device, workers=workers)
    typer.echo(f"checkpoint: {path}")


def datasets(recipe, data: Path, val: Path):
    """The training pairs (a real paired folder, or ``data``'s photos degraded on the fly by
    the task's degrader with the recipe's ``synth`` options) and the fixed val batch."""
    from ..synth.degraders import degrader
    from .data import PairedFolder, SyntheticPairs, fixed_val_set

    degrade = degrader(recipe.task, **recipe.synth)
    if (data / "input").is_dir() and (data / "target").is_dir():
        pairs = PairedFolder(data, recipe.crop, recipe.threshold)
    else:
        pairs = SyntheticPairs(data, degrade, recipe.crop, recipe.threshold, relight=recipe.scene_relight)
    return pairs, fixed_val_set(val, degrade, recipe.val_n, recipe.val_seed, recipe.val_crop, recipe.threshold)


@app.command()
def netl(recipe: Path = RecipeOpt, data: Path = DataOpt, val: Path = ValOpt, out: Path = OutOpt,
         steps: Optional[int] = typer.Option(None, help="Override the recipe's step count."),
         resume: bool = typer.Option(False, help="Continue from OUT/netl.ckpt."),
         threads: Optional[int] = typer.Option(None, help="torch threads."),
         device: str = DeviceOpt, workers: int = WorkersOpt) -> None:
    """Train NetL with BCE against the thresholded |degraded - clean| mask."""
    _run("netl", recipe, data, val, out, steps, resume, None, threads, device, workers)


@app.command()
def netr(recipe: Path = RecipeOpt, data: Path = DataOpt, val: Path = ValOpt, out: Path = OutOpt,
         steps: Optional[int] = typer.Option(None, help="Override the recipe's step count."),
         resume: bool = typer.Option(False, help="Continue from OUT/netr.ckpt."),
         init: Optional[Path] = typer.Option(None, help="NetL checkpoint (default OUT/netl.ckpt)."),
         threads: Optional[int] = typer.Option(None, help="torch threads."),
         device: str = DeviceOpt, workers: int = WorkersOpt) -> None:
    """Train NetR with L1, NetL frozen and feeding SFM."""
    _run("netr", recipe, data, val, out, steps, resume, init, threads, device, workers)


@app.command()
def export(checkpoint: Path = typer.Argument(..., help="A netr.ckpt."),
           out: Path = typer.Option(..., "--out", help="Destination .safetensors file.")) -> None:
    """Write the full SPAIR (NetL + NetR) from a NetR checkpoint as safetensors, and print its sha256."""
    from ..train.loop import export as do_export
    import hashlib

    path = do_export(checkpoint, out)
    typer.echo(f"{path} sha256={hashlib.sha256(path.read_bytes()).hexdigest()}")
