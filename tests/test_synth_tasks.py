"""Raindrop, shadow and motion-blur synthesis: seeded, masks follow their documented rules,
the physics shows (refraction, bluish shadows, linear-light blur), and a tiny model trains on each."""

import json

import cv2
import numpy as np
import pytest
import torch

from restore_cli.models import TINY
from restore_cli.synth.blur import add_motion_blur, blur_linear, kernel_from_path
from restore_cli.synth.degraders import degrade_with_mask, degrader
from restore_cli.synth.mask import degradation_mask
from restore_cli.synth.raindrop import add_raindrops
from restore_cli.synth.shadow import add_shadow, sky
from restore_cli.train.data import SyntheticPairs, fixed_val_set
from restore_cli.train.loop import train
from restore_cli.train.recipe import Recipe

from .test_synth import photo

TASKS = ("deraindrop", "deshadow", "deblur")


def scene(seed=0, h=80, w=96):
    """Bright sky over darker textured ground: what drops refract and shadows fall on."""
    img = cv2.GaussianBlur(photo(seed, h, w), (0, 0), 1.0)
    img[: h // 3] = np.clip(img[: h // 3] * 0.3 + [0.55, 0.65, 0.8], 0, 1)
    return img


def flat(h=64, w=64, value=0.5):
    return np.full((h, w, 3), value, np.float32)


@pytest.mark.parametrize("task", TASKS)
def test_deterministic_under_seed(task):
    clean = scene()
    a, mask_a = degrade_with_mask(degrader(task), clean, np.random.default_rng(3), 0.1)
    b, mask_b = degrade_with_mask(degrader(task), clean, np.random.default_rng(3), 0.1)
    c, _ = degrade_with_mask(degrader(task), clean, np.random.default_rng(4), 0.1)
    assert np.array_equal(a, b) and np.array_equal(mask_a, mask_b) and not np.array_equal(a, c)
    assert a.dtype == np.float32 and a.shape == clean.shape and 0 <= a.min() and a.max() <= 1
    assert mask_a.dtype == bool and mask_a.shape == clean.shape[:2]


def test_raindrop_mask_marks_the_drops():
    clean = scene()
    seen = 0
    for s in range(6):
        out, mask = add_raindrops(clean, np.random.default_rng(s))
        if not 0 < mask.mean() < 0.9:
            continue
        seen += 1
        diff = np.abs(out - clean).mean(-1)
        assert diff[mask].mean() > 3 * diff[~mask].mean()  # drops change the image, the glass barely does
        far = cv2.dilate(mask.astype(np.uint8), np.ones((31, 31), np.uint8)) == 0  # beyond any defocused rim
        if far.any():
            assert diff[far].mean() < 0.03
    assert seen >= 3


def test_raindrop_mask_leaves_out_invisible_drops():
    from restore_cli.synth.raindrop import visible_drops

    clean = scene(h=64, w=64)
    drops = np.zeros((64, 64), bool)
    drops[10:30, 10:30] = drops[40:60, 40:60] = True
    degraded = clean.copy()
    degraded[10:30, 10:30] += 0.2  # a visible drop
    degraded[40:60, 40:60] += 0.01  # one that refracts nearly the same colour
    mask = visible_drops(np.clip(degraded, 0, 1), clean, drops)
    assert mask[14:26, 14:26].all() and not mask[40:60, 40:60].any() and not mask[~drops].any()


def test_raindrops_refract_an_inverted_view():
    """Inside drops below the horizon, bright sky shows: the drop flips the scene above into its lower part."""
    clean = scene(h=96, w=96)
    gains = []
    for s in range(6):
        out, mask = add_raindrops(clean, np.random.default_rng(s))
        ground = mask.copy()
        ground[: 96 // 3 + 8] = False
        if ground.sum() > 20:
            gains.append(out[ground].mean() - clean[ground].mean())
    assert gains and np.mean(gains) > 0.02


def test_shadow_darkens_only_and_mask_is_the_dark_region():
    clean = photo(2, 80, 96)
    for s in range(4):
        out, mask = add_shadow(clean, np.random.default_rng(s))
        assert (out <= clean + 1e-5).all()  # a shadow only takes light away
        assert 0 < mask.mean() < 1
        ratio = out.mean(-1) / clean.mean(-1)
        penumbra = ~mask & (np.abs(out - clean).mean(-1) > 0.002)
        assert penumbra.any()  # the soft edge reaches beyond the thresholded matte
        assert ratio[mask].mean() < ratio[penumbra].mean() < 1


def test_sky_is_found_and_takes_no_shadow():
    clean = scene(1)
    top = clean.shape[0] // 3
    found = sky(clean)
    assert found[:top].mean() > 0.8 and found[top:].mean() < 0.05
    assert not sky(photo(2, 80, 96)).any()  # textured everywhere: no sky
    inner = cv2.erode(found.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0  # away from the skyline
    shaded = 0
    for s in range(8):
        out, mask = add_shadow(clean, np.random.default_rng(s))
        assert np.abs(out - clean)[inner].max() < 1e-3 and not mask[inner].any()  # under 1/4 level
        shaded += mask[top:].any()
    assert shaded >= 6  # the ground still takes shadows


def test_shadow_is_bluer():
    clean = photo(3, 80, 96)
    for s in range(4):
        out, mask = add_shadow(clean, np.random.default_rng(s))
        shift = (out[..., 2] / out[..., 0]) / (clean[..., 2] / clean[..., 0])  # B/R after over before
        assert shift[mask].mean() > 1.05  # skylight-only shadow light is blue


def test_blur_in_linear_light_gives_bright_tails():
    img = flat(21, 41, 0.05)
    img[10, 20] = 1.0  # a light on a dark background
    k = kernel_from_path(np.linspace(0, 8, 9) + 0j)  # a 9 px horizontal streak
    linear = blur_linear(img, k)[10, 17:24, 0]
    gamma = cv2.filter2D(img, -1, k, borderType=cv2.BORDER_REFLECT)[10, 17:24, 0]
    assert (linear > gamma + 0.1).all()  # gamma-space averaging would give a dim grey streak


def test_motion_blur_mixes_in_linear_light():
    yy, xx = np.mgrid[0:64, 0:64]
    checks = np.where(((yy // 4 + xx // 4) % 2)[..., None] > 0, 0.9, 0.1).repeat(3, -1).astype(np.float32)
    rises = [add_motion_blur(checks, np.random.default_rng(s))[0].mean() - checks.mean() for s in range(4)]
    assert min(rises) > 0.05  # averaging 0.1/0.9 in linear light lands well above sRGB 0.5


def test_a_still_camera_blurs_only_moving_objects():
    yy, xx = np.mgrid[0:240, 0:320]
    checks = np.where(((yy // 4 + xx // 4) % 2)[..., None] > 0, 0.8, 0.2).repeat(3, -1).astype(np.float32)
    for s in range(4):
        shaken, shaken_mask = add_motion_blur(checks, np.random.default_rng(s))
        still, still_mask = add_motion_blur(checks, np.random.default_rng(s), still=1.0)
        assert shaken_mask.mean() > 0.95  # camera shake smears every edge of the frame
        sharp = np.abs(still - checks).max(-1) < 0.03  # unchanged but for sensor noise
        assert 0.01 < still_mask.mean() < 0.5 and sharp.mean() > 0.5
        assert (still_mask & sharp).sum() < 0.05 * still_mask.sum()  # on the blurred objects, not the sharp rest
    default = add_motion_blur(checks, np.random.default_rng(7))[0]
    assert np.array_equal(default, add_motion_blur(checks, np.random.default_rng(7), still=0.0)[0])


def test_motion_blur_noise_is_mild_and_mask_is_where_the_blur_is_strong():
    for s in range(3):
        out, mask = add_motion_blur(flat(), np.random.default_rng(s))
        assert not mask.any()  # nothing to see on a flat grey
        assert 0 < (out - 0.5).std() < 0.02  # flat areas only get mild sensor noise
    clean = flat(64, 96, 0.2)
    clean[:, 48:] = 0.8  # one vertical edge
    out, mask = add_motion_blur(clean, np.random.default_rng(1))
    strong = degradation_mask(out, clean, 0.1)
    assert strong.any() and mask[strong].mean() > 0.9  # covers the strongly changed pixels
    assert mask.mean() < 0.5  # but not the flat areas either side
    cols = np.nonzero(mask.any(0))[0]
    assert len(cols) and np.abs(cols - 47.5).max() < 24  # strong blur only within a kernel radius of the edge


@pytest.fixture(scope="module")
def clean_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("clean")
    for i in range(2):
        cv2.imwrite(str(root / f"{i}.png"), (scene(i, 64, 64)[..., ::-1] * 255).astype(np.uint8))
    return root


def test_training_pairs_use_the_degraders_own_mask(clean_dir):
    data = SyntheticPairs(clean_dir, add_shadow, crop=32, threshold=0.99, margin=8)  # the diff rule would mark nothing
    masks = torch.cat([data.batch(0, step, 2)[2] for step in range(4)])
    assert masks.sum() > 0 and set(masks.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("task", TASKS)
def test_tiny_model_trains_a_few_steps(task, clean_dir, tmp_path):
    recipe = Recipe(task=task, model=TINY, crop=32, batch=2, lr=2e-3, val_n=2, val_crop=32)
    degrade = degrader(task)
    data = SyntheticPairs(clean_dir, degrade, recipe.crop, recipe.threshold, margin=8)
    val = fixed_val_set(clean_dir, degrade, recipe.val_n, recipe.val_seed, recipe.val_crop, recipe.threshold)
    train("netl", recipe, data, val, tmp_path, steps=2, log_every=2)
    train("netr", recipe, data, val, tmp_path, steps=1, log_every=1)
    for stage, metric in (("netl", "bce"), ("netr", "psnr")):
        line = json.loads((tmp_path / f"{stage}.log").read_text().splitlines()[-1])
        assert np.isfinite(line["loss"]) and np.isfinite(line[metric])


@pytest.mark.parametrize("command,task", [("raindrop", "deraindrop"), ("shadow", "deshadow"), ("blur", "deblur")])
def test_synth_cli_writes_each_tasks_pairs(command, task, clean_dir, tmp_path):
    from typer.testing import CliRunner

    from restore_cli.synth.cli import app
    from restore_cli.train.data import read_rgb

    for out in ("a", "b"):
        args = [command, "--clean", str(clean_dir), "--out", str(tmp_path / out), "--n", "2", "--seed", "5"]
        r = CliRunner().invoke(app, args)
        assert r.exit_code == 0, r.output
    for sub in ("input", "target", "mask"):
        a = cv2.imread(str(tmp_path / "a" / sub / "0001.png"), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(a, cv2.imread(str(tmp_path / "b" / sub / "0001.png"), cv2.IMREAD_UNCHANGED))
    # The written mask is the degrader's own (or the threshold rule's) for pair 0.
    _, expected = degrade_with_mask(degrader(task), read_rgb(clean_dir / "0.png"), np.random.default_rng([5, 0]), 0.1)
    written = cv2.imread(str(tmp_path / "a" / "mask" / "0000.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(written > 0, expected)
