"""Tiled inference: full coverage, any size, a clear error for tiny images, OOM tile halving."""

import numpy as np
import pytest
import torch

from restore_cli.errors import ImageError
from restore_cli.models import SPAIR, TINY
from restore_cli.pipeline import Pipeline, _tiles


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return SPAIR(TINY).eval()


@pytest.mark.parametrize("size,tile", [(100, 32), (31, 32), (64, 0), (65, 16)])
def test_tiles_cover_exactly_once(size, tile):
    covered = np.zeros(size, int)
    for a, b in _tiles(size, tile):
        covered[a:b] += 1
        assert b - a <= (tile or size)
    assert (covered == 1).all()


@pytest.mark.parametrize("shape", [(37, 53), (8, 70), (64, 64)])
def test_restore_any_size(model, shape):
    rgb = np.random.default_rng(0).random((*shape, 3), dtype=np.float32)
    pipe = Pipeline.from_model(model, "derain", device="cpu", tile=24, tile_pad=8)
    out, mask = pipe.restore(rgb)
    assert out.shape == rgb.shape and out.dtype == np.float32
    assert mask.shape == shape and mask.dtype == bool
    assert 0 <= out.min() and out.max() <= 1
    assert np.array_equal(pipe.mask(rgb), mask)  # NetL alone gives the same mask


def test_untiled_matches_direct_model_call(model):
    rgb = np.random.default_rng(1).random((40, 48, 3), dtype=np.float32)
    out, mask = Pipeline.from_model(model, "derain", device="cpu", tile=0).restore(rgb)
    with torch.no_grad():
        ref, ref_mask = model(torch.from_numpy(rgb.transpose(2, 0, 1))[None])
    np.testing.assert_allclose(out, ref[0].clamp(0, 1).permute(1, 2, 0).numpy(), atol=1e-6)
    assert np.array_equal(mask, ref_mask[0, 0].numpy() > 0.5)


def test_a_given_mask_replaces_netls_in_every_tile(model):
    """restore(rgb, mask): NetR works with that mask (an oracle for evaluation), tiled or not."""
    rgb = np.random.default_rng(2).random((40, 48, 3), dtype=np.float32)
    given = np.zeros((40, 48), bool)
    given[5:30, 10:20] = True
    x = torch.from_numpy(rgb.transpose(2, 0, 1))[None]
    with torch.no_grad():
        ref, ref_mask = model(x, torch.from_numpy(given.astype(np.float32))[None, None])
        own, own_mask = model(x, None)
        same, _ = model(x, own_mask)  # NetL's own mask, given: the same output
    torch.testing.assert_close(same, own)
    assert np.array_equal(ref_mask[0, 0].numpy() > 0.5, given)
    assert not torch.allclose(ref, own)  # the mask does change NetR's output
    untiled, mask = Pipeline.from_model(model, "derain", device="cpu", tile=0).restore(rgb, given)
    np.testing.assert_allclose(untiled, ref[0].clamp(0, 1).permute(1, 2, 0).numpy(), atol=1e-6)
    assert np.array_equal(mask, given)
    _, tiled_mask = Pipeline.from_model(model, "derain", device="cpu", tile=16, tile_pad=4).restore(rgb, given)
    assert np.array_equal(tiled_mask, given)  # each tile got its own piece of the mask


def test_too_small_image_is_a_clear_error(model):
    with pytest.raises(ImageError, match="at least"):
        Pipeline.from_model(model, "derain", device="cpu").restore(np.zeros((4, 50, 3), np.float32))


def test_cuda_oom_halves_the_tile(model, monkeypatch):
    pipe = Pipeline.from_model(model, "derain", device="cpu", tile=128, tile_pad=4)
    pipe.device = torch.device("cuda")  # pretend; _run_tile is replaced below
    seen = []

    def fake_run_tile(rgb, restore, given=None):
        seen.append(rgb.shape[:2])
        if max(rgb.shape[:2]) > 80:
            raise torch.cuda.OutOfMemoryError("fake")
        return rgb.copy(), np.zeros(rgb.shape[:2], bool)

    monkeypatch.setattr(pipe, "_run_tile", fake_run_tile)
    rgb = np.random.default_rng(2).random((128, 128, 3), dtype=np.float32)
    out, _ = pipe.restore(rgb)
    np.testing.assert_allclose(out, rgb, atol=1e-6)  # stitched back
    assert max(max(s) for s in seen[1:]) <= 80  # retried with smaller tiles


@pytest.mark.parametrize("message, raised", [
    ("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 bytes.",
     MemoryError),  # batch.py reports it per file and goes on
    ("some other torch failure", RuntimeError),  # a bug: not disguised as a file error
])
def test_cpu_allocation_failure_becomes_memory_error(model, monkeypatch, message, raised):
    pipe = Pipeline.from_model(model, "derain", device="cpu", tile=64, tile_pad=4)

    def failing_run_tile(rgb, restore, given=None):
        raise RuntimeError(message)

    monkeypatch.setattr(pipe, "_run_tile", failing_run_tile)
    with pytest.raises(raised) as info:
        pipe.restore(np.zeros((64, 64, 3), np.float32))
    assert type(info.value) is raised


