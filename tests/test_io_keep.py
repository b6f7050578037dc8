"""What an output keeps of its input, per format (the README's "Inputs and outputs" table).

Each test builds its input in tmp_path, reads it with :func:`read_frames`, writes the frames
back with :func:`write_frames` (as ``unires restore`` does, with the identity as restorer)
and checks one property of the result. The 16-bit colour path is also run in a process that
can import only the core dependencies (``test_core_install_keeps_16_bit_colour``).
"""

from __future__ import annotations

import functools
import io
import json
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageCms

from unires.io import (
    ImageError,
    output_problem,
    probe_image,
    read_frames,
    read_image,
    write_frames,
    write_image,
)

U16_TOL = 1.5 / 65535


def _noise(h: int, w: int, channels: int, seed: int = 0, dtype=np.uint8) -> np.ndarray:
    top = 65535 if dtype == np.uint16 else 255
    shape = (h, w) if channels == 1 else (h, w, channels)
    arr = np.random.default_rng(seed).integers(0, top + 1, shape, dtype=dtype)
    if dtype == np.uint16:
        arr[arr % 257 == 0] += 1  # values an 8-bit path would lose
    return arr


def _smooth(h: int, w: int, seed: int = 0) -> np.ndarray:
    """An RGB image lossy codecs keep well (so a lossy round trip stays close)."""
    y, x = np.mgrid[0:h, 0:w]
    phase = seed * 0.7
    rgb = np.stack([x / w, y / h, 0.5 + 0.4 * np.sin(x / 5 + phase)], axis=2)
    return (rgb * 255).round().astype(np.uint8)


def _round_trip(src: Path, out: Path, **kwargs) -> Path:
    loaded = read_frames(src)
    return write_frames(out, [f.rgb for f in loaded.frames], like=loaded, **kwargs)


