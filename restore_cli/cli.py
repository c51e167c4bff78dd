"""The ``restore`` command line.

``restore derain|deraindrop|deshadow|deblur INPUT... -o OUT`` restores images,
``restore mask`` writes or measures the predicted degradation masks, and the
sub-apps ``weights``, ``train``, ``synth`` and ``bench`` are registered below.
Modules that import torch, numpy or Pillow are imported inside the commands,
so ``restore --version`` and ``--help`` stay fast.
"""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from . import __version__
from .bench.cli import bench
from .synth.cli import app as synth_app
from .train.cli import app as train_app
from .tasks import DEFAULT_TILE, DEFAULT_TILE_PAD, TASKS as TASK_HELP, check_tile
from .weights.cli import app as weights_app

DEFAULT_OUTPUT = Path("restored")

Task = Enum("Task", {t: t for t in TASK_HELP}, type=str)


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"


app = typer.Typer(
    name="restore",
    help="Remove rain, raindrops, shadows or blur from photos with SPAIR.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(weights_app, name="weights")
app.add_typer(train_app, name="train")
app.add_typer(synth_app, name="synth")
app.command("bench")(bench)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"restore {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                       help="Print the version and exit.")) -> None:
    """Remove rain, raindrops, shadows or blur from photos with SPAIR."""


# Options shared by the restoration commands and ``mask``.
InputsArg = typer.Argument(..., metavar="INPUT", show_default=False,
                           help="Image files, folders (searched recursively, layout kept under -o; several folders each under its own name) or glob patterns.")
OutputOpt = typer.Option(DEFAULT_OUTPUT, "--output", "-o", help="Output folder (created as needed).")
DeviceOpt = typer.Option(Device.auto, "--device", help="auto picks CUDA when available.")
PrecisionOpt = typer.Option(Precision.auto, "--precision",
                            help="What the networks compute in. auto: bf16 on a CPU that computes it natively "
                                 "(about 1.6x faster, outputs within a few levels of fp32), else fp32.")
TileOpt = typer.Option(DEFAULT_TILE, "--tile", "-t", min=0, callback=check_tile, help="Process tiles of N x N px (0 = the whole image at once).")
TilePadOpt = typer.Option(DEFAULT_TILE_PAD, "--tile-pad", min=0, help="Context px around each tile (no seams).")
SkipExistingOpt = typer.Option(False, "--skip-existing", help="Skip inputs whose outputs all exist (resume a batch).")
WeightsOpt = typer.Option(None, "--weights", help="Weights file (.safetensors or checkpoint) instead of the task's.")
FailFastOpt = typer.Option(False, "--fail-fast", help="Stop at the first file that fails.")
TtaOpt = typer.Option(False, "--tta", help="Average over the four flips of each image: a little better, 4x slower.")
JobsOpt = typer.Option(0, "--jobs", "-j", min=0,
                       help="Images processed at once, each in its own process with its own copy of the model "
                            "(0 = one per CPU core, as memory allows; 1 on a GPU).")
QuietOpt = typer.Option(False, "--quiet", "-q", help="Only print errors (no progress bar, notes or summary).")


def _load_pipeline(model):
    """``model.load()`` here, or exit 2 with one line when weights or device are unavailable."""
    from .batch import EXIT_USAGE
    from .errors import WeightsError

    try:
        pipe = model.load()
    except (WeightsError, ValueError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    if pipe.device.type == "cuda":
        from .ops import cuda

        if not cuda.available():
            typer.echo("note: CuPy is not installed, so the sparse ops run as plain PyTorch on the GPU "
                       "(pip install 'restore-cli[cuda]' for the CUDA kernels)", err=True)
    return pipe


def _note_another_tasks_weights(task: str, weights: Path) -> None:
    """A note when ``--weights`` is another task's released file: it runs, but restores the wrong thing."""
    from .weights.hub import sha256_of
    from .weights.registry import PINNED_SHA256

    try:
        sha = sha256_of(weights)
    except OSError:
        return  # loading the weights says what is wrong
    for other, pinned in PINNED_SHA256.items():
        if pinned == sha and other != task:
            typer.echo(f"note: {weights} holds the released {other} weights, not {task}'s", err=True)


def _collect(inputs: list[str], output: Path, outputs):
    """Plan the jobs for ``inputs``, with a failed job for each argument that names no image."""
    from .inputs import Job, collect, plan

    if output.exists() and not output.is_dir():
        raise typer.BadParameter(f"{output} is a file, not a folder", param_hint="--output")
    sources, problems = collect(inputs, exclude=output)
    return [Job(Path(arg), [], error=reason) for arg, reason in problems] + plan(sources, output, outputs)


def _run(jobs, make_work, quiet: bool, skip_existing: bool, fail_fast: bool, processes: int) -> None:
    """Run the batch with ``make_work``'s work function: here, or in ``processes`` worker processes
    (0: ``workers.auto_processes``). Exits with the batch's exit code."""
    from dataclasses import replace

    from .batch import EXIT_USAGE, Reporter, pending, run_batch
    from .errors import RestoreError
    from .workers import ProcessPool, auto_processes, cpu_count

    model = make_work.model
    if model.weights is not None and not quiet:
        _note_another_tasks_weights(model.task, model.weights)
    processes = processes or auto_processes(len(pending(jobs, skip_existing)), model.device)
    try:
        if processes > 1:  # each worker loads the weights verified here
            from .weights import resolve

            model = replace(model, weights=resolve(model.task, model.weights).path)
            work = ProcessPool(replace(make_work, model=model), processes, max(1, cpu_count() // processes))
        else:
            work = make_work(_load_pipeline(model))
        summary = run_batch(jobs, work, Reporter(quiet), skip_existing, fail_fast)
    except RestoreError as err:  # weights the workers cannot use
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    raise typer.Exit(summary.exit_code)


def restore_images(task: str, inputs: list[str], output: Path, suffix: str, ext: Optional[str], save_mask: bool,
                   device: Device, precision: Precision, tile: int, tile_pad: int, skip_existing: bool,
                   weights: Optional[Path], fail_fast: bool, quiet: bool, tta: bool, processes: int = 0) -> None:
    """What every restoration command does: restore each input into ``output``."""
    from .imageio import is_supported_output_ext
    from .inputs import output_name, sidecar_name
    from .work import Model, RestoreImages

    if any(sep in suffix for sep in ("/", os.sep, os.altsep) if sep):
        raise typer.BadParameter("must not contain a path separator", param_hint="--suffix")
    if ext is not None:
        ext = "." + ext.lower().lstrip(".")
        if not is_supported_output_ext(ext):
            raise typer.BadParameter(f"cannot write {ext} files", param_hint="--ext")

    def names(rel):
        name = output_name(rel, suffix, ext)
        return [name, sidecar_name(name, "mask")] if save_mask else [name]

    jobs = _collect(inputs, output, names)
    model = Model(task, weights, device.value, precision.value, tile, tile_pad, tta)
    _run(jobs, RestoreImages(model, save_mask), quiet, skip_existing, fail_fast, processes)


def _restore_command(task: str):
    def command(
        inputs: list[str] = InputsArg,
        output: Path = OutputOpt,
        suffix: str = typer.Option("", "--suffix", help="Appended to each output's stem, e.g. _derained."),
        ext: Optional[str] = typer.Option(None, "--ext", show_default=False,
                                          help="Output format, e.g. png (default: the input's, or png where that cannot be written)."),
        save_mask: bool = typer.Option(False, "--save-mask", help="Also write the 0/255 mask as NAME_mask.png beside each output."),
        device: Device = DeviceOpt,
        precision: Precision = PrecisionOpt,
        tile: int = TileOpt,
        tile_pad: int = TilePadOpt,
        skip_existing: bool = SkipExistingOpt,
        weights: Optional[Path] = WeightsOpt,
        fail_fast: bool = FailFastOpt,
        quiet: bool = QuietOpt,
        tta: bool = TtaOpt,
        jobs: int = JobsOpt,
    ) -> None:
        restore_images(task, inputs, output, suffix, ext, save_mask, device, precision, tile, tile_pad,
                       skip_existing, weights, fail_fast, quiet, tta, jobs)

    command.__doc__ = (f"{TASK_HELP[task]}\n\nEach output keeps its input's name (and format) under -o. Exit status: "
                       "0 all done, 1 some file failed, 2 no weights, 130 interrupted by Ctrl-C, 143 by SIGTERM (resume with --skip-existing).")
    return command


for _task in TASK_HELP:
    app.command(_task)(_restore_command(_task))


@app.command("mask")
def mask(
    inputs: list[str] = InputsArg,
    save: bool = typer.Option(False, "--save", help="Write NAME_mask.png (0/255, input-sized) under -o."),
    overlay: bool = typer.Option(False, "--overlay", help="Also write NAME_overlay.png, the mask tinted over the input (implies --save)."),
    output: Path = OutputOpt,
    task: Task = typer.Option(Task("derain"), "--task", help="Whose NetL predicts the mask."),
    device: Device = DeviceOpt,
    precision: Precision = PrecisionOpt,
    tile: int = TileOpt,
    tile_pad: int = TilePadOpt,
    skip_existing: bool = SkipExistingOpt,
    weights: Optional[Path] = WeightsOpt,
    fail_fast: bool = FailFastOpt,
    quiet: bool = QuietOpt,
    tta: bool = typer.Option(False, "--tta", help="The majority of the masks of the four flips of each image: 4x slower."),
    jobs: int = JobsOpt,
) -> None:
    """Predict where images are degraded.

    With --save, write binary masks; without, print FILE<TAB>density (the fraction of pixels masked).
    """
    from .inputs import sidecar_name
    from .work import Model, WriteMasks

    save = save or overlay
    kinds = ("mask",) * save + ("overlay",) * overlay
    planned = _collect(inputs, output, lambda rel: [sidecar_name(rel, kind) for kind in kinds])
    model = Model(task.value, weights, device.value, precision.value, tile, tile_pad, tta)
    _run(planned, WriteMasks(model, kinds), quiet, skip_existing and save, fail_fast, jobs)


def main() -> None:
    app(prog_name="restore")
