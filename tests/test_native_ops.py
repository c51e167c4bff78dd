"""The compiled CPU sparse conv (ops.native, kernels/sparse_conv_cpu.cpp) against ops.reference."""

import ctypes
import logging
import platform
import subprocess

import pytest
import torch

from restore_cli.ops import fast, native, reference

from .test_fast_ops import case, close, conv_params


@pytest.fixture(scope="module")
def built():
    if native.compiler() is None:
        pytest.skip("no C++ compiler on PATH: the kernel was not built (PyTorch's path runs instead)")
    if native.library() is None:
        pytest.fail("a C++ compiler is here but the kernel did not build (see the log)")


def channels_last(x):
    return x.contiguous(memory_format=torch.channels_last)


# (batch, Cin, H, W): a single pixel, single rows and columns, a batch, a wide input
SHAPES = [(1, 1, 1, 1), (2, 3, 5, 7), (1, 4, 1, 9), (3, 2, 9, 1), (2, 6, 12, 10), (1, 72, 6, 40)]


@pytest.mark.parametrize("cout", [8, 32, 64])
@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("density", [0.0, 0.1, 0.3, 0.7, 1.0])
@pytest.mark.parametrize("shape", SHAPES)
def test_kernel_matches_the_reference(built, shape, density, k, cout):
    x, mask = case(shape, density)
    weight, bias = conv_params(shape[1], k, cout)
    with torch.inference_mode():
        got = native.sparse_conv2d(channels_last(x), mask, weight, bias)
        close(got, reference.masked_conv2d(x, mask, weight, bias))
        assert got.is_contiguous(memory_format=torch.channels_last)
        close(native.sparse_conv2d(channels_last(x), mask, weight), reference.masked_conv2d(x, mask, weight))


@pytest.mark.parametrize("cout", [16, 24, 40, 48, 56])  # every width it takes
def test_kernel_matches_the_reference_at_each_width(built, cout):
    test_kernel_matches_the_reference(built, (2, 6, 12, 10), 0.3, 3, cout)


def test_kernel_soft_mask_and_strided_weights(built):
    x, mask = case((2, 5, 11, 13), 0.5)
    mask = mask * torch.rand(mask.shape, generator=torch.Generator().manual_seed(3))  # values in (0, 1)
    weight, bias = conv_params(5, 3, 16)
    weight = channels_last(weight)  # as a channels-last model holds them
    with torch.inference_mode():
        close(native.sparse_conv2d(channels_last(x), mask, weight, bias), reference.masked_conv2d(x, mask, weight, bias))


def test_kernel_gives_the_same_bits_on_one_thread_and_two(built):
    x, mask = case((1, 32, 40, 48), 0.2)
    weight, bias = conv_params(32, 3, 32)
    threads = torch.get_num_threads()
    outs = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            with torch.inference_mode():
                outs.append(native.sparse_conv2d(channels_last(x), mask, weight, bias))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(*outs)  # each pixel is summed by one thread in one order


@pytest.mark.parametrize("why", ["autograd", "not channels-last", "float64", "cout 12", "turned off"])
def test_kernel_declines_what_it_does_not_take(built, monkeypatch, why):
    x, mask = case((1, 4, 6, 7), 0.3)
    weight, bias = conv_params(4, 3, 12 if why == "cout 12" else 8)
    x = x if why == "not channels-last" else channels_last(x)
    if why == "float64":
        x, mask, weight, bias = (t.double() for t in (x, mask, weight, bias))
    if why == "turned off":
        monkeypatch.setattr(native, "ENABLED", False)
    weight.requires_grad_(why == "autograd")
    with torch.inference_mode(why != "autograd"):
        assert native.sparse_conv2d(x, mask, weight, bias) is None
        # masked_conv2d then runs PyTorch's path, with the same result
        close(fast.masked_conv2d(x, mask, weight, bias), reference.masked_conv2d(x, mask, weight, bias))


