"""NetR, the spatially-guided restoration network (SPAIR Sec. 3.2).

Same dense U-Net topology as NetL, wider. Guidance from NetL enters in
three ways:

* SFM at the input of every strided convolution (encoder), fusing NetL's
  feature of that level and modulating the degraded pixels' statistics. A
  NetR may have more levels than NetL (a wider view for long blurs); its
  deeper levels have no NetL feature to fuse, and no SFM.
* SC in every decoder level and SNL in those from ``snl_from_level`` down to
  the coarsest (a full-resolution SNL costs much and gained nothing here),
  never in the encoder (as the paper).

Choices where the paper is silent: the mask is also given to the head as a
4th input channel; each decoder level computes ``x + 1x1([SC(x), SNL(x)])``
and then a dense block; the network predicts a residual added to the input.
Optionally (``global_context``) the bottleneck and each decoder level end in a
``GlobalContext`` block, for degradations with an image-wide component (the
veil and overall brightening of heavy rain).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .. import ops
from .blocks import DenseBlock, Down, Up, context_block, mask_pyramid
from .config import NetLConfig, NetRConfig
from .sparse import SC, SFM, SNL


class DecoderLevel(nn.Module):
    def __init__(self, channels: int, cfg: NetRConfig, snl: bool):
        super().__init__()
        self.sc = SC(channels, cfg.sc_growth, cfg.sc_layers)
        self.snl = SNL(channels) if snl else None
        branches = 2 if snl else 1
        self.merge = nn.Conv2d(branches * channels, channels, 1)
        self.dense = DenseBlock(channels, cfg.growth, cfg.layers)
        self.context = context_block(channels, cfg.global_context, cfg.context_extremes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        active = ops.active_set(mask)  # mask-to-index work, once per level
        branches = [self.sc(x, mask, active)]
        if self.snl is not None:
            branches.append(self.snl(x, mask, active))
        x = x + self.merge(torch.cat(branches, dim=1))
        return self.context(self.dense(x))


class NetR(nn.Module):
    def __init__(self, cfg: NetRConfig, netl_cfg: NetLConfig):
        super().__init__()
        w = cfg.widths
        self.cfg = cfg
        self.head = nn.Conv2d(4, w[0], 3, padding=1)
        self.enc = nn.ModuleList(DenseBlock(c, cfg.growth, cfg.layers) for c in w[:-1])
        # One SFM per level that NetL has a feature for (zip stops at the shorter).
        self.sfm = nn.ModuleList(SFM(c, lc) for c, lc in zip(w[:-1], netl_cfg.widths[:-1]))
        self.down = nn.ModuleList(Down(a, b) for a, b in zip(w[:-1], w[1:]))
        self.mid = DenseBlock(w[-1], cfg.growth, cfg.layers)
        self.mid_context = context_block(w[-1], cfg.global_context, cfg.context_extremes)
        self.up = nn.ModuleList(Up(b, a) for a, b in zip(w[:-1], w[1:]))
        self.dec = nn.ModuleList(
            DecoderLevel(c, cfg, snl=cfg.snl and level >= cfg.snl_from_level) for level, c in enumerate(w[:-1])
        )
        self.tail = nn.Conv2d(w[0], 3, 3, padding=1)

    def forward(
        self, image: torch.Tensor, mask: torch.Tensor, netl_feats: list[torch.Tensor]
    ) -> torch.Tensor:
        """Restore ``image`` (B,3,H,W) given the binary ``mask`` (B,1,H,W) and NetL's features."""
        masks = mask_pyramid(mask, len(self.cfg.widths))
        x = self.head(torch.cat([image, mask], dim=1))
        skips = []
        for i, (enc, down) in enumerate(zip(self.enc, self.down)):
            x = enc(x)
            if i < len(self.sfm):
                x = self.sfm[i](x, netl_feats[i], masks[i])
            skips.append(x)
            x = down(x)
        x = self.mid_context(self.mid(x))
        for i in reversed(range(len(self.up))):
            x = self.dec[i](self.up[i](x, skips[i]), masks[i])
        return image + self.tail(x)
