"""Training smoke tests: a tiny model learns in a few steps, and --resume is exact."""

import copy
import json
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from restore_cli.models import SPAIR, TINY, load_spair
from restore_cli.synth.degraders import degrader
from restore_cli.train.data import SyntheticPairs, fixed_val_set
from restore_cli.train.loop import _frozen_netl_pass, export, load_checkpoint, mask_cuts, train, validate
from restore_cli.train.recipe import Recipe

from .test_synth import photo


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("clean")
    for i in range(3):
        cv2.imwrite(str(root / f"{i}.png"), (photo(i, 64, 64) * 255).astype(np.uint8))
    recipe = Recipe(model=TINY, crop=32, batch=4, lr=2e-3, val_n=4, val_crop=32)
    degrade = degrader("derain")
    data = SyntheticPairs(root, degrade, recipe.crop, recipe.threshold, margin=8)
    val = fixed_val_set(root, degrade, recipe.val_n, recipe.val_seed, recipe.val_crop, recipe.threshold)
    return recipe, data, val


def test_recipe_synth_options_reach_the_degrader(setup, tmp_path):
    """A recipe's ``synth`` (here derain's regime mix) shapes both the training and the val data."""
    from restore_cli.metrics import psnr
    from restore_cli.train.cli import datasets

    recipe, root = setup[0], tmp_path
    for i in range(2):
        cv2.imwrite(str(root / f"{i}.png"), (photo(i, 96, 96) * 255).astype(np.uint8))
    scores = {}
    for name, mix in (("light", [1, 0, 0, 0]), ("extreme", [0, 0, 0, 1])):
        r = Recipe.from_dict({**recipe.to_dict(), "synth": {"mix": mix}})
        assert Recipe.from_dict(json.loads(json.dumps(r.to_dict()))).synth == {"mix": mix}  # as checkpoints store it
        pairs, (degraded, clean, _) = datasets(replace(r, scene_relight=0.5), root, root)
        assert pairs.relight == 0.5  # the recipe's relighting reaches the training pairs
        assert torch.equal(datasets(r, root, root)[1][1], clean)  # ... and not the val batch
        train_degraded, train_clean, _ = pairs.batch(0, 0, 2)
        scores[name] = (psnr(degraded.numpy(), clean.numpy(), 1.0), psnr(train_degraded.numpy(), train_clean.numpy(), 1.0))
    assert all(light > 22 > 16 > extreme for light, extreme in zip(scores["light"], scores["extreme"])), scores


def test_batches_depend_only_on_seed_and_step(setup):
    _, data, _ = setup
    a, b = data.batch(0, 5, 2), data.batch(0, 5, 2)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], data.batch(0, 6, 2)[0])


def test_scene_relight_changes_the_clean_target_too(setup):
    """scene_relight relights the clean crop before it is degraded: the pair stays a pair
    (the GT mask is still thresholded |degraded - clean|)."""
    from restore_cli.synth.mask import degradation_mask
    from restore_cli.train.data import relight

    recipe, data, _ = setup
    lit = copy.copy(data)
    lit.relight = 1.0
    plain, relit = data.batch(0, 3, 4), lit.batch(0, 3, 4)
    assert not torch.equal(plain[1], relit[1]) and relit[1].mean() < plain[1].mean()  # relit: mostly darker
    assert torch.equal(relit[1], lit.batch(0, 3, 4)[1])  # still a function of (seed, step)
    for degraded, clean, mask in zip(*relit):
        want = degradation_mask(degraded.permute(1, 2, 0).numpy(), clean.permute(1, 2, 0).numpy(), recipe.threshold)
        assert np.array_equal(mask[0].numpy() > 0.5, want)
    crop = np.random.default_rng(0).random((8, 8, 3)).astype(np.float32)
    assert np.array_equal(relight(crop, np.random.default_rng(1), 0.0), crop)  # strength 0: the photo as it is


