"""Which weights each task uses: one pinned record per task (like timm's pretrained cfgs).

A record names the Hub file, the sha256 it must have, and where a bundled copy
lives. ``sha256=None`` means no trained weights exist yet: such a task refuses
to run rather than run untrained weights. Importing this module is cheap (no
torch, no huggingface_hub).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import WeightsError
from ..resources import shipped

REPO_ROOT = Path(__file__).resolve().parents[2]

# Pinned sha256 of each task's released weights; None until that task is trained.
PINNED_SHA256: dict[str, str | None] = {
    "derain": "e3df009ae19c201c13035218080e66de2f5a15f9fddd2ff0af8da460f4c47d29",
    "deraindrop": "34f55bc1aca20599e3ad1f326a37a033a39459b3db36dd15553949e30be990bf",
    "deshadow": "eb695d3467fe833161707ac1260d50affba18e7bcd7ce62e4c03fad6c24b509a",
    "deblur": "9ec20c2e64c0747946a5ce61fb418a1073a1e4b07b22f9ede04c0cd05011ed87",
}


def weights_dir() -> Path:
    """Directory of bundled weights: ``$RESTORE_WEIGHTS_DIR`` or the shipped ``weights/``."""
    return Path(os.environ.get("RESTORE_WEIGHTS_DIR") or shipped("weights"))


@dataclass(frozen=True)
class WeightsRecord:
    """Where a task's weights come from and what they must hash to."""

    task: str
    repo_id: str
    filename: str
    sha256: str | None
    recipe: str  # the script that reproduces these weights, relative to the repository root
    arch: str = "spair"
    revision: str = "main"
    license: str = "MIT"

    @property
    def bundled_path(self) -> Path:
        """Where a bundled copy lives (read at call time, so the env override applies)."""
        return weights_dir() / self.filename

    @property
    def recipe_json(self) -> Path:
        """The recipe these weights come from: ``recipes/<name>.json`` for ``weights/<name>.safetensors``."""
        return REPO_ROOT / "recipes" / f"{Path(self.filename).stem}.json"

    @property
    def weights_id(self) -> str:
        return f"{self.repo_id}/{self.filename}@{self.revision}"


# A task whose weights come from a recipe of another name (recipes/<name>.json,
# exported as weights/<name>.safetensors); the others use the task's name.
RECIPE_NAMES: dict[str, str] = {
    "derain": "derain-lr13",  # derain-snl2 (crop224 without the half-resolution SNL), its NetR trained on at 2e-4, 1e-4, 2e-4, 1e-4, 2e-4, 1e-4, 2e-4, then 1e-4 five times
    "deraindrop": "deraindrop-lowcut",  # deraindrop-netl5b (lr2g with NetL and NetR grown to five-conv dense blocks, NetL trained on with Dice, NetR trained on), NetL cut at logit -1 and NetR adapted
    "deblur": "deblur-snl1",  # deblur-still2 without the full-resolution SNL (61 % less time per photo), NetR trained on
    "deshadow": "deshadow-netl5c",  # deshadow-relight's NetL trained on with Dice, grown, cut at logit 0.5; NetR adapted
}


def _record(task: str, sha256: str | None = None) -> WeightsRecord:
    name = RECIPE_NAMES.get(task, task)
    return WeightsRecord(task, f"restore-cli/spair-{task}", f"{name}.safetensors", sha256, f"recipes/train.sh {name}")


REGISTRY: dict[str, WeightsRecord] = {task: _record(task, sha) for task, sha in PINNED_SHA256.items()}


def get_record(task: str) -> WeightsRecord:
    """The task's record; a WeightsError if the task is unknown or has no trained weights yet."""
    if task not in REGISTRY:
        raise WeightsError(f"unknown task '{task}'; choose one of {', '.join(REGISTRY)}")
    rec = REGISTRY[task]
    if rec.sha256 is None:
        raise WeightsError(
            f"no trained weights for task '{task}' yet; train them with {rec.recipe} "
            f"or pass --weights FILE"
        )
    return rec
