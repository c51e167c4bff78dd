"""Sparse, mask-guided operators used by SPAIR's NetR.

`reference` holds the readable PyTorch definitions; they are the test oracle
that every faster path matches. The names exported here go through
`dispatch`, which picks the CPU fast path (`fast`, with `native`'s compiled
sparse conv), the CUDA kernels (`cuda`, via CuPy) or the reference for the
tensors at hand.
"""

from .dispatch import (
    active_set,
    directional_attention,
    masked_conv2d,
    masked_conv_stack,
    masked_mean_std,
    masked_mean_std_pair,
    snl_aggregate,
)

__all__ = ["active_set", "masked_conv2d", "masked_conv_stack", "masked_mean_std", "masked_mean_std_pair",
           "directional_attention", "snl_aggregate"]