def test_netl_then_netr_losses_fall(setup, tmp_path):
    recipe, data, val = setup
    from restore_cli.models import SPAIR

    torch.manual_seed(recipe.seed)
    before = validate(SPAIR(recipe.model), "netl", val, recipe)["bce"]
    ck = train("netl", recipe, data, val, tmp_path, steps=40, log_every=40)
    log = [json.loads(line) for line in (tmp_path / "netl.log").read_text().splitlines()]
    assert log[-1]["bce"] < before

    ck = train("netr", recipe, data, val, tmp_path, steps=40, log_every=40)
    state = load_checkpoint(ck)
    netl_before = load_checkpoint(tmp_path / "netl.ckpt")["model"]
    frozen = [k for k in state["model"] if k.startswith("netl.")]
    assert all(torch.equal(state["model"][k], netl_before[k]) for k in frozen)  # NetL stayed frozen
    log = [json.loads(line) for line in (tmp_path / "netr.log").read_text().splitlines()]
    assert log[-1]["psnr"] > log[-1]["input_psnr"] - 3  # sanity: not diverged
    first = train("netr", recipe, data, val, tmp_path / "short", steps=1, init=tmp_path / "netl.ckpt", log_every=1)
    first_psnr = json.loads((tmp_path / "short" / "netr.log").read_text().splitlines()[0])["psnr"]
    assert log[-1]["psnr"] > first_psnr  # NetR improved over its first step

    out = export(ck, tmp_path / "w.safetensors")
    model = load_spair(out)
    assert model.cfg == recipe.model


def test_resume_is_exact(setup, tmp_path):
    recipe, data, val = setup
    recipe = replace(recipe, netl_steps=6)
    train("netl", recipe, data, val, tmp_path / "straight", log_every=100)
    train("netl", recipe, data, val, tmp_path / "resumed", steps=3, log_every=100)
    train("netl", recipe, data, val, tmp_path / "resumed", resume=True, log_every=100)
    a = load_checkpoint(tmp_path / "straight" / "netl.ckpt")
    b = load_checkpoint(tmp_path / "resumed" / "netl.ckpt")
    assert a["step"] == b["step"] == 6
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=0)


def test_batches_made_ahead_by_workers_train_exactly_as_without(setup, tmp_path):
    recipe, data, val = setup
    recipe = replace(recipe, netl_crops=[[2, 48]])  # the crop changes mid-run: workers must follow it
    a = load_checkpoint(train("netl", recipe, data, val, tmp_path / "inline", steps=4, log_every=100))
    b = load_checkpoint(train("netl", recipe, data, val, tmp_path / "workers", steps=4, log_every=100, workers=2))
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=0)


def test_step_batches_are_the_batches_of_their_steps(setup):
    from restore_cli.train.data import StepBatches, step_batches

    recipe, data, _ = setup
    crop_at = lambda step: 32 if step < 5 else 48  # noqa: E731
    got = list(step_batches(StepBatches(data, recipe.seed, 3, 7, 2, crop_at), workers=2))
    assert len(got) == 4
    for step, batch in zip(range(3, 7), got):
        for a, b in zip(batch, data.batch(recipe.seed, step, 2, crop_at(step))):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/gpu_check.sh runs it where one is lent)")
def test_training_on_the_gpu_saves_checkpoints_that_load_on_the_cpu(setup, tmp_path):
    recipe, data, val = setup
    recipe = replace(recipe, netr_ema=0.9)
    train("netl", recipe, data, val, tmp_path, steps=3, log_every=3, device="cuda", workers=2)
    train("netr", recipe, data, val, tmp_path, steps=3, log_every=3, device="cuda")
    train("netr", recipe, data, val, tmp_path, steps=4, log_every=4, resume=True, device="cuda")
    ck = load_checkpoint(train("netr", recipe, data, val, tmp_path, steps=5, log_every=5, resume=True))  # on the CPU
    assert ck["step"] == 5 and set(ck["ema"]) == set(ck["model"])
    assert (tmp_path / "netr.log").read_text().count("psnr") == 3


def test_netr_ema_resumes_exactly_and_is_exported(setup, tmp_path):
    recipe, data, val = setup
    recipe = replace(recipe, netr_ema=0.9, netr_ema_start=2)
    train("netl", recipe, data, val, tmp_path, steps=2, log_every=100)
    for run in ("straight", "resumed"):
        (tmp_path / run).mkdir()
        (tmp_path / run / "netl.ckpt").write_bytes((tmp_path / "netl.ckpt").read_bytes())
    train("netr", recipe, data, val, tmp_path / "straight", steps=4, log_every=100)
    # A staged run: 2 steps by a recipe without the average, then resumed with it.
    train("netr", replace(recipe, netr_ema=0.0), data, val, tmp_path / "resumed", steps=2, log_every=100)
    assert "ema" not in load_checkpoint(tmp_path / "resumed" / "netr.ckpt")
    ck = load_checkpoint(train("netr", recipe, data, val, tmp_path / "resumed", steps=4, resume=True, log_every=100))
    straight = load_checkpoint(tmp_path / "straight" / "netr.ckpt")
    for k in ck["ema"]:
        torch.testing.assert_close(ck["ema"][k], straight["ema"][k], rtol=0, atol=0)
    key = "netr.tail.weight"
    assert not torch.equal(ck["ema"][key], ck["model"][key])  # the average lags the weights
    exported = load_spair(export(tmp_path / "resumed" / "netr.ckpt", tmp_path / "w.safetensors"))
    torch.testing.assert_close(exported.state_dict()[key], ck["ema"][key], rtol=0, atol=0)


