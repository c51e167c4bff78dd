"""PReNet-6 (Ren et al., CVPR 2019), the speed baseline of ``end_to_end.py``.

Issue #5's target is relative: ``restore derain`` at most a quarter of
PReNet's time per image *on the same machine*. Rather than quote a figure
from elsewhere, the benchmark times this network on the same photos in the
same run. It is the architecture of the authors' ``networks.PReNet``
(168,963 parameters, as their paper's Table 1 gives): six recurrent stages,
each ``f_in`` (a 3x3 conv of the rainy image and the last estimate), a
convolutional LSTM, five residual blocks and ``f_out``, predicting a residual
to the rainy image. Its weights are random: no op depends on their values,
so the time is the trained network's.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def _conv(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=1)


class PReNet(nn.Module):
    def __init__(self, stages: int = 6, channels: int = 32):
        super().__init__()
        self.stages, self.channels = stages, channels
        self.f_in = _conv(6, channels)
        # The LSTM's i, f, g, o convs as one conv: the same weights and work as the
        # authors' four, a little faster here (so the baseline is, if anything, flattered).
        self.gates = _conv(2 * channels, 4 * channels)
        self.res = nn.ModuleList(nn.Sequential(_conv(channels, channels), nn.ReLU(), _conv(channels, channels), nn.ReLU())
                                 for _ in range(5))
        self.f_out = _conv(channels, 3)

    def forward(self, rainy: torch.Tensor) -> torch.Tensor:
        b, _, h, w = rainy.shape
        x = rainy
        hidden = cell = rainy.new_zeros(b, self.channels, h, w)
        for _ in range(self.stages):
            x = F.relu(self.f_in(torch.cat([rainy, x], dim=1)))
            i, f, g, o = self.gates(torch.cat([x, hidden], dim=1)).chunk(4, dim=1)
            cell = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(g)
            hidden = x = torch.sigmoid(o) * torch.tanh(cell)
            for block in self.res:
                x = F.relu(block(x) + x)
            x = self.f_out(x) + rainy
        return x
