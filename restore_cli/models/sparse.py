"""SPAIR's mask-guided modules: SFM (Eq. 1), SC (Eq. 2) and SNL (Eq. 3-5).

Each module calls the operators in ``restore_cli.ops``; the reference
definitions there say exactly what is computed. ``active`` is the mask's
active-pixel set (``ops.active_set(mask)``), found once per decoder level and
shared by every sparse op on that mask.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import ops


class SFM(nn.Module):
    """Spatial Feature Modulator.

    Adds NetL's feature (projected by a 1x1 conv to NetR's width), then
    re-normalises the degraded pixels so their per-channel mean and std match
    the clean pixels' (Eq. 1). Clean pixels pass unchanged. If either region
    is empty the modulation is the identity.
    """

    def __init__(self, channels: int, netl_channels: int):
        super().__init__()
        self.project = nn.Conv2d(netl_channels, channels, 1)

    def forward(self, x: torch.Tensor, guide: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.project(guide)
        (mu_d, sd_d, n_d), (mu_c, sd_c, n_c) = ops.masked_mean_std_pair(x, mask)
        has_clean = n_c > 0
        mu_c = torch.where(has_clean, mu_c, mu_d)
        sd_c = torch.where(has_clean, sd_c, sd_d)
        scale = sd_c / sd_d
        modulated = torch.addcmul(mu_c - mu_d * scale, x, scale)  # sd_c * (x - mu_d) / sd_d + mu_c
        return torch.lerp(x, modulated, mask)  # mask * modulated + (1 - mask) * x


class MaskedConv(nn.Conv2d):
    """A Conv2d whose forward is ``ops.masked_conv2d``: zero off the mask."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor, active: object = None) -> torch.Tensor:  # type: ignore[override]
        return ops.masked_conv2d(x, mask, self.weight, self.bias, active)


class SC(nn.Module):
    """Sparse Convolution module: densely connected masked 3x3 convs, then a masked 1x1
    (``ops.masked_conv_stack``)."""

    def __init__(self, channels: int, growth: int, layers: int):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(channels + i * growth, growth, 3, padding=1) for i in range(layers)
        )
        self.fuse = nn.Conv2d(channels + layers * growth, channels, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, active: object = None) -> torch.Tensor:
        convs = [(conv.weight, conv.bias) for conv in self.convs]
        return ops.masked_conv_stack(x, mask, convs, (self.fuse.weight, self.fuse.bias), 0.2, active)


class SNLStep(nn.Module):
    """One aggregation step: four directional scans fused with per-pixel weights E (Eq. 5)."""

    def __init__(self, channels: int):
        super().__init__()
        self.weights = nn.Conv2d(channels, 4, 3, padding=1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, active: object = None) -> torch.Tensor:
        e = torch.softmax(self.weights(x), dim=1)  # (B, 4, H, W)
        return ops.snl_aggregate(x, mask, e, active)  # mask * sum_k e_k g_k + (1 - mask) * x


class SNL(nn.Module):
    """Sparse Non-Local module: step, sparse 1x1 refinement, step (Fig. 3)."""

    def __init__(self, channels: int):
        super().__init__()
        self.step1 = SNLStep(channels)
        self.refine = MaskedConv(channels, channels, 1)
        self.step2 = SNLStep(channels)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, active: object = None) -> torch.Tensor:
        x = self.step1(x, mask, active)
        x = x + F.leaky_relu(self.refine(x, mask, active), 0.2)
        return self.step2(x, mask, active)
