"""The batch runner and input planning, and a real batch interrupted with Ctrl-C."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import threading
import time
from pathlib import Path, PurePath

import pytest
from PIL import Image
from rich.console import Console

from restore_cli import workers
from restore_cli.batch import Reporter, Summary, describe, run_batch
from restore_cli.errors import ImageError, RestoreError, WeightsError
from restore_cli.inputs import Job, Source, collect, output_name, plan, safe_relpath, sidecar_name

from .conftest import restore_cmd, subprocess_env, write_image


def reporter_to(buffer: io.StringIO, quiet: bool = False, terminal: bool = False) -> Reporter:
    reporter = Reporter(quiet)
    reporter.console = Console(file=buffer, force_terminal=terminal, width=60, highlight=False, soft_wrap=True)
    return reporter


def jobs_in(tmp_path: Path, names: list[str]) -> list[Job]:
    return [Job(tmp_path / name, [tmp_path / "out" / name]) for name in names]


def touch_work(fail: set[str] = frozenset(), interrupt_at: str | None = None):
    """A job function writing each output, failing on names in ``fail``, Ctrl-C at ``interrupt_at``."""

    def work(job, note):
        if job.src.name == interrupt_at:
            raise KeyboardInterrupt
        if job.src.name in fail:
            raise ImageError(f"{job.src}: broken on purpose")
        note("looked at it")
        for p in job.outputs:
            p.write_text("ok")

    return work


class TouchWork:
    """``touch_work`` as a picklable record, for worker processes; ``die_at``: the worker exits
    there (``die_after``: once it has written the outputs); ``pause``: seconds each job takes."""

    def __init__(self, fail=frozenset(), die_at=None, pause=0.0, die_after=None):
        self.fail, self.die_at, self.pause, self.die_after = set(fail), die_at, pause, die_after

    def __call__(self):
        touch = touch_work(self.fail)

        def work(job, say):
            if job.src.name == self.die_at:
                job.outputs[0].with_name(f".{job.outputs[0].name}.0123abcd.tmp").write_text("half")
                os._exit(3)
            time.sleep(self.pause)
            touch(job, say)
            if job.src.name == self.die_after:
                os._exit(3)
            say(f"{job.src.name} by {os.getpid()}", out=True)

        return work


# --- the runner ---------------------------------------------------------------------------------


def test_errors_notes_summary_and_exit_code(tmp_path):
    buf = io.StringIO()
    jobs = jobs_in(tmp_path, ["a", "b", "c"])
    summary = run_batch(jobs, touch_work(fail={"b"}), reporter_to(buf))
    lines = buf.getvalue().splitlines()
    assert f"error: {tmp_path / 'b'}: broken on purpose" in lines  # the file named once, not twice
    assert f"note: {tmp_path / 'a'}: looked at it" in lines
    assert lines[-1].startswith("done 2, skipped 0, failed 1 (")
    assert (summary.done, summary.failed, summary.exit_code) == (2, 1, 1)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a", "c"]


@pytest.mark.parametrize("processes", [0, 2])
def test_an_output_folder_that_cannot_be_made_fails_its_file_only(tmp_path, processes):
    jobs = jobs_in(tmp_path, ["a", "b"])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "sub").write_text("a file where a folder should go")
    jobs[0].outputs = [tmp_path / "out" / "sub" / "a"]
    work = workers.ProcessPool(TouchWork(), processes) if processes else touch_work()
    summary = run_batch(jobs, work, reporter_to(io.StringIO()))
    assert (summary.done, summary.failed) == (1, 1)
    assert (tmp_path / "out" / "b").exists()


def test_quiet_prints_only_errors(tmp_path):
    buf = io.StringIO()
    summary = run_batch(jobs_in(tmp_path, ["a", "b"]), touch_work(fail={"a"}), reporter_to(buf, quiet=True))
    assert buf.getvalue().splitlines() == [f"error: {tmp_path / 'a'}: broken on purpose"]
    assert summary.exit_code == 1


def test_all_fine_exits_0_and_skip_existing_skips(tmp_path):
    jobs = jobs_in(tmp_path, ["a", "b"])
    (tmp_path / "out").mkdir()
    jobs[0].outputs[0].write_text("before")
    summary = run_batch(jobs, touch_work(), reporter_to(io.StringIO()), skip_existing=True)
    assert (summary.done, summary.skipped, summary.exit_code) == (1, 1, 0)
    assert jobs[0].outputs[0].read_text() == "before"


def test_fail_fast(tmp_path):
    summary = run_batch(jobs_in(tmp_path, ["a", "b", "c"]), touch_work(fail={"a"}), reporter_to(io.StringIO()),
                        fail_fast=True)
    assert (summary.done, summary.failed, summary.left, summary.exit_code) == (0, 1, 2, 1)
    assert "not run 2" in summary.line()


def test_planned_errors_are_reported_first_and_fail_fast_runs_nothing(tmp_path):
    jobs = jobs_in(tmp_path, ["a", "b"])
    jobs[1].error = "clash"
    buf = io.StringIO()
    summary = run_batch(jobs, touch_work(), reporter_to(buf), fail_fast=True)
    assert buf.getvalue().splitlines()[0] == f"error: {tmp_path / 'b'}: clash"
    assert (summary.done, summary.failed, summary.left) == (0, 1, 1)
    assert not (tmp_path / "out").exists()


def test_keyboard_interrupt_abandons_the_batch(tmp_path):
    buf = io.StringIO()
    summary = run_batch(jobs_in(tmp_path, ["a", "b", "c"]), touch_work(interrupt_at="b"), reporter_to(buf, quiet=True))
    assert (summary.done, summary.left, summary.exit_code) == (1, 2, 130)
    assert "done 1, skipped 0, failed 0, interrupted 2" in buf.getvalue()  # printed even with --quiet


def test_ctrl_c_after_a_job_wrote_its_outputs_counts_it_done(tmp_path):
    """The signal may land between a job's last (atomic) write and the count: the
    summary must still match the files on disk."""
    touch = touch_work()

    def work(job, note):
        touch(job, note)
        if job.src.name == "b":
            raise KeyboardInterrupt  # after b's output is in place

    out = tmp_path / "out"
    out.mkdir()
    (out / "b").write_text("from an earlier run")  # overwritten: a rewrite counts, not mere existence
    os.utime(out / "b", ns=(0, 0))  # (written in place here, same inode: its mtime must tell)
    buf = io.StringIO()
    summary = run_batch(jobs_in(tmp_path, ["a", "b", "c"]), work, reporter_to(buf, quiet=True))
    assert (summary.done, summary.left, summary.exit_code) == (2, 1, 130)
    assert "done 2, skipped 0, failed 0, interrupted 1" in buf.getvalue()


def test_worker_processes_share_the_batch_and_report_as_this_process_does(tmp_path, capsys):
    buf = io.StringIO()
    names = ["a", "b", "c", "d", "e"]
    summary = run_batch(jobs_in(tmp_path, names), workers.ProcessPool(TouchWork(fail={"b"}), 2), reporter_to(buf))
    lines = buf.getvalue().splitlines()
    assert f"error: {tmp_path / 'b'}: broken on purpose" in lines
    assert f"note: {tmp_path / 'a'}: looked at it" in lines
    assert lines[-1].startswith("done 4, skipped 0, failed 1 (")
    assert (summary.done, summary.failed, summary.exit_code) == (4, 1, 1)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a", "c", "d", "e"]
    printed = capsys.readouterr().out.splitlines()  # say(..., out=True) lands on this process's stdout
    assert sorted(line.split()[0] for line in printed) == ["a", "c", "d", "e"]
    assert {line.split()[-1] for line in printed} != {str(os.getpid())}  # not run here


def test_a_worker_that_dies_fails_its_file_only(tmp_path):
    buf = io.StringIO()
    names = ["a", "b", "c", "d"]
    summary = run_batch(jobs_in(tmp_path, names), workers.ProcessPool(TouchWork(die_at="b"), 2), reporter_to(buf))
    assert (summary.done, summary.failed, summary.exit_code) == (3, 1, 1)
    assert f"error: {tmp_path / 'b'}: the worker process died (exit code 3); out of memory?" in buf.getvalue()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a", "c", "d"]  # its temporary file removed


def test_a_worker_that_dies_after_writing_its_outputs_counts_the_file_done(tmp_path):
    buf = io.StringIO()
    summary = run_batch(jobs_in(tmp_path, ["a", "b", "c"]), workers.ProcessPool(TouchWork(die_after="b"), 2),
                        reporter_to(buf))
    assert (summary.done, summary.failed, summary.exit_code) == (3, 0, 0)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a", "b", "c"]


def test_a_worker_that_dies_on_the_last_job_is_not_replaced(tmp_path):
    pool = workers.ProcessPool(TouchWork(die_at="b"), 2)
    summary = run_batch(jobs_in(tmp_path, ["a", "b"]), pool, reporter_to(io.StringIO()))
    assert (summary.done, summary.failed) == (1, 1)
    assert pool.next_id == 2  # no third worker started (and waited for): no job was left for it


class DiesMidMessage(TouchWork):
    """``TouchWork`` whose worker for ``b`` writes its output, then exits while a
    large note is half-way through the pipe (the main process, busy printing
    a's note, is not reading it)."""

    def __call__(self):
        touch = super().__call__()

        def work(job, say):
            if job.src.name != "b":
                return touch(job, say)
            time.sleep(0.3)  # a's note first
            job.outputs[0].write_text("ok")
            threading.Thread(target=say, args=("x" * 8_000_000,), daemon=True).start()
            time.sleep(0.5)
            os._exit(3)

        return work


class SlowToPrint(io.StringIO):
    """A console that takes a while over a's note."""

    def write(self, text):
        if f"{os.sep}a: looked at it" in text:
            time.sleep(2)
        return super().write(text)


@pytest.mark.timeout(60)
def test_a_worker_that_dies_in_the_middle_of_a_message_fails_nothing_else(tmp_path):
    # With one queue shared by the workers, b's worker died holding its lock with a
    # message half-written, and the batch hung (CI timed out on this, session 18).
    buf = SlowToPrint()
    summary = run_batch(jobs_in(tmp_path, ["a", "b", "c", "d"]), workers.ProcessPool(DiesMidMessage(), 2),
                        reporter_to(buf))
    assert (summary.done, summary.failed) == (4, 0)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a", "b", "c", "d"]


class Unusable:
    def __call__(self):
        raise WeightsError("weights.bin: not usable")


def test_a_worker_that_cannot_start_stops_the_batch(tmp_path):
    with pytest.raises(RestoreError, match="^weights.bin: not usable$"):
        run_batch(jobs_in(tmp_path, ["a", "b"]), workers.ProcessPool(Unusable(), 2), reporter_to(io.StringIO()))
    assert not (tmp_path / "out").exists()


class UsableTwice(TouchWork):
    """``TouchWork`` whose third and later workers cannot start (counted in a file)."""

    def __init__(self, counter: Path, die_at=None):
        super().__init__(die_at=die_at, pause=1.0)  # the survivor is still on a when b is found dead
        self.counter = counter

    def __call__(self):
        with open(self.counter, "a") as f:
            f.write("x")
        if self.counter.stat().st_size > 2:
            raise WeightsError("weights.bin: not usable")
        return super().__call__()


def test_a_replacement_worker_that_cannot_start_leaves_the_others_working(tmp_path):
    buf = io.StringIO()
    names = ["a", "b", "c", "d", "e"]
    pool = workers.ProcessPool(UsableTwice(tmp_path / "builds", die_at="b"), 2)
    summary = run_batch(jobs_in(tmp_path, names), pool, reporter_to(buf))
    assert (summary.done, summary.failed) == (4, 1)  # only b, whose worker died
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a", "c", "d", "e"]
    assert (tmp_path / "builds").read_text() == "xxx"  # the replacement was tried once


def test_auto_processes(monkeypatch):
    monkeypatch.setattr(workers, "cpu_count", lambda: 4)
    monkeypatch.setattr(workers, "may_have_cuda", lambda: False)
    monkeypatch.setattr(workers, "available_memory", lambda: 64 * workers.GIB)
    assert [workers.auto_processes(n, "auto") for n in (0, 1, 3, 9)] == [1, 1, 3, 4]
    monkeypatch.setattr(workers, "available_memory", lambda: 5 * workers.GIB)
    assert workers.auto_processes(9, "cpu") == 2  # 2 GiB each
    monkeypatch.setattr(workers, "available_memory", lambda: None)
    assert workers.auto_processes(9, "cpu") == 4
    assert workers.auto_processes(9, "cuda") == 1
    monkeypatch.setattr(workers, "may_have_cuda", lambda: True)
    assert (workers.auto_processes(9, "auto"), workers.auto_processes(9, "cpu")) == (1, 4)


def test_other_exceptions_are_bugs_and_propagate(tmp_path):
    def work(job, note):
        raise TypeError("a bug")

    with pytest.raises(TypeError):
        run_batch(jobs_in(tmp_path, ["a"]), work, reporter_to(io.StringIO()))


def test_progress_bar_only_on_a_terminal_for_several_images(tmp_path):
    for terminal, names, shown in [(True, ["a", "b"], True), (False, ["a", "b"], False), (True, ["a"], False)]:
        buf = io.StringIO()
        run_batch(jobs_in(tmp_path, names), touch_work(), reporter_to(buf, terminal=terminal))
        assert ("/2" in buf.getvalue()) == shown, (terminal, names)


def test_describe():
    assert describe(PermissionError(13, "Permission denied", "out/a.png")) == "Permission denied: out/a.png"
    assert describe(MemoryError()) == "out of memory"
    assert describe(ImageError("x.png: two\n lines")) == "x.png: two lines"


def test_summary_rate():
    s = Summary(total=4, done=3, failed=1, seconds=2.0)
    assert s.line() == "done 3, skipped 0, failed 1 (2.0 s, 0.50 s/image)"


# --- inputs and output names --------------------------------------------------------------------


@pytest.mark.parametrize("rel, safe", [
    ("a.png", "a.png"),
    ("sub/a.png", "sub/a.png"),
    ("../../a.png", "a.png"),
    ("/etc/a.png", "etc/a.png"),
    ("x/../../y/./a.png", "x/y/a.png"),
])
def test_safe_relpath(rel, safe):
    assert safe_relpath(rel) == PurePath(safe)


def test_safe_relpath_refuses_an_empty_name():
    with pytest.raises(ValueError):
        safe_relpath("../..")


def test_output_names():
    assert output_name(PurePath("s/a.JPG")) == PurePath("s/a.JPG")
    assert output_name(PurePath("a.gif")) == PurePath("a.png")
    assert output_name(PurePath("a.jpg"), "_x", ".tif") == PurePath("a_x.tif")
    assert sidecar_name(PurePath("s/a_x.jpg"), "mask") == PurePath("s/a_x_mask.png")


def test_collect_files_folders_globs_and_problems(tmp_path):
    write_image(tmp_path / "in" / "b.png")
    write_image(tmp_path / "in" / "sub" / "a.jpg")
    write_image(tmp_path / "in" / ".hidden" / "h.png")
    write_image(tmp_path / "in" / "._junk.jpg")
    (tmp_path / "in" / "notes.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    sources, problems = collect([str(tmp_path / "in"), str(tmp_path / "in" / "b.png"), str(tmp_path / "in" / "notes.txt"),
                                 str(tmp_path / "*" / "sub" / "*.jpg"), str(tmp_path / "empty"), str(tmp_path / "nope*")])
    assert [(s.path.relative_to(tmp_path), str(s.rel)) for s in sources] == [
        (Path("in/b.png"), "b.png"),  # the same file again under the same name is kept once
        (Path("in/sub/a.jpg"), "sub/a.jpg"),
        (Path("in/notes.txt"), "notes.txt"),  # named explicitly: read, and fails there
        (Path("in/sub/a.jpg"), "in/sub/a.jpg"),
    ]
    assert problems == [(str(tmp_path / "empty"), "no images found"), (str(tmp_path / "nope*"), "no such file, folder or match")]


