"""Everything is declared in pyproject.toml; this only makes wheels carry the folders
that ship beside the code (``restore_cli.resources.SHIPPED``: the bundled weights, the
kernel sources, the example photos) inside the package, as ``restore_cli/_data/``."""

import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

sys.path.insert(0, str(Path(__file__).resolve().parent))
from restore_cli.resources import SHIPPED  # noqa: E402
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


class BuildWithShippedFolders(build_py):
    def run(self):
        super().run()
        for name in SHIPPED:
            target = Path(self.build_lib) / "restore_cli" / "_data" / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(name, target, ignore=SKIP)


setup(cmdclass={"build_py": BuildWithShippedFolders})
