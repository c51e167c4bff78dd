"""Time the CPU sparse ops against their dense counterparts at NetR-like shapes.

For each shape and mask density: one SC layer (3x3 conv, C -> C, batch 1)
through ``ops.fast.masked_conv2d`` -- finding the active pixels included; the
compiled kernel of ``ops.native`` where it applies -- against a dense
``F.conv2d`` of the same shape, and the same with the kernel turned off
(PyTorch's path: gather -> GEMM -> scatter, or the masked dense conv above
``fast.DENSE_ABOVE``); then SNL's directional
attention, ``ops.fast`` against ``ops.reference``. Masks are thresholded
smoothed noise, elongated vertically: blobs and streaks like rain, not iid
pixels. Each time is the median over ``--repeats`` runs in this process.

Then NetR's whole SC module (``ops.fast.masked_conv_stack``: the active
pixels gathered once and kept as rows through all its convs) against the
same stack of dense convs. Prints tables, then as its last line JSON:
``{"ratios": {"0.05": r, ...}, "torch_ratios": {...}, "sc_stack_ratios": {...}}``
with r = sparse / dense median time of the single conv at the largest shape
(with the kernel, and PyTorch's path), and of the SC module.

    python benchmarks/sparse_ops.py [--repeats 7] [--threads N] [--clock wall|cpu] [--layout channels-last|contiguous]
                                    [--allocator keep-freed|default]

Like ``restore``, the benchmark first tunes glibc's malloc to keep freed
memory for reuse (``restore_cli.memory``); with glibc's defaults
(``--allocator default``) large outputs get fresh, page-faulting memory in
some rows and reused memory in others, which moves the dense time by up to 2x.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from restore_cli.memory import keep_freed_memory
from restore_cli.ops import fast, native, reference

SHAPES = [(32, 320, 480), (48, 160, 240)]  # (C, H, W): NetR's first two decoder levels
DENSITIES = [0.05, 0.1, 0.25, 0.5, 1.0]


def rain_like_mask(h: int, w: int, density: float, rng: np.random.Generator) -> torch.Tensor:
    """A (1, 1, h, w) binary mask with about ``density`` of its pixels set, in streaky blobs."""
    if density >= 1.0:
        return torch.ones(1, 1, h, w)
    noise = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 1.5, sigmaY=6)
    mask = noise > np.quantile(noise, 1.0 - density)
    return torch.from_numpy(mask.astype(np.float32))[None, None]


def median_ms(fns: dict, repeats: int, clock=time.perf_counter) -> dict:
    """Median time of each function, in ms.

    The functions take turns within each repeat, so that load from other
    processes hits them alike; each runs once untimed just before its timed
    run, so that none pays for the memory another one just gave back.
    """
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            fn()
            start = clock()
            fn()
            times[name].append(clock() - start)
    return {name: 1000 * statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument(
        "--clock", choices=["wall", "cpu"], default="wall",
        help="cpu: this process's CPU time, steadier than wall time on a loaded machine",
    )
    parser.add_argument(
        "--layout", choices=["channels-last", "contiguous"], default="channels-last",
        help="memory format of features and weights, for both convs (inference runs channels-last on the CPU)",
    )
    parser.add_argument(
        "--allocator", choices=["keep-freed", "default"], default="keep-freed",
        help="keep-freed: glibc's malloc tuned as restore tunes it; default: glibc's defaults",
    )
    args = parser.parse_args()
    if args.allocator == "keep-freed":
        keep_freed_memory()
    layout = torch.channels_last if args.layout == "channels-last" else torch.contiguous_format
    clock = {"wall": time.perf_counter, "cpu": time.process_time}[args.clock]
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    gen = torch.Generator().manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"median {args.clock} time of {args.repeats} runs, {layout}, {args.allocator} allocator")
    if native.library() is None or not native.ENABLED:
        print("no compiled kernel (no C++ compiler, or RESTORE_NATIVE=0): sparse = torch")
    print(f"{'shape':>14} {'density':>7} {'dense ms':>9} {'sparse ms':>9} {'ratio':>6} {'torch ms':>9} {'ratio':>6} "
          f"{'gather ms':>9} {'attn ref ms':>11} {'attn fast ms':>12}")
    ratios, torch_ratios = {}, {}
    for shape_i, (c, h, w) in enumerate(SHAPES):
        x = torch.randn(1, c, h, w, generator=gen).contiguous(memory_format=layout)
        weight = torch.randn(c, c, 3, 3, generator=gen) / (3 * c**0.5)
        weight = weight.contiguous(memory_format=layout)
        bias = torch.randn(c, generator=gen)
        for density in DENSITIES:
            mask = rain_like_mask(h, w, density, rng)
            with torch.inference_mode():
                conv = median_ms({
                    "dense": lambda: F.conv2d(x, weight, bias, padding=1),
                    "sparse": lambda: fast.masked_conv2d(x, mask, weight, bias, fast.ActiveSet(mask)),
                    "torch": lambda: without_kernel(fast.masked_conv2d, x, mask, weight, bias, fast.ActiveSet(mask)),
                    # the gather path at every density, to show where DENSE_ABOVE should sit
                    "gather": lambda: fast.sparse_conv2d(x, weight, bias, fast.ActiveSet(mask)),
                }, args.repeats, clock)
                attn = {"reference": float("nan"), "fast": float("nan")}
                if shape_i == len(SHAPES) - 1:  # the reference is slow: smallest shape only
                    attn = median_ms({
                        "reference": lambda: reference.directional_attention(x, mask),
                        "fast": lambda: fast.directional_attention(x, mask),
                    }, max(1, args.repeats // 3), clock)
            dense, sparse, gather = conv["dense"], conv["sparse"], conv["gather"]
            attn_ref, attn_fast = attn["reference"], attn["fast"]
            ratio, torch_ratio = sparse / dense, conv["torch"] / dense
            if shape_i == 0:
                ratios[str(density)] = round(ratio, 3)
                torch_ratios[str(density)] = round(torch_ratio, 3)
            print(f"{f'{c}x{h}x{w}':>14} {density:>7} {dense:>9.2f} {sparse:>9.2f} {ratio:>6.2f} "
                  f"{conv['torch']:>9.2f} {torch_ratio:>6.2f} {gather:>9.2f} {attn_ref:>11.1f} {attn_fast:>12.1f}")
    crossings(args.repeats, clock, layout, rng, gen)
    stack_ratios = sc_stack(args.repeats, clock, layout, rng, gen)
    print(json.dumps({"ratios": ratios, "torch_ratios": torch_ratios, "sc_stack_ratios": stack_ratios}))


def without_kernel(fn, *args):
    """``fn(*args)`` with the compiled kernel turned off."""
    default, native.ENABLED = native.ENABLED, False
    try:
        return fn(*args)
    finally:
        native.ENABLED = default


def crossings(repeats: int, clock, layout, rng: np.random.Generator, gen: torch.Generator) -> None:
    """Where the gather and the compiled kernel stop paying for NetR's own SC convs
    (3x3 growth convs with ``sc_growth`` = 8 outputs, the 1x1 fuse, a C -> C conv):
    the masked dense conv (what ``masked_conv2d`` falls back to) against each, by density."""
    densities = [0.2, 0.3, 0.45, 0.6, 0.75]
    print(f"\nSC convs of NetR at 320x480, masked dense ms / gather ms / kernel ms "
          f"(fast.DENSE_ABOVE = {fast.DENSE_ABOVE}, NATIVE_DENSE_ABOVE = {fast.NATIVE_DENSE_ABOVE})")
    print(f"{'conv':>14} " + " ".join(f"{d:>19}" for d in densities))
    masks = [rain_like_mask(320, 480, d, rng) for d in densities]
    for cin, cout, k in [(32, 8, 3), (72, 8, 3), (80, 32, 1), (32, 32, 3)]:
        x = torch.randn(1, cin, 320, 480, generator=gen).contiguous(memory_format=layout)
        weight = (torch.randn(cout, cin, k, k, generator=gen) / (k * cin**0.5)).contiguous(memory_format=layout)
        cells = []
        for mask in masks:
            with torch.inference_mode():
                t = median_ms({
                    "dense": lambda: reference.masked_conv2d(x, mask, weight, None),
                    "gather": lambda: fast.sparse_conv2d(x, weight, None, fast.ActiveSet(mask)),
                    "kernel": lambda: native.sparse_conv2d(x, mask, weight, None),
                }, repeats, clock)
            kernel = t["kernel"] if native.ENABLED and native.library() is not None else float("nan")
            cells.append(f"{t['dense']:>6.1f}/{t['gather']:>5.1f}/{kernel:<6.1f}")
        print(f"{f'{k}x{k} {cin}->{cout}':>14} " + " ".join(cells))


def sc_stack(repeats: int, clock, layout, rng: np.random.Generator, gen: torch.Generator) -> dict:
    """NetR's whole full-resolution SC module (derain: 32 channels, six 3x3 convs of 8
    outputs densely connected, a 1x1 fuse) through ``fast.masked_conv_stack``, against
    the same stack of plain dense convs; and each of its two paths forced, to show
    where ``STACK_DENSE_ABOVE`` should sit. Returns fast / dense by density."""
    c, growth, layers, h, w = 32, 8, 6, 320, 480
    x = torch.randn(1, c, h, w, generator=gen).contiguous(memory_format=layout)
    convs = [(torch.randn(growth, c + i * growth, 3, 3, generator=gen).contiguous(memory_format=layout) / 20,
              torch.randn(growth, generator=gen)) for i in range(layers)]
    fuse = (torch.randn(c, c + layers * growth, 1, 1, generator=gen).contiguous(memory_format=layout) / 10, None)

    def plain(x, mask, weight, bias):
        return F.conv2d(x, weight, bias, padding=weight.shape[-1] // 2)

    def forced(threshold, mask):
        default, fast.STACK_DENSE_ABOVE = fast.STACK_DENSE_ABOVE, threshold
        try:
            return fast.masked_conv_stack(x, mask, convs, fuse, 0.2, fast.ActiveSet(mask))
        finally:
            fast.STACK_DENSE_ABOVE = default

    print(f"\nSC module of NetR at {c}x{h}x{w} ({layers} convs 3x3 -> {growth}, 1x1 fuse), ms "
          f"(fast.STACK_DENSE_ABOVE = {fast.STACK_DENSE_ABOVE})")
    print(f"{'density':>7} {'dense':>7} {'fast':>7} {'ratio':>6} {'rows':>7} {'masked dense':>12}")
    ratios = {}
    for density in [0.05, 0.1, 0.25, 0.4, 0.55, 0.7, 1.0]:
        mask = rain_like_mask(h, w, density, rng)
        with torch.inference_mode():
            t = median_ms({
                "dense": lambda: reference.masked_conv_stack(x, mask, convs, fuse, 0.2, conv=plain),
                "fast": lambda: fast.masked_conv_stack(x, mask, convs, fuse, 0.2, fast.ActiveSet(mask)),
                "rows": lambda: forced(2.0, mask),
                "masked dense": lambda: forced(-1.0, mask),
            }, repeats, clock)
        ratios[str(density)] = round(t["fast"] / t["dense"], 3)
        print(f"{density:>7} {t['dense']:>7.1f} {t['fast']:>7.1f} {ratios[str(density)]:>6.2f} "
              f"{t['rows']:>7.1f} {t['masked dense']:>12.1f}")
    return ratios


if __name__ == "__main__":
    main()
