"""What ``restore <task>`` and ``restore mask`` do to one image.

Each command's options are a small picklable record; calling it loads the
model and returns the work function ``batch.run_batch`` runs on each job.
It is called in this process, or once in each worker process of
``workers.ProcessPool``, which is why it is a record and not a closure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .batch import Say, Work
from .inputs import Job


@dataclass(frozen=True)
class Model:
    """Which pipeline to load, and how it runs (``pipeline.load_pipeline``'s arguments)."""

    task: str
    weights: Path | None = None
    device: str = "auto"
    precision: str = "auto"
    tile: int = 512
    tile_pad: int = 32
    tta: bool = False

    def load(self):
        from . import pipeline
        from .memory import keep_freed_memory

        keep_freed_memory()  # big feature maps reuse freed memory instead of page-faulting in fresh pages
        return pipeline.load_pipeline(self.task, self.weights, self.device, self.tile, self.tile_pad,
                                      self.precision, self.tta)


def _say_notes(image, say: Say, start: int = 0) -> int:
    """Say ``image.notes[start:]``; returns the count said so far."""
    for text in image.notes[start:]:
        say(text)
    return len(image.notes)


@dataclass(frozen=True)
class RestoreImages:
    """Restore each image into its first output; its mask into the second with ``save_mask``."""

    model: Model
    save_mask: bool = False

    def __call__(self, pipe=None) -> Work:
        from .imageio import read_image, write_image, write_mask

        pipe = self.model.load() if pipe is None else pipe

        def work(job: Job, say: Say) -> None:
            image = read_image(job.src)
            shown = _say_notes(image, say)
            restored, mask = pipe.restore(image.rgb)
            write_image(job.outputs[0], image, restored)
            if self.save_mask:
                write_mask(job.outputs[1], mask)
            _say_notes(image, say, shown)

        return work


@dataclass(frozen=True)
class WriteMasks:
    """Write each image's predicted mask (``kinds``: "mask", "overlay", one output each), or,
    with no kinds, print ``FILE<TAB>density`` on stdout."""

    model: Model
    kinds: tuple[str, ...] = ()

    def __call__(self, pipe=None) -> Work:
        from .imageio import read_image, write_mask, write_overlay

        pipe = self.model.load() if pipe is None else pipe

        def work(job: Job, say: Say) -> None:
            image = read_image(job.src)
            _say_notes(image, say)
            m = pipe.mask(image.rgb)
            if not self.kinds:
                say(f"{job.src}\t{m.mean():.4f}", out=True)
            for path, kind in zip(job.outputs, self.kinds):
                if kind == "mask":
                    write_mask(path, m)
                else:
                    write_overlay(path, image, m)

        return work
