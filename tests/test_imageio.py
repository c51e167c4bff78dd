"""Image reading/writing: every odd or broken file is built here, tiny, in tmp_path."""
import os
import struct
import time
import zlib

import cv2
import numpy as np
import pytest
from PIL import ExifTags, ImageCms, ImageOps, TiffImagePlugin
from PIL import Image as PILImage

from restore_cli import image_formats
from restore_cli.errors import ImageError
from restore_cli.imageio import (
    atomic_write, is_supported_output_ext, read_image, remove_stale_temporary_files, write_image, write_mask,
    write_overlay,
)

ORIENTATION = ExifTags.Base.Orientation
MAKE = ExifTags.Base.Make
SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def pixels(shape, dtype=np.uint8, seed=0):
    """Random samples covering the dtype's whole range."""
    return np.random.default_rng(seed).integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)


def save(path, array_or_pil, fmt=None, **params):
    """Save with Pillow and return the path."""
    pil = array_or_pil if isinstance(array_or_pil, PILImage.Image) else PILImage.fromarray(array_or_pil)
    pil.save(path, format=fmt, **params)
    return path


def save_16bit_colour(path, rgb, ext=".png", exif=None):
    """Save 16-bit RGB(A) with OpenCV (Pillow cannot), optionally with EXIF."""
    bgr = np.dstack([rgb[..., 2::-1], rgb[..., 3:]])
    kinds, chunks = ([cv2.IMAGE_METADATA_EXIF], [np.frombuffer(exif, np.uint8)]) if exif else ([], [])
    path.write_bytes(cv2.imencodeWithMetadata(ext, bgr, kinds, chunks)[1].tobytes())
    return path


def exif_bytes(**tags):
    exif = PILImage.Exif()
    for name, value in tags.items():
        exif[getattr(ExifTags.Base, name)] = value
    return exif.tobytes()


def exif_tags(data):
    exif = PILImage.Exif()
    exif.load(data)
    return exif


