"""The speed benchmarks run, and their baseline is the network it claims to be."""

from __future__ import annotations

import json
import subprocess
import sys

import torch

from .conftest import REPO, subprocess_env, write_image

sys.path.insert(0, str(REPO / "benchmarks"))
from prenet import PReNet  # noqa: E402


def test_prenet_baseline_has_the_papers_parameter_count_and_predicts_an_image():
    net = PReNet()
    assert sum(p.numel() for p in net.parameters()) == 168_963  # PReNet paper, Table 1
    with torch.inference_mode():
        assert net(torch.rand(1, 3, 10, 14)).shape == (1, 3, 10, 14)


def test_end_to_end_benchmark_prints_times_and_ratios_to_prenet(tmp_path):
    for i in range(2):
        write_image(tmp_path / "in" / f"{i}.png", (20, 28), seed=i)
    cmd = [sys.executable, str(REPO / "benchmarks" / "end_to_end.py"), str(tmp_path / "in"),
           "--weights", "random", "--limit", "2", "--baseline-limit", "1", "--threads", "1", "--precision", "fp32"]
    done = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    seconds = report["seconds_per_image"]
    assert all(seconds[k] > 0 for k in ("cli_folder", "in_process_fast_ops", "prenet6_fp32", "prenet6_bf16"))
    ratio = report["ratio_to_prenet6_fp32"]["cli_folder"]
    assert abs(ratio - seconds["cli_folder"] / seconds["prenet6_fp32"]) < 0.02 * ratio + 1e-3
