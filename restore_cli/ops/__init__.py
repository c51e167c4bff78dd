"""Sparse, mask-guided operators used by SPAIR's NetR.

`reference` holds the readable PyTorch definitions; they are the test oracle
that every faster path (CPU gather/scatter, CUDA kernels) must match.
"""

from .reference import directional_attention, masked_conv2d, masked_mean_std

__all__ = ["masked_conv2d", "masked_mean_std", "directional_attention"]
