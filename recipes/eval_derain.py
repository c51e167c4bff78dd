"""Score derain weights on the fixed synthetic val sets (light and heavy rain).

Builds each set in memory from ../shared/data/bsds500/val with a fixed seed
(the same pairs ``restore synth rain --regime R --seed 100 --n N`` writes),
runs the full pipeline (NetL mask -> NetR), and prints Y-PSNR / SSIM (MATLAB
rgb2ycbcr Y, Gaussian SSIM, no rounding: the PReNet convention) of input and
output, and NetL's mask F1 against the thresholded |rainy - clean| mask.
Last line: JSON.

    .venv/bin/python recipes/eval_derain.py --weights weights/derain.safetensors --n 97
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from restore_cli.metrics import f1_score, y_psnr, y_ssim
from restore_cli.pipeline import Pipeline
from restore_cli.synth.mask import degradation_mask
from restore_cli.synth.rain import add_rain
from restore_cli.train.data import list_images, read_rgb
from restore_cli.train.recipe import Recipe
from restore_cli.weights import load_model

SEED = 100


def evaluate(pipe: Pipeline, clean_dir: str, regime: str, n: int, threshold: float) -> dict:
    rows = []
    for i, path in enumerate(list_images(clean_dir)[:n]):
        clean = read_rgb(path)
        rainy = add_rain(clean, np.random.default_rng([SEED, i]), regime)
        rainy = np.round(rainy * 255) / 255  # as if read back from an 8-bit PNG
        out, mask = pipe.restore(rainy)
        out = np.round(out * 255) / 255
        rows.append(
            {
                "input_psnr": y_psnr(rainy, clean),
                "psnr": y_psnr(out, clean),
                "input_ssim": y_ssim(rainy, clean),
                "ssim": y_ssim(out, clean),
                "f1": f1_score(mask, degradation_mask(rainy, clean, threshold)),
            }
        )
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} | {"n": len(rows)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default="weights/derain.safetensors")
    ap.add_argument("--val", default="../shared/data/bsds500/val")
    ap.add_argument("--recipe", default="recipes/derain.json")
    ap.add_argument("--n", type=int, default=97)
    args = ap.parse_args()
    model, weights_id, _ = load_model("derain", args.weights)
    pipe = Pipeline.from_model(model, "derain", device="cpu")
    threshold = Recipe.load(args.recipe).threshold
    t0 = time.time()
    results = {regime: evaluate(pipe, args.val, regime, args.n, threshold) for regime in ("light", "heavy")}
    print(f"weights: {weights_id}   convention: Y of MATLAB rgb2ycbcr, Gaussian SSIM, Y not rounded")
    print(f"{'set':8} {'n':>4} {'input PSNR':>11} {'PSNR':>7} {'input SSIM':>11} {'SSIM':>7} {'mask F1':>8}")
    for regime, r in results.items():
        print(f"{regime:8} {r['n']:>4} {r['input_psnr']:>11.2f} {r['psnr']:>7.2f} {r['input_ssim']:>11.4f} {r['ssim']:>7.4f} {r['f1']:>8.3f}")
    print(f"({time.time() - t0:.0f} s)")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
