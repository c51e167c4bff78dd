"""Shared fixtures: tiny images, a tiny random SPAIR, and the CLI run against it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import restore_cli.pipeline
from restore_cli.models import SPAIR, TINY, save_spair
from restore_cli.pipeline import Pipeline

REPO = Path(__file__).resolve().parents[1]


def write_image(path: Path, size: tuple[int, int] = (24, 32), mode: str = "RGB", seed: int = 0) -> Path:
    """A random ``mode`` image of ``size`` = (height, width) saved at ``path`` (format from its suffix)."""
    rng = np.random.default_rng(seed)
    h, w = size
    if mode == "I;16":
        pil = Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
    else:
        base = "RGBA" if "A" in mode else "RGB"
        pil = Image.fromarray(rng.integers(0, 256, (h, w, len(base)), dtype=np.uint8), base).convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    pil.save(path)
    return path


def subprocess_env() -> dict[str, str]:
    """The environment for running ``python -m restore_cli`` from the source tree.

    One torch thread: on a busy machine more threads make tiny images many times slower.
    """
    pythonpath = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": pythonpath, "OMP_NUM_THREADS": "1"}


def restore_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "restore_cli", *map(str, args)]


@pytest.fixture(scope="session")
def tiny_model() -> SPAIR:
    torch.manual_seed(0)
    return SPAIR(TINY).eval()


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory, tiny_model) -> Path:
    """The tiny model saved as a self-describing safetensors file, for ``--weights``."""
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_spair(tiny_model, path)
    return path


@pytest.fixture
def loads(monkeypatch, tiny_model) -> list[dict]:
    """Replace ``load_pipeline`` with the tiny model; returns the list of its calls' arguments."""
    calls = []

    def fake_load_pipeline(task, weights=None, device="auto", tile=512, tile_pad=32, precision="fp32", tta=False):
        calls.append(dict(task=task, weights=weights, device=device, tile=tile, tile_pad=tile_pad, precision=precision,
                          tta=tta))
        return Pipeline.from_model(tiny_model, task, device="cpu", precision=precision, tile=tile, tile_pad=tile_pad,
                                   tta=tta)

    monkeypatch.setattr(restore_cli.pipeline, "load_pipeline", fake_load_pipeline)
    return calls


@pytest.fixture
def cli(loads):
    """Run ``restore ARGS...`` in-process against the tiny model; returns the click Result.

    Image commands get ``--jobs 1`` first (a later ``--jobs`` wins): worker processes would not
    see the tiny model patched in here.
    """
    from restore_cli.cli import app
    from restore_cli.tasks import TASKS

    runner = CliRunner()

    def invoke(*args):
        args = [str(a) for a in args]
        if args and (args[0] in TASKS or args[0] == "mask"):
            args[1:1] = ["--jobs", "1"]
        return runner.invoke(app, args)

    return invoke
