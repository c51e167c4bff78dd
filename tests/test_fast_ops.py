"""The CPU fast path (ops.fast) and the dispatcher against ops.reference."""

import pytest
import torch

from restore_cli import ops
from restore_cli.models import SPAIR, TINY
from restore_cli.ops import dispatch, fast, reference

SHAPES = [(1, 1, 1, 1), (2, 3, 5, 7), (1, 4, 1, 9), (3, 2, 9, 1), (2, 6, 12, 10)]
DENSITIES = [0.0, 0.1, 0.3, 0.7, 1.0]


def case(shape, density, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    b, c, h, w = shape
    x = torch.randn(b, c, h, w, generator=g, dtype=dtype)
    mask = (torch.rand(b, 1, h, w, generator=g) < density).to(dtype)
    return x, mask


def conv_params(cin, k, cout=4, seed=1, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(cout, cin, k, k, generator=g, dtype=dtype) / (cin * k * k) ** 0.5
    return weight, torch.randn(cout, generator=g, dtype=dtype)


def close(got, want):
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("grad", [True, False], ids=["autograd", "inference"])  # inference: oneDNN's GEMM
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("density", DENSITIES)
@pytest.mark.parametrize("shape", SHAPES)
def test_sparse_conv2d(shape, density, k, channels_last, grad):
    torch.set_grad_enabled(grad)
    try:
        _check_sparse_conv2d(shape, density, k, channels_last)
    finally:
        torch.set_grad_enabled(True)


def test_inference_uses_onednn_linear_where_torch_has_it(monkeypatch):
    if fast._ONEDNN_LINEAR is None:
        pytest.skip("this torch build has no oneDNN linear; F.linear is used")
    calls = []
    monkeypatch.setattr(fast, "_ONEDNN_LINEAR", lambda *a: calls.append(1) or torch.nn.functional.linear(*a[:3]))
    x, mask = case((1, 3, 6, 6), 0.3)
    weight, bias = conv_params(3, 3)
    with torch.inference_mode():
        fast.sparse_conv2d(x, weight, bias, fast.ActiveSet(mask))
    assert calls
    calls.clear()
    fast.sparse_conv2d(x, weight, bias, fast.ActiveSet(mask))  # autograd: plain F.linear
    assert not calls


def _check_sparse_conv2d(shape, density, k, channels_last):
    x, mask = case(shape, density)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    weight, bias = conv_params(shape[1], k)
    active = fast.ActiveSet(mask)
    got = fast.sparse_conv2d(x, weight, bias, active)
    close(got, reference.masked_conv2d(x, mask, weight, bias))
    assert got.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    close(fast.sparse_conv2d(x, weight, None, active), reference.masked_conv2d(x, mask, weight))
    close(fast.masked_conv2d(x, mask, weight, bias, active), reference.masked_conv2d(x, mask, weight, bias))


def test_sparse_conv2d_in_chunks(monkeypatch):
    monkeypatch.setattr(fast, "CHUNK_ELEMENTS", 50)  # a few pixels per GEMM
    x, mask = case((2, 3, 9, 8), 0.5)
    weight, bias = conv_params(3, 3)
    close(fast.sparse_conv2d(x, weight, bias, fast.ActiveSet(mask)), reference.masked_conv2d(x, mask, weight, bias))


def test_active_set_is_shared_across_convs():
    x, mask = case((2, 5, 11, 13), 0.2)
    active = fast.ActiveSet(mask)
    for k, cin in [(3, 5), (1, 5), (3, 5)]:
        weight, bias = conv_params(cin, k)
        close(fast.masked_conv2d(x, mask, weight, bias, active), reference.masked_conv2d(x, mask, weight, bias))
    assert sorted(active._taps) == [1, 3]  # neighbour tables built once per kernel size


def test_active_set_taps_point_at_active_neighbours():
    mask = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])[None, None]
    active = fast.ActiveSet(mask)
    taps = active.taps(3)  # active pixels in raster order: (0,0) (0,2) (1,0) (1,1)
    n = 4  # the "no neighbour" row
    assert active.rank.tolist() == [[[0, n, 1], [2, 3, n]]]  # what scatter gathers each pixel from
    assert [t.tolist() for t in active.coords] == [[0, 0, 0, 0], [0, 0, 1, 1], [0, 2, 0, 1]]
    assert active.index.tolist() == [0, 2, 3, 4]
    assert taps[0].tolist() == [n, n, n, n, 0, n, n, 2, 3]
    assert taps[3].tolist() == [0, n, 1, 2, 3, n, n, n, n]