def test_netr_resume_picks_up_a_netl_trained_further(setup, tmp_path):
    recipe, data, val = setup
    train("netl", recipe, data, val, tmp_path, steps=3, log_every=100)
    train("netr", recipe, data, val, tmp_path, steps=2, log_every=100)
    netl = load_checkpoint(train("netl", recipe, data, val, tmp_path, steps=6, resume=True, log_every=100))["model"]
    netr = load_checkpoint(train("netr", recipe, data, val, tmp_path, steps=3, resume=True, log_every=100))
    assert netr["step"] == 3
    keys = [k for k in netl if k.startswith("netl.")]
    assert all(torch.equal(netr["model"][k], netl[k]) for k in keys)  # the further-trained NetL


def test_netr_mask_jitter_cuts_each_sample_at_its_own_logit(setup):
    """netr_mask_jitter: NetR trains on NetL's mask cut per sample at a logit in [-J, J],
    the same cuts for the same step (resume), none without it."""
    recipe, _, val = setup
    assert torch.equal(mask_cuts(recipe, 3, 4), torch.zeros(4))
    jittered = replace(recipe, netr_mask_jitter=2.0)
    cuts = mask_cuts(jittered, 3, 64)
    assert torch.equal(cuts, mask_cuts(jittered, 3, 64)) and not torch.equal(cuts, mask_cuts(jittered, 4, 64))
    assert cuts.abs().max() <= 2.0 and cuts.min() < -1 and cuts.max() > 1  # spread over the range
    recalibrated = replace(jittered, model=replace(recipe.model, mask_logit=-0.5))
    assert torch.allclose(mask_cuts(recalibrated, 3, 64), cuts - 0.5)  # around the model's own cut
    model = SPAIR(recipe.model).eval()
    degraded = val[0][:3]
    logits, _ = model.netl(degraded)
    mask, _ = _frozen_netl_pass(model, degraded, torch.tensor([-1e9, 0.0, 1e9]))
    assert mask[0].all() and not mask[2].any()  # the lowest cut flags everything, the highest nothing
    assert torch.equal(mask[1], (logits[1] > 0).float())


def test_crop_grows_on_schedule(setup):
    recipe, data, _ = setup
    recipe = replace(recipe, crop=32, netl_crops=[[10, 48]], netr_crops=[[50, 64], [20, 40]])
    assert [recipe.crop_at("netl", s) for s in (0, 9, 10, 99)] == [32, 32, 48, 48]
    assert [recipe.crop_at("netr", s) for s in (19, 20, 49, 50)] == [32, 40, 40, 64]
    assert data.batch(0, 10, 2, recipe.crop_at("netl", 10))[0].shape == (2, 3, 48, 48)


def test_learning_rate_halves_on_schedule():
    recipe = Recipe(lr=1e-3, netr_lr_halve_every=100)
    assert [recipe.lr_at("netr", s) for s in (0, 99, 100, 250)] == [1e-3, 1e-3, 5e-4, 2.5e-4]
    assert recipe.lr_at("netl", 10_000) == 1e-3  # netl_lr_halve_every = 0: constant


def test_learning_rate_restarts_on_schedule():
    recipe = Recipe(lr=1e-3, netr_lr_halve_every=100, netr_lr_restarts=[[250, 4e-4]])
    assert [recipe.lr_at("netr", s) for s in (249, 250, 349, 350, 460)] == [2.5e-4, 4e-4, 4e-4, 2e-4, 1e-4]
    assert Recipe(lr=1e-3, netl_lr_restarts=[[5, 1e-4]]).lr_at("netl", 4) == 1e-3


