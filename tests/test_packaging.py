"""A wheel carries what ships beside the code, and an installed wheel runs offline from it."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from restore_cli.resources import SHIPPED

from .conftest import REPO, write_image

SOURCES = ["pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "restore_cli", *SHIPPED]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The package built as a wheel from a copy of the sources, then installed into a folder."""
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("setuptools is not installed: no wheel can be built offline")
    tmp = tmp_path_factory.mktemp("wheel")
    (tmp / "src").mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, tmp / "src" / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, tmp / "src" / name)
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp / "dist"), "."]
    subprocess.run(build, cwd=tmp / "src", check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp / "dist").glob("*.whl")
    install = [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(tmp / "site"), str(wheel)]
    subprocess.run(install, check=True, capture_output=True, timeout=300)
    return wheel, tmp / "site"


def test_the_wheel_carries_the_shipped_folders(installed):
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in SHIPPED:
        for path in (REPO / name).iterdir():
            if path.is_file() and not path.name.startswith("."):
                assert f"restore_cli/_data/{name}/{path.name}" in names


def test_an_installed_wheel_restores_with_its_bundled_weights(installed, tmp_path):
    _, site = installed
    photo = write_image(tmp_path / "in" / "a.png")
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "HF_HOME": str(tmp_path / "hf"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("RESTORE_WEIGHTS_DIR", None)
    code = "import restore_cli.resources as r; print(r.shipped('weights'))"
    where = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert where.stdout.strip() == str(site / "restore_cli" / "_data" / "weights")  # not the repository's
    done = subprocess.run([sys.executable, "-m", "restore_cli", "derain", str(photo), "-o", str(tmp_path / "out")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "a.png").exists()
