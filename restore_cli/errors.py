"""Errors the CLI reports as one line (no traceback)."""


class RestoreError(Exception):
    """Base class: the message is one line and names the file or thing at fault."""


class WeightsError(RestoreError):
    """Weights are missing, corrupt (checksum mismatch), unsafe, or cannot be fetched."""


class ImageError(RestoreError):
    """An input image cannot be read, is unsupported, too large, or too small."""
