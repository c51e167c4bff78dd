"""Where the files that ship beside the code are: ``weights/``, ``kernels/``, ``examples/``.

In a clone (and an editable install) they are the repository's top-level
folders. A wheel carries a copy of them inside the package, under
``restore_cli/_data/`` (``setup.py`` puts them there), since a wheel holds
nothing outside its packages.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
SHIPPED = ("weights", "kernels", "examples")  # what setup.py copies into wheels


def shipped(name: str) -> Path:
    """The folder ``name`` (one of ``SHIPPED``): the wheel's copy where there is one, else the
    repository's. (Not the other way round: installed, the package's parent is site-packages,
    where another distribution may have put a folder of that name.)"""
    in_wheel = PACKAGE / "_data" / name
    return in_wheel if in_wheel.is_dir() else PACKAGE.parent / name