def test_mask_loss_weights_degraded_pixels():
    from restore_cli.train.loop import mask_loss

    gt = torch.tensor([[[[1.0, 0.0, 0.0, 0.0]]]])
    logits = torch.full_like(gt, -2.0)  # everything called clean: only the degraded pixel is wrong
    plain, weighted = (mask_loss(logits, gt, Recipe(netl_pos_weight=w)) for w in (1.0, 3.0))
    wrong = torch.nn.functional.softplus(torch.tensor(2.0)) / 4  # that pixel's share of the plain mean
    torch.testing.assert_close(weighted - plain, 2 * wrong)


def test_bf16_training_learns_keeps_fp32_weights_and_is_checked(setup, tmp_path):
    recipe, data, val = setup
    bf16 = replace(recipe, precision="bf16")
    torch.manual_seed(bf16.seed)
    before = validate(SPAIR(bf16.model), "netl", val, bf16)["bce"]
    train("netl", bf16, data, val, tmp_path / "bf16", steps=30, log_every=30)
    train("netl", recipe, data, val, tmp_path / "fp32", steps=30, log_every=30)
    logs = {p: json.loads((tmp_path / p / "netl.log").read_text().splitlines()[-1]) for p in ("bf16", "fp32")}
    assert logs["bf16"]["bce"] < before
    assert logs["bf16"]["loss"] != logs["fp32"]["loss"]  # the steps did run in bf16
    ck = train("netr", bf16, data, val, tmp_path / "bf16", steps=3, log_every=3)
    state = load_checkpoint(ck)["model"]
    assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())
    with pytest.raises(ValueError, match="precision"):
        replace(recipe, precision="fp16")


def test_dice_term_is_one_minus_the_soft_f1_of_each_sample():
    from restore_cli.train.loop import mask_loss, soft_dice_loss

    gt = torch.tensor([[[[1.0, 1.0, 0.0, 0.0]]], [[[0.0, 0.0, 0.0, 0.0]]]])
    right = torch.where(gt > 0, 20.0, -20.0)  # sure and right everywhere
    assert soft_dice_loss(right, gt).item() < 1e-6  # the all-clean sample costs nothing either
    half = torch.tensor([[[[20.0, -20.0, -20.0, -20.0]]], [[[-20.0] * 4]]])  # finds one of two pixels
    torch.testing.assert_close(soft_dice_loss(half, gt), torch.tensor((1 - 3 / 4) / 2), atol=1e-6, rtol=0)
    plain, dice = (mask_loss(half, gt, Recipe(netl_dice=w)) for w in (0.0, 2.0))
    torch.testing.assert_close(dice - plain, 2 * soft_dice_loss(half, gt))


def test_a_narrower_netr_starts_from_a_trained_one(setup, tmp_path):
    """netr_init: NetL taken as is, NetR tensors copied (the merge conv that loses
    its SNL branch keeps the SC branch's weights), and no NetL stage of its own."""
    recipe, data, val = setup
    train("netl", recipe, data, val, tmp_path / "wide", steps=2, log_every=100)
    wide = train("netr", recipe, data, val, tmp_path / "wide", steps=2, log_every=100)
    slim_model = replace(recipe.model, netr=replace(recipe.model.netr, snl_from_level=1))
    slim = replace(recipe, model=slim_model, netl_steps=0, netr_init=str(wide), lr=0.0)  # lr 0: a step keeps it
    assert not train("netl", slim, data, val, tmp_path / "slim", log_every=100).exists()
    got = load_checkpoint(train("netr", slim, data, val, tmp_path / "slim", steps=1, log_every=100))["model"]
    source = load_checkpoint(wide)["model"]
    assert "netr.dec.0.snl.step1.weights.weight" in source  # TINY's one decoder level: no SNL left
    assert not any(".snl." in name for name in got)
    for name, tensor in got.items():
        if name != "netr.dec.0.merge.weight":  # NetL and every other NetR tensor: copied as is
            assert torch.equal(tensor, source[name]), name
    merge = got["netr.dec.0.merge.weight"]
    assert merge.shape[1] * 2 == source["netr.dec.0.merge.weight"].shape[1]
    assert torch.equal(merge, source["netr.dec.0.merge.weight"][:, : merge.shape[1]])


