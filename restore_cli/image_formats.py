"""Pixel decoding and encoding behind ``restore_cli.imageio``.

Pillow does most of the work. OpenCV steps in only where Pillow cannot hold the samples:
16-bit colour (or 16-bit grey + alpha) PNG/TIFF, which Pillow would reduce to 8 bits.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import ExifTags
from PIL import Image as PILImage

ORIENTATION = ExifTags.Base.Orientation
GREY_MODES = ("1", "L", "LA", "La")
# Pillow modes we turn into one of L, LA, RGB, RGBA ("P" depends on transparency, "CMYK" gets a note).
CONVERSIONS = {"1": "L", "La": "LA", "PA": "RGBA", "RGBa": "RGBA", "RGBX": "RGB", "YCbCr": "RGB"}
EXIF_HEADER = b"Exif\x00\x00"


@dataclass
class Decoded:
    """Upright integer samples of one image, plus what travels with them."""

    samples: np.ndarray  # (H, W) grey or (H, W, 3) RGB, uint8 or uint16
    alpha: np.ndarray | None  # (H, W), same dtype as samples
    grayscale: bool
    icc_profile: bytes | None
    exif: bytes | None
    notes: list[str] = field(default_factory=list)
    lossless: bool = False  # a lossless WebP: written back losslessly


@dataclass(frozen=True)
class OutputFormat:
    """What an output format can hold, and the Pillow options it is saved with."""

    name: str
    max_bit_depth: int
    alpha: bool
    metadata: bool  # ICC profile and EXIF
    options: dict = field(default_factory=dict)


# zlib level 3: 2.7x faster than Pillow's default 6 for 1-2 % larger files (a 481x321 photo:
# 28 vs 75 ms, 256 vs 252 kB); OpenCV, which writes the 16-bit ones, defaults to level 1.
PNG_OPTIONS = {"compress_level": 3}

OUTPUT_FORMATS = {
    ".png": OutputFormat("PNG", 16, alpha=True, metadata=True, options=PNG_OPTIONS),
    ".jpg": OutputFormat("JPEG", 8, alpha=False, metadata=True, options={"quality": 95}),
    ".jpeg": OutputFormat("JPEG", 8, alpha=False, metadata=True, options={"quality": 95}),
    ".webp": OutputFormat("WEBP", 8, alpha=True, metadata=True, options={"quality": 95}),
    ".tif": OutputFormat("TIFF", 16, alpha=True, metadata=True, options={"compression": "tiff_deflate"}),
    ".tiff": OutputFormat("TIFF", 16, alpha=True, metadata=True, options={"compression": "tiff_deflate"}),
    ".bmp": OutputFormat("BMP", 8, alpha=False, metadata=False),
}


# --- reading -----------------------------------------------------------------------------------


def decode(pil: PILImage.Image, data: bytes) -> Decoded:
    """Decode an opened (not yet loaded) Pillow image whose file content is `data`, upright."""
    rawmode = _rawmode(pil)  # asked before load(), which clears the tile list
    sixteen = ";16" in rawmode
    use_opencv = sixteen and pil.format in ("PNG", "TIFF") and pil.mode in ("RGB", "RGBA", "LA")
    # Pillow opens 16-bit grey+alpha PNG as RGBA: only the stored layout tells it is grey.
    grey = pil.mode in GREY_MODES or pil.mode.startswith("I") or rawmode.startswith("LA;")
    pil.load()
    # Pillow's (and OpenCV's) TIFF decoders turn the pixels upright themselves and Pillow then
    # drops the tag, so what is left after load() is what still needs doing.
    exif = pil.getexif()
    if use_opencv:
        samples, alpha = _opencv_samples(data, grey)
        icc, notes = pil.info.get("icc_profile"), []
    else:
        samples, alpha, icc, notes = _pillow_samples(pil, sixteen)
    frames = getattr(pil, "n_frames", 1)
    if frames > 1:
        notes.append(f"used the first of its {frames} frames")
    orientation = exif.get(ORIENTATION, 1)
    return Decoded(
        samples=orient(samples, orientation),
        alpha=None if alpha is None else orient(alpha, orientation),
        grayscale=grey,
        icc_profile=icc or None,
        exif=_upright_exif(pil, exif),
        notes=notes,
        lossless=pil.format == "WEBP" and is_lossless_webp(data),
    )


def is_lossless_webp(data: bytes) -> bool:
    """Whether a WebP file's image is VP8L (lossless) rather than VP8 (lossy): the first of
    those chunks in its RIFF container (after VP8X, ICCP, ALPH... in an extended file)."""
    at = 12  # "RIFF", size, "WEBP"
    while at + 8 <= len(data):
        kind, size = data[at:at + 4], int.from_bytes(data[at + 4:at + 8], "little")
        if kind in (b"VP8L", b"VP8 "):
            return kind == b"VP8L"
        at += 8 + size + (size & 1)  # chunks are padded to an even size
    return False


def orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Turn rows/columns of `array` upright for an EXIF orientation (the transposes of
    ``PIL.ImageOps.exif_transpose``, done on arrays so 16-bit colour works too)."""
    turns = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
        8: lambda a: np.rot90(a, 1),
    }
    turn = turns.get(orientation)
    return array if turn is None else np.ascontiguousarray(turn(array))


