"""Run one function over a batch of jobs: progress, one-line errors, a summary, an exit code.

Used by ``restore <task>`` and ``restore mask``. A failing file costs one
line ``error: <file>: <reason>`` and the batch goes on (``fail_fast`` stops
it). Ctrl-C abandons the current image; outputs are written atomically, so
no partial file is left, and ``skip_existing`` resumes the batch later.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from .errors import RestoreError
from .inputs import Job

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

# What a job may raise for one bad file; anything else is a bug and propagates.
FILE_ERRORS = (RestoreError, OSError, MemoryError)

Work = Callable[[Job, Callable[[str], None]], None]


def describe(err: BaseException) -> str:
    """A one-line reason for a per-file failure."""
    if isinstance(err, MemoryError):
        return f"out of memory ({err})" if str(err) else "out of memory"
    if isinstance(err, OSError) and err.strerror:
        return f"{err.strerror}: {err.filename}" if err.filename else err.strerror
    return " ".join(str(err).split()) or type(err).__name__


class Reporter:
    """One-line messages on stderr, printed so that they never break a progress bar."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.console = Console(stderr=True, highlight=False, soft_wrap=True)

    def _line(self, text: str) -> None:
        self.console.print(text, markup=False)

    def error(self, file: str | Path, reason: str) -> None:
        prefix = f"{file}: "
        self._line(f"error: {file}: {reason.removeprefix(prefix)}")

    def note(self, file: str | Path, text: str) -> None:
        if not self.quiet:
            self._line(f"note: {file}: {text}")

    def info(self, text: str) -> None:
        if not self.quiet:
            self._line(text)


@dataclass
class Summary:
    total: int
    done: int = 0
    skipped: int = 0
    failed: int = 0
    interrupted: bool = False
    seconds: float = 0.0

    @property
    def left(self) -> int:
        """Jobs not finished because of Ctrl-C or --fail-fast."""
        return self.total - self.done - self.skipped - self.failed

    @property
    def exit_code(self) -> int:
        return EXIT_INTERRUPTED if self.interrupted else EXIT_FAILED if self.failed else EXIT_OK

    def line(self) -> str:
        parts = [f"done {self.done}", f"skipped {self.skipped}", f"failed {self.failed}"]
        if self.left:
            parts.append(f"{'interrupted' if self.interrupted else 'not run'} {self.left}")
        ran = self.done + self.failed
        rate = f", {self.seconds / ran:.2f} s/image" if ran else ""
        return f"{', '.join(parts)} ({self.seconds:.1f} s{rate})"


def _stamps(paths: list[Path]) -> list[tuple[int, int] | None]:
    """Each path's (inode, mtime), None where it does not exist: an atomic rewrite changes both."""
    stamps = []
    for p in paths:
        try:
            st = p.stat()
            stamps.append((st.st_ino, st.st_mtime_ns))
        except FileNotFoundError:
            stamps.append(None)
    return stamps


def _written_since(paths: list[Path], before: list[tuple[int, int] | None]) -> bool:
    """Whether every one of ``paths`` exists and was (re)written since ``before = _stamps(paths)``."""
    now = _stamps(paths)
    return bool(paths) and all(n is not None and n != b for n, b in zip(now, before))


def run_batch(jobs: list[Job], work: Work, reporter: Reporter, skip_existing: bool = False,
              fail_fast: bool = False) -> Summary:
    """Run ``work(job, note)`` for each job and return the summary (also printed).

    Jobs whose ``error`` is already set are reported first, before any image
    is processed. With ``skip_existing`` a job is skipped when all its
    outputs exist. Output folders are created as needed.
    """
    summary = Summary(len(jobs))
    for job in jobs:
        if job.error:
            reporter.error(job.src, job.error)
            summary.failed += 1
    runnable = [job for job in jobs if not job.error]
    if fail_fast and summary.failed:
        runnable = []
    show = len(runnable) > 1 and not reporter.quiet and reporter.console.is_terminal
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=reporter.console, transient=True, disable=not show)
    start = time.perf_counter()
    in_flight = None  # (job, jobs counted before it, its outputs' stamps): Ctrl-C may land after its last write
    try:
        with progress:
            bar = progress.add_task("restoring", total=len(runnable))
            for job in runnable:
                progress.update(bar, description=job.src.name)
                if skip_existing and job.outputs and all(p.exists() for p in job.outputs):
                    summary.skipped += 1
                else:
                    try:
                        for p in job.outputs:
                            p.parent.mkdir(parents=True, exist_ok=True)
                        in_flight = (job, summary.done + summary.failed, _stamps(job.outputs))
                        work(job, lambda text, src=job.src: reporter.note(src, text))
                        summary.done += 1
                    except FILE_ERRORS as err:
                        reporter.error(job.src, describe(err))
                        summary.failed += 1
                        if fail_fast:
                            break
                progress.advance(bar)
    except KeyboardInterrupt:
        summary.interrupted = True
        if in_flight is not None:  # the job Ctrl-C stopped (not yet counted) is done if it had written all its outputs
            job, counted_before, before = in_flight
            if summary.done + summary.failed == counted_before and _written_since(job.outputs, before):
                summary.done += 1
    summary.seconds = time.perf_counter() - start
    if summary.interrupted or not reporter.quiet:
        reporter.console.print(summary.line(), markup=False)
    return summary
