"""``restore <task>`` and ``restore mask`` end to end, on tiny images and the tiny random model."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import restore_cli.cli
import restore_cli.pipeline
from restore_cli.imageio import read_image
from restore_cli.work import Model

from .conftest import restore_cmd, subprocess_env, write_image


def files_under(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*") if p.is_file()}


def expected_mask(tiny_model, path: Path) -> np.ndarray:
    """The mask the CLI computes by default (``--precision auto``)."""
    pipe = restore_cli.pipeline.Pipeline.from_model(tiny_model, "derain", device="cpu", precision="auto")
    return pipe.mask(read_image(path).rgb)


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def test_single_file(cli, loads, tmp_path):
    src = write_image(tmp_path / "rainy.png", (24, 32))
    result = cli("derain", src, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    out = Image.open(tmp_path / "out" / "rainy.png")
    assert (out.format, out.mode, out.size) == ("PNG", "RGB", (32, 24))
    assert not np.array_equal(np.asarray(out), np.asarray(Image.open(src)))  # it went through the model
    assert "done 1, skipped 0, failed 0" in result.stderr
    assert [c["task"] for c in loads] == ["derain"]


def test_precision_reaches_the_pipeline_and_is_checked(cli, loads, tmp_path):
    src = write_image(tmp_path / "rainy.png", (24, 32))
    assert cli("derain", src, "-o", tmp_path / "a", "--precision", "fp32").exit_code == 0
    assert cli("mask", src, "--precision", "bf16").exit_code == 0
    assert [c["precision"] for c in loads] == ["fp32", "bf16"]
    result = cli("derain", src, "-o", tmp_path / "b", "--precision", "fp16")
    assert result.exit_code == 2 and "fp16" in result.stderr
    assert not (tmp_path / "b").exists()


def test_tta_reaches_the_pipeline_and_changes_the_output(cli, loads, tmp_path):
    src = write_image(tmp_path / "rainy.png", (24, 32))
    assert cli("derain", src, "-o", tmp_path / "a").exit_code == 0
    assert cli("derain", src, "-o", tmp_path / "b", "--tta").exit_code == 0
    assert [c["tta"] for c in loads] == [False, True]
    plain, tta = (np.asarray(Image.open(tmp_path / d / "rainy.png")) for d in "ab")
    assert not np.array_equal(plain, tta)
    assert cli("mask", src, "--tta").exit_code == 0
    assert [c["tta"] for c in loads] == [False, True, True]


def test_default_output_folder_is_restored(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_image(tmp_path / "a.png")
    assert cli("deblur", "a.png").exit_code == 0
    assert files_under(tmp_path / "restored") == {Path("a.png")}


def test_folder_keeps_layout_and_loads_once(cli, loads, tmp_path):
    write_image(tmp_path / "in" / "a.png", (48, 64))  # tiled at -t 32
    write_image(tmp_path / "in" / "sub" / "b.jpg", (16, 20))
    write_image(tmp_path / "in" / "sub" / "deeper" / "c.tif", (20, 16))
    (tmp_path / "in" / "README.txt").write_text("not an image; folders only yield images")
    result = cli("deshadow", tmp_path / "in", "-o", tmp_path / "out", "-t", "32", "--tile-pad", "4", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert files_under(tmp_path / "out") == {Path("a.png"), Path("sub/b.jpg"), Path("sub/deeper/c.tif")}
    assert Image.open(tmp_path / "out" / "sub" / "b.jpg").format == "JPEG"
    assert loads == [dict(task="deshadow", weights=None, device="cpu", tile=32, tile_pad=4, precision="auto", tta=False)]


def test_glob_expanded_keeps_path_below_its_literal_part(cli, tmp_path):
    write_image(tmp_path / "in" / "a.png")
    write_image(tmp_path / "in" / "b.jpg")
    write_image(tmp_path / "in" / "x" / "c.png")
    write_image(tmp_path / "in" / "y" / "c.png")
    result = cli("derain", str(tmp_path / "in" / "*.png"), str(tmp_path / "in" / "*" / "c.png"), "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert files_under(tmp_path / "out") == {Path("a.png"), Path("x/c.png"), Path("y/c.png")}


def test_suffix_and_ext(cli, tmp_path):
    src = write_image(tmp_path / "a.png")
    result = cli("deraindrop", src, "-o", tmp_path / "out", "--suffix", "_clean", "--ext", "JPG")
    assert result.exit_code == 0, result.output
    assert files_under(tmp_path / "out") == {Path("a_clean.jpg")}
    assert Image.open(tmp_path / "out" / "a_clean.jpg").format == "JPEG"


@pytest.mark.parametrize("args", [["--ext", "gif"], ["--suffix", "/../x"], ["-o", "a.png"], ["-t", "4"]])
def test_bad_options_are_usage_errors(cli, loads, tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    write_image(tmp_path / "a.png")
    result = cli("derain", "a.png", *args)
    assert result.exit_code == 2
    assert files_under(tmp_path) == {Path("a.png")} and not loads


def test_input_format_that_cannot_be_written_becomes_png(cli, tmp_path):
    src = write_image(tmp_path / "a.gif", mode="P")
    assert cli("derain", src, "-o", tmp_path / "out").exit_code == 0
    assert Image.open(tmp_path / "out" / "a.png").format == "PNG"


def test_save_mask_is_binary_input_sized_and_the_models(cli, tiny_model, tmp_path):
    src = write_image(tmp_path / "a.jpg", (20, 36))
    result = cli("derain", src, "-o", tmp_path / "out", "--suffix", "_x", "--save-mask")
    assert result.exit_code == 0, result.output
    assert files_under(tmp_path / "out") == {Path("a_x.jpg"), Path("a_x_mask.png")}
    mask = Image.open(tmp_path / "out" / "a_x_mask.png")
    assert (mask.format, mask.mode, mask.size) == ("PNG", "L", (36, 20))
    values = np.asarray(mask)
    assert set(np.unique(values)) <= {0, 255}
    np.testing.assert_array_equal(values == 255, expected_mask(tiny_model, src))


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "I;16"])
def test_grey_alpha_and_16_bit_pass_through(cli, tmp_path, mode):
    src = write_image(tmp_path / "a.png", mode=mode)
    assert cli("derain", src, "-o", tmp_path / "out").exit_code == 0
    out = Image.open(tmp_path / "out" / "a.png")
    assert out.mode == Image.open(src).mode and out.size == (32, 24)


def test_image_notes_are_printed(cli, tmp_path):
    src = write_image(tmp_path / "cmyk.jpg", mode="CMYK")
    result = cli("derain", src, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert any(line.startswith(f"note: {src}: ") for line in result.stderr.splitlines()), result.stderr


def test_mask_save_and_overlay(cli, tiny_model, tmp_path):
    src = write_image(tmp_path / "in" / "sub" / "a.jpg", (20, 28))
    result = cli("mask", tmp_path / "in", "--save", "--overlay", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert files_under(tmp_path / "out") == {Path("sub/a_mask.png"), Path("sub/a_overlay.png")}
    mask = np.asarray(Image.open(tmp_path / "out" / "sub" / "a_mask.png"))
    assert mask.shape == (20, 28) and set(np.unique(mask)) <= {0, 255}
    np.testing.assert_array_equal(mask == 255, expected_mask(tiny_model, src))
    overlay = Image.open(tmp_path / "out" / "sub" / "a_overlay.png")
    assert (overlay.mode, overlay.size) == ("RGB", (28, 20))
    assert result.stdout == ""


def test_mask_without_save_prints_density(cli, loads, tiny_model, tmp_path):
    srcs = [write_image(tmp_path / f"{n}.png", seed=n) for n in range(2)]
    result = cli("mask", *srcs, "--task", "deblur", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert [name for name, _ in lines] == [str(s) for s in srcs]
    for (_, density), src in zip(lines, srcs):
        assert float(density) == pytest.approx(expected_mask(tiny_model, src).mean(), abs=1e-4)
    assert not (tmp_path / "out").exists()
    assert loads[0]["task"] == "deblur"


def test_bad_file_is_one_line_and_the_batch_goes_on(cli, tmp_path):
    write_image(tmp_path / "in" / "a.png")
    (tmp_path / "in" / "b.png").write_bytes(b"not a png at all")
    write_image(tmp_path / "in" / "c.png")
    result = cli("derain", tmp_path / "in", tmp_path / "missing.png", "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    errors = error_lines(result)
    assert len(errors) == 2
    assert errors[0].startswith(f"error: {tmp_path / 'missing.png'}: no such file")
    assert errors[1].startswith(f"error: {tmp_path / 'in' / 'b.png'}: not an image")
    assert files_under(tmp_path / "out") == {Path("a.png"), Path("c.png")}
    assert "done 2, skipped 0, failed 2" in result.stderr


def test_fail_fast_stops_at_the_first_failure(cli, tmp_path):
    write_image(tmp_path / "in" / "a.png")
    (tmp_path / "in" / "b.png").write_bytes(b"junk")
    write_image(tmp_path / "in" / "c.png")
    result = cli("derain", tmp_path / "in", "-o", tmp_path / "out", "--fail-fast")
    assert result.exit_code == 1
    assert len(error_lines(result)) == 1
    assert files_under(tmp_path / "out") == {Path("a.png")}
    assert "done 1, skipped 0, failed 1, not run 1" in result.stderr


def test_skip_existing_needs_every_output(cli, tmp_path):
    write_image(tmp_path / "in" / "a.png")
    write_image(tmp_path / "in" / "b.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"earlier output")
    (out / "a_mask.png").write_bytes(b"earlier mask")
    (out / "b.png").write_bytes(b"earlier output, but its mask is missing")
    result = cli("derain", tmp_path / "in", "-o", out, "--skip-existing", "--save-mask")
    assert result.exit_code == 0, result.output
    assert "done 1, skipped 1" in result.stderr
    assert (out / "a.png").read_bytes() == b"earlier output"
    assert Image.open(out / "b.png").size == (32, 24) and (out / "b_mask.png").exists()
    assert cli("derain", tmp_path / "in", "-o", out).exit_code == 0  # without the flag: overwritten
    assert Image.open(out / "a.png").size == (32, 24)


def test_duplicate_output_names_are_reported_before_any_work(cli, tmp_path):
    first = write_image(tmp_path / "x" / "a.png", (24, 32))
    second = write_image(tmp_path / "y" / "a.png", (32, 24))
    third = write_image(tmp_path / "y" / "A.jpg", (16, 16))
    out = tmp_path / "out"
    result = cli("derain", first, second, third, "-o", out, "--ext", "png", "--fail-fast")
    assert result.exit_code == 1
    errors = error_lines(result)
    assert [e.split(": ")[1] for e in errors] == [str(second), str(third)]
    assert all(str(first) in e for e in errors)
    assert not out.exists()  # --fail-fast: the collisions stopped the batch before any image

    result = cli("derain", first, second, third, "-o", out, "--ext", "png")
    assert result.exit_code == 1
    assert files_under(out) == {Path("a.png")}
    assert Image.open(out / "a.png").size == (32, 24)  # the first input's, not overwritten


def test_mask_sidecar_colliding_with_an_output_is_reported(cli, tmp_path):
    write_image(tmp_path / "in" / "a.png")
    write_image(tmp_path / "in" / "a_mask.png")
    result = cli("derain", tmp_path / "in", "-o", tmp_path / "out", "--save-mask")
    assert result.exit_code == 1
    assert len(error_lines(result)) == 1 and "a_mask.png" in error_lines(result)[0]


def test_outputs_never_overwrite_inputs(cli, tmp_path):
    src = write_image(tmp_path / "in" / "a.png")
    before = src.read_bytes()
    result = cli("derain", tmp_path / "in", "-o", tmp_path / "in")
    assert result.exit_code == 1
    assert "would overwrite the input" in error_lines(result)[0]
    assert src.read_bytes() == before


def test_output_folder_inside_the_input_is_not_read_back(cli, tmp_path):
    write_image(tmp_path / "in" / "a.png")
    for _ in range(2):
        result = cli("derain", tmp_path / "in", "-o", tmp_path / "in" / "restored")
        assert result.exit_code == 0 and "done 1," in result.stderr
    assert files_under(tmp_path / "in") == {Path("a.png"), Path("restored/a.png")}


def test_outputs_cannot_escape_the_output_folder(cli, tmp_path, monkeypatch):
    outside = tmp_path / "outside"
    write_image(outside / "secret.png")
    write_image(tmp_path / "in" / "a.png")
    (tmp_path / "in" / "linked.png").symlink_to(outside / "secret.png")
    (tmp_path / "in" / "linkdir").symlink_to(outside, target_is_directory=True)
    (tmp_path / "work" / "d").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work")
    before = files_under(tmp_path)
    result = cli("derain", "../in", "../in/*.png", "*/../../in/a.png", str(tmp_path / "in" / "a.png"), "-o", "out")
    assert result.exit_code == 0, result.output
    written = files_under(tmp_path) - before
    assert written == {Path("work/out") / p for p in ("a.png", "linked.png", "d/in/a.png")}


def test_weights_unavailable_is_one_line_exit_2_and_nothing_written(tmp_path):
    from typer.testing import CliRunner

    src = write_image(tmp_path / "a.png")
    missing = tmp_path / "nope.safetensors"
    result = CliRunner().invoke(restore_cli.cli.app, ["derain", str(src), "-o", str(tmp_path / "out"), "--weights", str(missing)])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [f"error: {missing}: no such weights file"]
    assert files_under(tmp_path) == {Path("a.png")}


def test_real_weights_file_runs(tiny_weights, tmp_path):
    from typer.testing import CliRunner

    src = write_image(tmp_path / "a.png")
    result = CliRunner().invoke(restore_cli.cli.app, ["derain", str(src), "-o", str(tmp_path / "out"), "--weights", str(tiny_weights), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "out" / "a.png").size == (32, 24)


def test_a_batch_removes_a_killed_runs_temporary_files_for_its_outputs(cli, tmp_path):
    src = write_image(tmp_path / "a.png")
    stale = tmp_path / "out" / ".a.png.0123abcd.tmp.png"
    stale.parent.mkdir()
    stale.write_bytes(b"half an image")
    os.utime(stale, (time.time() - 7200,) * 2)
    assert cli("derain", src, "-o", tmp_path / "out").exit_code == 0
    assert files_under(tmp_path / "out") == {Path("a.png")}


def test_another_tasks_released_weights_get_a_note(cli, tmp_path, monkeypatch):
    from restore_cli.weights import registry

    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"stands in for the released deblur file")
    monkeypatch.setitem(registry.PINNED_SHA256, "deblur", hashlib.sha256(weights.read_bytes()).hexdigest())
    src = write_image(tmp_path / "a.png")
    for task, noted in [("derain", True), ("deblur", False)]:
        result = cli(task, src, "-o", tmp_path / task, "--weights", weights)
        assert result.exit_code == 0, result.output
        note = f"note: {weights} holds the released deblur weights, not {task}'s"
        assert (note in result.stderr) == noted
    assert "note:" not in cli("derain", src, "-o", tmp_path / "q", "--weights", weights, "-q").stderr


def test_worker_processes_write_what_one_process_writes(tiny_weights, tmp_path):
    from typer.testing import CliRunner

    for i in range(3):
        write_image(tmp_path / "in" / f"{i}.png", seed=i)
    write_image(tmp_path / "in" / "gray.png", mode="LA")
    (tmp_path / "in" / "broken.png").write_bytes(b"not an image")
    args = ["derain", str(tmp_path / "in"), "--weights", str(tiny_weights), "--device", "cpu", "--precision", "fp32",
            "--save-mask"]
    results = {j: CliRunner().invoke(restore_cli.cli.app, [*args, "-o", str(tmp_path / f"out{j}"), "-j", j])
               for j in ("1", "2")}
    for result in results.values():
        assert result.exit_code == 1, result.output
        assert error_lines(result) == [f"error: {tmp_path / 'in' / 'broken.png'}: not an image, or not a supported "
                                       "format (PNG, JPEG, TIFF, WEBP, BMP, GIF, PPM)"]
        assert "done 4, skipped 0, failed 1" in result.stderr
    names = sorted(p.name for p in (tmp_path / "out1").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "out2").iterdir()) and len(names) == 8
    for name in names:
        one, two = (np.asarray(Image.open(tmp_path / f"out{j}" / name)).astype(int) for j in (1, 2))
        assert one.shape == two.shape and np.abs(one - two).max() <= 1, name  # thread counts may round differently


def test_weights_the_workers_cannot_use_are_one_line_exit_2(tmp_path):
    from safetensors.numpy import save_file
    from typer.testing import CliRunner

    for i in range(2):
        write_image(tmp_path / "in" / f"{i}.png", seed=i)
    bogus = tmp_path / "bogus.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(bogus))
    result = CliRunner().invoke(restore_cli.cli.app, ["derain", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
                                                      "--weights", str(bogus), "--device", "cpu", "-j", "2"])
    assert result.exit_code == 2, result.output
    assert len(error_lines(result)) == 1 and error_lines(result)[0].startswith(f"error: {bogus}: "), result.stderr
    assert not (tmp_path / "out").exists()


def test_every_task_and_sub_app_is_a_command():
    from restore_cli.tasks import TASKS

    names = {c.name for c in restore_cli.cli.app.registered_commands} | {g.name for g in restore_cli.cli.app.registered_groups}
    assert names == {*TASKS, "mask", "bench", "weights", "train", "synth"}


def test_version_is_fast_and_imports_no_torch():
    env = subprocess_env()
    check = "import sys, restore_cli.cli; assert 'torch' not in sys.modules"
    subprocess.run([restore_cmd()[0], "-c", check], env=env, check=True, timeout=60)
    best = float("inf")
    for _ in range(2):  # best of two: the machine may be busy
        start = time.perf_counter()
        done = subprocess.run(restore_cmd("--version"), env=env, capture_output=True, text=True, timeout=60)
        best = min(best, time.perf_counter() - start)
    assert done.returncode == 0 and done.stdout.strip() == f"restore {restore_cli.__version__}"
    assert best < 1.5


@pytest.mark.parametrize("has_cupy", [False, True])
def test_cuda_without_cupy_says_so(monkeypatch, capsys, has_cupy):
    import types

    import torch

    from restore_cli.ops import cuda

    fake = types.SimpleNamespace(device=torch.device("cuda"))
    monkeypatch.setattr(restore_cli.pipeline, "load_pipeline", lambda *a: fake)
    monkeypatch.setattr(cuda, "available", lambda: has_cupy)
    assert restore_cli.cli._load_pipeline(Model("derain", device="cuda")) is fake
    note = "CuPy is not installed" in capsys.readouterr().err
    assert note != has_cupy