@functools.cache  # the profile's header holds its creation time: make it once
def _icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _exif(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "UniResCam"
    exif[0x0112] = orientation
    return exif


# ------------------------------------------------------------------ size and grey mode


@pytest.mark.parametrize("name", ["s.jpg", "s.png", "s.webp", "s.tif", "s.bmp", "s.gif"])
def test_size_is_kept_in_every_format(tmp_path, name):
    src = tmp_path / name
    Image.fromarray(_smooth(23, 37)).save(src)
    out = _round_trip(src, tmp_path / "out" / name)
    with Image.open(out) as back:
        assert back.size == (37, 23)


@pytest.mark.parametrize(
    ("name", "mode", "expected"),
    [
        ("g.jpg", "L", "L"),
        ("g.png", "L", "L"),
        ("ga.png", "LA", "LA"),
        ("g.tif", "L", "L"),
        ("ga.tif", "LA", "LA"),
        ("g.bmp", "L", "L"),
    ],
)
def test_grey_stays_grey(tmp_path, name, mode, expected):
    src = tmp_path / name
    Image.fromarray(_noise(20, 30, 2 if mode == "LA" else 1), mode).save(src)
    out = _round_trip(src, tmp_path / "out" / name)
    with Image.open(out) as back:
        assert back.mode == expected


@pytest.mark.parametrize("name", ["b.png", "b.tif", "b.bmp"])
def test_one_bit_images_become_8_bit_grey(tmp_path, name):
    bits = _noise(20, 30, 1) > 127
    Image.fromarray(bits).save(tmp_path / name)
    out = _round_trip(tmp_path / name, tmp_path / "out" / name)
    with Image.open(out) as back:
        assert back.mode == "L"
        assert np.array_equal(np.asarray(back), bits * np.uint8(255))


@pytest.mark.parametrize("name", ["p.png", "p.tif", "p.bmp"])
def test_palette_inputs_are_written_in_full_colour(tmp_path, name):
    im = Image.fromarray(_noise(20, 30, 3)).quantize(16)
    im.save(tmp_path / name)
    out = _round_trip(tmp_path / name, tmp_path / "out" / name)
    with Image.open(out) as back:
        assert back.mode == "RGB"
        assert np.array_equal(np.asarray(back), np.asarray(im.convert("RGB")))


# ------------------------------------------------------------------ 16 bits


@pytest.mark.parametrize("channels", [2, 3, 4])
@pytest.mark.parametrize("name", ["c16.png", "c16.tif"])
def test_16_bit_colour_and_grey_alpha_round_trip_at_16_bits(tmp_path, name, channels):
    import imagecodecs

    arr = _noise(20, 30, channels, seed=channels, dtype=np.uint16)
    src = tmp_path / name
    if name.endswith(".png") or channels == 2:  # PIL opens no 16-bit grey + alpha TIFF
        src = src.with_suffix(".png")
        src.write_bytes(imagecodecs.png_encode(arr))
    else:
        extra = ["unassalpha"] if channels == 4 else None
        tifffile.imwrite(src, arr, photometric="rgb", compression="lzw", extrasamples=extra)

    img = read_image(src)
    assert img.bit_depth == 16 and img.is_grey == (channels == 2)
    out = _round_trip(src, tmp_path / "out" / name)
    back = read_image(out)
    assert back.bit_depth == 16
    # 16-bit grey + alpha is written to TIFF as RGBA, which every reader opens.
    assert back.is_grey == (channels == 2 and name.endswith(".png"))
    assert np.abs(back.rgb - img.rgb).max() < U16_TOL
    assert np.abs(back.rgb[..., 0] - arr[..., 0] / 65535).max() < U16_TOL
    if channels in (2, 4):
        assert np.abs(back.alpha - arr[..., -1] / 65535).max() < U16_TOL


def test_16_bit_colour_png_keeps_icc_exif_and_resolution(tmp_path):
    import imagecodecs

    src = tmp_path / "c16.png"
    src.write_bytes(imagecodecs.png_encode(_noise(20, 30, 3, dtype=np.uint16)))
    img = read_image(src)
    img.icc_profile, img.exif, img.dpi = _icc(), _exif().tobytes(), (300.0, 300.0)
    out = write_image(tmp_path / "out.png", img.rgb, like=img)
    with Image.open(out) as back:
        assert back.info["icc_profile"] == _icc()
        assert back.getexif()[0x010F] == "UniResCam"
        assert back.info["dpi"] == pytest.approx((300, 300), abs=0.01)
    assert read_image(out).bit_depth == 16


def test_16_bit_colour_tiff_keeps_icc_resolution_and_compression(tmp_path):
    src = tmp_path / "c16.tif"
    arr = _noise(20, 30, 3, dtype=np.uint16)
    icc = _icc()
    tifffile.imwrite(
        src,
        arr,
        photometric="rgb",
        compression="adobe_deflate",
        extratags=[(34675, "B", len(icc), icc, True)],
        resolution=(240, 240),
        resolutionunit="INCH",
    )
    out = _round_trip(src, tmp_path / "out" / "c16.tif")
    with Image.open(out) as back:
        assert back.info["compression"] == "tiff_adobe_deflate"
        assert back.info["icc_profile"] == icc
        assert back.info["dpi"] == pytest.approx((240, 240))
    assert np.abs(read_image(out).rgb - arr / 65535).max() < U16_TOL


def test_16_bit_cmyk_tiff_is_refused_in_one_line(tmp_path):
    src = tmp_path / "cmyk16.tif"
    tifffile.imwrite(src, _noise(20, 30, 4, dtype=np.uint16), photometric="separated")
    with pytest.raises(ImageError) as info:
        read_frames(src)
    assert "cmyk16.tif" in str(info.value) and "\n" not in str(info.value)


# A process that can import only the core dependencies: every module of an installed
# distribution outside the core's requirement closure is blocked, as if never installed.
_CORE_ONLY = textwrap.dedent(
    """
    import importlib.abc, importlib.metadata as md, json, re, sys
    from packaging.requirements import Requirement

    def closure(names):
        seen, todo = set(), list(names)
        while todo:
            name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
            if name in seen:
                continue
            seen.add(name)
            try:
                requires = md.requires(name) or []
            except md.PackageNotFoundError:
                continue
            for text in requires:
                req = Requirement(text)
                if req.marker is None or req.marker.evaluate({"extra": ""}):
                    todo.append(req.name)
        return seen

    core = closure(["unires"])
    blocked = set()
    for module, dists in md.packages_distributions().items():
        names = {re.sub(r"[-_.]+", "-", d).lower() for d in dists}
        if not names & core:
            blocked.add(module)

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in blocked:
                raise ModuleNotFoundError(f"No module named {name!r} (not a core dependency)", name=name)

    sys.meta_path.insert(0, Block())
    for name in ("cv2", "skimage", "sklearn"):
        try:
            __import__(name)
        except ImportError:
            pass
        else:
            raise SystemExit(f"{name} importable: not a core install")

    from unires.io import read_image, read_frames, write_frames
    result = {}
    for src, out in zip(sys.argv[1::2], sys.argv[2::2]):
        loaded = read_frames(src)
        write_frames(out, [f.rgb for f in loaded.frames], like=loaded)
        back = read_image(out)
        result[src] = [loaded.frames[0].bit_depth, back.bit_depth]
    print(json.dumps(result))
    """
)


def test_core_install_keeps_16_bit_colour(tmp_path):
    """The README's 16-bit promise holds on a core install: a 16-bit RGB PNG and a 16-bit
    LZW RGB TIFF are read and written at 16 bits with no dev-only package importable."""
    import imagecodecs

    arr = _noise(20, 30, 3, dtype=np.uint16)
    png, tif = tmp_path / "c16.png", tmp_path / "c16.tif"
    png.write_bytes(imagecodecs.png_encode(arr))
    tifffile.imwrite(tif, arr, photometric="rgb", compression="lzw")
    script = tmp_path / "core_only.py"
    script.write_text(_CORE_ONLY)
    args = [str(png), str(tmp_path / "o.png"), str(tif), str(tmp_path / "o.tif")]
    run = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result == {str(png): [16, 16], str(tif): [16, 16]}
    assert np.abs(read_image(tmp_path / "o.tif").rgb - arr / 65535).max() < U16_TOL


# ------------------------------------------------------------------ alpha


@pytest.mark.parametrize("name", ["a.png", "a.webp", "a.tif"])
def test_alpha_is_kept_exactly(tmp_path, name):
    rgba = _noise(20, 30, 4)
    options = {"lossless": True} if name.endswith(".webp") else {}
    Image.fromarray(rgba, "RGBA").save(tmp_path / name, **options)
    out = _round_trip(tmp_path / name, tmp_path / "out" / name)
    with Image.open(out) as back:
        assert back.mode == "RGBA"
        assert np.array_equal(np.asarray(back)[..., 3], rgba[..., 3])


def test_gif_transparency_is_kept(tmp_path):
    rgba = _smooth(20, 30).copy()
    rgba = np.dstack(
        [rgba, np.where(np.arange(30) < 12, 0, 255).astype(np.uint8)[None].repeat(20, 0)]
    )
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.gif")
    out = _round_trip(tmp_path / "t.gif", tmp_path / "out" / "t.gif")
    back = read_image(out)
    assert np.array_equal(back.alpha > 0.5, rgba[..., 3] > 0)


def test_alpha_into_jpeg_is_refused_from_the_header(tmp_path):
    Image.fromarray(_noise(20, 30, 4), "RGBA").save(tmp_path / "a.png")
    info = probe_image(tmp_path / "a.png")
    assert info.has_alpha and info.default_suffix() == ".png"
    assert output_problem(info, ".jpg") == (
        "JPEG cannot keep the alpha channel; write .png, .webp or .tif instead"
    )


# ------------------------------------------------------------------ ICC, EXIF, resolution


@pytest.mark.parametrize("name", ["m.jpg", "m.png", "m.webp", "m.tif"])
def test_icc_profile_is_kept(tmp_path, name):
    Image.fromarray(_smooth(20, 30)).save(tmp_path / name, icc_profile=_icc())
    out = _round_trip(tmp_path / name, tmp_path / "out" / name)
    with Image.open(out) as back:
        assert back.info.get("icc_profile") == _icc()


@pytest.mark.parametrize("name", ["m.jpg", "m.png", "m.webp"])
def test_exif_is_kept_with_orientation_applied(tmp_path, name):
    Image.fromarray(_smooth(20, 30)).save(tmp_path / name, exif=_exif(orientation=6))
    out = _round_trip(tmp_path / name, tmp_path / "out" / name)
    with Image.open(out) as back:
        assert back.size == (20, 30)  # rotated upright
        assert back.getexif()[0x010F] == "UniResCam"
        assert back.getexif().get(0x0112, 1) == 1


def test_tiff_orientation_is_applied(tmp_path):
    Image.fromarray(_smooth(20, 30)).save(tmp_path / "o.tif", exif=_exif(orientation=8))
    out = _round_trip(tmp_path / "o.tif", tmp_path / "out" / "o.tif")
    with Image.open(out) as back:
        assert back.size == (20, 30)
        assert back.getexif().get(0x0112, 1) == 1


@pytest.mark.parametrize("name", ["r.jpg", "r.png", "r.tif", "r.bmp"])
def test_resolution_is_kept(tmp_path, name):
    Image.fromarray(_smooth(20, 30)).save(tmp_path / name, dpi=(300, 300))
    out = _round_trip(tmp_path / name, tmp_path / "out" / name)
    with Image.open(out) as back:
        assert back.info["dpi"] == pytest.approx((300, 300), abs=0.01)


# ------------------------------------------------------------------ coding


def test_jpeg_quality_and_progressive(tmp_path):
    Image.fromarray(_noise(64, 64, 3)).save(tmp_path / "p.jpg", progressive=True, quality=80)
    high = _round_trip(tmp_path / "p.jpg", tmp_path / "high.jpg")
    low = _round_trip(tmp_path / "p.jpg", tmp_path / "low.jpg", quality=30)
    with Image.open(high) as back:
        assert back.info.get("progressive") or back.info.get("progression")
    assert low.stat().st_size < high.stat().st_size


@pytest.mark.parametrize("lossless", [True, False])
def test_webp_keeps_lossless_or_lossy(tmp_path, lossless):
    src = tmp_path / "w.webp"
    Image.fromarray(_noise(32, 32, 3)).save(src, lossless=lossless, quality=90)
    out = _round_trip(src, tmp_path / "out" / "w.webp")
    assert (out.read_bytes()[12:16] == b"VP8L") == lossless
    if lossless:
        assert np.array_equal(read_image(out).rgb, read_image(src).rgb)
        forced = _round_trip(src, tmp_path / "q.webp", quality=50)  # --quality: lossy
        assert forced.read_bytes()[12:16] == b"VP8 "


@pytest.mark.parametrize(
    "compression", ["raw", "tiff_lzw", "tiff_adobe_deflate", "packbits", "jpeg"]
)
def test_tiff_compression_is_kept(tmp_path, compression):
    Image.fromarray(_smooth(24, 32)).save(tmp_path / "c.tif", compression=compression)
    out = _round_trip(tmp_path / "c.tif", tmp_path / "out" / "c.tif")
    with Image.open(out) as back:
        assert back.info["compression"] == compression


def test_gif_stays_a_palette_gif(tmp_path):
    Image.fromarray(_smooth(20, 30)).save(tmp_path / "g.gif")
    out = _round_trip(tmp_path / "g.gif", tmp_path / "out" / "g.gif")
    with Image.open(out) as back:
        assert (back.format, back.mode) == ("GIF", "P")


# ------------------------------------------------------------------ frames and pages


def _animation(path: Path, *, alpha: bool = False, **options) -> list[np.ndarray]:
    frames = []
    for i in range(3):
        rgb = _smooth(24, 32, seed=i)
        if alpha:
            a = np.where(np.arange(32) < 8 + 4 * i, 0, 255).astype(np.uint8)
            rgb = np.dstack([rgb, a[None].repeat(24, 0)])
        frames.append(rgb)
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], **options)
    return frames