def handmade_png(width, height, bit_depth, colour_type, raw=b""):
    """A PNG whose header says whatever we like; `raw` is the unfiltered scanline data."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(raw)) if raw else b""
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + idat + chunk(b"IEND", b"")


def as_uint(rgb, dtype=np.uint8):
    return np.rint(rgb * np.iinfo(dtype).max).astype(dtype)


def assert_image_error(path, *words, **kwargs):
    with pytest.raises(ImageError) as info:
        read_image(path, **kwargs)
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message
    assert all(word in message for word in words), message


# --- recognising and decoding --------------------------------------------------------------------


def test_png_named_jpg_is_read_by_content(tmp_path):
    array = pixels((5, 7, 3))
    image = read_image(save(tmp_path / "photo.jpg", array, "PNG"))
    assert image.source_format == "PNG" and image.rgb.dtype == np.float32
    assert image.rgb.shape == (5, 7, 3) and image.bit_depth == 8 and not image.grayscale
    np.testing.assert_array_equal(as_uint(image.rgb), array)


@pytest.mark.parametrize("ext", [".png", ".tiff"])
def test_16bit_colour_keeps_full_precision_and_channel_order(tmp_path, ext):
    array = pixels((4, 6, 3), np.uint16)
    image = read_image(save_16bit_colour(tmp_path / f"in{ext}", array, ext))
    assert image.bit_depth == 16 and image.alpha is None
    np.testing.assert_array_equal(as_uint(image.rgb, np.uint16), array)
    write_image(tmp_path / f"out{ext}", image, image.rgb)
    written = cv2.imread(str(tmp_path / f"out{ext}"), cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint16
    np.testing.assert_array_equal(written[..., ::-1], array)


def test_16bit_rgba_alpha_is_bit_exact(tmp_path):
    array = pixels((4, 6, 4), np.uint16)
    image = read_image(save_16bit_colour(tmp_path / "in.png", array))
    assert image.alpha.dtype == np.uint16
    np.testing.assert_array_equal(image.alpha, array[..., 3])
    write_image(tmp_path / "out.png", image, image.rgb)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)[..., 3], array[..., 3])


def test_16bit_to_jpeg_is_8bit_with_a_note(tmp_path):
    image = read_image(save_16bit_colour(tmp_path / "in.png", pixels((4, 6, 3), np.uint16)))
    write_image(tmp_path / "out.jpg", image, image.rgb)
    assert PILImage.open(tmp_path / "out.jpg").mode == "RGB"
    assert any("8-bit" in note for note in image.notes)


@pytest.mark.parametrize("ext", [".png", ".tiff", ".webp"])
def test_rgba_alpha_is_carried_unchanged(tmp_path, ext):
    array = pixels((5, 6, 4))
    image = read_image(save(tmp_path / "in.png", array))
    np.testing.assert_array_equal(image.alpha, array[..., 3])
    write_image(tmp_path / f"out{ext}", image, image.rgb)
    np.testing.assert_array_equal(read_image(tmp_path / f"out{ext}").alpha, array[..., 3])
    assert image.notes == []


@pytest.mark.parametrize("alpha", [False, True])
def test_lossless_webp_stays_lossless_and_lossy_stays_lossy(tmp_path, alpha):
    array = pixels((12, 16, 4 if alpha else 3))
    exif = PILImage.Exif()
    exif[ExifTags.Base.Orientation] = 1  # EXIF makes an extended file: VP8X, EXIF... around the image chunk
    for lossless in (True, False):
        image = read_image(save(tmp_path / "in.webp", array, lossless=lossless, exact=True, exif=exif.tobytes()))
        assert image.lossless == lossless
        write_image(tmp_path / "out.webp", image, image.rgb)
        assert image_formats.is_lossless_webp((tmp_path / "out.webp").read_bytes()) == lossless
        if lossless:
            np.testing.assert_array_equal(np.asarray(PILImage.open(tmp_path / "out.webp")), array)
    assert not read_image(save(tmp_path / "in.png", array)).lossless  # PNG is always lossless: no flag needed


@pytest.mark.parametrize("ext", [".jpg", ".bmp"])
def test_formats_without_alpha_drop_it_with_a_note(tmp_path, ext):
    image = read_image(save(tmp_path / "in.png", pixels((5, 6, 4))))
    write_image(tmp_path / f"out{ext}", image, image.rgb)
    write_image(tmp_path / f"again{ext}", image, image.rgb)
    assert read_image(tmp_path / f"out{ext}").alpha is None
    assert len([note for note in image.notes if "alpha" in note]) == 1


@pytest.mark.parametrize("transparent", [True, False])
def test_palette_images_become_rgba_only_with_transparency(tmp_path, transparent):
    pil = PILImage.fromarray(np.array([[0, 1], [2, 1]], np.uint8), "P")
    pil.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])
    image = read_image(save(tmp_path / "in.png", pil, transparency=1) if transparent
                       else save(tmp_path / "in.png", pil))
    np.testing.assert_array_equal(as_uint(image.rgb[0, 1]), [0, 255, 0])
    if transparent:
        np.testing.assert_array_equal(image.alpha, [[255, 0], [255, 0]])
    else:
        assert image.alpha is None


def test_la_is_grey_with_alpha_and_bilevel_is_grey(tmp_path):
    array = pixels((3, 4, 2))
    image = read_image(save(tmp_path / "la.png", array))
    assert image.grayscale and image.bit_depth == 8
    np.testing.assert_array_equal(as_uint(image.rgb), np.repeat(array[..., :1], 3, axis=2))
    np.testing.assert_array_equal(image.alpha, array[..., 1])
    assert read_image(save(tmp_path / "bw.png", PILImage.new("1", (4, 3), 1))).grayscale


def test_grey_output_is_single_channel_luma(tmp_path):
    image = read_image(save(tmp_path / "in.png", pixels((2, 2))))
    rgb = np.zeros((2, 2, 3), np.float32)
    rgb[0, 0] = [1, 0, 0]
    rgb[1, 1] = [0, 0, 1]
    write_image(tmp_path / "out.png", image, rgb)
    written = PILImage.open(tmp_path / "out.png")
    assert written.mode == "L"
    np.testing.assert_array_equal(np.asarray(written), [[76, 0], [0, 29]])


@pytest.mark.parametrize("name, fmt", [("in.png", "PNG"), ("in.tiff", "TIFF"), ("in.pgm", "PPM")])
@pytest.mark.parametrize("ext", [".png", ".tiff"])
def test_16bit_grey_stays_16bit_grey(tmp_path, name, fmt, ext):
    array = pixels((3, 5), np.uint16)
    image = read_image(save(tmp_path / name, array, fmt))
    assert image.grayscale and image.bit_depth == 16
    np.testing.assert_array_equal(as_uint(image.rgb[..., 1], np.uint16), array)
    write_image(tmp_path / f"out{ext}", image, image.rgb)
    written = PILImage.open(tmp_path / f"out{ext}")
    assert written.mode == "I;16"
    np.testing.assert_array_equal(np.asarray(written), array)


def test_16bit_grey_with_alpha_is_read_and_written_as_rgba(tmp_path):
    grey_alpha = pixels((2, 3, 2), np.uint16)
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in grey_alpha)
    (tmp_path / "in.png").write_bytes(handmade_png(3, 2, 16, 4, rows))
    image = read_image(tmp_path / "in.png")
    assert image.grayscale and image.bit_depth == 16
    np.testing.assert_array_equal(as_uint(image.rgb[..., 0], np.uint16), grey_alpha[..., 0])
    np.testing.assert_array_equal(image.alpha, grey_alpha[..., 1])
    write_image(tmp_path / "out.png", image, image.rgb)
    written = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)
    assert written.shape == (2, 3, 4) and written.dtype == np.uint16
    np.testing.assert_array_equal(written[..., 3], grey_alpha[..., 1])
    assert any("RGBA" in note for note in image.notes)


def test_cmyk_jpeg_becomes_rgb_with_a_note(tmp_path):
    image = read_image(save(tmp_path / "in.jpg", PILImage.new("CMYK", (8, 8), (0, 255, 255, 0))))
    assert image.source_format == "JPEG" and image.rgb.shape == (8, 8, 3)
    np.testing.assert_allclose(image.rgb[4, 4], [1, 0, 0], atol=0.05)
    assert any("CMYK" in note for note in image.notes)


def test_first_frame_of_an_animation_with_a_note(tmp_path):
    frames = [PILImage.new("RGB", (4, 4), colour) for colour in ("red", "blue")]
    image = read_image(save(tmp_path / "in.gif", frames[0], save_all=True, append_images=frames[1:]))
    np.testing.assert_array_equal(as_uint(image.rgb[0, 0]), [255, 0, 0])
    assert any("2 frames" in note for note in image.notes)


# --- orientation and metadata ----------------------------------------------------------------------


def handmade_tiff_16bit(rgb_or_rgba, orientation):
    """An uncompressed 16-bit RGB(A) TIFF with an orientation tag (no writer at hand makes one)."""
    height, width, channels = rgb_or_rgba.shape
    ifd = TiffImagePlugin.ImageFileDirectory_v2(prefix=b"II")
    tags = {256: width, 257: height, 258: (16,) * channels, 259: 1, 262: 2, 273: 0,  # 273: offset after IFD
            274: orientation, 277: channels, 278: height, 279: rgb_or_rgba.nbytes}
    for tag, value in {**tags, **({338: 2} if channels == 4 else {})}.items():
        ifd[tag] = value
    return b"II*\x00" + struct.pack("<I", 8) + ifd.tobytes(8) + rgb_or_rgba.astype("<u2").tobytes()


ORIENTED_WRITERS = {
    "png": lambda path, rgba, o: save(path, rgba, "PNG", exif=exif_bytes(Orientation=o)),
    "tiff": lambda path, rgba, o: save(path, rgba, "TIFF", tiffinfo={ORIENTATION: o}),
    "png16": lambda path, rgba, o: save_16bit_colour(
        path, rgba.astype(np.uint16) * 257, exif=exif_bytes(Orientation=o)[6:]),
    "tiff16": lambda path, rgba, o: path.write_bytes(handmade_tiff_16bit(rgba.astype(np.uint16) * 257, o)),
}


@pytest.mark.parametrize("kind", ORIENTED_WRITERS)
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_exif_transpose(tmp_path, kind, orientation):
    rgba = pixels((3, 5, 4))
    reference = save(tmp_path / "reference.png", rgba, exif=exif_bytes(Orientation=orientation))
    expected = np.asarray(ImageOps.exif_transpose(PILImage.open(reference)))
    ORIENTED_WRITERS[kind](tmp_path / "in", rgba, orientation)
    image = read_image(tmp_path / "in")
    np.testing.assert_array_equal(as_uint(image.rgb), expected[..., :3])
    np.testing.assert_array_equal(as_uint(image.alpha / np.iinfo(image.alpha.dtype).max), expected[..., 3])


def test_output_is_upright_with_orientation_1(tmp_path):
    image = read_image(save(tmp_path / "in.jpg", pixels((4, 6, 3)), exif=exif_bytes(Orientation=6)))
    assert image.rgb.shape == (6, 4, 3)
    assert exif_tags(image.exif)[ORIENTATION] == 1
    write_image(tmp_path / "out.jpg", image, image.rgb)
    written = PILImage.open(tmp_path / "out.jpg")
    assert written.size == (4, 6) and written.getexif()[ORIENTATION] == 1


@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp", ".tiff"])
def test_icc_profile_and_exif_are_kept(tmp_path, ext):
    path = save(tmp_path / "in.jpg", pixels((4, 4, 3)), icc_profile=SRGB_ICC, exif=exif_bytes(Make="TestCam"))
    image = read_image(path)
    assert image.icc_profile == SRGB_ICC
    write_image(tmp_path / f"out{ext}", image, image.rgb)
    written = PILImage.open(tmp_path / f"out{ext}")
    assert written.info["icc_profile"] == SRGB_ICC and written.getexif()[MAKE] == "TestCam"
    assert image.notes == []


def test_16bit_colour_png_keeps_exif_but_tiff_says_it_cannot(tmp_path):
    image = read_image(save_16bit_colour(tmp_path / "in.png", pixels((2, 3, 3), np.uint16),
                                         exif=exif_bytes(Make="TestCam")[6:]))
    write_image(tmp_path / "out.png", image, image.rgb)
    assert PILImage.open(tmp_path / "out.png").getexif()[MAKE] == "TestCam"
    assert image.notes == []
    write_image(tmp_path / "out.tiff", image, image.rgb)
    assert any("EXIF" in note for note in image.notes)


# --- bad input ------------------------------------------------------------------------------------


def test_empty_missing_and_folder(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    assert_image_error(tmp_path / "empty.png", "empty")
    assert_image_error(tmp_path / "missing.png", "no such file")
    assert_image_error(tmp_path, "folder")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file(tmp_path, fmt):
    full = save(tmp_path / "full", pixels((32, 32, 3)), fmt).read_bytes()
    (tmp_path / "half").write_bytes(full[: len(full) // 2])
    assert_image_error(tmp_path / "half", "cannot read image", "truncated")


def test_truncated_16bit_png(tmp_path):
    full = save_16bit_colour(tmp_path / "full.png", pixels((32, 32, 3), np.uint16)).read_bytes()
    (tmp_path / "half.png").write_bytes(full[: len(full) // 2])
    assert_image_error(tmp_path / "half.png", "truncated")


def test_text_file_and_unsupported_formats(tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    assert_image_error(tmp_path / "notes.png", "not an image")
    assert_image_error(save(tmp_path / "in.pcx", pixels((4, 4, 3)), "PCX"), "not a supported format")
    float_tiff = save(tmp_path / "float.tiff", PILImage.fromarray(np.ones((4, 4), np.float32)))
    assert_image_error(float_tiff, "unsupported pixel format 'F'")


@pytest.mark.parametrize("width, height", [(40000, 40000), (15000, 15000), (10001, 10000)])
def test_decompression_bomb_is_refused_from_the_header(tmp_path, width, height):
    (tmp_path / "bomb.png").write_bytes(handmade_png(width, height, 8, 2))  # no pixel data at all
    # the same message below and above Pillow's own limit (2 x 89,478,485 pixels)
    assert_image_error(tmp_path / "bomb.png", f"too large: {width * height} pixels exceeds the limit of 100000000"
                       if width * height > 2 * PILImage.MAX_IMAGE_PIXELS else "exceeds the limit of 100000000")


def test_pixel_limit_can_be_set_per_call(tmp_path):
    path = save(tmp_path / "in.png", pixels((16, 16, 3)))
    assert_image_error(path, "16x16", "255", max_pixels=255)
    assert read_image(path, max_pixels=256).rgb.shape == (16, 16, 3)


# --- writing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("subdir, name", [("ünï cødé ☔", "fötö bild.png"), ("with space", "日本 語.tiff")])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_unicode_and_space_paths(tmp_path, subdir, name, dtype):
    (tmp_path / subdir).mkdir()
    path = tmp_path / subdir / name
    array = pixels((3, 4, 3), dtype)
    save_16bit_colour(path, array, path.suffix) if dtype == np.uint16 else save(path, array)
    image = read_image(path)
    write_image(path.with_stem("out ☂"), image, image.rgb)
    np.testing.assert_array_equal(as_uint(read_image(path.with_stem("out ☂")).rgb, dtype), array)


@pytest.mark.parametrize("dtype, name", [(np.uint8, "in.png"), (np.uint16, "in16.png")])
def test_output_is_rounded_not_truncated(tmp_path, dtype, name):
    array = np.zeros((1, 2, 3), dtype)
    path = save_16bit_colour(tmp_path / name, array) if dtype == np.uint16 else save(tmp_path / name, array)
    image = read_image(path)
    top = np.iinfo(dtype).max
    rgb = np.array([[[1.6, 0.4, 2.5001], [top - 0.4, top + 7, -3]]], np.float32) / top
    write_image(tmp_path / "out.png", image, rgb)
    written = as_uint(read_image(tmp_path / "out.png").rgb, dtype)
    np.testing.assert_array_equal(written, [[[2, 0, 3], [top, top, 0]]])


def test_jpeg_is_written_at_quality_95(tmp_path):
    array = pixels((16, 16, 3))
    image = read_image(save(tmp_path / "in.png", array))
    write_image(tmp_path / "out.jpg", image, image.rgb)
    save(tmp_path / "q95.jpg", array, quality=95)
    assert (tmp_path / "out.jpg").read_bytes() == (tmp_path / "q95.jpg").read_bytes()


def test_output_format_comes_from_the_suffix(tmp_path):
    image = read_image(save(tmp_path / "in.png", pixels((4, 4, 3))))
    for ext, fmt in [(".JPEG", "JPEG"), (".tif", "TIFF"), (".bmp", "BMP"), (".webp", "WEBP")]:
        write_image(tmp_path / f"out{ext}", image, image.rgb)
        assert PILImage.open(tmp_path / f"out{ext}").format == fmt
    with pytest.raises(ImageError, match="out.gif"):
        write_image(tmp_path / "out.gif", image, image.rgb)
    assert is_supported_output_ext(".PNG") and is_supported_output_ext("jpeg")
    assert not is_supported_output_ext(".gif") and not is_supported_output_ext("")


def partial_then_fail(error):
    def writer(tmp):
        tmp.write_bytes(b"partial")
        raise error
    return writer


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_atomic_write_leaves_nothing_behind_on_failure(tmp_path, error):
    with pytest.raises(type(error)):
        atomic_write(tmp_path / "new.png", partial_then_fail(error))
    (tmp_path / "old.png").write_bytes(b"original")
    with pytest.raises(type(error)):
        atomic_write(tmp_path / "old.png", partial_then_fail(error))
    assert [p.name for p in tmp_path.iterdir()] == ["old.png"]
    assert (tmp_path / "old.png").read_bytes() == b"original"


def test_atomic_write_replaces_existing_file(tmp_path):
    (tmp_path / "out.txt").write_bytes(b"old")
    atomic_write(tmp_path / "out.txt", lambda tmp: tmp.write_bytes(b"new"))
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    assert (tmp_path / "out.txt").read_bytes() == b"new"


def test_a_killed_runs_stale_temporary_files_are_removed(tmp_path):
    stale, live = tmp_path / ".out.png.0000abcd.tmp.png", tmp_path / ".out.png.1234beef.tmp.png"
    other, unrelated = tmp_path / ".other.png.0000abcd.tmp.png", tmp_path / ".out.png.notes"
    for path in (stale, live, other, unrelated):
        path.write_bytes(b"partial")
    for path in (stale, other, unrelated):
        os.utime(path, (time.time() - 7200,) * 2)  # two hours old
    remove_stale_temporary_files([tmp_path / "out.png", tmp_path / "missing" / "x.png"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name, unrelated.name])


def test_failed_image_write_is_one_line_error_and_keeps_old_output(tmp_path, monkeypatch):
    image = read_image(save(tmp_path / "in.png", pixels((4, 4, 3))))
    (tmp_path / "out.png").write_bytes(b"original")
    monkeypatch.setattr(image_formats, "encode", lambda tmp, *args: partial_then_fail(OSError("disk full"))(tmp))
    with pytest.raises(ImageError, match="disk full") as info:
        write_image(tmp_path / "out.png", image, image.rgb)
    assert str(info.value).startswith(str(tmp_path / "out.png"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "out.png"]
    assert (tmp_path / "out.png").read_bytes() == b"original"


def test_write_mask_is_binary_8bit_png(tmp_path):
    mask = np.array([[True, False, True], [False, False, True]])
    write_mask(tmp_path / "mask.png", mask)
    written = PILImage.open(tmp_path / "mask.png")
    assert written.format == "PNG" and written.mode == "L"
    np.testing.assert_array_equal(np.asarray(written), np.where(mask, 255, 0))


def test_write_overlay_tints_only_the_masked_pixels(tmp_path):
    array = pixels((3, 4, 3))
    image = read_image(save(tmp_path / "in.png", array))
    mask = np.zeros((3, 4), bool)
    mask[1, 2] = True
    write_overlay(tmp_path / "overlay.png", image, mask)
    written = PILImage.open(tmp_path / "overlay.png")
    assert written.format == "PNG" and written.mode == "RGB"
    overlay = np.asarray(written)
    np.testing.assert_array_equal(overlay[~mask], array[~mask])
    expected = np.rint((array[1, 2] / 255 * 0.5 + [0.5, 0, 0]) * 255)
    np.testing.assert_array_equal(overlay[1, 2], expected)
