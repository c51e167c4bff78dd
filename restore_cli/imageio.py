"""Reading and writing images for ``restore``.

Input is recognised by its content, not its name, and becomes upright float RGB in [0, 1].
Output keeps what the input had (bit depth, greyscale, alpha, ICC profile, EXIF) as far as
the output format allows, says in ``Image.notes`` what it could not keep, and is written
atomically. Every failure is an ``ImageError`` with one line naming the file.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
from PIL import Image as PILImage

from . import image_formats
from .errors import ImageError

MAX_PIXELS = 100_000_000
STALE_AFTER_S = 3600  # a temporary file older than this is a killed run's, not a live write
READ_FORMATS = ("PNG", "JPEG", "TIFF", "WEBP", "BMP", "GIF", "PPM")
# Greyscale output from restored RGB: ITU-R BT.601 luma, the weights Pillow's convert("L") uses.
LUMA = np.array([0.299, 0.587, 0.114], np.float32)
OVERLAY_TINT = np.array([1.0, 0.0, 0.0], np.float32)
OVERLAY_OPACITY = 0.5


@dataclass
class Image:
    """A decoded input image and what must travel with it to the output."""

    rgb: np.ndarray  # float32 (H, W, 3) in [0, 1]; grey replicated; EXIF orientation applied
    alpha: np.ndarray | None  # (H, W) as in the file (uint8/uint16), oriented like rgb
    bit_depth: int  # 8 or 16, from the decoded samples' dtype
    grayscale: bool
    icc_profile: bytes | None
    exif: bytes | None  # orientation reset to 1, since the pixels are upright
    notes: list[str] = field(default_factory=list)
    source_format: str = ""
    lossless: bool = False  # stored losslessly in a format that can also be lossy (WebP)


# --- reading -----------------------------------------------------------------------------------


def read_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> Image:
    """Read the image at `path` (format from its content); refuse more than `max_pixels` pixels
    before decoding. Pillow's own guard (2 x PIL.Image.MAX_IMAGE_PIXELS) also applies, and a
    truncated file is an error while PIL.ImageFile.LOAD_TRUNCATED_IMAGES keeps its default False."""
    path = Path(path)
    data = _read_bytes(path)
    with _as_image_error(path, "cannot read image"), _open_pillow(path, data, max_pixels) as pil:
        _check_size(path, pil.size, max_pixels)
        decoded = image_formats.decode(pil, data)
        source_format = pil.format
    samples = decoded.samples
    scale = np.float32(np.iinfo(samples.dtype).max)
    rgb = samples.astype(np.float32) / scale
    return Image(
        rgb=np.repeat(rgb[..., None], 3, axis=2) if rgb.ndim == 2 else rgb,
        alpha=decoded.alpha,
        bit_depth=8 * samples.dtype.itemsize,
        grayscale=decoded.grayscale,
        icc_profile=decoded.icc_profile,
        exif=decoded.exif,
        notes=decoded.notes,
        source_format=source_format,
        lossless=decoded.lossless,
    )


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, or an ImageError saying why there are none."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a folder, not an image") from None
    except OSError as error:
        raise ImageError(f"{path}: cannot read file: {error.strerror or error}") from None
    if not data:
        raise ImageError(f"{path}: file is empty")
    return data


def _open_pillow(path: Path, data: bytes, max_pixels: int) -> PILImage.Image:
    """Identify `data` with Pillow (header only, nothing decoded yet)."""
    try:
        with warnings.catch_warnings():  # we apply our own limit; Pillow's error still stands
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            return PILImage.open(io.BytesIO(data), formats=READ_FORMATS)
    except PILImage.UnidentifiedImageError:
        raise ImageError(f"{path}: not an image, or not a supported format "
                         f"({', '.join(READ_FORMATS)})") from None
    except PILImage.DecompressionBombError as error:  # over Pillow's own limit, so over ours too
        size = re.search(r"\((\d+) pixels\)", str(error))
        pixels = f"{size.group(1)} pixels" if size else "its size"
        raise ImageError(f"{path}: image is too large: {pixels} exceeds the limit of {max_pixels}") from None


def _check_size(path: Path, size: tuple[int, int], max_pixels: int) -> None:
    """Refuse an image whose header claims more than `max_pixels` pixels."""
    width, height = size
    if width * height > max_pixels:
        raise ImageError(f"{path}: image is too large: {width}x{height} = {width * height} pixels "
                         f"exceeds the limit of {max_pixels}")


# --- writing -----------------------------------------------------------------------------------


def is_supported_output_ext(ext: str) -> bool:
    """Whether write_image can write files ending in `ext` ("png" or ".png", any case)."""
    return "." + ext.lower().lstrip(".") in image_formats.OUTPUT_FORMATS


def write_image(path: str | os.PathLike, image: Image, rgb: np.ndarray) -> None:
    """Write restored `rgb` (float (H, W, 3) in [0, 1]) stored like `image`, format from the
    suffix. What the format cannot keep is dropped and said in `image.notes`."""
    path = Path(path)
    out = image_formats.OUTPUT_FORMATS.get(path.suffix.lower())
    if out is None:
        kind = f"'{path.suffix}' files" if path.suffix else "files without a suffix"
        raise ImageError(f"{path}: cannot write {kind}: use one of {', '.join(image_formats.OUTPUT_FORMATS)}")
    if rgb.shape != image.rgb.shape:
        raise ValueError(f"rgb has shape {rgb.shape}, the image {image.rgb.shape}")
    samples, alpha, notes = _output_layers(image, rgb, out)
    image.notes.extend(note for note in notes if note not in image.notes)
    with _as_image_error(path, "cannot write image"):
        atomic_write(path, lambda tmp: image_formats.encode(
            tmp, out, samples, alpha, image.icc_profile, image.exif, image.lossless))


def _output_layers(image: Image, rgb: np.ndarray, out: image_formats.OutputFormat
                   ) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """(samples, alpha, notes): `rgb` quantised to what `out` can hold of the input's layout."""
    notes = []
    depth = min(image.bit_depth, out.max_bit_depth)
    if depth < image.bit_depth:
        notes.append(f"wrote 8-bit {out.name}: it cannot hold 16-bit samples")
    alpha = image.alpha
    if alpha is not None and not out.alpha:
        notes.append(f"dropped the alpha channel: {out.name} cannot hold it")
        alpha = None
    grey = image.grayscale and not (depth == 16 and alpha is not None)
    if image.grayscale and not grey:
        notes.append("wrote 16-bit grey + alpha as RGBA (no writer for 16-bit grey + alpha)")
    samples = _quantize(rgb @ LUMA if grey else rgb, depth)
    if alpha is not None and alpha.dtype != samples.dtype:
        alpha = _quantize(alpha / np.iinfo(alpha.dtype).max, depth)
    if (image.icc_profile or image.exif) and not image_formats.keeps_metadata(out, samples):
        notes.append(f"dropped the ICC profile / EXIF: not kept in this {out.name} output")
    return samples, alpha, notes


