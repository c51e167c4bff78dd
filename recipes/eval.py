"""Score a task's weights on its fixed synthetic val sets.

Each set is built in memory from the first N photos of
../shared/data/bsds500/val, photo i degraded with ``rng([100, i])`` (the pairs
``restore synth <kind> --clean VAL --seed 100 --n N`` writes). The full
pipeline runs (NetL mask -> NetR) and the 8-bit output is scored against the
clean photo with the task's bench convention (``restore_cli.bench.protocols``),
next to the degraded input's own score; NetL's mask is scored by F1 against
the GT mask of the synthesis (thresholded |degraded - clean|, or the drops /
the shadow region). Last line: JSON.

    .venv/bin/python recipes/eval.py --task derain --n 40
    .venv/bin/python recipes/eval.py --task deshadow --n 40
    .venv/bin/python recipes/eval.py --task deshadow --n 40 --mask gt   # NetR's bound: a perfect NetL
    .venv/bin/python recipes/eval.py --task deblur --n 40 --mask-logit -1  # NetL's mask cut elsewhere
    .venv/bin/python recipes/eval.py --task derain --n 40 --tta  # restore --tta: the mean of 4 flips
    .venv/bin/python recipes/eval.py --task derain --n 40 --debias  # also: with each photo's mean Y error removed
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from functools import partial

import numpy as np

from restore_cli.bench.protocols import CONVENTIONS, to_uint8
from restore_cli.memory import keep_freed_memory
from restore_cli.metrics import f1_score, psnr, rgb_to_y
from restore_cli.pipeline import Pipeline
from restore_cli.synth.degraders import degrade_with_mask, degrader
from restore_cli.synth.rain import add_rain
from restore_cli.train.data import list_images, read_rgb
from restore_cli.train.recipe import Recipe
from restore_cli.weights import REGISTRY, load_model

SEED = 100



def untouched(clean: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The "none" set: the photo as it is, nothing to find (what a model does to a photo without its degradation)."""
    return clean, np.zeros(clean.shape[:2], bool)


# The val sets of each task: name -> degrader. Derain is scored per rain regime. The sets in
# OPTIONAL_SETS run only when --sets names them: "none" (every task) and deblur's "objects"
# (a still camera, only moving objects blurred).
SETS = {
    "derain": {regime: partial(add_rain, regime=regime) for regime in ("light", "heavy", "extreme")},
    "deraindrop": {"val": degrader("deraindrop")},
    "deshadow": {"val": degrader("deshadow")},
    "deblur": {"val": degrader("deblur"), "objects": degrader("deblur", still=1.0)},
}
for _sets in SETS.values():
    _sets["none"] = untouched
OPTIONAL_SETS = {"none", "objects"}
# Derain keeps the PReNet convention (unrounded MATLAB Y) its first numbers used;
# the others score RGB PSNR, and shadows also the ISTD Lab errors.
CONVENTION_NAMES = {"derain": ["y-matlab"], "deraindrop": ["rgb"], "deshadow": ["rgb", "lab-mae"], "deblur": ["rgb"]}


def debiased_y_psnr(out_u8: np.ndarray, clean_u8: np.ndarray) -> float:
    """Y-PSNR (MATLAB Y, 255) after removing the output's mean Y error: an oracle that
    tells how much of the error is the photo's overall brightness (a haze veil misjudged)."""
    ya, yb = rgb_to_y(out_u8 / 255.0), rgb_to_y(clean_u8 / 255.0)
    return psnr(ya - (ya - yb).mean(), yb, 255.0)


