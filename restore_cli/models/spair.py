"""SPAIR = NetL + NetR, plus loading and saving as safetensors.

A weights file holds ``netl.*`` and ``netr.*`` tensors; its safetensors
metadata holds, under ``"restore"``, JSON with the architecture config (and
the training steps and minutes of an export), so a file is self-describing
and nothing is ever unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import SPAIRConfig
from .netl import NetL
from .netr import NetR


class SPAIR(nn.Module):
    def __init__(self, cfg: SPAIRConfig):
        super().__init__()
        self.cfg = cfg
        self.netl = NetL(cfg.netl)
        self.netr = NetR(cfg.netr, cfg.netl)

    @property
    def multiple(self) -> int:
        """Input sides are padded to a multiple of this."""
        return 2 ** (max(len(self.cfg.netl.widths), len(self.cfg.netr.widths)) - 1)

    def _pad(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        h, w = x.shape[-2:]
        ph, pw = -h % self.multiple, -w % self.multiple
        if ph or pw:
            mode = "reflect" if min(h, w) > max(ph, pw) else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        return x, h, w

    def localise(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """NetL on a padded batch: (mask logits, features)."""
        return self.netl(x)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Restore a batch of RGB images in [0, 1]. Returns ``(restored, binary mask)``.

        ``mask`` (B,1,H,W), if given, replaces NetL's mask (NetL still supplies
        SFM's features): e.g. the ground truth, to see what a perfect NetL would give.
        """
        xp, h, w = self._pad(x)
        logits, feats = self.netl(xp)
        if mask is None:
            mask = self.cut(logits)
        else:
            # In NetL's mask's dtype (bf16 under autocast), so that NetR sees the same either way,
            # and padded as the image is: zeros there would tell NetR that the padding is clean.
            # (Cast after padding: autocast pads in fp32.)
            mask = self._pad(mask)[0].to(logits.dtype)
        out = self.netr(xp, mask, feats)
        return out[..., :h, :w], mask[..., :h, :w]

    def cut(self, logits: torch.Tensor, at: torch.Tensor | float | None = None) -> torch.Tensor:
        """NetL's logits (B,1,H,W) -> the binary mask (1 where degraded), cut at ``at``
        (a number, or one per sample; by default ``cfg.mask_logit``)."""
        at = self.cfg.mask_logit if at is None else at
        at = torch.as_tensor(at, dtype=logits.dtype, device=logits.device).reshape(-1, 1, 1, 1)
        return (logits > at).to(logits.dtype)

    def predict_mask(self, x: torch.Tensor) -> torch.Tensor:
        """The binary mask (B,1,H,W) from NetL alone, cut as ``forward`` cuts it."""
        xp, h, w = self._pad(x)
        return self.cut(self.netl(xp)[0])[..., :h, :w]


def save_spair(model: SPAIR, path: str | Path, extra: dict[str, str] | None = None) -> None:
    """Write a self-describing safetensors file (tensors + config metadata)."""
    from safetensors.torch import save_file

    # One metadata key holding sorted JSON: safetensors writes its metadata map in a
    # random order (safetensors issue #584), so with several keys two exports of the
    # same weights would differ in bytes and in sha256.
    info = {"format": "restore-spair-v1", "config": model.cfg.to_dict(), **(extra or {})}
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata={"restore": json.dumps(info, sort_keys=True)})


def load_spair(path: str | Path, map_location: str = "cpu") -> SPAIR:
    """Build a SPAIR from a safetensors file written by ``save_spair``."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "restore" in meta:
        config = json.loads(meta["restore"])["config"]
    elif "config" in meta:  # files written before the single metadata key
        config = json.loads(meta["config"])
    else:
        raise ValueError(f"{path}: not a restore SPAIR weights file (no config metadata)")
    model = SPAIR(SPAIRConfig.from_dict(config))
    model.load_state_dict(load_file(str(path), device=map_location), strict=True)
    return model.eval()
