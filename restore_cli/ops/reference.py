"""Reference PyTorch definitions of SPAIR's sparse operators.

These are written to be read, not to be fast. Every faster implementation
(the CPU gather/scatter path, the CUDA kernels in ``kernels/``) is tested
against them. All functions support autograd.

Conventions
-----------
* ``x`` is a feature map ``(B, C, H, W)``.
* ``mask`` is ``(B, 1, H, W)`` with values in {0, 1}; 1 marks a *degraded*
  pixel (the pixels SPAIR spends computation on), 0 a *clean* one.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

DIRECTIONS = ("left", "right", "up", "down")


def masked_conv2d(
    x: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mask-guided sparse convolution, SPAIR Eq. 2 (stride 1, 'same' padding).

    ``out[p] = 0`` where ``mask[p] = 0``; elsewhere
    ``out[p] = bias + sum_{p'} K[p'] x[p + p'] * mask[p + p']``:
    only degraded neighbours contribute, and only degraded pixels get output.
    """
    k = weight.shape[-1]
    return mask * F.conv2d(x * mask, weight, bias, padding=k // 2)


Conv = tuple[torch.Tensor, torch.Tensor | None]  # (weight, bias)


def masked_conv_stack(
    x: torch.Tensor,
    mask: torch.Tensor,
    convs: list[Conv],
    fuse: Conv,
    slope: float = 0.2,
    conv: Callable[..., torch.Tensor] = masked_conv2d,
) -> torch.Tensor:
    """SPAIR's SC module: densely connected masked convs, then a masked fusion conv.

    Each conv of ``convs`` sees the concatenation of ``x`` and every earlier
    conv's output (LeakyReLU ``slope``); ``fuse`` (usually 1x1) maps the
    concatenation of all of them back. ``conv(x, mask, weight, bias)`` is
    ``masked_conv2d``; faster paths pass their own.
    """
    feats = [x]
    for weight, bias in convs:
        feats.append(F.leaky_relu(conv(torch.cat(feats, dim=1), mask, weight, bias), slope))
    return conv(torch.cat(feats, dim=1), mask, *fuse)


def masked_mean_std(
    x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-5
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation over the pixels where mask = 1.

    Returns ``(mean, std, count)`` shaped ``(B, C, 1, 1)``, ``(B, C, 1, 1)``,
    ``(B, 1, 1, 1)``. ``std = sqrt(var + eps)`` (the paper adds eps outside
    the root; inside keeps the gradient finite when var = 0). An empty mask
    gives mean 0 and std sqrt(eps); callers check ``count``.
    """
    count = mask.sum(dim=(2, 3), keepdim=True)
    denom = count.clamp_min(1.0)
    mean = (x * mask).sum(dim=(2, 3), keepdim=True) / denom
    var = ((x - mean) ** 2 * mask).sum(dim=(2, 3), keepdim=True) / denom
    return mean, torch.sqrt(var + eps), count


def masked_mean_std_pair(
    x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-5
) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], ...]:
    """``masked_mean_std`` over ``mask`` and over ``1 - mask``: SFM's degraded and clean pixels."""
    return masked_mean_std(x, mask, eps), masked_mean_std(x, 1 - mask, eps)


def _scan_rows(rows: torch.Tensor, clean: torch.Tensor) -> list[torch.Tensor]:
    """Attention of every pixel of a row over the clean pixels before / after it.

    rows: (B, R, L, C) features; clean: (B, R, 1, L) bool, True where key j is clean.
    Returns ``[backward, forward]``, each (B, R, L, C): query i attends to the
    clean keys j < i (backward) or j > i (forward). A query with no such key
    gets zeros.
    """
    length = rows.shape[-2]
    scores = rows @ rows.transpose(-1, -2) / math.sqrt(rows.shape[-1])  # (B, R, L, L)
    idx = torch.arange(length, device=rows.device)
    before = idx[None, :] < idx[:, None]  # before[i, j]: key j lies before query i
    out = []
    for side in (before, before.T):
        valid = clean & side
        weights = torch.softmax(scores.masked_fill(~valid, -1e9), dim=-1)
        has_key = valid.any(dim=-1, keepdim=True)  # (B, R, L, 1)
        out.append((weights @ rows) * has_key)
    return out


def directional_attention(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """SNL's four-direction masked attention scans, SPAIR Eq. 3-4.

    For each degraded pixel (mask = 1) and each direction in ``DIRECTIONS``,
    softmax the scaled dot products between its feature and the features of
    the *clean* pixels (mask = 0) strictly on that side of it in its row or
    column, and return their weighted sum. Clean pixels, and directions with
    no clean pixel, give zeros. The 1/sqrt(C) scaling is ours (the paper is
    silent); it keeps the softmax from saturating.

    Returns ``(B, 4, C, H, W)`` in the order of ``DIRECTIONS``.
    """
    clean = mask < 0.5
    rows = x.permute(0, 2, 3, 1)  # (B, H, W, C): scan along W
    left, right = _scan_rows(rows, clean.permute(0, 2, 1, 3))
    cols = x.permute(0, 3, 2, 1)  # (B, W, H, C): scan along H
    up, down = _scan_rows(cols, clean.permute(0, 3, 1, 2))
    out = [left.permute(0, 3, 1, 2), right.permute(0, 3, 1, 2)]
    out += [up.permute(0, 3, 2, 1), down.permute(0, 3, 2, 1)]
    return torch.stack(out, dim=1) * mask.unsqueeze(1)


def snl_aggregate(
    x: torch.Tensor,
    mask: torch.Tensor,
    weights: torch.Tensor,
    attention: Callable[..., torch.Tensor] = directional_attention,
) -> torch.Tensor:
    """One SNL aggregation step, SPAIR Eq. 5: the four directions' results of
    ``attention`` (``directional_attention``) summed with the per-pixel ``weights``
    ``(B, 4, H, W)``, blended in by the mask (``mask * h + (1 - mask) * x``): clean
    pixels keep ``x``. Faster paths pass their own ``attention``.
    """
    h = (attention(x, mask) * weights.unsqueeze(2)).sum(dim=1)
    return torch.lerp(x, h.to(x.dtype), mask.to(x.dtype))
