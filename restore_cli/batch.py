"""Run one function over a batch of jobs: progress, one-line errors, a summary, an exit code.

Used by ``restore <task>`` and ``restore mask``. A failing file costs one
line ``error: <file>: <reason>`` and the batch goes on (``fail_fast`` stops
it). Ctrl-C abandons the current image; outputs are written atomically, so
no partial file is left, and ``skip_existing`` resumes the batch later.
SIGTERM (``kill``, ``timeout``, ``docker stop``) stops a batch as Ctrl-C does.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from .errors import RestoreError
from .imageio import remove_stale_temporary_files
from .inputs import Job

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143

# What a job may raise for one bad file; anything else is a bug and propagates.
FILE_ERRORS = (RestoreError, OSError, MemoryError)

# ``say(text)`` prints a note about the job on stderr, ``say(text, out=True)`` a line on stdout.
Say = Callable[..., None]
Work = Callable[[Job, Say], None]


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

    def echo(self, text: str) -> None:
        """A line of the command's output, on stdout."""
        print(text, flush=True)

    def info(self, text: str) -> None:
        if not self.quiet:
            self._line(text)


@dataclass
class Summary:
    total: int
    done: int = 0
    skipped: int = 0
    failed: int = 0
    interrupted: bool = False  # by Ctrl-C, or by SIGTERM when ``terminated``
    terminated: bool = False
    seconds: float = 0.0

    @property
    def left(self) -> int:
        """Jobs not finished because of Ctrl-C or --fail-fast."""
        return self.total - self.done - self.skipped - self.failed

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_TERMINATED if self.terminated else EXIT_INTERRUPTED
        return EXIT_FAILED if self.failed else EXIT_OK

    def line(self) -> str:
        parts = [f"done {self.done}", f"skipped {self.skipped}", f"failed {self.failed}"]
        if self.left:
            parts.append(f"{'interrupted' if self.interrupted else 'not run'} {self.left}")
        ran = self.done + self.failed
        rate = f", {self.seconds / ran:.2f} s/image" if ran else ""
        return f"{', '.join(parts)} ({self.seconds:.1f} s{rate})"


def _stamps(paths: list[Path]) -> list[tuple[int, int] | None]:
    """Each path's (inode, mtime), None where it does not exist (or cannot be looked at): an
    atomic rewrite changes both."""
    stamps = []
    for p in paths:
        try:
            st = p.stat()
            stamps.append((st.st_ino, st.st_mtime_ns))
        except OSError:
            stamps.append(None)
    return stamps


def _written_since(paths: list[Path], before: list[tuple[int, int] | None]) -> bool:
    """Whether every one of ``paths`` exists and was (re)written since ``before = _stamps(paths)``."""
    now = _stamps(paths)
    return bool(paths) and all(n is not None and n != b for n, b in zip(now, before))


def pending(jobs: list[Job], skip_existing: bool) -> list[Job]:
    """The jobs a batch will run: not failed in planning, and not skipped because their outputs exist."""
    return [job for job in jobs if not job.error
            and not (skip_existing and job.outputs and all(p.exists() for p in job.outputs))]


@dataclass
class Outcome:
    """How one job ended: ``status`` done, failed (``reason`` says why) or stopped (Ctrl-C
    before it had written its outputs); ``interrupted`` when Ctrl-C arrived during it."""

    status: str
    reason: str = ""
    interrupted: bool = False


DONE, FAILED, STOPPED = "done", "failed", "stopped"


class Attempt:
    """One job on its way: its outputs' stamps from before it ran tell, if it is cut short,
    whether it had already written them all (atomic writes leave nothing partial)."""

    def __init__(self, job: Job):
        self.job = job
        self.before = _stamps(job.outputs)

    def wrote_all(self) -> bool:
        """Whether every output has been written since the job started."""
        return _written_since(self.job.outputs, self.before)

    def cut_short(self) -> Outcome:
        """The outcome of a job stopped by Ctrl-C before it returned."""
        return Outcome(DONE if self.wrote_all() else STOPPED, interrupted=True)

    def run(self, work: Work, say: Say) -> Outcome:
        """Run ``work`` on the job: a bad file becomes a failed outcome, Ctrl-C a cut-short one."""
        try:
            for p in self.job.outputs:
                p.parent.mkdir(parents=True, exist_ok=True)
            work(self.job, say)
            return Outcome(DONE)
        except FILE_ERRORS as err:
            return Outcome(FAILED, describe(err))
        except KeyboardInterrupt:
            return self.cut_short()