@pytest.mark.parametrize("alpha", [False, True])
@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("anim.gif", {"loop": 0, "disposal": 2}),
        ("anim.png", {"loop": 3}),
        ("anim.webp", {"loop": 2, "lossless": True}),
    ],
)
def test_every_frame_with_its_duration_and_the_loop_count(tmp_path, name, options, alpha):
    frames = _animation(tmp_path / name, alpha=alpha, duration=[100, 250, 400], **options)
    loaded = read_frames(tmp_path / name)
    assert loaded.n_frames == 3 and loaded.animated
    out = _round_trip(tmp_path / name, tmp_path / "out" / name)

    back = read_frames(out)
    assert back.n_frames == 3
    assert [f.duration for f in back.frames] == [100, 250, 400]
    assert back.loop == options["loop"]
    for want, got in zip(frames, back.frames, strict=True):
        seen = want[..., 3] > 0 if alpha else np.ones(want.shape[:2], bool)
        error = np.abs(got.rgb * 255 - want[..., :3])[seen]
        assert error.mean() < 8  # GIF: a 256-colour palette per frame
        if alpha:
            assert np.array_equal(got.alpha > 0.5, seen)
        else:
            assert got.alpha is None


def test_gif_without_a_loop_count_still_plays_once(tmp_path):
    _animation(tmp_path / "once.gif", duration=100)
    out = _round_trip(tmp_path / "once.gif", tmp_path / "out" / "once.gif")
    assert read_frames(out).loop is None


