"""Reference sparse ops against brute-force loops written straight from SPAIR's equations."""

import math

import pytest
import torch

from restore_cli.ops import reference as ops


def random_case(b=2, c=3, h=5, w=6, density=0.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, c, h, w, generator=g, dtype=torch.float64)
    mask = (torch.rand(b, 1, h, w, generator=g) < density).double()
    return x, mask


MASKS = [0.0, 0.3, 0.7, 1.0]  # all-clean, sparse, dense, all-degraded


@pytest.mark.parametrize("density", MASKS)
@pytest.mark.parametrize("k", [1, 3])
def test_masked_conv_matches_eq2(density, k):
    x, mask = random_case(density=density)
    weight = torch.randn(4, 3, k, k, dtype=torch.float64)
    bias = torch.randn(4, dtype=torch.float64)
    got = ops.masked_conv2d(x, mask, weight, bias)
    b, _, h, w = x.shape
    r = k // 2
    want = torch.zeros(b, 4, h, w, dtype=torch.float64)
    for n in range(b):
        for i in range(h):
            for j in range(w):
                if mask[n, 0, i, j] == 0:
                    continue  # Eq. 2: zero where M_p = 0
                acc = bias.clone()
                for di in range(-r, r + 1):
                    for dj in range(-r, r + 1):
                        y, xx = i + di, j + dj
                        if 0 <= y < h and 0 <= xx < w and mask[n, 0, y, xx] == 1:
                            acc += weight[:, :, di + r, dj + r] @ x[n, :, y, xx]
                want[n, :, i, j] = acc
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("density", MASKS)
def test_masked_mean_std(density):
    x, mask = random_case(density=density)
    mean, std, count = ops.masked_mean_std(x, mask, eps=1e-5)
    for n in range(x.shape[0]):
        sel = mask[n, 0] > 0
        assert count[n, 0, 0, 0] == sel.sum()
        for ch in range(x.shape[1]):
            vals = x[n, ch][sel]
            if len(vals) == 0:
                assert mean[n, ch] == 0
                continue
            mu = vals.mean()
            var = ((vals - mu) ** 2).mean()
            assert math.isclose(mean[n, ch].item(), mu.item(), abs_tol=1e-12)
            assert math.isclose(std[n, ch].item(), math.sqrt(var.item() + 1e-5), abs_tol=1e-12)


def brute_directional(x, mask):
    b, c, h, w = x.shape
    out = torch.zeros(b, 4, c, h, w, dtype=x.dtype)
    for n in range(b):
        for i in range(h):
            for j in range(w):
                if mask[n, 0, i, j] == 0:
                    continue
                sides = [
                    [(i, jj) for jj in range(j)],  # left
                    [(i, jj) for jj in range(j + 1, w)],  # right
                    [(ii, j) for ii in range(i)],  # up
                    [(ii, j) for ii in range(i + 1, h)],  # down
                ]
                q = x[n, :, i, j]
                for d, side in enumerate(sides):
                    keys = [x[n, :, y, xx] for y, xx in side if mask[n, 0, y, xx] == 0]
                    if not keys:
                        continue
                    k = torch.stack(keys)  # (K, C)
                    o = torch.softmax(k @ q / math.sqrt(c), dim=0)  # Eq. 3
                    out[n, d, :, i, j] = o @ k  # Eq. 4
    return out


@pytest.mark.parametrize("density", MASKS)
def test_directional_attention_matches_eq3_4(density):
    x, mask = random_case(density=density, seed=1)
    torch.testing.assert_close(ops.directional_attention(x, mask), brute_directional(x, mask))


def test_ops_have_gradients():
    x, mask = random_case()
    x.requires_grad_(True)
    weight = torch.randn(2, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    loss = ops.masked_conv2d(x, mask, weight).sum() + ops.directional_attention(x, mask).sum()
    loss = loss + ops.masked_mean_std(x, mask)[1].sum()
    loss.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert torch.isfinite(weight.grad).all()
