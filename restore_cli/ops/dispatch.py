"""Pick the implementation of each sparse op for the tensors at hand.

* CPU: ``ops.fast`` (cost follows the mask density; autograd works), whose
  single sparse conv runs ``ops.native``'s compiled kernel where it applies.
* CUDA, float32, no gradient being recorded, CuPy installed: the kernels
  of ``ops.cuda``.
* Other CUDA cases (training, no CuPy, half precision): ``ops.reference``.

All give the same results as ``ops.reference``. ``active_set(mask)`` does
the mask-to-index work once; pass its result as ``active`` to every op on
the same mask (an SC stack, both SNL steps). It is only
meaningful under the grad mode it was made in.
"""

from __future__ import annotations

from functools import partial

import torch

from . import cuda, fast, reference


def _backend(x: torch.Tensor) -> str:
    if not x.is_cuda:
        return "fast"
    if x.dtype == torch.float32 and not torch.is_grad_enabled() and cuda.available():
        return "kernels"
    return "reference"


def active_set(mask: torch.Tensor) -> object:
    """What the ops need to know about ``mask``, for ``active=`` (None if nothing)."""
    backend = _backend(mask)
    if backend == "kernels":
        return cuda.kernel_ops().active_index(mask)
    return fast.ActiveSet(mask) if backend == "fast" else None


def masked_conv2d(
    x: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    active: object = None,
) -> torch.Tensor:
    """``reference.masked_conv2d``."""
    backend = _backend(x)
    if backend == "kernels":
        return cuda.kernel_ops().masked_conv2d(x, mask, weight, bias, active)
    if backend == "fast":
        return fast.masked_conv2d(x, mask, weight, bias, active)
    return reference.masked_conv2d(x, mask, weight, bias)


def masked_conv_stack(
    x: torch.Tensor,
    mask: torch.Tensor,
    convs: list[reference.Conv],
    fuse: reference.Conv,
    slope: float = 0.2,
    active: object = None,
) -> torch.Tensor:
    """``reference.masked_conv_stack`` (SC); on CUDA, conv by conv with the kernels."""
    backend = _backend(x)
    if backend == "fast":
        return fast.masked_conv_stack(x, mask, convs, fuse, slope, active)
    conv = partial(masked_conv2d, active=active) if backend == "kernels" else reference.masked_conv2d
    return reference.masked_conv_stack(x, mask, convs, fuse, slope, conv=conv)


def masked_mean_std(
    x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-5
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``reference.masked_mean_std``."""
    if _backend(x) == "kernels":
        return cuda.kernel_ops().masked_mean_std(x, mask, eps)
    return reference.masked_mean_std(x, mask, eps)


def masked_mean_std_pair(
    x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-5
) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], ...]:
    """``masked_mean_std`` over ``mask`` and over ``1 - mask`` (SFM's degraded and clean pixels)."""
    if _backend(x) == "fast":
        return fast.masked_mean_std_pair(x, mask, eps)
    return masked_mean_std(x, mask, eps), masked_mean_std(x, 1 - mask, eps)


def directional_attention(
    x: torch.Tensor, mask: torch.Tensor, active: object = None
) -> torch.Tensor:
    """``reference.directional_attention``."""
    backend = _backend(x)
    if backend == "kernels":
        return cuda.kernel_ops().directional_attention(x, mask, active)
    if backend == "fast":
        return fast.directional_attention(x, mask, active)
    return reference.directional_attention(x, mask)


def snl_aggregate(
    x: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor, active: object = None
) -> torch.Tensor:
    """``reference.snl_aggregate``; on CUDA, from the kernels' directional attention."""
    backend = _backend(x)
    if backend == "fast":
        return fast.snl_aggregate(x, mask, weights, active)
    attention = partial(directional_attention, active=active) if backend == "kernels" else reference.directional_attention
    return reference.snl_aggregate(x, mask, weights, attention=attention)