def _quantize(values: np.ndarray, depth: int) -> np.ndarray:
    """Floats in [0, 1] rounded (not truncated) to unsigned `depth`-bit integers."""
    dtype = np.uint8 if depth == 8 else np.uint16
    clipped = np.clip(np.nan_to_num(values), 0.0, 1.0)
    return np.rint(clipped * np.iinfo(dtype).max).astype(dtype)


def write_mask(path: str | os.PathLike, mask: np.ndarray) -> None:
    """Save a boolean (H, W) mask as a binary 0/255 8-bit greyscale PNG."""
    _write_png(Path(path), PILImage.fromarray(np.where(_as_mask(mask), 255, 0).astype(np.uint8)))


def write_overlay(path: str | os.PathLike, image: Image, mask: np.ndarray) -> None:
    """Save a viewing aid: `mask` tinted red at half opacity over the input, as 8-bit RGB PNG."""
    mask = _as_mask(mask)
    if mask.shape != image.rgb.shape[:2]:
        raise ValueError(f"mask has shape {mask.shape}, the image {image.rgb.shape[:2]}")
    tinted = (1 - OVERLAY_OPACITY) * image.rgb + OVERLAY_OPACITY * OVERLAY_TINT
    overlay = np.where(mask[..., None], tinted, image.rgb)
    _write_png(Path(path), PILImage.fromarray(_quantize(overlay, 8)))


