"""Rain synthesis: deterministic under a seed, regimes at the real sets' PSNR, mask = thresholded diff."""

import numpy as np
import pytest

from restore_cli.metrics import y_psnr
from restore_cli.synth.mask import degradation_mask
from restore_cli.synth.degraders import degrader
from restore_cli.synth.rain import REGIMES, add_rain, random_regime


def photo(seed=0, h=96, w=128):
    """A textured stand-in photo: smooth gradients plus noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([0.3 + 0.3 * yy, 0.4 + 0.2 * xx, 0.35 + 0.1 * (xx + yy)], -1)
    return np.clip(base + rng.normal(0, 0.03, base.shape), 0, 1).astype(np.float32)


def test_deterministic_under_seed():
    clean = photo()
    a = add_rain(clean, np.random.default_rng(7), "heavy")
    b = add_rain(clean, np.random.default_rng(7), "heavy")
    c = add_rain(clean, np.random.default_rng(8), "heavy")
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_rain_only_adds_light_before_haze():
    clean = photo()
    rainy = add_rain(clean, np.random.default_rng(0), "light")  # light rain has no haze
    assert (rainy >= clean - 1e-6).all()  # screen blending never darkens


@pytest.mark.parametrize("regime,lo,hi", [("light", 22, 31), ("heavy", 9, 19), ("extreme", 7, 14.5)])
def test_regimes_hit_real_benchmark_psnr(regime, lo, hi):
    scores = [y_psnr(add_rain(photo(s), np.random.default_rng(s), regime), photo(s)) for s in range(6)]
    assert lo <= np.median(scores) <= hi, scores


def test_heavy_rain_changes_most_pixels():
    clean = photo()
    rainy = add_rain(clean, np.random.default_rng(3), "heavy")
    changed = (np.abs(rainy - clean).mean(-1) * 255 > 10).mean()
    assert changed > 0.5


def test_extreme_rain_is_heavier_than_heavy():
    """"extreme" covers Rain100H's heavier half: more pixels changed by > 30 levels, brighter."""
    clean = photo()
    heavy, extreme = (add_rain(clean, np.random.default_rng(s), regime) for s, regime in ((4, "heavy"), (4, "extreme")))
    changed = [(np.abs(x - clean).mean(-1) * 255 > 30).mean() for x in (heavy, extreme)]
    assert changed[1] > changed[0] and changed[1] > 0.6, changed
    assert (extreme - clean).mean() > (heavy - clean).mean()


def test_default_mix_draws_as_the_three_regime_mix_did():
    """The shipped derain recipes trained on (light, medium, heavy) = (0.3, 0.3, 0.4); adding
    "extreme" with weight 0 must leave their data, and so their reproduction, unchanged."""
    for seed in range(200):
        old = ("light", "medium", "heavy")[int(np.random.default_rng(seed).choice(3, p=[0.3, 0.3, 0.4]))]
        assert random_regime(np.random.default_rng(seed)) == old


def test_mix_picks_the_regimes_and_is_checked():
    clean = photo()
    only = {r: degrader("derain", mix=[float(r == x) for x in REGIMES]) for r in ("light", "extreme")}
    scores = {r: y_psnr(d(clean, np.random.default_rng(0)), clean) for r, d in only.items()}
    assert scores["light"] > 22 > 15 > scores["extreme"], scores
    with pytest.raises(ValueError, match="rain mix"):
        degrader("derain", mix=[1.0, 0.0, 0.0])(clean, np.random.default_rng(0))
    with pytest.raises(ValueError, match="rain mix"):
        degrader("derain", mix=[1.0, -1.0, 0.0, 1.0])(clean, np.random.default_rng(0))


def test_mask_agrees_with_difference_image():
    clean = photo()
    rainy = add_rain(clean, np.random.default_rng(1), "medium")
    mask = degradation_mask(rainy, clean, threshold=0.1)
    diff = np.abs(rainy - clean).mean(-1)
    assert mask.dtype == bool and mask.shape == clean.shape[:2]
    assert (diff[mask] > 0.1).all() and (diff[~mask] <= 0.1).all()
    assert degradation_mask(rainy, clean, 0.02).sum() > mask.sum()  # the threshold is a real setting


def test_synth_cli_writes_deterministic_pairs(tmp_path):
    import cv2
    from typer.testing import CliRunner

    from restore_cli.synth.cli import app

    src = tmp_path / "clean"
    src.mkdir()
    for i in range(2):
        cv2.imwrite(str(src / f"{i}.png"), (photo(i, 40, 48) * 255).astype(np.uint8))
    runner = CliRunner()
    for out in ("a", "b"):
        r = runner.invoke(app, ["rain", "--clean", str(src), "--out", str(tmp_path / out), "--n", "3", "--seed", "5"])
        assert r.exit_code == 0, r.output
    for sub in ("input", "target", "mask"):
        for name in ("0000.png", "0002.png"):
            a = cv2.imread(str(tmp_path / "a" / sub / name), cv2.IMREAD_UNCHANGED)
            b = cv2.imread(str(tmp_path / "b" / sub / name), cv2.IMREAD_UNCHANGED)
            assert np.array_equal(a, b)
    m = cv2.imread(str(tmp_path / "a" / "mask" / "0000.png"), cv2.IMREAD_UNCHANGED)
    assert set(np.unique(m)) <= {0, 255}
