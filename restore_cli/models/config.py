"""Architecture configurations for NetL and NetR.

Widths and depths live here so that tests can build tiny models and the
shipped weights can record exactly which shape they were trained with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class NetLConfig:
    """NetL: light dense U-Net that predicts the degradation mask."""

    widths: tuple[int, ...] = (16, 32, 48)  # channels per resolution level
    growth: int = 8  # dense-block growth rate
    layers: int = 3  # convolutions per dense block
    global_context: bool = False  # FiLM from image-wide feature statistics after the bottleneck and each decoder level
    attention: int = 0  # self-attention blocks among all bottleneck pixels (``GlobalAttention``)


@dataclass(frozen=True)
class NetRConfig:
    """NetR: wider dense U-Net with SFM in the encoder and SC + SNL in the decoder."""

    widths: tuple[int, ...] = (32, 48, 64)
    growth: int = 16
    layers: int = 3
    sc_layers: int = 6  # densely connected sparse convolutions per SC module
    sc_growth: int = 8
    snl: bool = True  # sparse non-local modules in the decoder
    snl_from_level: int = 0  # ... in the decoder levels from this one down (1: none at full resolution)
    global_context: bool = False  # FiLM from image-wide feature statistics after the bottleneck and each decoder level
    context_extremes: bool = False  # ... which also sees each channel's darkest and brightest 8x8 block


@dataclass(frozen=True)
class SPAIRConfig:
    netl: NetLConfig = field(default_factory=NetLConfig)
    netr: NetRConfig = field(default_factory=NetRConfig)
    # NetL's logit above which a pixel counts as degraded (0: probability 0.5). A recipe
    # shifts it to recalibrate a NetL that is too cautious or too eager on unseen photos.
    mask_logit: float = 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        # Left out at their defaults: the weights exported before them keep their bytes.
        if d["mask_logit"] == 0.0:
            del d["mask_logit"]
        if not d["netr"]["context_extremes"]:
            del d["netr"]["context_extremes"]
        if not d["netl"]["attention"]:
            del d["netl"]["attention"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SPAIRConfig":
        def fix(sub: dict) -> dict:
            return {k: tuple(v) if isinstance(v, list) else v for k, v in sub.items()}

        return cls(NetLConfig(**fix(d["netl"])), NetRConfig(**fix(d["netr"])), float(d.get("mask_logit", 0.0)))


TINY = SPAIRConfig(
    NetLConfig(widths=(4, 8), growth=4, layers=1),
    NetRConfig(widths=(8, 8), growth=4, layers=1, sc_layers=2, sc_growth=4),
)
