"""The restoration tasks and inference defaults (no heavy imports: the CLI reads this at start-up)."""

TASKS = {
    "derain": "Remove rain streaks.",
    "deraindrop": "Remove raindrops stuck on the lens or window.",
    "deshadow": "Remove shadows.",
    "deblur": "Remove motion blur.",
}
DEFAULT_TILE = 512  # tile side in px; 0 = the whole image at once
DEFAULT_TILE_PAD = 32  # context px around each tile
