"""Time ``restore derain`` per image over a folder, start-up included.

1. Each image is restored by its own ``python -m restore_cli derain IMAGE``
   process (as a user runs it: interpreter, imports, weights, image I/O).
2. In this process, ``Pipeline.restore`` per image with the ops of
   ``ops.reference`` and then with those of ``ops.dispatch`` (the fast path),
   which is what the CLI gains once the models call the dispatcher.

Without ``--weights``, a random SPAIR of the default config is saved to a
temporary safetensors file: right for timing, but its NetL does not predict
rain, so its masks are not sparse like a trained one's. Rainy inputs can be
made with ``restore synth rain --clean DIR --out OUT --n 4``.

    python benchmarks/end_to_end.py FOLDER [--weights FILE] [--limit 4] [--device cpu] [--threads N]

Last line, JSON: median seconds per image for each of the three.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from restore_cli import ops
from restore_cli.imageio import read_image
from restore_cli.models import SPAIR, SPAIRConfig, save_spair
from restore_cli.ops import dispatch, reference
from restore_cli.pipeline import load_pipeline

REPO = Path(__file__).resolve().parents[1]
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
OP_NAMES = ("masked_conv2d", "masked_mean_std", "directional_attention")


def cli_seconds(image: Path, weights: Path, out: Path, device: str, env: dict) -> float:
    cmd = [sys.executable, "-m", "restore_cli", "derain", str(image), "-o", str(out),
           "--weights", str(weights), "--device", device, "--quiet"]
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"{image}: restore derain failed ({done.returncode}): {done.stderr.strip()}")
    return seconds


def in_process(pipe, images: list, implementation) -> tuple[list[float], list]:
    """Restore each image with ``restore_cli.ops`` pointing at ``implementation``'s ops.

    Returns the seconds per image and the ``(restored, mask)`` results.
    """
    saved = {name: getattr(ops, name) for name in OP_NAMES}
    try:
        for name in OP_NAMES:
            setattr(ops, name, getattr(implementation, name))
        times, results = [], []
        for rgb in images:
            start = time.perf_counter()
            results.append(pipe.restore(rgb))
            times.append(time.perf_counter() - start)
        return times, results
    finally:
        for name, fn in saved.items():
            setattr(ops, name, fn)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--limit", type=int, default=4, help="images to time (the first, sorted)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch / OpenMP threads")
    args = parser.parse_args()

    images = sorted(p for p in args.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[: args.limit]
    if not images:
        sys.exit(f"{args.folder}: no images")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights
        if weights is None:
            torch.manual_seed(0)
            weights = Path(tmp) / "random_spair.safetensors"
            save_spair(SPAIR(SPAIRConfig()), weights)
        cli = [cli_seconds(image, weights, Path(tmp) / "out", args.device, env) for image in images]
        pipe = load_pipeline("derain", weights, args.device)
        rgbs = [read_image(image).rgb for image in images]
        ref, ref_results = in_process(pipe, rgbs, reference)
        fast, fast_results = in_process(pipe, rgbs, dispatch)
    gap = max(float(abs(a[0] - b[0]).max()) for a, b in zip(ref_results, fast_results))

    print(f"weights: {args.weights or 'random SPAIR, default config'}; torch threads {torch.get_num_threads()}")
    print(f"{'image':>24} {'size':>10} {'mask':>5} {'cli s':>7} {'ref ops s':>9} {'fast ops s':>10}")
    for image, rgb, (_, mask), a, b, c in zip(images, rgbs, ref_results, cli, ref, fast):
        size = f"{rgb.shape[1]}x{rgb.shape[0]}"
        print(f"{image.name[-24:]:>24} {size:>10} {mask.mean():>5.2f} {a:>7.2f} {b:>9.2f} {c:>10.2f}")
    print(f"largest |reference - fast| over the restored pixels: {gap:.2e}")
    medians = {"cli": cli, "in_process_reference_ops": ref, "in_process_fast_ops": fast}
    print(json.dumps({"seconds_per_image": {k: round(statistics.median(v), 3) for k, v in medians.items()}}))


if __name__ == "__main__":
    main()
