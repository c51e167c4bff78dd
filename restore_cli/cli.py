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
from .tasks import DEFAULT_TILE, DEFAULT_TILE_PAD, TASKS as TASK_HELP
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
                           help="Image files, folders (searched recursively, layout kept under -o) or glob patterns.")
OutputOpt = typer.Option(DEFAULT_OUTPUT, "--output", "-o", help="Output folder (created as needed).")
DeviceOpt = typer.Option(Device.auto, "--device", help="auto picks CUDA when available.")
PrecisionOpt = typer.Option(Precision.auto, "--precision",
                            help="What the networks compute in. auto: bf16 on a CPU that computes it natively "
                                 "(about 1.6x faster, outputs within a few levels of fp32), else fp32.")
TileOpt = typer.Option(DEFAULT_TILE, "--tile", "-t", min=0, help="Process tiles of N x N px (0 = the whole image at once).")
TilePadOpt = typer.Option(DEFAULT_TILE_PAD, "--tile-pad", min=0, help="Context px around each tile (no seams).")
SkipExistingOpt = typer.Option(False, "--skip-existing", help="Skip inputs whose outputs all exist (resume a batch).")
WeightsOpt = typer.Option(None, "--weights", help="Weights file (.safetensors or checkpoint) instead of the task's.")
FailFastOpt = typer.Option(False, "--fail-fast", help="Stop at the first file that fails.")
TtaOpt = typer.Option(False, "--tta", help="Average over the four flips of each image: a little better, 4x slower.")
QuietOpt = typer.Option(False, "--quiet", "-q", help="Only print errors (no progress bar, notes or summary).")


def _load_pipeline(task: str, weights: Optional[Path], device: Device, precision: Precision, tile: int, tile_pad: int,
                   tta: bool = False):
    """The task's pipeline, or exit 2 with one line when weights or device are unavailable."""
    from . import pipeline
    from .batch import EXIT_USAGE
    from .errors import WeightsError
    from .memory import keep_freed_memory

    keep_freed_memory()  # big feature maps reuse freed memory instead of page-faulting in fresh pages
    try:
        pipe = pipeline.load_pipeline(task, weights, device.value, tile, tile_pad, precision.value, tta)
    except (WeightsError, ValueError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    if pipe.device.type == "cuda":
        from .ops import cuda

        if not cuda.available():
            typer.echo("note: CuPy is not installed, so the sparse ops run as plain PyTorch on the GPU "
                       "(pip install 'restore-cli[cuda]' for the CUDA kernels)", err=True)
    return pipe


def _collect(inputs: list[str], output: Path, outputs):
    """Plan the jobs for ``inputs``, with a failed job for each argument that names no image."""
    from .inputs import Job, collect, plan

    if output.exists() and not output.is_dir():
        raise typer.BadParameter(f"{output} is a file, not a folder", param_hint="--output")
    sources, problems = collect(inputs, exclude=output)
    return [Job(Path(arg), [], error=reason) for arg, reason in problems] + plan(sources, output, outputs)


def _run(jobs, work, reporter, skip_existing: bool, fail_fast: bool) -> None:
    from .batch import run_batch

    raise typer.Exit(run_batch(jobs, work, reporter, skip_existing, fail_fast).exit_code)


def _report_notes(image, note, start: int = 0) -> int:
    """Print ``image.notes[start:]``; returns the count printed so far."""
    for text in image.notes[start:]:
        note(text)
    return len(image.notes)


def restore_images(task: str, inputs: list[str], output: Path, suffix: str, ext: Optional[str], save_mask: bool,
                   device: Device, precision: Precision, tile: int, tile_pad: int, skip_existing: bool,
                   weights: Optional[Path], fail_fast: bool, quiet: bool, tta: bool) -> None:
    """What every restoration command does: restore each input into ``output``."""
    from .batch import Reporter
    from .imageio import is_supported_output_ext, read_image, write_image, write_mask
    from .inputs import output_name, sidecar_name

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
    pipe = _load_pipeline(task, weights, device, precision, tile, tile_pad, tta)

    def work(job, note):
        image = read_image(job.src)
        shown = _report_notes(image, note)
        restored, mask = pipe.restore(image.rgb)
        write_image(job.outputs[0], image, restored)
        if save_mask:
            write_mask(job.outputs[1], mask)
        _report_notes(image, note, shown)

    _run(jobs, work, Reporter(quiet), skip_existing, fail_fast)


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
    ) -> None:
        restore_images(task, inputs, output, suffix, ext, save_mask, device, precision, tile, tile_pad,
                       skip_existing, weights, fail_fast, quiet, tta)

    command.__doc__ = (f"{TASK_HELP[task]}\n\nEach output keeps its input's name (and format) under -o. Exit status: "
                       "0 all done, 1 some file failed, 2 no weights, 130 interrupted (resume with --skip-existing).")
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
) -> None:
    """Predict where images are degraded.

    With --save, write binary masks; without, print FILE<TAB>density (the fraction of pixels masked).
    """
    from .batch import Reporter
    from .imageio import read_image, write_mask, write_overlay
    from .inputs import sidecar_name

    save = save or overlay
    kinds = ["mask"] * save + ["overlay"] * overlay
    jobs = _collect(inputs, output, lambda rel: [sidecar_name(rel, kind) for kind in kinds])
    pipe = _load_pipeline(task.value, weights, device, precision, tile, tile_pad, tta)

    def work(job, note):
        image = read_image(job.src)
        _report_notes(image, note)
        m = pipe.mask(image.rgb)
        if not save:
            typer.echo(f"{job.src}\t{m.mean():.4f}")
        for path, kind in zip(job.outputs, kinds):
            if kind == "mask":
                write_mask(path, m)
            else:
                write_overlay(path, image, m)

    _run(jobs, work, Reporter(quiet), skip_existing and save, fail_fast)


def main() -> None:
    app(prog_name="restore")