def test_apng_still_image_stays_out_of_the_animation(tmp_path):
    _animation(tmp_path / "d.png", default_image=True, duration=[150, 300])
    out = _round_trip(tmp_path / "d.png", tmp_path / "out" / "d.png")
    with Image.open(out) as back:
        assert back.n_frames == 3 and back.default_image
    assert [f.duration for f in read_frames(out).frames[1:]] == [150, 300]


@pytest.mark.parametrize("suffix", [".png", ".webp", ".tif"])
def test_gif_animation_into_another_frame_format(tmp_path, suffix):
    _animation(tmp_path / "a.gif", duration=[100, 200, 300], loop=0)
    out = _round_trip(tmp_path / "a.gif", (tmp_path / "a").with_suffix(suffix))
    assert read_frames(out).n_frames == 3


def test_every_tiff_page_keeps_its_own_mode_depth_icc_and_compression(tmp_path):
    icc = _icc()
    rgb16 = _noise(20, 30, 3, seed=1, dtype=np.uint16)
    grey = _noise(18, 40, 1, seed=2)
    rgba = _noise(20, 30, 4, seed=3)
    src = tmp_path / "pages.tif"
    with tifffile.TiffWriter(src) as tif:
        tif.write(
            rgb16,
            photometric="rgb",
            compression="lzw",
            extratags=[(34675, "B", len(icc), icc, True)],
        )
        tif.write(grey, photometric="minisblack", compression="packbits", resolution=(240, 240))
        tif.write(rgba, photometric="rgb", extrasamples=["unassalpha"])
    out = _round_trip(src, tmp_path / "out" / "pages.tif")

    back = read_frames(out)
    assert back.n_frames == 3 and not back.animated
    first, second, third = back.frames
    assert (first.bit_depth, first.icc_profile, first.coding["compression"]) == (
        16,
        icc,
        "tiff_lzw",
    )
    assert np.abs(first.rgb - rgb16 / 65535).max() < U16_TOL
    assert (second.is_grey, second.width, second.height) == (True, 40, 18)
    assert (second.icc_profile, second.coding["compression"]) == (None, "packbits")
    assert (first.dpi, second.dpi, third.dpi) == (None, pytest.approx((240, 240)), None)
    assert np.array_equal(np.round(second.rgb[..., 0] * 255), grey)
    assert np.array_equal(np.round(third.alpha * 255), rgba[..., 3])