@pytest.mark.parametrize("density, used", [(0.1, True), (0.4, True), (0.7, False), (1.0, False)])
def test_masked_conv2d_runs_the_kernel_up_to_its_density(built, monkeypatch, density, used):
    calls = []
    kernel = native.sparse_conv2d
    monkeypatch.setattr(native, "sparse_conv2d", lambda *a: calls.append(1) or kernel(*a))
    x, mask = case((1, 8, 20, 20), density)
    weight, bias = conv_params(8, 3, 8)
    with torch.inference_mode():
        got = fast.masked_conv2d(channels_last(x), mask, weight, bias)
    close(got, reference.masked_conv2d(x, mask, weight, bias))
    assert bool(calls) == used


def test_kernel_source_compiles_without_warnings(tmp_path):
    cxx = native.compiler()
    if cxx is None:
        pytest.skip("no C++ compiler on PATH")
    cmd = [cxx, *native.FLAGS, "-Wall", "-Wextra", "-Werror", str(native.SOURCE), "-o", str(tmp_path / "k.so")]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="an x86 instruction-set test")
def test_kernel_built_for_plain_x86_64_matches_the_reference(built, monkeypatch, tmp_path):
    """Vectors of 8 floats on a CPU without AVX (SSE2 only): the compiler splits them."""
    flags = [f if f != "-march=native" else "-march=x86-64" for f in native.FLAGS]
    subprocess.run([native.compiler(), *flags, str(native.SOURCE), "-o", str(tmp_path / "k.so")], check=True)
    monkeypatch.setattr(native, "library", lambda: native.bind(ctypes.CDLL(str(tmp_path / "k.so"))))
    for shape, k, cout in [((2, 6, 12, 10), 3, 8), ((1, 72, 6, 40), 3, 32), ((1, 5, 9, 7), 5, 64)]:
        test_kernel_matches_the_reference(built, shape, 0.3, k, cout)


def test_build_is_cached_by_what_it_is_built_from(built, tmp_path):
    cxx = native.compiler()
    lib = native.build(cxx, tmp_path)
    stamp = lib.stat().st_mtime_ns
    assert native.build(cxx, tmp_path) == lib and lib.stat().st_mtime_ns == stamp  # not rebuilt
    assert [p.name for p in tmp_path.iterdir()] == [lib.name]  # no temporary files left


def test_no_compiler_or_a_failed_build_falls_back_to_pytorch(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(native, "cache_dir", lambda: tmp_path)
    monkeypatch.setenv("CXX", "false")  # a "compiler" that fails
    monkeypatch.setattr(native.shutil, "which", lambda name: "/bin/false" if name == "false" else None)
    native.library.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger=native.__name__):
            assert native.library() is None
        assert "runs in PyTorch" in caplog.text
        x, mask = case((1, 8, 9, 9), 0.3)
        weight, bias = conv_params(8, 3, 8)
        with torch.inference_mode():
            assert native.sparse_conv2d(channels_last(x), mask, weight, bias) is None
        assert list(tmp_path.iterdir()) == []  # the failed build left nothing
        monkeypatch.setattr(native.shutil, "which", lambda name: None)  # no compiler at all
        native.library.cache_clear()
        assert native.library() is None
    finally:
        native.library.cache_clear()


def test_a_failed_build_is_said_once_and_not_retried(monkeypatch, tmp_path, caplog):
    fake = tmp_path / "fake-c++"
    fake.write_text('#!/bin/sh\n[ "$1" = --version ] && { echo fake 1.0; exit 0; }\necho "fake: error: no" >&2; exit 1\n')
    fake.chmod(0o755)
    monkeypatch.setenv("CXX", str(fake))
    monkeypatch.setattr(native, "cache_dir", lambda: tmp_path / "cache")
    try:
        for run, said in [(1, True), (2, False)]:
            native.library.cache_clear()
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger=native.__name__):
                assert native.library() is None
            assert ("fake: error: no" in caplog.text) == said, run
        (failed,) = (tmp_path / "cache").glob("*.failed")  # what the compiler said, kept
        assert "fake: error: no" in failed.read_text()
    finally:
        native.library.cache_clear()