@pytest.mark.parametrize("density, path", [(0.1, "sparse"), (0.9, "masked dense"), (1.0, "plain dense")])
def test_masked_conv2d_picks_its_path_by_density(monkeypatch, density, path):
    calls = []
    for module, name in [(fast, "sparse_conv2d"), (fast.reference, "masked_conv2d"), (fast.F, "conv2d")]:
        monkeypatch.setattr(module, name, lambda *a, name=name, **k: calls.append(name))
    monkeypatch.setattr(fast, "DENSE_ABOVE", 0.5)
    x, mask = case((1, 2, 20, 20), density)
    fast.masked_conv2d(x, mask, *conv_params(2, 3, cout=2))
    assert calls == [{"sparse": "sparse_conv2d", "masked dense": "masked_conv2d", "plain dense": "conv2d"}[path]]


@pytest.mark.parametrize("density", DENSITIES)
@pytest.mark.parametrize("shape", SHAPES)
def test_directional_attention(shape, density):
    x, mask = case(shape, density)
    close(fast.directional_attention(x, mask), reference.directional_attention(x, mask))


@pytest.mark.parametrize("chunk", [1, 40])  # one line, or a few lines, per chunk of scores
def test_directional_attention_in_chunks(monkeypatch, chunk):
    monkeypatch.setattr(fast, "ATTENTION_CHUNK", chunk)
    x, mask = case((2, 3, 9, 11), 0.4)
    mask[0, 0, 3, :4] = 1  # lines with different numbers of queries in one chunk
    close(fast.directional_attention(x, mask), reference.directional_attention(x, mask))


@pytest.mark.parametrize("compact_below", [0.0, 1.1])  # every line's keys scored, or only its clean ones
@pytest.mark.parametrize("density", [0.2, 0.7])
def test_directional_attention_key_compaction(monkeypatch, compact_below, density):
    monkeypatch.setattr(fast, "COMPACT_KEYS_BELOW", compact_below)
    x, mask = case((2, 3, 9, 11), density)
    close(fast.directional_attention(x, mask), reference.directional_attention(x, mask))


def direction_weights(shape, seed=3, dtype=torch.float32):
    """Per-pixel weights of the four directions, as SNLStep's softmax gives them."""
    b, _, h, w = shape
    return torch.softmax(torch.randn(b, 4, h, w, generator=torch.Generator().manual_seed(seed), dtype=dtype), dim=1)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("density", DENSITIES)
@pytest.mark.parametrize("shape", SHAPES)
def test_snl_aggregate(shape, density, channels_last):
    x, mask = case(shape, density)
    e = direction_weights(shape)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    got = fast.snl_aggregate(x.contiguous(memory_format=layout), mask, e)
    close(got, reference.snl_aggregate(x, mask, e))
    assert got.is_contiguous(memory_format=layout)


def test_directional_attention_lines_without_clean_keys():
    x, mask = case((2, 3, 6, 8), 0.3)
    mask[0, 0, 2] = 1  # a fully degraded row
    mask[1, 0, :, 5] = 1  # a fully degraded column
    close(fast.directional_attention(x, mask), reference.directional_attention(x, mask))