def _random_source_and_transplant(cfg, target_cfg):
    """A SPAIR of ``cfg`` with random weights everywhere (no zero-initialised layer: every
    tensor matters) and one of ``target_cfg`` whose NetR starts from it (NetL copied)."""
    from restore_cli.train.loop import transplant

    torch.manual_seed(0)
    source = SPAIR(cfg).eval()
    with torch.no_grad():
        for p in source.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    target = SPAIR(target_cfg).eval()
    target.netl.load_state_dict(source.netl.state_dict())
    transplant(target.netr, {"model": source.state_dict()}, "netr.")
    return source, target


def _assert_netr_starts_as_source(source, grown, x, nudge) -> None:
    """``grown``'s NetR gives ``source``'s output on ``x``, and no longer does once ``nudge()``
    touches a weight of its new part (which is therefore really there, only switched off)."""
    with torch.no_grad():
        logits, feats = source.netl(x)
        mask = source.cut(logits)
        want = source.netr(x, mask, feats)
        torch.testing.assert_close(grown.netr(x, mask, feats), want)
        nudge()
        assert not torch.allclose(grown.netr(x, mask, feats), want)


def test_a_deeper_netr_starts_computing_what_its_source_did():
    """netr_init into a NetR with more levels: the source's bottleneck becomes the
    encoder block of its last level and the new, deeper path starts switched off."""
    cfg = replace(TINY, netr=replace(TINY.netr, global_context=True))
    deeper = replace(cfg, netr=replace(cfg.netr, widths=(*cfg.netr.widths, 12, 16)))
    source, deep = _random_source_and_transplant(cfg, deeper)
    # the deeper path is really there, only switched off
    _assert_netr_starts_as_source(source, deep, torch.rand(2, 3, 16, 24), lambda: deep.netr.up[1].fuse.weight.add_(0.1))


def test_dense_blocks_with_more_layers_start_computing_what_their_source_did():
    """netl_init into a NetL whose dense blocks have more layers: same logits and
    features at the start, and the new layers are really there, only ignored."""
    from restore_cli.train.loop import transplant

    torch.manual_seed(0)
    source = SPAIR(TINY).eval()
    with torch.no_grad():
        for p in source.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    grown = SPAIR(replace(TINY, netl=replace(TINY.netl, layers=TINY.netl.layers + 2))).eval()
    transplant(grown.netl, {"model": source.state_dict()}, "netl.")
    x = torch.rand(2, 3, 16, 24)
    with torch.no_grad():
        want_logits, want_feats = source.netl(x)
        logits, feats = grown.netl(x)
        torch.testing.assert_close(logits, want_logits)
        for got, want in zip(feats, want_feats):
            torch.testing.assert_close(got, want)
        grown.netl.mid.fuse.weight[:, -1].add_(0.1)  # the new layers' outputs reach the fusion
        assert not torch.allclose(grown.netl(x)[0], want_logits)


def test_context_blocks_that_see_extremes_start_computing_what_their_source_did():
    """netr_init into a NetR whose context blocks also see each channel's darkest and
    brightest blocks (``context_extremes``): same output at the start, and the new
    statistics are really there, only ignored."""
    cfg = replace(TINY, netr=replace(TINY.netr, global_context=True))
    source, grown = _random_source_and_transplant(cfg, replace(cfg, netr=replace(cfg.netr, context_extremes=True)))
    # the brightest block's statistic reaches the MLP
    _assert_netr_starts_as_source(source, grown, torch.rand(2, 3, 32, 40),
                                  lambda: grown.netr.mid_context.mlp[0].weight[:, -1].add_(0.5))


def test_context_extremes_are_left_out_of_the_saved_config_at_their_default():
    """Weights exported before ``context_extremes`` keep their bytes; a model with it saves it."""
    assert "context_extremes" not in TINY.to_dict()["netr"]
    on = replace(TINY, netr=replace(TINY.netr, global_context=True, context_extremes=True))
    assert type(on).from_dict(on.to_dict()) == on


def test_netr_starts_from_exported_weights(setup, tmp_path):
    """netr_init may name a shipped .safetensors (whose run directory is gone): same start as its checkpoint."""
    recipe, data, val = setup
    train("netl", recipe, data, val, tmp_path / "a", steps=2, log_every=100)
    ckpt = train("netr", recipe, data, val, tmp_path / "a", steps=2, log_every=100)
    exported = export(ckpt, tmp_path / "a.safetensors")
    starts = []
    for i, source in enumerate((ckpt, exported)):
        again = replace(recipe, netl_steps=0, netr_init=str(source), lr=0.0)  # lr 0: a step keeps it
        starts.append(load_checkpoint(train("netr", again, data, val, tmp_path / f"from{i}", steps=1, log_every=100)))
    assert starts[0]["model"].keys() == starts[1]["model"].keys()
    assert all(torch.equal(starts[0]["model"][k], starts[1]["model"][k]) for k in starts[0]["model"])


