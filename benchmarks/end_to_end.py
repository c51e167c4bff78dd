"""Time ``restore derain`` per image over a folder, start-up included.

1. Folder mode, as a user runs it: one ``python -m restore_cli derain FOLDER``
   run over the images (interpreter, imports, weights, image I/O all
   included); its wall time divided by the number of images. Once with
   ``--jobs`` (default 0: the CLI's default, one worker process per core) and
   once with ``-j 1`` (one process using every core).
2. In this process, ``Pipeline.restore`` per image with the ops of
   ``ops.reference`` and then with the default ones (``ops.dispatch``: the
   CPU fast path), and the largest difference between their outputs. The
   process first tunes malloc as ``restore`` does (``restore_cli.memory``).
3. The baseline, PReNet-6 (``prenet.py``; random weights, which do not change
   its time), in this process on the first ``--baseline-limit`` images, in
   fp32 as its authors run it and in bf16 (autocast), as ``restore`` may
   run, and in fp32 on one thread (what each of one-per-core processes would
   take); and the ratios of ``restore``'s times to its fp32 median (issue #5:
   at most 0.25).

Without ``--weights``, the shipped derain weights (the bundled copy); with
``--weights random``, a random SPAIR of the default config, saved to a
temporary safetensors file: right for timing, but its NetL does not predict
rain, so its masks are not sparse like a trained one's. Rainy inputs can be
made with ``restore synth rain --clean DIR --out OUT --n 4``.

    python benchmarks/end_to_end.py FOLDER [--weights FILE|random] [--limit 4] [--device cpu] [--threads N]
                                           [--precision auto|fp32|bf16] [--baseline-limit 4] [--jobs 0]

``--precision`` as for ``restore`` (auto: bf16 on a CPU that computes it natively).

Last line, JSON: seconds per image (medians in process) and the ratios to PReNet-6.
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
from restore_cli.memory import keep_freed_memory
from restore_cli.models import SPAIR, SPAIRConfig, save_spair
from restore_cli.ops import dispatch, reference
from restore_cli.pipeline import load_pipeline
from restore_cli.train.data import list_images
from restore_cli.weights import get_record

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prenet import PReNet  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OP_NAMES = ("active_set", "masked_conv2d", "masked_conv_stack", "masked_mean_std", "masked_mean_std_pair",
            "directional_attention", "snl_aggregate")


def cli_seconds_per_image(images: list[Path], weights: Path, tmp: Path, device: str, precision: str, env: dict,
                          jobs: int) -> float:
    """Wall seconds of one ``restore derain -j JOBS`` run over a folder of ``images``, per image."""
    folder = tmp / "in"
    folder.mkdir(exist_ok=True)
    for image in images:
        if not (folder / image.name).exists():
            (folder / image.name).symlink_to(image.resolve())
    cmd = [sys.executable, "-m", "restore_cli", "derain", str(folder), "-o", str(tmp / f"out-j{jobs}"),
           "--weights", str(weights), "--device", device, "--precision", precision, "--quiet", "--jobs", str(jobs)]
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"{folder}: restore derain failed ({done.returncode}): {done.stderr.strip()}")
    return seconds / len(images)


class ReferenceOps:
    """``ops.reference`` behind the dispatcher's signatures (the ``active`` hint is ignored)."""

    masked_mean_std = staticmethod(reference.masked_mean_std)
    masked_mean_std_pair = staticmethod(reference.masked_mean_std_pair)

    @staticmethod
    def active_set(mask):
        return None

    @staticmethod
    def masked_conv2d(x, mask, weight, bias=None, active=None):
        return reference.masked_conv2d(x, mask, weight, bias)

    @staticmethod
    def masked_conv_stack(x, mask, convs, fuse, slope=0.2, active=None):
        return reference.masked_conv_stack(x, mask, convs, fuse, slope)

    @staticmethod
    def directional_attention(x, mask, active=None):
        return reference.directional_attention(x, mask)

    @staticmethod
    def snl_aggregate(x, mask, weights, active=None):
        return reference.snl_aggregate(x, mask, weights)


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


def _sig(x: float) -> float:
    """``x`` to four significant digits (tiny test images take milliseconds)."""
    return float(f"{x:.4g}")


