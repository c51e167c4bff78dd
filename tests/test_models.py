"""NetL/NetR/SPAIR: shapes, the mask-guided modules' promises, and weight round-trips."""

import torch

from restore_cli.models import SPAIR, TINY, SPAIRConfig, load_spair, save_spair
from restore_cli.models.sparse import SC, SFM, SNL


def test_spair_shapes_any_size():
    model = SPAIR(TINY).eval()
    for h, w in [(16, 16), (13, 27), (9, 40)]:
        x = torch.rand(2, 3, h, w)
        out, mask = model(x)
        assert out.shape == x.shape and mask.shape == (2, 1, h, w)
        assert set(mask.unique().tolist()) <= {0.0, 1.0}
    logits, feats = model.netl(torch.rand(1, 3, 16, 16))
    assert logits.shape == (1, 1, 16, 16) and len(feats) == len(TINY.netl.widths) - 1


def test_round_trip_random_weights(tmp_path):
    torch.manual_seed(0)
    model = SPAIR(TINY).eval()
    path = tmp_path / "w.safetensors"
    save_spair(model, path)
    loaded = load_spair(path)
    assert loaded.cfg == model.cfg
    x = torch.rand(1, 3, 24, 20)
    with torch.no_grad():
        a, ma = model(x)
        b, mb = loaded(x)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(ma, mb)


def test_saving_is_byte_for_byte_reproducible(tmp_path):
    """Same weights and metadata -> same file (and sha256), so a re-run export can be checked."""
    model = SPAIR(TINY)
    extra = {"steps": "10", "train_minutes": "1.0", "recipe": "x.json", "seed": "0"}
    for i in range(4):
        save_spair(model, tmp_path / f"{i}.safetensors", extra)
    first = (tmp_path / "0.safetensors").read_bytes()
    assert all((tmp_path / f"{i}.safetensors").read_bytes() == first for i in range(1, 4))


def test_loads_files_written_with_the_older_metadata_layout(tmp_path):
    import json

    from safetensors.torch import save_file

    model = SPAIR(TINY)
    old = {"config": json.dumps(TINY.to_dict()), "format": "restore-spair-v1"}
    save_file(dict(model.state_dict()), str(tmp_path / "old.safetensors"), metadata=old)
    assert load_spair(tmp_path / "old.safetensors").cfg == TINY


def test_config_round_trip():
    cfg = SPAIRConfig()
    assert SPAIRConfig.from_dict(cfg.to_dict()) == cfg


def test_mask_logit_sets_where_netl_s_mask_is_cut(tmp_path):
    """``mask_logit`` moves the cut for forward, predict_mask and the saved file alike;
    at its default it is not written, so the weights exported before it keep their bytes."""
    from dataclasses import replace

    assert "mask_logit" not in TINY.to_dict()
    torch.manual_seed(0)
    x = torch.rand(1, 3, 16, 16)
    model = SPAIR(TINY).eval()
    with torch.no_grad():
        logits = model.netl(x)[0]
        cut = float(logits.median())  # half the pixels above it
        shifted = SPAIR(replace(TINY, mask_logit=cut)).eval()
        shifted.load_state_dict(model.state_dict())
        _, mask = shifted(x)
        assert torch.equal(mask, (logits > cut).float()) and 0 < mask.mean() < 1
        assert torch.equal(shifted.predict_mask(x), mask)
        assert torch.equal(model.predict_mask(x), (logits > 0).float())
    save_spair(shifted, tmp_path / "w.safetensors")
    assert load_spair(tmp_path / "w.safetensors").cfg.mask_logit == cut


def test_the_cut_is_made_on_the_logits_device():
    """The cut value follows NetL's logits to their device. The "meta" device stands in
    for CUDA, which no machine here has: a cut left on the CPU failed --device cuda."""
    model = SPAIR(TINY).eval().to("meta")
    x = torch.zeros(2, 3, 16, 16, device="meta")
    assert model.predict_mask(x).shape == (2, 1, 16, 16)
    logits = torch.zeros(2, 1, 16, 16, device="meta")
    assert model.cut(logits, torch.tensor([0.0, 1.0])).device.type == "meta"  # one cut per sample