def test_non_binary_mask_weights_like_the_reference():
    x, mask = case((2, 3, 6, 7), 0.6)
    mask = mask * torch.rand(mask.shape, generator=torch.Generator().manual_seed(2))
    weight, bias = conv_params(3, 3)
    close(fast.sparse_conv2d(x, weight, bias, fast.ActiveSet(mask)), reference.masked_conv2d(x, mask, weight, bias))
    close(fast.directional_attention(x, mask), reference.directional_attention(x, mask))
    e = direction_weights(x.shape)
    close(fast.snl_aggregate(x, mask, e), reference.snl_aggregate(x, mask, e))


def _grads(fn, *tensors):
    tensors = [t.detach().requires_grad_() for t in tensors]
    out = fn(*tensors)
    out.backward(torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out))
    return [t.grad for t in tensors]


def test_gradients_match_the_reference():
    x, mask = case((2, 4, 7, 9), 0.3, dtype=torch.float64)
    weight, bias = conv_params(4, 3, dtype=torch.float64)
    active = fast.ActiveSet(mask)
    got = _grads(lambda *t: fast.sparse_conv2d(*t, active), x, weight, bias)
    want = _grads(lambda xx, w, b: reference.masked_conv2d(xx, mask, w, b), x, weight, bias)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
    got = _grads(lambda xx: fast.directional_attention(xx, mask, active), x)
    want = _grads(lambda xx: reference.directional_attention(xx, mask), x)
    torch.testing.assert_close(got[0], want[0])
    e = direction_weights(x.shape, dtype=torch.float64)
    got = _grads(lambda xx, ee: fast.snl_aggregate(xx, mask, ee, active), x, e)
    want = _grads(lambda xx, ee: reference.snl_aggregate(xx, mask, ee), x, e)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)


def test_dispatch_on_cpu_uses_the_fast_path():
    x, mask = case((1, 3, 8, 8), 0.2)
    active = dispatch.active_set(mask)
    assert isinstance(active, fast.ActiveSet)
    weight, bias = conv_params(3, 3)
    close(dispatch.masked_conv2d(x, mask, weight, bias, active), reference.masked_conv2d(x, mask, weight, bias))
    convs, fuse = stack_params(3)
    close(dispatch.masked_conv_stack(x, mask, convs, fuse, 0.2, active), reference.masked_conv_stack(x, mask, convs, fuse))
    close(dispatch.directional_attention(x, mask, active), reference.directional_attention(x, mask))
    e = direction_weights(x.shape)
    close(dispatch.snl_aggregate(x, mask, e, active), reference.snl_aggregate(x, mask, e))
    for got, want in zip(dispatch.masked_mean_std(x, mask), reference.masked_mean_std(x, mask)):
        close(got, want)
    for got, want in zip(dispatch.masked_mean_std_pair(x, mask), reference.masked_mean_std_pair(x, mask)):
        for g, w in zip(got, want):
            close(g, w)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("density", DENSITIES)
@pytest.mark.parametrize("shape", SHAPES)
def test_masked_mean_std_pair_matches_the_reference(shape, density, channels_last):
    x, mask = case(shape, density)
    x = x * 3 + 100  # far from zero: the variance must not come from a difference of large sums
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    for got, want in zip(fast.masked_mean_std_pair(x, mask), reference.masked_mean_std_pair(x, mask)):
        for g, w in zip(got, want):
            assert g.shape == w.shape and g.dtype == w.dtype
            close(g, w)