def prenet_seconds(images: list, device: str) -> dict[str, list[float]]:
    """Seconds per image of PReNet-6 on ``images`` (HxWx3 float RGB): fp32, bf16 autocast, and
    fp32 on one CPU thread."""
    torch.manual_seed(0)
    net = PReNet().to(device).eval()
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    threads = torch.get_num_threads()
    times = {"fp32": [], "bf16": []} | ({"fp32_1thread": []} if device == "cpu" else {})
    with torch.inference_mode():
        for rgb in images:
            x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float().to(device)
            for precision, seconds in times.items():
                torch.set_num_threads(1 if precision == "fp32_1thread" else threads)
                with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=precision == "bf16"):
                    sync()
                    start = time.perf_counter()
                    net(x)
                    sync()  # a GPU runs the net asynchronously: wait for it before reading the clock
                    seconds.append(time.perf_counter() - start)
    torch.set_num_threads(threads)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--limit", type=int, default=4, help="images to time (the first, sorted)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch / OpenMP threads")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--baseline-limit", type=int, default=4, help="images PReNet-6 is timed on (0: none)")
    parser.add_argument("--jobs", type=int, default=0, help="restore's --jobs for the folder run (0: its default)")
    args = parser.parse_args()

    images = list_images(args.folder)[: args.limit]
    if not images:
        sys.exit(f"{args.folder}: no images")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
        torch.set_num_threads(args.threads)

    label = str(args.weights or get_record("derain").bundled_path)
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(label)
        if label == "random":
            torch.manual_seed(0)
            weights = Path(tmp) / "random_spair.safetensors"
            save_spair(SPAIR(SPAIRConfig()), weights)
        cli = cli_seconds_per_image(images, weights, Path(tmp), args.device, args.precision, env, args.jobs)
        cli_one = cli_seconds_per_image(images, weights, Path(tmp), args.device, args.precision, env, 1)
        keep_freed_memory()  # as the CLI does
        pipe = load_pipeline("derain", weights, args.device, precision=args.precision)
        rgbs = [read_image(image).rgb for image in images]
        ref, ref_results = in_process(pipe, rgbs, ReferenceOps)
        fast, fast_results = in_process(pipe, rgbs, dispatch)
        baseline = prenet_seconds(rgbs[: args.baseline_limit], args.device)
    gap = max(float(abs(a[0] - b[0]).max()) for a, b in zip(ref_results, fast_results))

    print(f"weights: {'random SPAIR, default config' if label == 'random' else label}; "
          f"torch threads {torch.get_num_threads()}; {pipe.precision}")
    print(f"restore derain over the folder, start-up included: {cli:.2f} s per image with --jobs {args.jobs}, "
          f"{cli_one:.2f} s with -j 1")
    print(f"{'image':>24} {'size':>10} {'mask':>5} {'ref ops s':>9} {'fast ops s':>10}")
    for image, rgb, (_, mask), b, c in zip(images, rgbs, ref_results, ref, fast):
        size = f"{rgb.shape[1]}x{rgb.shape[0]}"
        print(f"{image.name[-24:]:>24} {size:>10} {mask.mean():>5.2f} {b:>9.2f} {c:>10.2f}")
    print(f"largest |reference - fast| over the restored pixels: {gap:.2e}")
    medians = {"in_process_reference_ops": statistics.median(ref), "in_process_fast_ops": statistics.median(fast)}
    report = {"seconds_per_image": {"cli_folder": _sig(cli), "cli_folder_j1": _sig(cli_one),
                                    **{k: _sig(v) for k, v in medians.items()}}}
    if baseline["fp32"]:
        prenet = {f"prenet6_{p}": statistics.median(t) for p, t in baseline.items()}
        report["seconds_per_image"].update({k: _sig(v) for k, v in prenet.items()})
        ours = {"cli_folder": cli, "cli_folder_j1": cli_one, "in_process_fast_ops": medians["in_process_fast_ops"]}
        report["ratio_to_prenet6_fp32"] = {k: _sig(v / prenet["prenet6_fp32"]) for k, v in ours.items()}
        print(f"PReNet-6 in process, median of {len(baseline['fp32'])} images: {prenet['prenet6_fp32']:.2f} s fp32, "
              f"{prenet['prenet6_bf16']:.2f} s bf16, {prenet.get('prenet6_fp32_1thread', float('nan')):.2f} s fp32 on "
              f"one thread; restore / PReNet-6 fp32: folder {report['ratio_to_prenet6_fp32']['cli_folder']:.2f} "
              f"(-j 1: {report['ratio_to_prenet6_fp32']['cli_folder_j1']:.2f}), in process "
              f"{report['ratio_to_prenet6_fp32']['in_process_fast_ops']:.2f} (target <= 0.25)")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
