"""Run a batch's jobs in worker processes, each with its own copy of the model.

On a CPU, restoring a folder is faster with one process per core, each
computing with one thread, than with one process whose every layer is split
across the cores: many of the network's steps are too small to split well.
``ProcessPool`` is a runner for ``batch.run_batch``. The workers are
*spawned* (a fresh interpreter each: no forked OpenMP or torch state), so
the work function is rebuilt in each one from a picklable ``make_work``.

Ctrl-C belongs to the main process: the workers ignore SIGINT (they start
with it ignored, so not even their start-up prints a traceback). On Ctrl-C
the main process kills the workers. When one dies, a replacement starts as
soon as a waiting job needs it (none at the end of a batch). Either way it
removes the temporary files of the jobs that were being written, and counts
each of those jobs done if it had already written all its outputs
(``batch.Attempt``). A job goes to a worker only once that worker has built
its model, and a replacement that cannot build it is left out.

Each worker talks to the main process over a pipe of its own. A worker that
dies in the middle of a message (killed for memory, say) breaks only its own
pipe; with one queue shared by all workers, it would leave the queue's lock
held and the message half-written, and the whole batch would hang.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Callable

from .batch import DONE, FAILED, Attempt, Job, Outcome, Say, Work, describe
from .errors import RestoreError
from .imageio import temporary_files

GIB = 1 << 30
MEMORY_PER_WORKER = 2 * GIB  # a 4000x3000 photo in 512 px tiles peaked at 1.9 GiB (README)


def cpu_count() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def available_memory() -> int | None:
    """Bytes of memory available to new processes (Linux's MemAvailable), None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def may_have_cuda() -> bool:
    """Whether an NVIDIA driver is present, told without importing torch."""
    return Path("/dev/nvidiactl").exists() or Path("/proc/driver/nvidia/version").exists()


def auto_processes(n_jobs: int, device: str) -> int:
    """How many worker processes ``--jobs 0`` (auto) uses for ``n_jobs`` images.

    One per CPU core, as memory allows (``MEMORY_PER_WORKER`` each), and no more
    than there are images. One, in this process, for a GPU (or where one may be).
    """
    if device == "cuda" or (device == "auto" and may_have_cuda()):
        return 1
    memory = available_memory()
    by_memory = max(1, memory // MEMORY_PER_WORKER) if memory is not None else n_jobs
    return max(1, min(n_jobs, cpu_count(), by_memory))


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: Connection  # jobs go out, its messages come back
    ready: bool = False  # it has built its work function
    attempt: Attempt | None = None  # the job it is on


def _serve(make_work: Callable[[], Work], threads: int, conn: Connection) -> None:
    """A worker's life: build the work function, then run jobs until told to stop (None).

    It sends ``(kind, payload)`` messages: "fatal" (it cannot start, and why),
    "ready", "say" (a job's note or line) and "outcome" (a job ended).
    """
    os.environ["OMP_NUM_THREADS"] = str(threads)  # before OpenMP starts: no idle threads spinning
    import torch

    torch.set_num_threads(threads)
    try:
        work = make_work()
    except (RestoreError, ValueError, OSError) as err:
        conn.send(("fatal", describe(err)))
        return
    conn.send(("ready", None))
    while (job := conn.recv()) is not None:
        def say(text: str, out: bool = False) -> None:
            conn.send(("say", (text, out)))

        conn.send(("outcome", Attempt(job).run(work, say)))


class ProcessPool:
    """Runs jobs in ``size`` spawned worker processes, ``threads`` torch threads each."""

    def __init__(self, make_work: Callable[[], Work], size: int, threads: int = 1):
        self.make_work, self.size, self.threads = make_work, size, threads
        self.context = multiprocessing.get_context("spawn")
        self.workers: dict[int, _Worker] = {}
        self.wanted = size  # workers to keep: one less for each replacement that could not start
        self.next_id = 0

    def _spawn(self) -> None:
        wid, self.next_id = self.next_id, self.next_id + 1
        here, there = self.context.Pipe()
        process = self.context.Process(target=_serve, args=(self.make_work, self.threads, there),
                                       name=f"restore-worker-{wid}", daemon=True)
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited: the worker never sees Ctrl-C
        try:
            process.start()
        finally:
            signal.signal(signal.SIGINT, old)
        there.close()  # the worker's end, now only in the worker: its exit reads as end of file here
        self.workers[wid] = _Worker(process, here)

    def start(self, say: Callable[[Job], Say]) -> None:
        """Start the workers and wait until each has built its work function.

        Raises ``RestoreError`` with the first worker's reason if one cannot (e.g. unusable weights).
        """
        self.say = say
        for _ in range(self.size):
            self._spawn()
        while not all(w.ready for w in self.workers.values()):
            wid, kind, payload = self._receive()
            if kind in ("fatal", "died"):
                raise RestoreError(_start_failure(kind, payload))
            self.workers[wid].ready |= kind == "ready"

    def _receive(self) -> tuple[int, str, object]:
        """The next message from a worker, ``(wid, kind, payload)``; a worker that has
        exited (perhaps in the middle of a message) says ("died", its exit code)."""
        conns = {w.conn: wid for wid, w in self.workers.items()}
        sentinels = {w.process.sentinel: wid for wid, w in self.workers.items()}
        ready = wait([*conns, *sentinels])
        readable = [conns[c] for c in ready if c in conns]  # its last messages before it exited, first
        wid = readable[0] if readable else sentinels[ready[0]]
        worker = self.workers[wid]
        if readable:
            try:
                kind, payload = worker.conn.recv()
                return wid, kind, payload
            except (EOFError, OSError):  # its end is closed
                pass
        worker.process.join(timeout=10)
        return wid, "died", worker.process.exitcode

    def _drop(self, wid: int) -> None:
        """Forget a dead worker."""
        self.workers.pop(wid).conn.close()

    def _idle(self) -> list[_Worker]:
        return [w for w in self.workers.values() if w.ready and w.attempt is None]

    def has_room(self) -> bool:
        """A worker is free for a job. Asked only while a job waits, so this is where
        dead workers' replacements start."""
        while len(self.workers) < self.wanted:
            self._spawn()
        return bool(self._idle())

    def busy(self) -> bool:
        """A job is running, or a replacement worker is starting (and will want one)."""
        return any(w.attempt is not None or not w.ready for w in self.workers.values())

    def submit(self, job: Job) -> None:
        worker = self._idle()[0]
        worker.attempt = Attempt(job)
        try:
            worker.conn.send(job)
        except OSError:  # it has just died: ``next_outcome`` will say so
            pass

    def next_outcome(self) -> tuple[Job, Outcome] | None:
        """Wait for a job to end, or (None) for a replacement worker to be ready for one.

        A worker that dies takes its job with it (failed, unless all the job's outputs
        were written); a replacement that cannot start is left out, and the batch stops
        only when no worker is left to start.
        """
        while True:
            wid, kind, payload = self._receive()
            worker = self.workers[wid]
            if not worker.ready:  # a replacement, starting
                if kind == "ready":
                    worker.ready = True
                    return None
                if kind in ("fatal", "died"):
                    self._drop(wid)
                    self.wanted -= 1
                    if not self.wanted:
                        raise RestoreError(_start_failure(kind, payload))
                continue
            if worker.attempt is None:
                if kind == "died":  # idle: nothing lost
                    self._drop(wid)
                continue
            job = worker.attempt.job
            if kind == "say":
                text, out = payload
                self.say(job)(text, out=out)
            elif kind == "outcome":
                worker.attempt = None
                return job, payload
            elif kind == "died":
                _remove_temporary_files(job)
                self._drop(wid)
                if worker.attempt.wrote_all():  # it died after its last write, before saying so
                    return job, Outcome(DONE)
                return job, Outcome(FAILED, f"the worker process died (exit code {payload}); out of memory?")

    def stop(self) -> list[tuple[Job, Outcome]]:
        """Kill the workers (Ctrl-C); the outcome of each job they were on, from its files."""
        ended = []
        for worker in self.workers.values():
            worker.process.kill()
            worker.process.join()
            if worker.attempt is not None:
                _remove_temporary_files(worker.attempt.job)
                ended.append((worker.attempt.job, worker.attempt.cut_short()))
                worker.attempt = None
        return ended

    def close(self) -> None:
        """Let idle workers exit, kill any still running, and wait for them all."""
        for worker in self.workers.values():
            try:
                worker.conn.send(None)
            except OSError:  # it has exited already
                pass
        for wid, worker in list(self.workers.items()):
            worker.process.join(timeout=10)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            self._drop(wid)


def _start_failure(kind: str, payload: object) -> str:
    """Why a worker could not start, from its "fatal" or "died" message."""
    return str(payload) if kind == "fatal" else f"a worker process died while starting (exit code {payload})"


def _remove_temporary_files(job: Job) -> None:
    """Remove what a killed worker may have left half-written for ``job``."""
    for path in job.outputs:
        for tmp in temporary_files(path):
            tmp.unlink(missing_ok=True)