def test_a_given_mask_is_padded_as_the_image_is():
    """A mask given to ``forward`` (eval's GT mask) reaches NetR padded like the image, not with
    zeros: zeros would mark the padding clean, and SNL and SFM would draw on it as clean context."""
    torch.manual_seed(0)
    model = SPAIR(TINY).eval()
    x = torch.rand(1, 3, 13, 19)  # neither side a multiple of model.multiple
    assert 13 % model.multiple and 19 % model.multiple
    seen = []
    model.netr.register_forward_pre_hook(lambda mod, args: seen.append(args[1]))
    for bf16 in (False, True):  # under autocast too, where the mask is NetL's dtype (bf16)
        with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            model(x, torch.ones(1, 1, 13, 19))
        padded = seen[-1]
        m = model.multiple
        assert padded.shape[-2:] == (-(-13 // m) * m, -(-19 // m) * m) and bool((padded == 1).all())
        assert padded.dtype == (torch.bfloat16 if bf16 else torch.float32)


def test_sc_is_zero_on_clean_pixels():
    sc = SC(4, growth=2, layers=6)
    x = torch.randn(1, 4, 10, 10)
    mask = (torch.rand(1, 1, 10, 10) > 0.5).float()
    out = sc(x, mask)
    assert (out[mask.expand_as(out) == 0] == 0).all()
    assert out.abs().sum() > 0


def test_sfm_matches_clean_statistics_and_keeps_clean_pixels():
    sfm = SFM(3, 2)
    torch.nn.init.zeros_(sfm.project.weight)
    torch.nn.init.zeros_(sfm.project.bias)
    x = torch.randn(1, 3, 32, 32)
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., :16, :] = 1
    x = x + 5 * mask  # degraded half is shifted
    out = sfm(x, torch.zeros(1, 2, 32, 32), mask)
    clean = out[..., 16:, :]
    torch.testing.assert_close(clean, x[..., 16:, :])
    deg = out[..., :16, :]
    torch.testing.assert_close(deg.mean(dim=(2, 3)), clean.mean(dim=(2, 3)), atol=1e-4, rtol=0)
    torch.testing.assert_close(deg.std(dim=(2, 3), unbiased=False), clean.std(dim=(2, 3), unbiased=False), atol=1e-3, rtol=1e-3)


def test_sfm_identity_when_a_region_is_empty():
    sfm = SFM(3, 2)
    x = torch.randn(1, 3, 8, 8)
    guide = torch.randn(1, 2, 8, 8)
    fused = x + sfm.project(guide)
    for m in (torch.zeros(1, 1, 8, 8), torch.ones(1, 1, 8, 8)):
        torch.testing.assert_close(sfm(x, guide, m), fused, atol=1e-5, rtol=1e-5)


def test_snl_leaves_clean_pixels_unaltered():
    snl = SNL(4)
    x = torch.randn(1, 4, 12, 12)
    mask = (torch.rand(1, 1, 12, 12) > 0.6).float()
    out = snl(x, mask)
    keep = mask.expand_as(x) == 0
    torch.testing.assert_close(out[keep], x[keep])
    assert not torch.allclose(out[~keep], x[~keep])


def test_snl_from_level_drops_the_full_resolution_snl():
    from dataclasses import replace

    cfg = SPAIRConfig(replace(TINY.netl, widths=(4, 8, 8)), replace(TINY.netr, widths=(8, 8, 8), snl_from_level=1))
    model = SPAIR(cfg)
    assert model.netr.dec[0].snl is None and model.netr.dec[1].snl is not None
    assert SPAIRConfig.from_dict(cfg.to_dict()) == cfg
    out, _ = model(torch.rand(1, 3, 20, 28))
    assert out.shape == (1, 3, 20, 28)


def test_netl_may_have_more_levels_than_netr():
    """A deeper NetL (more context for the mask); NetR fuses its first levels' features."""
    from dataclasses import replace

    cfg = replace(TINY, netl=replace(TINY.netl, widths=(4, 8, 8, 8)))
    model = SPAIR(cfg)
    assert model.multiple == 8
    out, mask = model(torch.rand(1, 3, 21, 30))
    assert out.shape == (1, 3, 21, 30) and mask.shape == (1, 1, 21, 30)
    assert SPAIRConfig.from_dict(cfg.to_dict()) == cfg


def test_netr_may_have_more_levels_than_netl():
    """A deeper NetR (a wider view, for long blurs): SFM only where NetL has a feature."""
    from dataclasses import replace

    cfg = replace(TINY, netr=replace(TINY.netr, widths=(8, 8, 12, 12)))
    model = SPAIR(cfg)
    assert model.multiple == 8
    assert len(model.netr.sfm) == len(TINY.netl.widths) - 1 < len(model.netr.enc)
    out, mask = model(torch.rand(1, 3, 21, 30))
    assert out.shape == (1, 3, 21, 30) and mask.shape == (1, 1, 21, 30)
    out.mean().backward()
    assert model.netr.enc[-1].fuse.weight.grad.abs().sum() > 0  # the deepest level is used


def test_global_attention_starts_as_identity_and_attends_across_the_whole_map():
    from dataclasses import replace

    from restore_cli.models.blocks import GlobalAttention

    torch.manual_seed(0)
    assert [GlobalAttention(c).heads for c in (8, 32, 48, 50)] == [1, 2, 3, 2]  # heads of equal width
    block = GlobalAttention(32)
    x = torch.randn(2, 32, 5, 7)
    torch.testing.assert_close(block(x), x)  # zero-initialised output projection
    torch.nn.init.normal_(block.proj.weight, std=0.2)
    y = x.clone()
    y[0, :, 0, 0] += 3 * torch.randn(32)  # one far pixel changes what every pixel of image 0 gathers ...
    assert not torch.allclose(block(y)[0, :, 4, 6], block(x)[0, :, 4, 6])
    torch.testing.assert_close(block(y)[1], block(x)[1])  # ... and nothing of the other image
    # Multi-head softmax attention over the pixels, pre-normed, added to the input.
    tokens = x.flatten(2).transpose(1, 2)  # (B, HW, C)
    q, k, v = block.qkv(block.norm(tokens)).chunk(3, dim=-1)
    heads = [torch.softmax(qh @ kh.transpose(1, 2) / 16**0.5, dim=-1) @ vh
             for qh, kh, vh in zip(q.chunk(2, -1), k.chunk(2, -1), v.chunk(2, -1))]
    want = (tokens + block.proj(torch.cat(heads, -1))).transpose(1, 2).reshape(x.shape)
    for layout in (torch.contiguous_format, torch.channels_last):
        torch.testing.assert_close(block(x.contiguous(memory_format=layout)), want)
    # A NetL with the blocks, given a NetL without them's tensors, computes the same.
    cfg = replace(TINY, netl=replace(TINY.netl, attention=2))
    assert SPAIRConfig.from_dict(cfg.to_dict()) == cfg and "attention" not in TINY.to_dict()["netl"]
    plain, attending = SPAIR(TINY).eval(), SPAIR(cfg).eval()
    missing = attending.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(name.startswith("netl.attention.") for name in missing)
    image = torch.rand(1, 3, 16, 20)
    for got, expected in zip(attending(image), plain(image)):
        torch.testing.assert_close(got, expected)


def test_global_context_starts_as_identity_and_sees_the_whole_image():
    from dataclasses import replace

    from restore_cli.models.blocks import GlobalContext

    block = GlobalContext(4)
    x = torch.randn(2, 4, 6, 6)
    torch.testing.assert_close(block(x), x)  # zero-initialised last layer
    torch.nn.init.normal_(block.mlp[-1].weight)
    y = x.clone()
    y[0, :, 0, 0] += 5.0  # one far pixel changes image 0's statistics ...
    assert not torch.allclose(block(y)[0, :, 5, 5], block(x)[0, :, 5, 5])  # ... and so every pixel of it
    torch.testing.assert_close(block(y)[1], block(x)[1])  # but not the other image's
    # FiLM from each channel's mean and population std (either memory format).
    z = torch.randn(1, 4, 7, 9) * 3 + 2
    std, mean = torch.std_mean(z, dim=(2, 3), correction=0)
    scale, shift = block.mlp(torch.cat([mean, std], dim=1)).chunk(2, dim=1)
    for layout in (torch.contiguous_format, torch.channels_last):
        got = block(z.contiguous(memory_format=layout))
        torch.testing.assert_close(got, z * (1 + scale[..., None, None]) + shift[..., None, None])

    # A model with the blocks, given a model without them's tensors, computes the same.
    plain = SPAIR(TINY).eval()
    ctx_cfg = replace(TINY, netl=replace(TINY.netl, global_context=True), netr=replace(TINY.netr, global_context=True))
    ctx = SPAIR(ctx_cfg).eval()
    assert SPAIRConfig.from_dict(ctx_cfg.to_dict()) == ctx_cfg
    missing = ctx.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all("context" in name for name in missing)
    image = torch.rand(1, 3, 16, 20)
    for got, expected in zip(ctx(image), plain(image)):  # restored image and mask
        torch.testing.assert_close(got, expected)