def test_collect_names_each_of_several_folders_below_its_own_name(tmp_path):
    for folder in ("x", "y"):
        write_image(tmp_path / folder / "a.png")
    write_image(tmp_path / "y" / "sub" / "b.png")
    write_image(tmp_path / "c.png")
    (tmp_path / "empty").mkdir()
    args = [tmp_path / "x", f"{tmp_path / 'y'}/", tmp_path / "x", tmp_path / "c.png", tmp_path / "empty"]
    sources, problems = collect([str(a) for a in args])
    assert [str(s.rel) for s in sources] == ["x/a.png", "y/a.png", "y/sub/b.png", "c.png"]  # x twice: kept once
    assert problems == [(str(tmp_path / "empty"), "no images found")]
    sources, _ = collect([str(tmp_path / "y"), str(tmp_path / "empty")])  # one folder with images: as before
    assert [str(s.rel) for s in sources] == ["a.png", "sub/b.png"]


def test_collect_excludes_the_output_folder(tmp_path):
    write_image(tmp_path / "in" / "a.png")
    write_image(tmp_path / "in" / "out" / "a.png")
    sources, _ = collect([str(tmp_path / "in")], exclude=tmp_path / "in" / "out")
    assert [str(s.rel) for s in sources] == ["a.png"]


def test_plan_flags_case_insensitive_collisions_and_input_overwrites(tmp_path):
    a, b = write_image(tmp_path / "a.png"), write_image(tmp_path / "x" / "A.png")
    jobs = plan([Source(a, PurePath("a.png")), Source(b, PurePath("A.png"))], tmp_path / "out", lambda rel: [rel])
    assert jobs[0].error is None and "also the output of" in jobs[1].error
    jobs = plan([Source(a, PurePath("a.png"))], tmp_path, lambda rel: [rel])
    assert "would overwrite the input" in jobs[0].error


