"""Tests for unires.io. Every input file is generated here, in tmp_path."""

from __future__ import annotations

import functools
import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image, ImageCms, ImageOps

from unires.io import (
    ImageError,
    LoadedImage,
    collect_inputs,
    default_output_suffix,
    ensure_not_input,
    from_tensor,
    plan_output,
    read_image,
    to_tensor,
    write_image,
)

U16_TOL = 1.5 / 65535  # a 16-bit round trip may be off by at most one code value


# ------------------------------------------------------------------ helpers


def _noise(h: int, w: int, channels: int, seed: int = 0, dtype=np.uint8) -> np.ndarray:
    top = 65535 if dtype == np.uint16 else 255
    shape = (h, w) if channels == 1 else (h, w, channels)
    return np.random.default_rng(seed).integers(0, top + 1, shape, dtype=dtype)


def _u16_not_multiple_of_257(h: int, w: int, channels: int, seed: int = 0) -> np.ndarray:
    """16-bit samples that an 8-bit path would lose (v % 257 != 0)."""
    arr = _noise(h, w, channels, seed, np.uint16)
    arr[arr % 257 == 0] += 1
    return arr


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png16(arr: np.ndarray) -> bytes:
    """A 16-bit PNG built by hand (grey, grey+alpha, RGB or RGBA), no OpenCV needed."""
    h, w = arr.shape[:2]
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    rows = arr.reshape(h, w * channels).astype(">u2")
    raw = b"".join(b"\x00" + rows[y].tobytes() for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(raw))
        + _png_chunk(b"IEND", b"")
    )


def _save(tmp_path: Path, name: str, im: Image.Image, **options) -> Path:
    path = tmp_path / name
    im.save(path, **options)
    return path