def _rawmode(pil: PILImage.Image) -> str:
    """How the file stores its samples, e.g. "RGB;16B" (Pillow keeps only grey ones at 16 bits)."""
    args = pil.tile[0].args if pil.tile else None
    rawmode = args[0] if isinstance(args, tuple) else args
    return rawmode if isinstance(rawmode, str) else ""


def _opencv_samples(data: bytes, grey: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """(samples, alpha) at full depth via OpenCV, which gives grey+alpha as BGRA."""
    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise ValueError("OpenCV could not decode the 16-bit image data")
    alpha = np.ascontiguousarray(array[..., 3]) if array.ndim == 3 and array.shape[2] == 4 else None
    colour = array[..., 2::-1] if array.ndim == 3 else array
    return np.ascontiguousarray(colour[..., 0] if grey and colour.ndim == 3 else colour), alpha


def _pillow_samples(pil: PILImage.Image, sixteen: bool
                    ) -> tuple[np.ndarray, np.ndarray | None, bytes | None, list[str]]:
    """(samples, alpha, icc_profile, notes) from a loaded Pillow image."""
    icc, notes = pil.info.get("icc_profile"), []
    if pil.mode == "CMYK":
        pil, icc = pil.convert("RGB"), None
        notes.append("converted CMYK to RGB (approximate colours; its CMYK ICC profile was dropped)")
    elif pil.mode == "P":
        pil = pil.convert("RGBA" if "transparency" in pil.info else "RGB")
    elif pil.mode in CONVERSIONS:
        pil = pil.convert(CONVERSIONS[pil.mode])
    if pil.mode.startswith("I") and sixteen:  # "I;16*", or "I" holding 16-bit grey (e.g. PGM)
        return np.asarray(pil).astype(np.uint16), None, icc, notes
    if pil.mode not in ("L", "LA", "RGB", "RGBA"):
        raise ValueError(f"unsupported pixel format {pil.mode!r}")
    array = np.asarray(pil)
    if not pil.mode.endswith("A"):
        return array, None, icc, notes
    colour = array[..., 0] if pil.mode == "LA" else array[..., :3]
    return np.ascontiguousarray(colour), np.ascontiguousarray(array[..., -1]), icc, notes


def _upright_exif(pil: PILImage.Image, exif: PILImage.Exif) -> bytes | None:
    """The file's EXIF with orientation reset to 1; None for TIFF, whose tags describe its own layout."""
    if pil.format == "TIFF" or not len(exif):
        return None
    if ORIENTATION in exif:
        exif[ORIENTATION] = 1
    return exif.tobytes()


# --- writing -----------------------------------------------------------------------------------


def needs_opencv(samples: np.ndarray) -> bool:
    """Whether Pillow cannot write these samples (16-bit colour)."""
    return samples.dtype == np.uint16 and samples.ndim == 3


def keeps_metadata(out: OutputFormat, samples: np.ndarray) -> bool:
    """Whether the ICC profile and EXIF survive writing these samples in this format."""
    return out.metadata and not (needs_opencv(samples) and out.name == "TIFF")


def encode(tmp: Path, out: OutputFormat, samples: np.ndarray, alpha: np.ndarray | None,
           icc: bytes | None, exif: bytes | None, lossless: bool = False) -> None:
    """Write samples (+ alpha) to `tmp` in format `out`, with metadata where it can hold it;
    `lossless` (the input was a lossless WebP) writes a WebP losslessly too."""
    if not keeps_metadata(out, samples):
        icc = exif = None
    if needs_opencv(samples):
        _encode_opencv(tmp, out, samples, alpha, icc, exif)
        return
    pil = PILImage.fromarray(samples if alpha is None else np.dstack([samples, alpha]))
    metadata = {"icc_profile": icc, "exif": exif}
    # exact: keep the colour under fully transparent pixels too (libwebp drops it by default)
    options = {"lossless": True, "exact": True} if lossless and out.name == "WEBP" else out.options
    pil.save(tmp, format=out.name, **options, **{k: v for k, v in metadata.items() if v})


def _encode_opencv(tmp: Path, out: OutputFormat, samples: np.ndarray, alpha: np.ndarray | None,
                   icc: bytes | None, exif: bytes | None) -> None:
    """16-bit colour PNG/TIFF via OpenCV (bytes written by Python, so any path works)."""
    bgr = samples[..., ::-1] if alpha is None else np.dstack([samples[..., ::-1], alpha])
    chunks = {cv2.IMAGE_METADATA_ICCP: icc, cv2.IMAGE_METADATA_EXIF: exif and exif.removeprefix(EXIF_HEADER)}
    kinds = [kind for kind, chunk in chunks.items() if chunk]
    ok, buffer = cv2.imencodeWithMetadata(
        f".{out.name.lower()}", np.ascontiguousarray(bgr), kinds,
        [np.frombuffer(chunks[kind], np.uint8) for kind in kinds])
    if not ok:
        raise ValueError(f"OpenCV could not encode 16-bit {out.name}")
    tmp.write_bytes(buffer.tobytes())
