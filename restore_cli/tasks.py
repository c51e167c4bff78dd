"""The restoration tasks and inference defaults (no heavy imports: the CLI reads this at start-up)."""

TASKS = {
    "derain": "Remove rain streaks.",
    "deraindrop": "Remove raindrops stuck on the lens or window.",
    "deshadow": "Remove shadows.",
    "deblur": "Remove motion blur.",
}
DEFAULT_TILE = 512  # tile side in px; 0 = the whole image at once
DEFAULT_TILE_PAD = 32  # context px around each tile
MIN_TILE = 32  # smaller tiles give the networks too little to see, and take minutes: one pass per tile


def check_tile(tile: int) -> int:
    """``--tile``'s check: 0 (no tiling) or at least ``MIN_TILE``."""
    import typer

    if 0 < tile < MIN_TILE:
        raise typer.BadParameter(f"{tile} px is too small; use 0 (no tiling) or at least {MIN_TILE}")
    return tile
