"""Time the CUDA kernels (``ops.cuda``, through CuPy) against dense cuDNN / PyTorch on a GPU.

The CUDA counterpart of ``sparse_ops.py``, at the same NetR shapes and rain-like
masks: the SC layer (``KernelOps.masked_conv2d``, the mask-to-index kernels
included) against a dense ``F.conv2d``; SFM's masked mean/std and SNL's
directional attention against ``ops.reference`` on the same GPU. Each result
is checked against ``ops.reference`` first. Times are medians of
``--repeats`` runs, each ended by ``torch.cuda.synchronize()``. Convs use
full float32 (TF32 off), as the reference does. Last line, JSON:
``{"ratios": {"0.05": r, ...}}``, r = kernel / dense median time of the
SC layer at the largest shape, plus the shipped derain pipeline's
seconds per photo and, for a 4000x3000 photo with the default tiling,
seconds and peak GPU memory.

    python benchmarks/cuda_ops.py [--repeats 20] [--photo examples/rainy.png]
"""

from __future__ import annotations

import argparse
import json
import time

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from restore_cli.imageio import read_image
from restore_cli.ops import cuda, reference
from restore_cli.pipeline import load_pipeline
from sparse_ops import DENSITIES, SHAPES, median_ms, rain_like_mask


def synced(fns: dict) -> dict:
    """Each function followed by a device synchronisation, so the wall clock times the GPU work."""
    return {name: (lambda fn=fn: (fn(), torch.cuda.synchronize())) for name, fn in fns.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--photo", default="examples/rainy.png", help="a rainy photo for the pipeline timings")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark times the GPU kernels")
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    kernels = cuda.kernel_ops()
    dev = torch.device("cuda")
    rng, gen = np.random.default_rng(0), torch.Generator().manual_seed(0)
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, median wall time of {args.repeats} runs")
    print(f"{'shape':>14} {'density':>7} {'dense ms':>9} {'kernel ms':>9} {'ratio':>6} "
          f"{'stats ref':>9} {'stats k':>8} {'attn ref':>9} {'attn k':>8} {'max err':>8}")
    ratios = {}
    for shape_i, (c, h, w) in enumerate(SHAPES):
        x = torch.randn(1, c, h, w, generator=gen).to(dev)
        weight = (torch.randn(c, c, 3, 3, generator=gen) / (3 * c**0.5)).to(dev)
        bias = torch.randn(c, generator=gen).to(dev)
        for density in DENSITIES:
            mask = rain_like_mask(h, w, density, rng).to(dev)
            with torch.inference_mode():
                err = max(
                    float((kernels.masked_conv2d(x, mask, weight, bias) - reference.masked_conv2d(x, mask, weight, bias)).abs().max()),
                    max(float((a - b).abs().max()) for a, b in zip(kernels.masked_mean_std(x, mask), reference.masked_mean_std(x, mask))),
                    float((kernels.directional_attention(x, mask) - reference.directional_attention(x, mask)).abs().max()),
                )
                t = median_ms(synced({
                    "dense": lambda: F.conv2d(x, weight, bias, padding=1),
                    "kernel": lambda: kernels.masked_conv2d(x, mask, weight, bias),
                    "stats ref": lambda: reference.masked_mean_std(x, mask),
                    "stats k": lambda: kernels.masked_mean_std(x, mask),
                    "attn ref": lambda: reference.directional_attention(x, mask),
                    "attn k": lambda: kernels.directional_attention(x, mask),
                }), args.repeats, time.perf_counter)
            ratio = t["kernel"] / t["dense"]
            if shape_i == 0:
                ratios[str(density)] = round(ratio, 3)
            print(f"{f'{c}x{h}x{w}':>14} {density:>7} {t['dense']:>9.3f} {t['kernel']:>9.3f} {ratio:>6.2f} "
                  f"{t['stats ref']:>9.3f} {t['stats k']:>8.3f} {t['attn ref']:>9.2f} {t['attn k']:>8.3f} {err:>8.1e}")
    pipeline = pipeline_timings(args.photo, args.repeats)
    print(json.dumps({"ratios": ratios, **pipeline}))


def pipeline_timings(photo: str, repeats: int) -> dict:
    """``restore derain``'s pipeline on the GPU: seconds per photo (median), and a 4000x3000
    version of it (resized) with the default tiling: seconds and peak GPU memory."""
    pipe = load_pipeline("derain", device="cuda")
    rgb = read_image(photo).rgb
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        pipe.restore(rgb)  # returns host arrays: the GPU work is done
        times.append(time.perf_counter() - start)
    big = cv2.resize(rgb, (4000, 3000), interpolation=cv2.INTER_CUBIC)
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    pipe.restore(big)
    big_s = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30
    per_photo = float(np.median(times))
    print(f"\npipeline, shipped derain: {rgb.shape[1]}x{rgb.shape[0]} {per_photo * 1000:.1f} ms per photo (median of {repeats}); "
          f"4000x3000 (tile {pipe.tile}, pad {pipe.tile_pad}): {big_s:.2f} s, peak GPU memory {peak:.2f} GiB")
    return {"pipeline_s_per_photo": round(per_photo, 4), "big_4000x3000_s": round(big_s, 3), "big_peak_gib": round(peak, 3)}


if __name__ == "__main__":
    main()
