"""The benchmark registry and the folder layouts the test sets are distributed in.

Each dataset lives in ``ROOT/<Name>/`` (``ROOT`` is ``--root``, else
``$RESTORE_DATA``, else ``~/.cache/restore/datasets``), in any of the
layouts below, directly or under a ``test/`` subfolder. Pairs are matched by
name; a file without its counterpart is reported, never silently dropped.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import RestoreError

HUB_REPO = "restore-cli/benchmarks"  # Hub dataset repo holding one folder per dataset name
SYNTHETIC = "synthetic-rain"


@dataclass(frozen=True)
class Dataset:
    name: str
    task: str
    convention: str  # default metric convention (see protocols.CONVENTIONS)
    about: str


DATASETS = {
    d.name: d
    for d in (
        Dataset("Rain100H", "derain", "y-matlab-round", "Yang et al. 2017, heavy synthetic rain, 100 pairs"),
        Dataset("Rain100L", "derain", "y-matlab-round", "Yang et al. 2017, light synthetic rain, 100 pairs"),
        Dataset("Test100", "derain", "y-matlab-round", "Rain800 test split (Zhang et al.), 100 pairs"),
        Dataset("Test1200", "derain", "y-matlab-round", "DID-MDN test set (Zhang & Patel), 1200 pairs"),
        Dataset("Test2800", "derain", "y-matlab-round", "Rain14000 test split (Fu et al.), 2800 pairs"),
        Dataset("SPA-Data", "derain", "y-matlab-round", "SPANet real rain (Wang et al. 2019), 1000 pairs"),
        Dataset("RainDrop-A", "deraindrop", "rgb", "Qian et al. 2018 test_a, 58 pairs"),
        Dataset("RainDrop-B", "deraindrop", "rgb", "Qian et al. 2018 test_b, 249 pairs"),
        Dataset("ISTD", "deshadow", "lab-mae", "Wang et al. 2018 test split: shadow, mask, shadow-free, 540 triplets"),
        Dataset("GoPro", "deblur", "rgb", "Nah et al. 2017 test split, 1111 pairs"),
        Dataset("HIDE", "deblur", "rgb", "Shen et al. 2019 test split, 2025 pairs"),
        Dataset("RealBlur-J", "deblur", "rgb", "Rim et al. 2020 JPEG test split, 980 pairs"),
        Dataset(SYNTHETIC, "derain", "y-matlab-round", "built-in: 6 crops of examples/clean.png with seeded synthetic rain"),
    )
}


@dataclass(frozen=True)
class Pair:
    name: str  # unique within the dataset; may contain "/" (GoPro sequences)
    input: Path
    target: Path
    mask: Path | None = None


@dataclass
class Found:
    layout: str
    pairs: list[Pair]
    unmatched: list[dict] = field(default_factory=list)  # {"name", "reason"}


def default_root() -> Path:
    return Path(os.environ.get("RESTORE_DATA") or Path.home() / ".cache" / "restore" / "datasets")


def _natural(key: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", key)]


def _images(folder: Path, pattern: str = r"(.+)") -> dict[str, Path]:
    """Image files in ``folder`` keyed by the first group of ``pattern`` matched on the stem."""
    from ..inputs import is_image_name  # Pillow: imported here, not when the CLI starts

    if not folder.is_dir():
        return {}
    found = {}
    for p in folder.iterdir():
        m = re.fullmatch(pattern, p.stem)
        if p.is_file() and is_image_name(p) and m:
            found[m.group(1)] = p
    return found


def _pair(layout: str, inputs: dict, targets: dict, masks: dict | None = None, prefix: str = "") -> Found:
    """Match by key; every input or target without its counterpart is listed as unmatched."""
    pairs, unmatched = [], []
    for key in sorted(inputs.keys() | targets.keys(), key=_natural):
        name = prefix + key
        if key not in targets:
            unmatched.append({"name": name, "reason": f"no target for {inputs[key].name}"})
        elif key not in inputs:
            unmatched.append({"name": name, "reason": f"no input for {targets[key].name}"})
        elif masks is not None and key not in masks:
            unmatched.append({"name": name, "reason": f"no mask for {inputs[key].name}"})
        else:
            pairs.append(Pair(name, inputs[key], targets[key], masks[key] if masks is not None else None))
    return Found(layout, pairs, unmatched)


def _input_target(root: Path) -> Found | None:
    if (root / "input").is_dir() and (root / "target").is_dir():
        return _pair("input/ + target/", _images(root / "input"), _images(root / "target"))
    return None


def _prenet(root: Path) -> Found | None:
    if (root / "rainy").is_dir():
        return _pair("rainy/rain-N + norain-N", _images(root / "rainy", r"rain-(.+)"), _images(root, r"norain-(.+)"))
    return None


def _raindrop(root: Path) -> Found | None:
    if (root / "data").is_dir() and (root / "gt").is_dir():
        inputs = _images(root / "data", r"(.+?)(?:_rain)?")
        return _pair("data/ + gt/", inputs, _images(root / "gt", r"(.+?)(?:_clean)?"))
    return None


def _istd(root: Path) -> Found | None:
    for a, b, c in (("test_A", "test_B", "test_C"), ("A", "B", "C")):
        if all((root / d).is_dir() for d in (a, b, c)):
            return _pair(f"{a}/ + {b}/ + {c}/", _images(root / a), _images(root / c), _images(root / b))
    return None


def _gopro(root: Path) -> Found | None:
    seqs = sorted(d for d in root.iterdir() if (d / "blur").is_dir() and (d / "sharp").is_dir())
    if not seqs:
        return None
    found = Found("SEQ/blur/ + SEQ/sharp/", [])
    for seq in seqs:
        part = _pair(found.layout, _images(seq / "blur"), _images(seq / "sharp"), prefix=f"{seq.name}/")
        found.pairs += part.pairs
        found.unmatched += part.unmatched
    return found


LAYOUTS: list[tuple[str, Callable[[Path], Found | None]]] = [
    ("input/ + target/ with the same names (MPRNet, Restormer)", _input_target),
    ("rainy/rain-N.png with norain-N.png beside rainy/ (JORDER, PReNet)", _prenet),
    ("data/N_rain.png + gt/N_clean.png (Qian et al. raindrop)", _raindrop),
    ("A/ + B/ + C/ or test_A/ + test_B/ + test_C/: shadow, mask, shadow-free (ISTD)", _istd),
    ("SEQ/blur/*.png + SEQ/sharp/*.png per sequence (GoPro)", _gopro),
]
LAYOUT_HELP = "; ".join(desc for desc, _ in LAYOUTS)


def find_pairs(folder: Path) -> Found:
    """The pairs in ``folder`` (or ``folder/test``), in the first layout that matches."""
    for base in (folder, folder / "test"):
        if not base.is_dir():
            continue
        for _, layout in LAYOUTS:
            found = layout(base)
            if found and (found.pairs or found.unmatched):
                return found
    raise RestoreError(f"{folder}: no image pairs in a known layout ({LAYOUT_HELP})")


def fetch(name: str, root: Path, repo: str = HUB_REPO) -> bool:
    """Try to download ``name/`` from the Hub dataset repo into ``root``; False if it cannot.

    Uses the same endpoint, timeout and offline settings as the weights
    (``RESTORE_HF_ENDPOINT``, ``RESTORE_HF_TIMEOUT``, ``HF_HUB_OFFLINE``).
    """
    from huggingface_hub import snapshot_download

    from ..weights.hub import hub_endpoint, hub_timeout, offline

    if offline():
        return False
    hub_log = logging.getLogger("huggingface_hub")  # restore reports the outcome in one line itself:
    level = hub_log.level                            # mute "Returning existing local_dir ..." and the like
    hub_log.setLevel(logging.ERROR)
    try:
        snapshot_download(repo, repo_type="dataset", allow_patterns=f"{name}/**", local_dir=root,
                          endpoint=hub_endpoint(), etag_timeout=hub_timeout())
    except Exception:  # offline, no such repo or folder, HTTP errors: all mean "not fetched"
        return False
    finally:
        hub_log.setLevel(level)
    return (root / name).is_dir()


def locate(name: str, root: Path | None = None) -> Path:
    """The folder of a registered dataset, fetched from the Hub if it is missing."""
    if name not in DATASETS:
        raise RestoreError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    root = Path(root) if root else default_root()
    folder = root / name
    if folder.is_dir() or fetch(name, root):
        return folder
    raise RestoreError(f"dataset {name} not found (nor on the Hub repo {HUB_REPO}): put it in {folder}/ as one of: {LAYOUT_HELP}")