def test_masked_mean_std_pair_soft_mask_and_gradients():
    x, mask = case((2, 3, 9, 11), 0.4, dtype=torch.float64)
    soft = mask * torch.rand(mask.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    x.requires_grad_(True)
    got, want = fast.masked_mean_std_pair(x, soft), reference.masked_mean_std_pair(x, soft)
    for g, w in zip(got, want):
        for a, b in zip(g, w):
            close(a, b)
    def loss(stats):  # every mean and std, each with its own weight
        return sum((i + 1) * t.sum() for i, t in enumerate([*stats[0][:2], *stats[1][:2]]))

    close(torch.autograd.grad(loss(got), x)[0], torch.autograd.grad(loss(want), x)[0])


def test_masked_mean_std_pair_in_bf16_sums_in_float32():
    x, mask = case((1, 8, 64, 80), 0.5)
    xb, mb = (x * 0.1 + 1).bfloat16(), mask.bfloat16()
    exact = reference.masked_mean_std_pair(xb.float(), mask)
    with torch.autocast("cpu", torch.bfloat16):
        got = fast.masked_mean_std_pair(xb, mb)
    for g, e in zip(got, exact):
        assert g[0].dtype == torch.bfloat16 and g[2].dtype == torch.bfloat16
        # within bf16's rounding of the result (the reference, reducing in bf16, is not)
        torch.testing.assert_close(g[1].float(), e[1], rtol=2**-8, atol=0)
        torch.testing.assert_close(g[0].float(), e[0], rtol=2**-8, atol=0)


@pytest.mark.parametrize("density", [0.1, 0.5])  # 0.1: about 0.34 at the coarser level
def test_tiny_netr_is_unchanged_by_the_fast_path(monkeypatch, density):
    torch.manual_seed(0)
    model = SPAIR(TINY).eval()
    image, mask = case((2, 3, 32, 40), density)
    image = image.sigmoid()
    with torch.inference_mode():
        _, feats = model.netl(image)
        got = model.netr(image, mask, feats)  # ops dispatch to the fast path
        # The reference ops, which take no ``active`` (the modules pass it last).
        for name, n_args in [("masked_conv2d", 4), ("masked_conv_stack", 5), ("directional_attention", 2),
                             ("snl_aggregate", 3)]:
            monkeypatch.setattr(ops, name, lambda *a, f=getattr(reference, name), n=n_args: f(*a[:n]))
        monkeypatch.setattr(ops, "masked_mean_std_pair", reference.masked_mean_std_pair)
        want = model.netr(image, mask, feats)
    close(got, want)


def stack_params(cin, growth=3, layers=3, seed=1, dtype=torch.float32):
    convs = [conv_params(cin + i * growth, 3, growth, seed + i, dtype) for i in range(layers)]
    return convs, conv_params(cin + layers * growth, 1, cin, seed + layers, dtype)


@pytest.mark.parametrize("grad", [True, False], ids=["autograd", "inference"])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("dense_above", [-1.0, 2.0], ids=["dense", "rows"])  # force each path
@pytest.mark.parametrize("density", DENSITIES)
@pytest.mark.parametrize("shape", SHAPES)
def test_masked_conv_stack(monkeypatch, shape, density, dense_above, channels_last, grad):
    monkeypatch.setattr(fast, "STACK_DENSE_ABOVE", dense_above)
    x, mask = case(shape, density)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    convs, fuse = stack_params(shape[1])
    with torch.set_grad_enabled(grad):
        got = fast.masked_conv_stack(x, mask, convs, fuse, 0.2, fast.ActiveSet(mask))
        close(got, reference.masked_conv_stack(x, mask, convs, fuse, 0.2))
    assert got.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def test_masked_conv_stack_soft_mask_and_gradients():
    x, mask = case((2, 4, 7, 9), 0.3, dtype=torch.float64)
    convs, fuse = stack_params(4, dtype=torch.float64)
    soft = mask * torch.rand(mask.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    close(fast.masked_conv_stack(x, soft, convs, fuse), reference.masked_conv_stack(x, soft, convs, fuse))
    params = [t for conv in [*convs, fuse] for t in conv]

    def run(op, xx, *flat):
        pairs = [tuple(flat[i : i + 2]) for i in range(0, len(flat), 2)]
        return op(xx, mask, pairs[:-1], pairs[-1])

    got = _grads(lambda *t: run(fast.masked_conv_stack, *t), x, *params)
    want = _grads(lambda *t: run(reference.masked_conv_stack, *t), x, *params)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