def test_plan_never_writes_over_another_input_of_the_batch(tmp_path):
    # x/a.png's output (-o y) is y/a.png, itself an input: refused before anything is written.
    a, b = write_image(tmp_path / "x" / "a.png"), write_image(tmp_path / "y" / "a.png")
    jobs = plan([Source(a, PurePath("a.png")), Source(b, PurePath("a.png"))], tmp_path / "y", lambda rel: [rel])
    assert f"would overwrite the batch's input {b}" in jobs[0].error
    assert "would overwrite the input;" in jobs[1].error


# --- Ctrl-C on a real batch ---------------------------------------------------------------------


@pytest.mark.skipif(os.name != "posix", reason="sends signals")
@pytest.mark.parametrize("jobs, sig, code", [("1", signal.SIGINT, 130), ("2", signal.SIGINT, 130), ("1", signal.SIGTERM, 143), ("2", signal.SIGTERM, 143)])
def test_sigint_leaves_only_whole_files_and_skip_existing_resumes(tmp_path, tiny_weights, jobs, sig, code):
    """Ctrl-C, or SIGTERM (kill, timeout, docker stop) sent to the main process."""
    names = [f"img{i:02d}.png" for i in range(30)]
    for i, name in enumerate(names):
        write_image(tmp_path / "in" / name, (48, 48), seed=i)
    out = tmp_path / "out"
    cmd = restore_cmd("derain", tmp_path / "in", "-o", out, "--weights", tiny_weights, "--device", "cpu", "-j", jobs)

    def finished() -> list[str]:
        return sorted(p.name for p in out.glob("*") if not p.name.startswith(".")) if out.exists() else []

    # SIGINT may be ignored in a background job's children: give it back its default.
    proc = subprocess.Popen(cmd, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not finished() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    done = finished()
    assert 0 < len(done) < len(names), "the batch was not interrupted midway"
    assert f"done {len(done)}, skipped 0, failed 0, interrupted {len(names) - len(done)}" in stderr
    assert sorted(p.name for p in out.iterdir()) == done  # no temporary files left behind
    for name in done:
        with Image.open(out / name) as img:
            img.verify()
        with Image.open(out / name) as img:
            img.load()  # decodes completely
            assert img.size == (48, 48)

    rerun = subprocess.run([*cmd, "--skip-existing"], env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert f"done {len(names) - len(done)}, skipped {len(done)}, failed 0" in rerun.stderr
    assert sorted(p.name for p in out.iterdir()) == names
