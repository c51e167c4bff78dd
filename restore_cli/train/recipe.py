"""A training recipe: everything needed to reproduce a set of shipped weights."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..models.config import SPAIRConfig

NETR_LOSSES = ("l1", "mse", "l1+fft")


def _last_started(schedule: list[list[float]], step: int, default: tuple) -> tuple:
    """The last ``[from_step, value]`` entry of ``schedule`` that has started by ``step``."""
    started = [tuple(entry) for entry in sorted(schedule) if step >= entry[0]]
    return started[-1] if started else default


@dataclass
class Recipe:
    task: str = "derain"
    model: SPAIRConfig = field(default_factory=SPAIRConfig)
    crop: int = 64
    batch: int = 8
    lr: float = 2e-4
    seed: int = 0
    threshold: float = 0.1  # GT mask threshold on mean |degraded - clean|
    # Keyword options of the task's degrader, e.g. {"mix": [light, medium, heavy, extreme]}
    # for derain's regime weights; empty: its defaults.
    synth: dict = field(default_factory=dict)
    # Strength of ``data.relight`` (the clean scene in other light before it is degraded;
    # training pairs only, not the val batch); 0: the photos as they are.
    scene_relight: float = 0.0
    netl_pos_weight: float = 1.0  # BCE weight of degraded pixels (> 1 when they are few and hard to find)
    netl_dice: float = 0.0  # weight of a soft Dice (1 - soft F1) term added to NetL's BCE (0: BCE only)
    netl_steps: int = 3000
    netr_steps: int = 20000
    # [[from_step, crop], ...]: the stage trains on these crops from those steps on
    # (larger crops give more context late in training); before the first, on ``crop``.
    netl_crops: list[list[int]] = field(default_factory=list)
    netr_crops: list[list[int]] = field(default_factory=list)
    netl_lr_halve_every: int = 0  # halve the learning rate every N steps (0: constant)
    netr_lr_halve_every: int = 0
    # [[from_step, lr], ...]: warm restarts; from that step the rate starts again at
    # ``lr`` and halves every ``{stage}_lr_halve_every`` steps counted from there.
    netl_lr_restarts: list[list[float]] = field(default_factory=list)
    netr_lr_restarts: list[list[float]] = field(default_factory=list)
    # A NetR checkpoint to start from (instead of random weights), e.g. a wider model's:
    # its NetL is used as is (netl_steps 0), and its NetR tensors are copied where names
    # match, cut to the new shapes (``loop.transplant``).
    netr_init: str = ""
    # A checkpoint whose NetL the NetL stage starts from (fine-tuning it with this
    # recipe's NetL schedule); NetR then trains with, or goes on adapting to, the result.
    # With netl_steps 0 NetR takes this NetL as is (so NetL and NetR can come from two runs).
    netl_init: str = ""
    netr_ema: float = 0.0  # decay of the moving average of NetR's weights that is shipped (0: none)
    netr_ema_start: int = 0  # NetR step the average starts at
    # NetR trains on NetL's mask cut at the model's ``mask_logit`` plus a logit drawn per
    # sample from [-J, J]: masks with NetL's own kind of false alarms and misses, as on
    # photos it has not seen, so that NetR learns not to restore a region only because it
    # is flagged (0: every mask cut at ``mask_logit``, as in inference).
    netr_mask_jitter: float = 0.0
    # NetR's pixel loss: "l1" (SPAIR's), "mse" (the error PSNR measures), or "l1+fft":
    # L1 plus 0.1 x the L1 distance of the two images' 2D spectra (MIMO-UNet's deblurring
    # loss: it weighs the lost fine detail, which the pixel L1 sees only faintly).
    netr_loss: str = "l1"
    # What the training steps compute in: "bf16" runs forward and backward under
    # torch.autocast (convs and GEMMs in bf16, weights and optimiser in fp32): about 1.6x
    # faster on a CPU with native bf16. Validation stays fp32.
    precision: str = "fp32"
    val_n: int = 8
    val_seed: int = 1234
    val_crop: int = 128

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"recipe precision {self.precision!r}: choose fp32 or bf16")
        if self.netr_loss not in NETR_LOSSES:
            raise ValueError(f"recipe netr_loss {self.netr_loss!r}: choose {' or '.join(NETR_LOSSES)}")

    def lr_at(self, stage: str, step: int) -> float:
        """Learning rate of ``stage`` at ``step``: ``lr`` (or the last restart's), halved every
        ``{stage}_lr_halve_every`` steps since step 0 (or that restart)."""
        start, lr = _last_started(getattr(self, f"{stage}_lr_restarts"), step, (0, self.lr))
        every = getattr(self, f"{stage}_lr_halve_every")
        return lr * 0.5 ** ((step - start) // every) if every else lr

    def crop_at(self, stage: str, step: int) -> int:
        """Training crop size of ``stage`` at ``step``."""
        return int(_last_started(getattr(self, f"{stage}_crops"), step, (0, self.crop))[1])

    @classmethod
    def from_dict(cls, d: dict) -> "Recipe":
        return cls(**{**d, "model": SPAIRConfig.from_dict(d["model"])})

    @classmethod
    def load(cls, path: str | Path) -> "Recipe":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        return d