def evaluate(
    pipe: Pipeline, task: str, degrade, clean_dir: str, n: int, threshold: float, gt_mask_to_netr: bool = False,
    debias: bool = False,
) -> dict:
    conventions = [CONVENTIONS[name] for name in CONVENTION_NAMES[task]]
    records = []
    for i, path in enumerate(list_images(clean_dir)[:n]):
        clean = read_rgb(path)
        degraded, gt_mask = degrade_with_mask(degrade, clean, np.random.default_rng([SEED, i]), threshold)
        degraded_u8, clean_u8 = to_uint8(degraded), to_uint8(clean)  # as if read back from 8-bit PNGs
        out, mask = pipe.restore(degraded_u8.astype(np.float32) / 255.0, gt_mask if gt_mask_to_netr else None)
        out_u8 = to_uint8(out)
        record = {"f1": f1_score(mask, gt_mask), "flagged": float(mask.mean())}
        if debias:
            record["debiased_psnr"] = debiased_y_psnr(out_u8, clean_u8)
        for conv in conventions:
            record.update(conv.score(out_u8, clean_u8, gt_mask))
            record.update({f"input_{k}": v for k, v in conv.score(degraded_u8, clean_u8, gt_mask).items()})
        records.append(record)
    means = ("f1", "flagged", "debiased_psnr") if debias else ("f1", "flagged")
    result = {"n": len(records), **{k: float(np.mean([r[k] for r in records])) for k in means}}
    for conv in conventions:
        result.update(conv.aggregate(records, conv.metrics))
        result.update({f"input_{k}": v for k, v in conv.aggregate(records, conv.metrics, "input_").items()})
    return result


def _cell(value: float | None) -> str:
    """A score for the table; None where a set has nothing to score (no shadow in the "none" set)."""
    return "n/a" if value is None else f"{value:.4g}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", required=True, choices=list(SETS))
    ap.add_argument("--weights", default=None, help="default: the task's shipped weights")
    ap.add_argument("--val", default="../shared/data/bsds500/val")
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--sets", nargs="+", default=None,
                    help="only these val sets (derain: light heavy extreme; every task: none; deblur: val objects)")
    ap.add_argument("--mask", choices=["netl", "gt"], default="netl",
                    help="gt: NetR gets the synthesis's GT mask instead of NetL's (what a perfect NetL would give)")
    ap.add_argument("--mask-logit", type=float, default=None,
                    help="cut NetL's logits here instead of at the model's own mask_logit (0 unless its recipe sets one)")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                    help="what the networks compute in (restore's --precision); the README's numbers are fp32")
    ap.add_argument("--tta", action="store_true", help="average over the four flips (restore's --tta)")
    ap.add_argument("--debias", action="store_true",
                    help="also report Y-PSNR with each photo's mean Y error removed (an oracle; Y conventions)")
    args = ap.parse_args()
    unknown = set(args.sets or []) - set(SETS[args.task])
    if unknown:
        ap.error(f"--sets: {args.task} has no val set {', '.join(sorted(unknown))} (it has {', '.join(SETS[args.task])})")
    keep_freed_memory()  # as the CLI does: big feature maps reuse freed memory
    model, weights_id, _ = load_model(args.task, args.weights)
    if args.mask_logit is not None:
        model.cfg = dataclasses.replace(model.cfg, mask_logit=args.mask_logit)
    pipe = Pipeline.from_model(model, args.task, device="cpu", precision=args.precision, tta=args.tta)
    threshold = Recipe.load(REGISTRY[args.task].recipe_json).threshold  # the shipped model's recipe
    t0 = time.time()
    sets = {name: d for name, d in SETS[args.task].items()
            if (name in args.sets if args.sets else name not in OPTIONAL_SETS)}
    results = {name: evaluate(pipe, args.task, d, args.val, args.n, threshold, args.mask == "gt", args.debias)
               for name, d in sets.items()}
    conventions = [CONVENTIONS[name] for name in CONVENTION_NAMES[args.task]]
    mask_source = "the synthesis's GT mask" if args.mask == "gt" else "NetL's mask"
    print(f"weights: {weights_id}; NetR given {mask_source} (NetL cut at logit {model.cfg.mask_logit}); {args.precision}"
          f"{'; averaged over 4 flips (--tta)' if args.tta else ''}")
    for conv in conventions:
        print(f"convention {conv.name}: {conv.source}")
    metrics = [m for conv in conventions for m in conv.metrics]
    print(f"{'set':8} {'n':>4} " + " ".join(f"{'input ' + m:>13} {m:>8}" for m in metrics) + f" {'mask F1':>8} {'flagged':>8}")
    for name, r in results.items():
        cells = " ".join(f"{_cell(r['input_' + m]):>13} {_cell(r[m]):>8}" for m in metrics)
        debiased = f"   debiased Y-PSNR {r['debiased_psnr']:.4g}" if args.debias else ""
        print(f"{name:8} {r['n']:>4} {cells} {r['f1']:>8.3f} {r['flagged']:>8.1%}{debiased}")
    print(f"({time.time() - t0:.0f} s)")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
