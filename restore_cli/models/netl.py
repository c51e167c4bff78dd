"""NetL, the distortion localisation network (SPAIR Sec. 3.1).

A light densely connected U-Net. It outputs one channel of mask logits
(above ``SPAIRConfig.mask_logit``, 0 by default, means "degraded") and exposes the inputs of its strided
convolutions, which NetR's SFM fuses additively.

Choices where the paper is silent (its layer table is in the supplement):
one dense block per level, bilinear upsampling + 3x3 conv in the decoder,
LeakyReLU(0.2), widths from ``NetLConfig``. Optionally (``global_context``)
the bottleneck and each decoder level end in a ``GlobalContext`` block: whether
a dark region is a shadow depends on the light in the rest of the image. And
(``attention``) the bottleneck's pixels can attend to one another
(``GlobalAttention``): a large shadow's interior looks like any dark surface
until it is related to the shadow's edge, which may be half a photo away.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .blocks import DenseBlock, Down, GlobalAttention, Up, context_block
from .config import NetLConfig


class NetL(nn.Module):
    def __init__(self, cfg: NetLConfig):
        super().__init__()
        w = cfg.widths
        self.cfg = cfg
        self.head = nn.Conv2d(3, w[0], 3, padding=1)
        self.enc = nn.ModuleList(DenseBlock(c, cfg.growth, cfg.layers) for c in w[:-1])
        self.down = nn.ModuleList(Down(a, b) for a, b in zip(w[:-1], w[1:]))
        self.mid = DenseBlock(w[-1], cfg.growth, cfg.layers)
        self.attention = nn.Sequential(*(GlobalAttention(w[-1]) for _ in range(cfg.attention)))
        self.up = nn.ModuleList(Up(b, a) for a, b in zip(w[:-1], w[1:]))
        self.dec = nn.ModuleList(DenseBlock(c, cfg.growth, cfg.layers) for c in w[:-1])
        self.mid_context = context_block(w[-1], cfg.global_context)
        self.dec_context = nn.ModuleList(context_block(c, cfg.global_context) for c in w[:-1])
        self.tail = nn.Conv2d(w[0], 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Return ``(logits (B,1,H,W), features)``; features[i] is level i's strided-conv input."""
        x = self.head(x)
        feats = []
        for enc, down in zip(self.enc, self.down):
            x = enc(x)
            feats.append(x)
            x = down(x)
        x = self.mid_context(self.attention(self.mid(x)))
        for i in reversed(range(len(self.up))):
            x = self.dec_context[i](self.dec[i](self.up[i](x, feats[i])))
        return self.tail(x), feats