class InProcess:
    """Runs each job here, one at a time: the runner ``run_batch`` uses for a plain work function."""

    def __init__(self, work: Work):
        self.work = work
        self.waiting: list[Job] = []

    def start(self, say: Callable[[Job], Say]) -> None:
        self.say = say

    def has_room(self) -> bool:
        return not self.waiting

    def busy(self) -> bool:
        return bool(self.waiting)

    def submit(self, job: Job) -> None:
        self.waiting.append(job)

    def next_outcome(self) -> tuple[Job, Outcome] | None:
        job = self.waiting.pop()
        return job, Attempt(job).run(self.work, self.say(job))

    def stop(self) -> list[tuple[Job, Outcome]]:
        """Abandon the batch: nothing is running once Ctrl-C reaches the loop."""
        self.waiting.clear()
        return []

    def close(self) -> None:
        pass


class SigtermAsCtrlC:
    """Within it, SIGTERM raises KeyboardInterrupt, so that a batch that is killed stops as
    on Ctrl-C (temporary files removed, a summary); ``received`` tells the two apart.
    Signal handlers belong to the main thread: elsewhere it changes nothing."""

    received = False

    def _raise(self, signum, frame) -> None:
        self.received = True
        raise KeyboardInterrupt

    def __enter__(self) -> "SigtermAsCtrlC":
        # signal.signal returns None for a handler not set from Python: a flag, not the old value, says to restore
        self._installed = threading.current_thread() is threading.main_thread()
        if self._installed:
            self._old = signal.signal(signal.SIGTERM, self._raise)
        return self

    def __exit__(self, *exc) -> None:
        if self._installed:
            signal.signal(signal.SIGTERM, self._old if self._old is not None else signal.SIG_DFL)


def run_batch(jobs: list[Job], work: Work | InProcess, reporter: Reporter, skip_existing: bool = False,
              fail_fast: bool = False) -> Summary:
    """Run ``work(job, say)`` for each job and return the summary (also printed).

    ``work`` is a function run here, or a runner with ``InProcess``'s methods
    (``workers.ProcessPool`` runs jobs in worker processes). Jobs whose
    ``error`` is already set are reported first, before any image is
    processed. With ``skip_existing`` a job is skipped when all its outputs
    exist. Output folders are created as needed; a killed run's temporary
    files for the outputs to write are removed (``remove_stale_temporary_files``).
    """
    runner = work if hasattr(work, "next_outcome") else InProcess(work)
    summary = Summary(len(jobs))
    for job in jobs:
        if job.error:
            reporter.error(job.src, job.error)
            summary.failed += 1
    runnable = [job for job in jobs if not job.error]
    if fail_fast and summary.failed:
        runnable = []
    todo = pending(runnable, skip_existing)
    summary.skipped = len(runnable) - len(todo)
    remove_stale_temporary_files(path for job in todo for path in job.outputs)  # a killed run's
    show = len(runnable) > 1 and not reporter.quiet and reporter.console.is_terminal
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=reporter.console, transient=True, disable=not show,
                        redirect_stdout=sys.stdout.isatty())  # piped output (restore mask's densities) stays on stdout
    bar = progress.add_task("restoring", total=len(runnable), completed=summary.skipped)

    def count(job: Job, outcome: Outcome) -> None:
        if outcome.status == DONE:
            summary.done += 1
        elif outcome.status == FAILED:
            reporter.error(job.src, outcome.reason)
            summary.failed += 1
        progress.advance(bar)

    def say(job: Job) -> Say:
        return lambda text, out=False: reporter.echo(text) if out else reporter.note(job.src, text)

    def submit(job: Job) -> None:
        progress.update(bar, description=job.src.name)
        runner.submit(job)

    start = time.perf_counter()
    waiting = list(reversed(todo))
    sigterm = SigtermAsCtrlC()
    try:
        with sigterm, progress:
            runner.start(say)
            while waiting and runner.has_room():
                submit(waiting.pop())
            while runner.busy():
                ended = runner.next_outcome()  # None: no job ended, but a worker is free for one
                if ended:
                    job, outcome = ended
                    count(job, outcome)
                    if outcome.interrupted:
                        raise KeyboardInterrupt
                    if outcome.status == FAILED and fail_fast:
                        waiting.clear()
                while waiting and runner.has_room():
                    submit(waiting.pop())
    except KeyboardInterrupt:
        summary.interrupted, summary.terminated = True, sigterm.received
        for job, outcome in runner.stop():
            count(job, outcome)
    finally:
        runner.close()
    summary.seconds = time.perf_counter() - start
    if summary.interrupted or not reporter.quiet:
        reporter.console.print(summary.line(), markup=False)
    return summary