def test_tiles_blend_without_seams(model, monkeypatch):
    """Tiles whose outputs disagree by a constant offset blend smoothly across the overlap."""
    pipe = Pipeline.from_model(model, "derain", device="cpu", tile=32, tile_pad=8)
    calls = []

    def offset_tile(rgb, restore, given=None):  # each tile adds its own constant: a seam if stitched hard
        calls.append(1)
        return rgb + 0.01 * len(calls), np.zeros(rgb.shape[:2], bool)

    monkeypatch.setattr(pipe, "_run_tile", offset_tile)
    rgb = np.full((64, 64, 3), 0.5, np.float32)
    out, _ = pipe.restore(rgb)
    jumps = np.abs(np.diff(out[..., 0], axis=1)).max()
    assert jumps < 0.01 / 4  # a hard seam would jump by the full offset of 0.01
    assert out.min() >= 0.5 + 0.01 - 1e-6 and out.max() <= 0.5 + 0.04 + 1e-6


def test_bf16_computes_in_bf16_and_returns_fp32_close_to_fp32(model):
    rgb = np.random.default_rng(2).random((40, 48, 3), dtype=np.float32)
    fp32 = Pipeline.from_model(model, "derain", device="cpu", precision="fp32", tile=0)
    bf16 = Pipeline.from_model(model, "derain", device="cpu", precision="bf16", tile=0)
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    (out32, mask32), (out16, mask16) = fp32.restore(rgb), bf16.restore(rgb)
    assert out16.dtype == np.float32 and mask16.dtype == bool
    assert not np.array_equal(out16, out32)  # the convs did run in bf16
    assert np.abs(out16 - out32).mean() < 2e-3
    assert (mask16 != mask32).mean() < 0.05
    given = rgb[..., 0] > 0.5  # a mask that replaces NetL's works in bf16 too
    out_given, used = bf16.restore(rgb, given)
    assert np.array_equal(used, given) and np.abs(out_given - fp32.restore(rgb, given)[0]).mean() < 2e-3


def test_bf16_adds_the_residual_to_the_photo_in_fp32():
    torch.manual_seed(0)
    model = SPAIR(TINY).eval()
    torch.nn.init.zeros_(model.netr.tail.weight)
    torch.nn.init.zeros_(model.netr.tail.bias)  # NetR's residual is 0: the output is the input
    rgb = np.random.default_rng(3).random((24, 40, 3), dtype=np.float32)
    out, _ = Pipeline.from_model(model, "derain", device="cpu", precision="bf16", tile=0).restore(rgb)
    np.testing.assert_array_equal(out, rgb)  # not rounded to bf16's 8 bits of mantissa


def test_precision_auto_is_bf16_only_on_a_cpu_that_computes_it(monkeypatch):
    import restore_cli.pipeline as pipeline

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    for native, expected in ((True, torch.bfloat16), (False, torch.float32)):
        monkeypatch.setattr(pipeline, "native_bf16", lambda: native)
        assert pipeline.pick_precision("auto", cpu) == expected
        assert pipeline.pick_precision("fp32", cpu) == torch.float32
        assert pipeline.pick_precision("bf16", cpu) == torch.bfloat16  # asked for: even if emulated
        assert pipeline.pick_precision("auto", cuda) == torch.float32  # the CUDA kernels are fp32
    with pytest.raises(ValueError, match="CPU only"):
        pipeline.pick_precision("bf16", cuda)
    with pytest.raises(ValueError, match="choose from"):
        pipeline.pick_precision("fp16", cpu)


def test_tta_averages_the_four_flips_flipped_back(model):
    """--tta: the output is the mean of the four flipped passes, each flipped back; the mask their majority."""
    rgb = np.random.default_rng(3).random((30, 44, 3), dtype=np.float32)
    given = np.zeros((30, 44), bool)
    given[3:20, 5:12] = True
    plain = Pipeline.from_model(model, "derain", device="cpu", tile=16, tile_pad=4)
    tta = Pipeline.from_model(model, "derain", device="cpu", tile=16, tile_pad=4, tta=True)
    for mask in (None, given):
        outs, masks = [], []
        for axes in [(), (1,), (0,), (0, 1)]:
            flip = (lambda a: np.flip(a, axes)) if axes else (lambda a: a)
            o, m = plain.restore(np.ascontiguousarray(flip(rgb)), None if mask is None else flip(mask).copy())
            outs.append(flip(o))
            masks.append(flip(m))
        out, used = tta.restore(rgb, mask)
        np.testing.assert_allclose(out, np.mean(outs, axis=0), atol=1e-6)
        assert np.array_equal(used, np.mean(masks, axis=0) >= 0.5)
        assert not np.allclose(out, plain.restore(rgb, mask)[0], atol=1e-4)  # the flips do change it
        if mask is None:  # restore mask --tta: the same majority, without NetR
            assert np.array_equal(tta.mask(rgb), used)
    assert np.array_equal(tta.restore(rgb, given)[1], given)  # a given mask is every pass's mask
