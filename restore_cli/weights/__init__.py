"""Task weights: pinned records (``registry``), resolving and loading them (``hub``), the CLI (``cli``).

``hub`` imports huggingface_hub (about half a second), so its names are loaded
on first use and ``import restore_cli.weights`` stays cheap.
"""

from .registry import REGISTRY, WeightsRecord, get_record

_HUB_NAMES = ("load_model", "resolve", "pull", "Resolved")

__all__ = ["REGISTRY", "WeightsRecord", "get_record", *_HUB_NAMES]


def __getattr__(name: str):
    if name in _HUB_NAMES:
        from . import hub

        return getattr(hub, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