def _expect_error(path: Path, fragment: str, **kwargs) -> ImageError:
    with pytest.raises(ImageError) as info:
        read_image(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert path.name in message
    assert fragment in message, message
    return info.value


@functools.cache  # the profile's header holds its creation time: make it once
def _srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------ reading: orientation


def _marked_landscape() -> Image.Image:
    """40x24 (WxH) grey image with a red 8x8 marker in the stored top-left corner."""
    arr = np.full((24, 40, 3), 128, np.uint8)
    arr[:8, :8] = (255, 0, 0)
    return Image.fromarray(arr)


@pytest.mark.parametrize(
    ("orientation", "marker_rows", "marker_cols"),
    [
        (6, slice(0, 8), slice(16, 24)),  # rotated 90 deg clockwise: top-left -> top-right
        (8, slice(32, 40), slice(0, 8)),  # rotated 90 deg anticlockwise: -> bottom-left
    ],
)
def test_jpeg_exif_orientation_makes_pixels_upright(
    tmp_path, orientation, marker_rows, marker_cols
):
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "UniResCam"
    path = _save(tmp_path, "photo.jpg", _marked_landscape(), quality=98, exif=exif)

    img = read_image(path)

    assert (img.height, img.width) == (40, 24)
    marker = img.rgb[marker_rows, marker_cols][2:-2, 2:-2]  # inner part: JPEG blurs edges
    assert np.allclose(marker, (1, 0, 0), atol=0.1)
    assert img.rgb[20, 12, 1] == pytest.approx(128 / 255, abs=0.05)
    kept = Image.Exif()
    kept.load(img.exif)
    assert kept[0x0112] == 1  # pixels are upright now: viewers must not rotate again
    assert kept[0x010F] == "UniResCam"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_pil_exif_transpose(tmp_path, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = _save(tmp_path, "o.png", Image.fromarray(_noise(20, 30, 3)), exif=exif)

    expected = np.asarray(ImageOps.exif_transpose(Image.open(path))) / 255.0
    assert np.array_equal(read_image(path).rgb, expected.astype(np.float32))


# ------------------------------------------------------------------ reading: modes


def test_grey_l_is_replicated_and_written_back_grey(tmp_path):
    grey = _noise(20, 30, 1)
    path = _save(tmp_path, "g.png", Image.fromarray(grey))

    img = read_image(path)
    assert (img.mode, img.bit_depth, img.alpha, img.is_grey) == ("L", 8, None, True)
    assert img.rgb.shape == (20, 30, 3) and img.rgb.dtype == np.float32
    for c in range(3):
        assert np.array_equal(img.rgb[..., c] * 255, grey.astype(np.float32))

    out = write_image(tmp_path / "out" / "g.png", img.rgb, like=img)
    with Image.open(out) as back:
        assert back.mode == "L"
        assert np.array_equal(np.asarray(back), grey)


def test_palette_image_becomes_rgb(tmp_path):
    im = Image.fromarray(_noise(20, 30, 3)).quantize(16)
    path = _save(tmp_path, "p.png", im)

    img = read_image(path)
    assert (img.mode, img.alpha) == ("P", None)
    assert np.array_equal(img.rgb * 255, np.asarray(im.convert("RGB"), np.float32))


def test_palette_transparency_becomes_alpha(tmp_path):
    index = np.zeros((20, 30), np.uint8)
    index[:, 15:] = 1
    im = Image.frombytes("P", (30, 20), index.tobytes())
    im.putpalette([0, 0, 255, 255, 255, 0] + [0] * 762)
    path = _save(tmp_path, "pt.png", im, transparency=0)

    img = read_image(path)
    assert img.mode == "P"
    assert img.alpha is not None
    assert np.all(img.alpha[:, :15] == 0) and np.all(img.alpha[:, 15:] == 1)
    assert np.allclose(img.rgb[0, 20], (1, 1, 0))


@pytest.mark.parametrize("icc", [None, b"not a real profile"])
def test_cmyk_jpeg_is_converted_to_rgb(tmp_path, icc):
    cmyk = Image.new("CMYK", (32, 32), (0, 255, 255, 0))  # no black, full magenta+yellow: red
    cmyk.paste((255, 0, 0, 0), (16, 0, 32, 32))  # full cyan
    # A profile LittleCMS rejects must fall back to PIL's conversion, not fail.
    path = _save(tmp_path, "cmyk.jpg", cmyk, quality=100, icc_profile=icc)

    img = read_image(path)
    assert (img.mode, img.icc_profile) == ("CMYK", None)
    assert np.allclose(img.rgb[8, 4], (1, 0, 0), atol=0.05)
    assert np.allclose(img.rgb[8, 28], (0, 1, 1), atol=0.05)


def test_la_keeps_its_alpha(tmp_path):
    la = _noise(20, 30, 2)
    path = _save(tmp_path, "la.png", Image.fromarray(la))

    img = read_image(path)
    assert (img.mode, img.bit_depth, img.is_grey) == ("LA", 8, True)
    assert np.array_equal(img.alpha * 255, la[..., 1].astype(np.float32))

    out = write_image(tmp_path / "out.png", img.rgb, like=img)
    with Image.open(out) as back:
        assert back.mode == "LA"
        assert np.array_equal(np.asarray(back), la)


def test_rgba_alpha_survives_round_trip_exactly(tmp_path):
    rgba = _noise(20, 30, 4)
    path = _save(tmp_path, "a.png", Image.fromarray(rgba))

    img = read_image(path)
    assert img.mode == "RGBA" and img.alpha.shape == (20, 30)
    out = write_image(tmp_path / "out" / "a.png", img.rgb, like=img)

    back = read_image(out)
    assert np.array_equal(back.alpha, img.alpha)
    assert np.array_equal(np.asarray(Image.open(out)), rgba)


def test_alpha_is_resized_with_a_4x_output(tmp_path):
    alpha = np.zeros((20, 30), np.uint8)
    alpha[:, 15:] = 255
    rgba = np.dstack([_noise(20, 30, 3), alpha])
    img = read_image(_save(tmp_path, "a.png", Image.fromarray(rgba)))

    big = np.asarray(Image.fromarray(rgba[..., :3]).resize((120, 80)), np.float32) / 255
    out = write_image(tmp_path / "x4.png", big, like=img)

    back = read_image(out)
    assert (back.height, back.width) == (80, 120)
    assert back.alpha.shape == (80, 120)
    assert np.all(back.alpha[:, :56] == 0) and np.all(back.alpha[:, 64:] == 1)


# ------------------------------------------------------------------ reading: 16 bits


def test_16bit_grey_png_round_trips_at_16_bits(tmp_path):
    grey = _u16_not_multiple_of_257(20, 30, 1)
    path = tmp_path / "g16.png"
    path.write_bytes(_png16(grey))

    img = read_image(path)
    assert img.bit_depth == 16 and img.is_grey
    assert np.abs(img.rgb[..., 0] - grey / 65535).max() < U16_TOL

    out = write_image(tmp_path / "out" / "g16.png", img.rgb, like=img)
    with Image.open(out) as back:
        assert back.mode.startswith("I;16")
        assert np.abs(np.asarray(back).astype(np.int64) - grey).max() <= 1
    assert np.abs(read_image(out).rgb - img.rgb).max() < U16_TOL


@pytest.mark.parametrize("channels", [3, 4])
def test_16bit_colour_png_round_trips_at_16_bits(tmp_path, channels):
    arr = _u16_not_multiple_of_257(20, 30, channels, seed=channels)
    path = tmp_path / "c16.png"
    path.write_bytes(_png16(arr))

    img = read_image(path)
    assert img.bit_depth == 16
    assert np.abs(img.rgb - arr[..., :3] / 65535).max() < U16_TOL
    if channels == 4:
        assert np.abs(img.alpha - arr[..., 3] / 65535).max() < U16_TOL

    out = write_image(tmp_path / "out" / "c16.png", img.rgb, like=img)
    back = read_image(out)
    assert back.bit_depth == 16
    assert np.abs(back.rgb - arr[..., :3] / 65535).max() < U16_TOL
    if channels == 4:
        assert np.array_equal(back.alpha, img.alpha)


def test_16bit_png_exif_orientation_is_applied(tmp_path):
    arr = _u16_not_multiple_of_257(20, 30, 3)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _png16(arr)
    data = data[:33] + _png_chunk(b"eXIf", exif.tobytes()[6:]) + data[33:]  # after IHDR
    path = tmp_path / "rot16.png"
    path.write_bytes(data)

    img = read_image(path)
    assert (img.bit_depth, img.height, img.width) == (16, 30, 20)
    assert np.abs(img.rgb - np.rot90(arr, k=-1) / 65535).max() < U16_TOL


def test_16bit_png_keeps_icc_and_exif(tmp_path):
    path = tmp_path / "c16.png"
    path.write_bytes(_png16(_u16_not_multiple_of_257(20, 30, 3)))
    img = read_image(path)
    exif = Image.Exif()
    exif[0x010F] = "UniResCam"
    img.icc_profile, img.exif = _srgb_icc(), exif.tobytes()

    out = write_image(tmp_path / "out.png", img.rgb, like=img)
    with Image.open(out) as back:
        assert back.info["icc_profile"] == img.icc_profile
        assert back.getexif()[0x010F] == "UniResCam"
    assert read_image(out).bit_depth == 16


def test_16bit_tiff_grey_and_rgb(tmp_path):
    grey = _u16_not_multiple_of_257(20, 30, 1)
    grey_path = _save(tmp_path, "g16.tif", Image.fromarray(grey))
    img = read_image(grey_path)
    assert (img.bit_depth, img.format) == (16, "TIFF")
    out = write_image(tmp_path / "out" / "g16.tif", img.rgb, like=img)
    assert np.abs(read_image(out).rgb[..., 0] - grey / 65535).max() < U16_TOL

    rgb = _u16_not_multiple_of_257(20, 30, 3, seed=5)
    rgb_path = tmp_path / "c16.tif"
    tifffile.imwrite(rgb_path, rgb, photometric="rgb", compression="lzw")  # as Photoshop does
    img = read_image(rgb_path)
    assert img.bit_depth == 16
    assert np.abs(img.rgb - rgb / 65535).max() < U16_TOL
    out = write_image(tmp_path / "out" / "c16.tif", img.rgb, like=img)
    assert np.abs(read_image(out).rgb - rgb / 65535).max() < U16_TOL


# ------------------------------------------------------------------ reading: other formats


def test_webp_read_and_write(tmp_path):
    rgb = _noise(20, 30, 3)
    img = read_image(_save(tmp_path, "w.webp", Image.fromarray(rgb), lossless=True))
    assert img.format == "WEBP"
    assert np.array_equal(img.rgb * 255, rgb.astype(np.float32))

    rgba = Image.new("RGBA", (30, 20), (10, 200, 30, 128))
    img = read_image(_save(tmp_path, "a.webp", rgba, lossless=True))
    out = write_image(tmp_path / "out.webp", img.rgb, like=img)
    back = read_image(out)
    assert np.allclose(back.alpha, 128 / 255, atol=2 / 255)
    assert np.allclose(back.rgb, np.array([10, 200, 30]) / 255, atol=0.05)


def test_bmp_read_and_write(tmp_path):
    rgb = _noise(20, 30, 3)
    img = read_image(_save(tmp_path, "b.bmp", Image.fromarray(rgb)))
    assert img.format == "BMP"
    out = write_image(tmp_path / "out.bmp", img.rgb, like=img)
    assert np.array_equal(np.asarray(Image.open(out)), rgb)


def test_first_frame_of_animated_gif_and_multipage_tiff(tmp_path):
    red, blue = Image.new("RGB", (20, 20), (255, 0, 0)), Image.new("RGB", (20, 20), (0, 0, 255))
    for name in ("anim.gif", "pages.tif"):
        path = _save(tmp_path, name, red, save_all=True, append_images=[blue])
        with Image.open(path) as check:
            assert getattr(check, "n_frames", 1) == 2
        assert np.allclose(read_image(path).rgb, (1, 0, 0), atol=0.02), name


# ------------------------------------------------------------------ reading: bad inputs


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.png"
    path.touch()
    _expect_error(path, "file is empty (0 bytes)")


def test_missing_file_and_folder(tmp_path):
    _expect_error(tmp_path / "gone.png", "file not found")
    folder = tmp_path / "folder.png"
    folder.mkdir()
    _expect_error(folder, "folder")


@pytest.mark.parametrize("name", ["cut.jpg", "cut.png"])
def test_truncated_files(tmp_path, name):
    data = io.BytesIO()
    Image.fromarray(_noise(64, 64, 3)).save(data, format="JPEG" if name.endswith("jpg") else "PNG")
    path = tmp_path / name
    path.write_bytes(data.getvalue()[: len(data.getvalue()) // 2])
    _expect_error(path, "truncated or corrupt")


def test_truncated_png_header(tmp_path):
    path = tmp_path / "stub.png"
    path.write_bytes(_png16(np.zeros((20, 20), np.uint16))[:20])
    _expect_error(path, "truncated or corrupt PNG header")


def test_text_file_named_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("shopping list\nmilk\n")
    _expect_error(path, "not an image file (cannot identify format)")


def test_image_of_a_format_we_do_not_read(tmp_path):
    path = _save(tmp_path, "sneaky.png", Image.new("RGB", (20, 20)), format="PCX")
    _expect_error(path, "unsupported image format PCX")


def test_too_small_image(tmp_path):
    path = _save(tmp_path, "tiny.png", Image.new("RGB", (10, 40)))
    _expect_error(path, "image is 10x40 px; at least 16 px per side is needed")


def test_huge_header_is_refused_before_decoding(tmp_path):
    # Header says 11000x10000 (110 MP); the pixel data is missing, so only the header
    # check can tell the two outcomes apart.
    ihdr = struct.pack(">IIBBBBB", 11000, 10000, 1, 0, 0, 0, 0)
    path = tmp_path / "big.png"
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )
    _expect_error(path, "110.0 megapixels exceeds the 100 MP limit (use --allow-huge)")

    # allow_huge passes the size check and reaches the decoder (which finds no data).
    error = _expect_error(path, "truncated or corrupt PNG data", allow_huge=True)
    assert "megapixels" not in str(error)
    assert Image.MAX_IMAGE_PIXELS is not None  # PIL's own limit is restored afterwards


def test_pixel_limit_and_allow_huge_on_a_real_image(tmp_path):
    path = _save(tmp_path, "m.png", Image.new("RGB", (100, 60)))
    _expect_error(path, "0.006 megapixels exceeds the 0.005 MP limit", max_pixels=5_000)
    assert read_image(path, max_pixels=5_000, allow_huge=True).width == 100


@pytest.mark.filterwarnings("ignore::UserWarning")  # PIL warns about the corrupt EXIF it skips
@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "TIFF", "GIF"])
def test_damaged_files_only_ever_raise_image_error(tmp_path, fmt):
    data = io.BytesIO()
    Image.fromarray(_noise(24, 24, 3)).save(data, format=fmt)
    original = data.getvalue()
    rng = np.random.default_rng(7)
    path = tmp_path / f"damaged.{fmt.lower()}"
    for _ in range(25):
        damaged = bytearray(original[: int(rng.integers(8, len(original) + 1))])
        for pos in rng.integers(0, len(damaged), int(rng.integers(0, 6))):
            damaged[pos] = int(rng.integers(0, 256))
        path.write_bytes(bytes(damaged))
        try:
            read_image(path)
        except ImageError as error:
            assert "\n" not in str(error) and path.name in str(error)


def test_image_error_is_one_line_and_pickles(tmp_path):
    import pickle

    error = ImageError(tmp_path / "x.png", "bad\nthing")
    assert str(error) == f"{tmp_path / 'x.png'}: bad thing"
    assert str(pickle.loads(pickle.dumps(error))) == str(error)
    assert isinstance(error, ValueError)


# ------------------------------------------------------------------ writing


def test_icc_and_exif_are_kept(tmp_path):
    exif = Image.Exif()
    exif[0x010F] = "UniResCam"
    icc = _srgb_icc()
    src = _save(tmp_path, "in.jpg", Image.new("RGB", (20, 20)), icc_profile=icc, exif=exif)
    img = read_image(src)
    for name in ("out.jpg", "out.png", "out.webp", "out.tif"):
        out = write_image(tmp_path / name, img.rgb, like=img)
        with Image.open(out) as back:
            assert back.info.get("icc_profile") == icc, name
            assert back.getexif().get(0x010F) == "UniResCam", name


def test_jpeg_refuses_alpha_and_suggests_png(tmp_path):
    img = read_image(_save(tmp_path, "a.png", Image.new("RGBA", (20, 20))))
    with pytest.raises(ImageError, match=r"\.png") as info:
        write_image(tmp_path / "a.jpg", img.rgb, like=img)
    assert "a.jpg" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "a.jpg").exists()