def test_netl_fine_tunes_from_another_checkpoint(setup, tmp_path):
    """netl_init: the NetL stage starts from that checkpoint's NetL, not from random weights."""
    recipe, data, val = setup
    source = load_checkpoint(train("netl", recipe, data, val, tmp_path / "a", steps=2, log_every=100))["model"]
    fine = replace(recipe, netl_init=str(tmp_path / "a" / "netl.ckpt"), lr=0.0)  # lr 0: a step keeps it
    got = load_checkpoint(train("netl", fine, data, val, tmp_path / "b", steps=1, log_every=100))["model"]
    fresh = load_checkpoint(train("netl", replace(recipe, lr=0.0), data, val, tmp_path / "c", steps=1, log_every=100))
    netl = [name for name in got if name.startswith("netl.")]
    assert all(torch.equal(got[name], source[name]) for name in netl)
    assert not all(torch.equal(fresh["model"][name], source[name]) for name in netl)


def test_netl_and_netr_from_two_runs(setup, tmp_path):
    """netl_steps 0 with netl_init and netr_init: NetR trains with netl_init's NetL as is and
    starts from netr_init's NetR (e.g. one task's NetL, another task's NetR)."""
    recipe, data, val = setup
    runs = {}
    for run in ("a", "b"):
        torch.manual_seed(ord(run))
        train("netl", replace(recipe, seed=ord(run)), data, val, tmp_path / run, steps=2, log_every=100)
        runs[run] = train("netr", replace(recipe, seed=ord(run)), data, val, tmp_path / run, steps=2, log_every=100)
    mixed = replace(recipe, netl_steps=0, netl_init=str(tmp_path / "a" / "netl.ckpt"), netr_init=str(runs["b"]), lr=0.0)
    got = load_checkpoint(train("netr", mixed, data, val, tmp_path / "mixed", steps=1, log_every=100))["model"]
    netl_source, netr_source = load_checkpoint(runs["a"])["model"], load_checkpoint(runs["b"])["model"]
    assert not torch.equal(netl_source["netl.head.weight"], netr_source["netl.head.weight"])
    for name, tensor in got.items():
        assert torch.equal(tensor, (netl_source if name.startswith("netl.") else netr_source)[name]), name


def test_netr_loss_is_the_recipes(setup, tmp_path):
    """netr_loss "mse" trains NetR on the squared error (what PSNR measures) instead of L1."""
    from restore_cli.train.loop import pixel_loss

    a, b = torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.5)
    assert pixel_loss(a, b, Recipe()).item() == 0.5
    assert pixel_loss(a, b, Recipe(netr_loss="mse")).item() == 0.25
    # l1+fft: the spectrum of a constant 0.5 error is 0.5 * 4 pixels at frequency 0, zero elsewhere
    # (rfft2 of a 2x2 image: 2x2 frequencies, real and imaginary parts: 8 numbers, one of them 2).
    assert pixel_loss(a, b, Recipe(netr_loss="l1+fft")).item() == pytest.approx(0.5 + 0.1 * 2 / 8)
    c = b.clone()
    c[..., 0, 0] = 0.0  # one pixel right: a spectrum at every frequency
    want = torch.view_as_real(torch.fft.rfft2(a - c)).abs().mean()
    assert pixel_loss(a, c, Recipe(netr_loss="l1+fft")).item() == pytest.approx((0.375 + 0.1 * want).item())
    recipe, data, val = setup
    train("netl", recipe, data, val, tmp_path, steps=2, log_every=2)
    first = {}
    for loss in ("l1", "mse"):
        out = tmp_path / loss
        train("netr", replace(recipe, netr_loss=loss), data, val, out, steps=1, init=tmp_path / "netl.ckpt", log_every=1)
        first[loss] = json.loads((out / "netr.log").read_text().splitlines()[0])["loss"]
    # The same first batch and weights: errors below 1 squared, mean(e^2) >= mean(|e|)^2.
    assert first["l1"] ** 2 <= first["mse"] < first["l1"], first
    with pytest.raises(ValueError, match="netr_loss"):
        Recipe(netr_loss="l2")