@pytest.mark.parametrize(
    ("name", "suffix", "fragment"),
    [
        ("anim.gif", ".jpg", "JPEG holds one image, not 3 frames"),
        ("anim.gif", ".bmp", "BMP holds one image, not 3 frames"),
        ("pages.tif", ".png", "3 TIFF pages can only be written as a multi-page TIFF"),
    ],
)
def test_formats_that_cannot_hold_the_frames_are_refused(tmp_path, name, suffix, fragment):
    _animation(tmp_path / name)
    problem = output_problem(probe_image(tmp_path / name), suffix)
    assert problem is not None and fragment in problem
    loaded = read_frames(tmp_path / name)
    with pytest.raises(ImageError, match=fragment):
        write_frames(tmp_path / f"x{suffix}", [f.rgb for f in loaded.frames], like=loaded)
    assert not (tmp_path / f"x{suffix}").exists()


def test_frame_limit_is_a_one_line_refusal(tmp_path):
    _animation(tmp_path / "anim.gif")
    for call in (probe_image, read_frames):
        with pytest.raises(ImageError) as info:
            call(tmp_path / "anim.gif", max_frames=2)
        assert str(info.value).endswith("3 frames: more than the limit of 2 (use --max-frames)")


def test_16_bit_animated_png_is_refused(tmp_path):
    # A hand-made 2-frame APNG with 16-bit grey frames (PIL would read them at 8 bits).
    g16 = Image.fromarray(_noise(20, 20, 1, dtype=np.uint16))
    g16.save(tmp_path / "a16.png", save_all=True, append_images=[g16.point(lambda v: 65535 - v)])
    with Image.open(tmp_path / "a16.png") as im:
        assert im.n_frames == 2
    with pytest.raises(ImageError, match="16-bit animated PNG is not supported"):
        probe_image(tmp_path / "a16.png")