def test_unsupported_output_suffix(tmp_path):
    with pytest.raises(ImageError, match="unsupported output format"):
        write_image(tmp_path / "a.pcx", np.zeros((20, 20, 3), np.float32))


def test_write_clips_and_rejects_bad_shapes(tmp_path):
    values = np.linspace(-1, 2, 20 * 20 * 3, dtype=np.float32).reshape(20, 20, 3)
    values[0, 0, 0] = np.nan
    out = write_image(tmp_path / "c.png", values)
    arr = np.asarray(Image.open(out))
    assert arr.min() == 0 and arr.max() == 255
    with pytest.raises(ImageError, match="HxWx3"):
        write_image(tmp_path / "bad.png", np.zeros((20, 20), np.float32))


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path):
    out = tmp_path / "out.png"
    write_image(out, np.zeros((20, 20, 3), np.float32))
    write_image(out, np.ones((20, 20, 3), np.float32))  # overwrite
    assert _files_in(tmp_path) == ["out.png"]
    assert np.all(np.asarray(Image.open(out)) == 255)


def test_failure_mid_write_keeps_the_old_file(tmp_path, monkeypatch):
    out = tmp_path / "out.png"
    write_image(out, np.zeros((20, 20, 3), np.float32))
    before = out.read_bytes()

    def broken_save(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"\x89PNG half a file")
        raise OSError("No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(ImageError, match="cannot write file"):
        write_image(out, np.ones((20, 20, 3), np.float32))
    assert out.read_bytes() == before
    assert _files_in(tmp_path) == ["out.png"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_written_file_gets_normal_permissions(tmp_path):
    reference = tmp_path / "ref"
    reference.touch()  # what the umask gives a normal new file
    out = write_image(tmp_path / "out.png", np.zeros((20, 20, 3), np.float32))
    assert out.stat().st_mode & 0o777 == reference.stat().st_mode & 0o777


def _loaded(name: str, *, alpha: bool = False, bit_depth: int = 8) -> LoadedImage:
    return LoadedImage(
        path=Path(name),
        rgb=np.zeros((16, 16, 3), np.float32),
        alpha=np.zeros((16, 16), np.float32) if alpha else None,
        bit_depth=bit_depth,
        mode="RGBA" if alpha else "RGB",
        format="X",
    )


@pytest.mark.parametrize(
    ("name", "alpha", "bit_depth", "expected"),
    [
        ("a.JPG", False, 8, ".JPG"),
        ("a.jpg", True, 8, ".png"),
        ("a.bmp", True, 8, ".png"),
        ("a.webp", True, 8, ".webp"),
        ("a.tif", True, 16, ".tif"),
        ("a.gif", False, 8, ".gif"),
        ("a.jpeg", False, 16, ".png"),
    ],
)
def test_default_output_suffix(name, alpha, bit_depth, expected):
    assert default_output_suffix(_loaded(name, alpha=alpha, bit_depth=bit_depth)) == expected


# ------------------------------------------------------------------ output paths


def test_plan_output_in_another_folder_keeps_the_name(tmp_path):
    src = tmp_path / "in" / "a.png"
    src.parent.mkdir()
    src.touch()
    assert plan_output(src, tmp_path / "out", ".png") == tmp_path / "out" / "a.png"
    assert plan_output(src, tmp_path / "out", "jpg") == tmp_path / "out" / "a.jpg"


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_plan_output_in_the_input_folder_never_returns_the_input(tmp_path, suffix):
    src = tmp_path / "a.png"
    src.touch()
    out = plan_output(src, tmp_path, suffix)
    assert out == tmp_path / f"a_unires{suffix}"
    ensure_not_input(out, [src])


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_plan_output_through_a_symlinked_folder(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    src = real / "a.png"
    src.touch()
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)

    out = plan_output(src, link, ".png")
    assert out == link / "a_unires.png"
    ensure_not_input(out, [src])
    # and the input reached through the link is refused
    with pytest.raises(ImageError, match="refusing to overwrite input") as info:
        ensure_not_input(link / "a.png", [src])
    assert "a.png" in str(info.value) and "\n" not in str(info.value)
    # also when the input itself is given through the link
    assert plan_output(link / "a.png", real, ".png") == real / "a_unires.png"


def test_plan_output_avoids_other_inputs_of_the_batch(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = tmp_path / "a" / "x.png", tmp_path / "b" / "x.png"
    a.touch()
    b.touch()
    (tmp_path / "a" / "x_unires.png").touch()
    inputs = [a, b, tmp_path / "a" / "x_unires.png"]

    out = plan_output(b, tmp_path / "a", ".png", inputs=inputs)
    assert out == tmp_path / "a" / "x_unires2.png"
    ensure_not_input(out, inputs)
    with pytest.raises(ImageError):
        ensure_not_input(tmp_path / "a" / "x.png", inputs)


# ------------------------------------------------------------------ collecting inputs


@pytest.fixture
def photo_tree(tmp_path) -> Path:
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    for name in ("b.png", "a.JPG", "notes.txt", ".b.png.tmpx.png", "sub/c.webp"):
        (root / name).write_bytes(b"x")
    return root


def test_collect_inputs_from_a_folder(photo_tree):
    files, problems = collect_inputs([str(photo_tree)])
    assert [p.name for p in files] == ["a.JPG", "b.png"]  # sorted, images only, no hidden
    assert problems == []

    files, _ = collect_inputs([str(photo_tree)], recursive=True)
    assert [p.relative_to(photo_tree).as_posix() for p in files] == ["a.JPG", "b.png", "sub/c.webp"]


def test_collect_inputs_globs_duplicates_and_missing(photo_tree, tmp_path):
    specs = [
        str(photo_tree / "b.png"),
        str(photo_tree / "*.png"),
        str(photo_tree),
        str(photo_tree / "notes.txt"),  # named explicitly: kept, read_image will judge it
        str(photo_tree / "**" / "*.webp"),
        str(tmp_path / "missing.png"),
        str(tmp_path / "nothing-*.png"),
    ]
    (tmp_path / "empty").mkdir()
    specs.append(str(tmp_path / "empty"))

    files, problems = collect_inputs(specs)

    assert [p.name for p in files] == ["b.png", "a.JPG", "notes.txt", "c.webp"]
    assert len(problems) == 3
    assert all("\n" not in p for p in problems)
    assert "missing.png: no such file or folder" in problems[0]
    assert "nothing-*.png" in problems[1]
    assert "empty" in problems[2]


# ------------------------------------------------------------------ tensors


def test_tensor_round_trip_and_clipping():
    rgb = np.random.default_rng(0).random((5, 7, 3), dtype=np.float32)
    t = to_tensor(rgb)
    assert t.shape == (1, 3, 5, 7) and t.dtype == torch.float32
    assert np.array_equal(from_tensor(t), rgb)
    rgb[0, 0, 0] = 0.5
    assert t[0, 0, 0, 0] != 0.5  # a copy, not a view

    over = from_tensor(torch.full((1, 3, 2, 2), 2.0, dtype=torch.bfloat16) - 3.5)
    assert over.dtype == np.float32 and over.shape == (2, 2, 3) and np.all(over == 0)
    with pytest.raises(ValueError):
        to_tensor(np.zeros((5, 7), np.float32))