def _as_mask(mask: np.ndarray) -> np.ndarray:
    """`mask` as bool (H, W), or ValueError."""
    if mask.ndim != 2:
        raise ValueError(f"a mask must be (H, W), got shape {mask.shape}")
    return mask.astype(bool)


def _write_png(path: Path, pil: PILImage.Image) -> None:
    """Atomically save a Pillow image as PNG, whatever the suffix."""
    with _as_image_error(path, "cannot write image"):
        atomic_write(path, lambda tmp: pil.save(tmp, format="PNG", **image_formats.PNG_OPTIONS))


def atomic_write(path: str | os.PathLike, write_to_tmp: Callable[[Path], None]) -> None:
    """Write `path` all or nothing: `write_to_tmp` fills a temporary file in the same folder,
    which is synced to disk and renamed over `path`. On any failure, Ctrl-C included, the
    temporary file is removed and an existing `path` is left as it was."""
    path = Path(path)
    tmp = _temporary_path(path, uuid.uuid4().hex[:8])
    try:
        write_to_tmp(tmp)
        with open(tmp, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


TEMPORARY_NAME = re.compile(r"\.(?P<name>.+)\.[0-9a-f]{8}\.tmp(?P<suffix>.*)")  # what _temporary_path makes


def _temporary_path(path: Path, tag: str) -> Path:
    """Where ``atomic_write(path)`` writes first: a hidden file beside ``path``, ``tag`` 8 hex digits."""
    return path.with_name(f".{path.name}.{tag}.tmp{path.suffix}")


def _temporaries(folder: Path, names: set[str]) -> list[os.DirEntry]:
    """The temporary files in ``folder`` of ``atomic_write`` to any of ``names`` (one listing)."""
    found = []
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            left = TEMPORARY_NAME.fullmatch(entry.name)
            if left and left["name"] in names and left["suffix"] == Path(left["name"]).suffix:
                found.append(entry)
    return found


def temporary_files(path: str | os.PathLike) -> list[Path]:
    """The temporary files ``atomic_write(path)`` may have left if its process was killed."""
    path = Path(path)
    return sorted(Path(entry.path) for entry in _temporaries(path.parent, {path.name}))


def remove_stale_temporary_files(paths: Iterable[Path]) -> None:
    """Remove the temporary files a killed run left for any of ``paths`` (``atomic_write``'s,
    over ``STALE_AFTER_S`` old, so never a live write's): one listing per folder."""
    by_folder: dict[Path, set[str]] = {}
    for path in paths:
        by_folder.setdefault(path.parent, set()).add(path.name)
    for folder, names in by_folder.items():
        for entry in _temporaries(folder, names):
            with contextlib.suppress(OSError):
                if time.time() - entry.stat().st_mtime > STALE_AFTER_S:
                    os.unlink(entry.path)


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable where the OS allows syncing a folder (POSIX)."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _as_image_error(path: Path, action: str) -> Iterator[None]:
    """Re-raise any library error (Pillow, OpenCV, OS) inside as a one-line ImageError."""
    try:
        yield
    except ImageError:
        raise
    except Exception as error:
        text = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        reason = " ".join(text.split()) or type(error).__name__
        raise ImageError(f"{path}: {action}: {reason}") from error