def test_truncated_animation_is_an_image_error(tmp_path):
    _animation(tmp_path / "anim.gif", duration=100)
    data = (tmp_path / "anim.gif").read_bytes()
    (tmp_path / "cut.gif").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ImageError) as info:
        read_frames(tmp_path / "cut.gif")
    assert "cut.gif" in str(info.value) and "\n" not in str(info.value)


def test_webp_lossless_detection_reads_animation_frames(tmp_path):
    _animation(tmp_path / "ll.webp", lossless=True, duration=100)
    _animation(tmp_path / "ly.webp", lossless=False, duration=100)
    assert read_frames(tmp_path / "ll.webp").frames[0].coding == {"lossless": True}
    assert read_frames(tmp_path / "ly.webp").frames[0].coding == {"lossless": False}


def test_png_resolution_chunk_is_well_formed(tmp_path):
    import imagecodecs

    src = tmp_path / "c16.png"
    src.write_bytes(imagecodecs.png_encode(_noise(20, 30, 3, dtype=np.uint16)))
    img = read_image(src)
    img.dpi = (72.0, 144.0)
    data = write_image(tmp_path / "o.png", img.rgb, like=img).read_bytes()
    at = data.index(b"pHYs")
    assert struct.unpack(">IIB", data[at + 4 : at + 13]) == (2835, 5669, 1)
    with Image.open(io.BytesIO(data)) as back:
        assert back.info["dpi"] == pytest.approx((72, 144), abs=0.01)
