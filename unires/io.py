"""Safe image input/output: decode any supported file into float RGB (+ alpha), write it back.

Reading never lets a PIL/OS exception escape: every failure becomes an :class:`ImageError`
whose message is one line naming the file and the reason. Writing is atomic and keeps what
the input carried where the target format allows it: size, grey mode, bit depth (16-bit PNG
and TIFF, colour included), alpha, ICC profile, EXIF (orientation applied), resolution, every
frame of an animation (durations, loop count) or page of a TIFF, and the way it was coded
(lossless WebP stays lossless, TIFF compression, progressive JPEG). The batch helpers make
the output plan of a whole run before any work: one output per input, never an input nor
another input's output, output folders never read as input.

16-bit colour is read and written with tifffile and imagecodecs (core dependencies: Pillow
has no 16-bit colour modes).
"""

from __future__ import annotations

import contextlib
import functools
import glob
import io
import itertools
import os
import re
import struct
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from unires.errors import one_line
from unires.utils import atomic_path

__all__ = [
    "DATASET_SUFFIXES",
    "DEFAULT_QUALITY",
    "IMAGE_SUFFIXES",
    "BatchInput",
    "BatchPlan",
    "ImageError",
    "ImageInfo",
    "LoadedFile",
    "LoadedImage",
    "PlannedOutput",
    "collect_batch",
    "collect_inputs",
    "default_output_suffix",
    "ensure_not_input",
    "from_tensor",
    "is_dataset_image",
    "list_images",
    "load_rgb",
    "output_problem",
    "plan_batch",
    "plan_output",
    "probe_image",
    "read_frames",
    "read_image",
    "to_tensor",
    "write_frames",
    "write_image",
]

# Suffixes a folder or glob expansion picks up.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif"})
# Data sets (training folders, benchmark pairs) take still photos only: a GIF is a 256-colour
# palette image, never a clean target.
DATASET_SUFFIXES = IMAGE_SUFFIXES - {".gif"}
# Folders of low-resolution copies that HQ data sets ship beside the HQ images
# (DIV2K_train_LR_bicubic/X4, LSDIR's X4, ...): never training targets.
_LR_FOLDER = re.compile(r"(^|[_-])(LR|lr)([_-]|$)|^[Xx][2-8]$")

# JPEG and lossy WebP quality when none is asked for.
DEFAULT_QUALITY = 95

# Only these PIL plugins may parse input files: a file named .png that is really EPS/PSD/...
# must not reach a plugin we never meant to expose (EPS even runs Ghostscript on load).
# (Multi-picture JPEGs from phones open through "JPEG" and report format "MPO".)
_READ_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF")

_WRITE_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
    ".gif": "GIF",
}
_SIXTEEN_BIT_FORMATS = frozenset({"PNG", "TIFF"})
# JPEG has no alpha channel; BMP alpha is written but dropped by most readers (PIL included).
_NO_ALPHA_FORMATS = frozenset({"JPEG", "BMP"})
# Formats that hold an animation (frames with durations); TIFF holds pages.
_ANIMATION_FORMATS = frozenset({"GIF", "PNG", "WEBP"})

_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "F", "I;16", "I;16B", "I;16L", "I;16N"})
_GREY16_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})

# TIFF compressions written as they were read (Pillow's names); anything else becomes LZW.
_TIFF_COMPRESSIONS = frozenset({"raw", "tiff_lzw", "tiff_adobe_deflate", "packbits", "jpeg"})
_TIFFFILE_COMPRESSION = {
    "raw": None,
    "tiff_lzw": "lzw",
    "tiff_adobe_deflate": "adobe_deflate",
    "packbits": "packbits",
    "jpeg": "jpeg",
}

# File signatures, so a header PIL cannot parse is reported as a damaged image of that
# format rather than as "not an image".
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF8", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
)

_ORIENTATION_TAG = 0x0112
_ICC_TAG = 34675  # TIFF InterColorProfile
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as PIL's RGB->L
# Names of earlier outputs written beside their inputs: x_unires.png, x_unires2.png,
# x_unires_jpg.png, x_unires_2.png.
_OWN_OUTPUT = re.compile(r"_unires\d*(?:_[A-Za-z0-9]+)?$")


class ImageError(ValueError):
    """An image that cannot be read or written; ``str()`` is one line ``"<path>: <reason>"``."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        # Both parts go to args so the exception pickles across worker processes.
        super().__init__(str(path), reason)
        self.path = Path(path)
        self.reason = reason

    def __str__(self) -> str:
        return one_line(f"{self.args[0]}: {self.args[1]}")


@dataclass(eq=False)
class LoadedImage:
    """A decoded image (or one frame or page of a file): upright float RGB in [0, 1], plus
    what is needed to write it back as its file had it."""

    path: Path
    rgb: np.ndarray = field(repr=False)  # HxWx3 float32 in [0, 1]
    alpha: np.ndarray | None = field(repr=False)  # HxW float32 in [0, 1], or None
    bit_depth: int  # 8 or 16: the precision of the source samples
    mode: str  # PIL mode of the file as opened ("LA" for 16-bit grey + alpha PNG)
    format: str  # PIL format name, e.g. "PNG", "JPEG"
    icc_profile: bytes | None = field(default=None, repr=False)
    exif: bytes | None = field(default=None, repr=False)  # orientation already reset to 1
    dpi: tuple[float, float] | None = None  # resolution, when the file states one
    # How the file was coded: "lossless" (WebP), "compression" (TIFF), "progressive" (JPEG).
    coding: dict[str, Any] = field(default_factory=dict)
    duration: float | None = None  # display time of an animation frame, in ms

    @property
    def height(self) -> int:
        """Rows of the image, in pixels."""
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        """Columns of the image, in pixels."""
        return int(self.rgb.shape[1])

    @property
    def is_grey(self) -> bool:
        """True for single-channel inputs, which are written back as grey."""
        return self.mode in _GREY_MODES


@dataclass(eq=False)
class LoadedFile:
    """Every frame of an animation (GIF, APNG, animated WebP) or page of a TIFF, in order; a
    single image has one frame."""

    path: Path
    format: str
    frames: list[LoadedImage]
    animated: bool = False  # frames of an animation, not TIFF pages
    loop: int | None = None  # animations: 0 = forever, None = once (a GIF without a count)
    default_image: bool = False  # APNG: frame 0 is the still image, not part of the animation
    background: Any = None  # WebP animations: the canvas background

    @property
    def n_frames(self) -> int:
        """Frames (animation) or pages (TIFF) of the file; 1 for a still image."""
        return len(self.frames)


@dataclass(frozen=True)
class ImageInfo:
    """What a file's headers say, read without decoding pixels (for planning a batch)."""

    path: Path
    format: str
    size: tuple[int, int]  # (width, height) of the first frame or page
    n_frames: int
    animated: bool
    has_alpha: bool  # any page; for animations as the first frame says
    bit_depth: int  # 16 if any page holds 16-bit samples

    def default_suffix(self) -> str:
        """The input's suffix, unless that format cannot hold the alpha or 16-bit samples."""
        return _default_suffix(self.path, self.has_alpha, self.bit_depth)


# --------------------------------------------------------------------------------------
# Reading


def read_image(
    path: str | os.PathLike,
    *,
    allow_huge: bool = False,
    max_pixels: int = 100_000_000,
    min_side: int = 16,
) -> LoadedImage:
    """Decode the first frame (or page) of ``path`` into a :class:`LoadedImage`.

    The size limits are checked from the header, before any pixel is decoded.
    Raises :class:`ImageError` (and nothing else) for any unreadable input.
    """
    with _opened(path, allow_huge, max_pixels, min_side) as (path, im, _):
        return _decode(path, im, 0)


def read_frames(
    path: str | os.PathLike,
    *,
    allow_huge: bool = False,
    max_pixels: int = 100_000_000,
    min_side: int = 16,
    max_frames: int | None = None,
) -> LoadedFile:
    """Decode every frame of an animation (GIF, APNG, WebP) or page of a TIFF, with what is
    needed to write them back (durations, loop count). Frames of an animation are whole
    canvases (PIL composes them); if any has transparency, all get an alpha channel. The
    extra pictures of a multi-picture JPEG (previews, depth maps) are not frames.
    Raises :class:`ImageError` (and nothing else) for any unreadable input."""
    with _opened(path, allow_huge, max_pixels, min_side) as (path, im, check_size):
        fmt = im.format or "image"
        with _damage_reported(path, fmt):
            count = _frame_count(im)
            _check_frames(path, im, count, max_frames, _stored_at_16_bits(im))
        animated = fmt in _ANIMATION_FORMATS and count > 1
        frames = [_decode(path, im, 0)]
        info = dict(im.info)
        upright = _upright_exif(im) if animated else None  # one orientation for all frames
        for index in range(1, count):
            _seek(path, im, index)
            check_size(im)
            frames.append(_decode(path, im, index, upright=upright))
    if animated and any(f.alpha is not None for f in frames):
        for f in frames:
            if f.alpha is None:
                f.alpha = np.ones(f.rgb.shape[:2], np.float32)
    return LoadedFile(
        path=path,
        format=fmt,
        frames=frames,
        animated=animated,
        loop=info.get("loop") if animated else None,
        default_image=animated and bool(getattr(im, "default_image", False)),
        background=info.get("background") if animated and fmt == "WEBP" else None,
    )


def probe_image(
    path: str | os.PathLike,
    *,
    allow_huge: bool = False,
    max_pixels: int = 100_000_000,
    min_side: int = 16,
    max_frames: int | None = None,
) -> ImageInfo:
    """What the headers of ``path`` say (format, size, frames, alpha, bit depth), with the
    checks :func:`read_frames` makes that need no pixel; nothing is decoded. Raises
    :class:`ImageError` (and nothing else)."""
    with _opened(path, allow_huge, max_pixels, min_side) as (path, im, check_size):
        fmt = im.format or "image"
        with _damage_reported(path, fmt):
            size, count = im.size, _frame_count(im)
            alpha, sixteen = _has_alpha(im), _stored_at_16_bits(im)
            for index in range(1, count if fmt == "TIFF" else 1):  # pages differ; frames don't
                _seek(path, im, index)
                check_size(im)
                alpha, sixteen = alpha or _has_alpha(im), sixteen or _stored_at_16_bits(im)
            _check_frames(path, im, count, max_frames, sixteen)
    return ImageInfo(
        path=path,
        format=fmt,
        size=size,
        n_frames=count,
        animated=fmt in _ANIMATION_FORMATS and count > 1,
        has_alpha=alpha,
        bit_depth=16 if sixteen else 8,
    )


@contextlib.contextmanager
def _opened(
    path: str | os.PathLike, allow_huge: bool, max_pixels: int, min_side: int
) -> Iterator[tuple[Path, Image.Image, Callable[[Image.Image], None]]]:
    """Open ``path`` with PIL (header only) after the file and size checks; also yield the
    size check, for the later pages of a TIFF."""
    path = Path(path)
    _check_file(path)

    def check_size(im: Image.Image) -> None:
        limits = dict(allow_huge=allow_huge, max_pixels=max_pixels, min_side=min_side)
        _check_size(path, im.size, **limits)

    with _pil_pixel_limit_disabled():
        im = _open_pil(path)
        with im:
            check_size(im)
            yield path, im, check_size


@contextlib.contextmanager
def _damage_reported(path: Path, fmt: str) -> Iterator[None]:
    """Any exception but :class:`ImageError` becomes one: damaged data of that format."""
    try:
        yield
    except ImageError:
        raise
    except Exception as exc:  # PIL reports damage as OSError, SyntaxError, ValueError, ...
        raise ImageError(path, f"truncated or corrupt {fmt} data ({one_line(exc)})") from exc


def _open_pil(path: Path) -> Image.Image:
    try:
        return Image.open(path, formats=_READ_FORMATS)
    except UnidentifiedImageError:
        raise ImageError(path, _identify_failure(path)) from None
    except OSError as exc:
        if exc.errno is not None:  # a real I/O error, not a parse error PIL raised
            raise ImageError(path, f"cannot read file ({_os_reason(exc)})") from exc
        raise ImageError(path, _damaged_header(path, exc)) from exc
    except Exception as exc:  # a plugin choking on a malformed header
        raise ImageError(path, _damaged_header(path, exc)) from exc


def _frame_count(im: Image.Image) -> int:
    if im.format == "MPO":  # the extra pictures are previews or depth maps, not frames
        return 1
    return max(1, int(getattr(im, "n_frames", 1)))


def _check_frames(
    path: Path, im: Image.Image, count: int, max_frames: int | None, sixteen: bool
) -> None:
    if max_frames is not None and count > max_frames:
        kind = "pages" if im.format == "TIFF" else "frames"
        raise ImageError(
            path, f"{count} {kind}: more than the limit of {max_frames} (use --max-frames)"
        )
    if im.format == "PNG" and count > 1 and sixteen:
        raise ImageError(
            path, "16-bit animated PNG is not supported (its frames would lose their 16 bits)"
        )


def _seek(path: Path, im: Image.Image, index: int) -> None:
    try:
        im.seek(index)
    except EOFError:
        raise ImageError(path, f"frame {index + 1} is missing (truncated file?)") from None
    except Exception as exc:
        raise ImageError(
            path, f"truncated or corrupt {im.format} frame {index + 1} ({one_line(exc)})"
        ) from exc


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in _ALPHA_MODES or "transparency" in im.info


def _check_file(path: Path) -> None:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ImageError(path, "file not found") from None
    except OSError as exc:
        raise ImageError(path, f"cannot access file ({_os_reason(exc)})") from exc
    if path.is_dir():
        raise ImageError(path, "is a folder, not an image file")
    if st.st_size == 0:
        raise ImageError(path, "file is empty (0 bytes)")


def _identify_failure(path: Path) -> str:
    sniffed = _sniff_format(path)
    if sniffed:
        return f"truncated or corrupt {sniffed} header"
    # A real image of a kind we do not read deserves a clearer message than "not an image".
    try:
        with Image.open(path) as other:
            found = other.format
    except Exception:
        found = None
    if found:
        return f"unsupported image format {found} (supported: {', '.join(_READ_FORMATS)})"
    return "not an image file (cannot identify format)"


def _damaged_header(path: Path, exc: Exception) -> str:
    return f"truncated or corrupt {_sniff_format(path) or 'image'} header ({one_line(exc)})"


def _sniff_format(path: Path) -> str | None:
    """The format the file's first bytes claim, whether or not the rest is intact."""
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except OSError:
        return None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return next((fmt for magic, fmt in _SIGNATURES if head.startswith(magic)), None)


def _check_size(
    path: Path, size: tuple[int, int], *, allow_huge: bool, max_pixels: int, min_side: int
) -> None:
    width, height = size
    if min(width, height) < min_side:
        raise ImageError(
            path, f"image is {width}x{height} px; at least {min_side} px per side is needed"
        )
    megapixels = width * height / 1e6
    if not allow_huge and width * height > max_pixels:
        shown = f"{megapixels:.1f}" if megapixels >= 1 else f"{megapixels:.3g}"
        raise ImageError(
            path,
            f"{shown} megapixels exceeds the {max_pixels / 1e6:g} MP limit (use --allow-huge)",
        )


def _decode(
    path: Path, im: Image.Image, index: int, *, upright: tuple[int, bytes | None] | None = None
) -> LoadedImage:
    """Decode the current frame (``index``) of an opened image."""
    fmt = im.format or "image"
    mode = im.mode
    stored_16bit = _stored_at_16_bits(im)  # before load(), which clears the tile list
    try:
        im.load()
        orientation, exif = upright or _upright_exif(im)
        icc = _icc_profile(im)
        if mode == "CMYK" and not stored_16bit:
            im = _cmyk_to_rgb(im, icc)
            icc = None  # pixels are sRGB now: the CMYK profile no longer describes them
        samples, bit_depth = _samples(path, im, stored_16bit, index)
        if bit_depth == 16 and samples.ndim == 3 and samples.shape[2] == 2:
            mode = "LA"  # PIL opens 16-bit grey + alpha PNGs as "RGBA"
        coding, dpi, duration = _coding(path, im), _dpi(im), im.info.get("duration")
    except ImageError:
        raise
    except MemoryError:
        raise ImageError(path, f"not enough memory to decode {im.width}x{im.height} px") from None
    except Exception as exc:  # PIL reports damage as OSError, SyntaxError, ValueError, ...
        raise ImageError(path, f"truncated or corrupt {fmt} data ({one_line(exc)})") from exc

    try:
        rgb, alpha = _split_upright(samples, orientation)
    except MemoryError:
        raise ImageError(path, f"not enough memory for {im.width}x{im.height} px") from None
    return LoadedImage(
        path=path,
        rgb=rgb,
        alpha=alpha,
        bit_depth=bit_depth,
        mode=mode,
        format=fmt,
        icc_profile=icc,
        exif=exif,
        dpi=dpi if orientation < 5 or dpi is None else (dpi[1], dpi[0]),
        coding=coding,
        duration=float(duration) if isinstance(duration, (int, float)) else None,
    )


def _split_upright(samples: np.ndarray, orientation: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Rotate decoded samples upright; split them into HxWx3 colour and HxW alpha (or None)."""
    samples = _apply_orientation(samples, orientation)
    if samples.ndim == 2:
        samples = samples[..., None]
    has_alpha = samples.shape[2] in (2, 4)  # LA or RGBA: alpha is the last channel
    colour = samples[..., :-1] if has_alpha else samples
    if colour.shape[2] == 1:
        colour = np.repeat(colour, 3, axis=2)
    rgb = np.ascontiguousarray(colour, dtype=np.float32)
    alpha = np.ascontiguousarray(samples[..., -1], dtype=np.float32) if has_alpha else None
    return rgb, alpha


def _samples(path: Path, im: Image.Image, stored_16bit: bool, index: int) -> tuple[np.ndarray, int]:
    """Return (HxW or HxWxC float32 in [0, 1] with alpha last, bit depth) of an opened image."""
    mode = im.mode
    if mode in _GREY16_MODES:
        return np.asarray(im).astype(np.float32) / 65535.0, 16
    if mode == "I":  # 32-bit integer grey; PNG/TIFF use it for 16-bit samples
        return np.clip(np.asarray(im, dtype=np.float64) / 65535.0, 0, 1).astype(np.float32), 16
    if mode == "F":
        return _float_grey(np.asarray(im, dtype=np.float32)), 16
    if stored_16bit:  # colour (or grey + alpha) at 16 bits: PIL would give 8
        return _read_16bit_colour(path, im, index), 16
    keyed = "transparency" in im.info  # palette or colour-key transparency becomes alpha
    if mode in ("P", "PA"):
        target = "RGBA" if mode == "PA" or keyed else "RGB"
    elif mode in ("1", "L"):
        target = "LA" if keyed else "L"
    elif mode in ("LA", "La"):
        target = "LA"
    elif mode in ("RGBA", "RGBa"):
        target = "RGBA"
    else:  # RGB, and CMYK already converted to RGB, YCbCr, RGBX, ...
        target = "RGBA" if mode == "RGB" and keyed else "RGB"
    converted = im if im.mode == target else im.convert(target)
    return np.asarray(converted).astype(np.float32) / 255.0, 8


def _float_grey(values: np.ndarray) -> np.ndarray:
    # Float TIFFs have no agreed range: treat them as [0, 1], 8-bit or 16-bit scaled data.
    peak = float(np.nanmax(values)) if values.size else 0.0
    scale = 1.0 if peak <= 1.0 else 255.0 if peak <= 255.0 else 65535.0
    return np.clip(np.nan_to_num(values / scale), 0, 1).astype(np.float32)


def _stored_at_16_bits(im: Image.Image) -> bool:
    """True if the current frame holds 16-bit samples (PIL decodes 16-bit colour to 8 bits)."""
    if im.format not in _SIXTEEN_BIT_FORMATS:
        return False
    try:
        if im.format == "TIFF":
            bits = im.tag_v2.get(258, (8,))  # BitsPerSample
            return max(bits if isinstance(bits, tuple) else (bits,)) >= 16
        # For PNG the raw mode of the decoder tile says it, e.g. "RGBA;16B".
        rawmodes = [t.args if isinstance(t.args, str) else t.args[0] for t in im.tile]
        return any(";16" in str(r) for r in rawmodes)
    except Exception:  # odd tags or tiles: PIL's own 8-bit decoding still works
        return False


def _read_16bit_colour(path: Path, im: Image.Image, index: int) -> np.ndarray:
    """HxWxC float32 samples of a 16-bit colour (or grey + alpha) PNG or TIFF page: imagecodecs
    decodes the PNG, tifffile the TIFF (any compression). Orientation comes later, from PIL."""
    try:
        if im.format == "PNG":
            import imagecodecs

            arr = imagecodecs.png_decode(path.read_bytes())
        else:
            arr = _tiff_page_samples(path, index)
    except ImportError as exc:
        raise ImageError(path, _codec_missing("reading", exc)) from None
    arr = arr[..., None] if arr.ndim == 2 else arr
    if arr.ndim != 3 or arr.shape[:2] != (im.height, im.width) or arr.shape[2] not in (2, 3, 4):
        raise ImageError(path, f"unsupported 16-bit {im.format} sample layout {arr.shape}")
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    return np.clip(np.nan_to_num(arr.astype(np.float32)), 0, 1)


def _codec_missing(doing: str, exc: ImportError) -> str:
    package = exc.name or "imagecodecs or tifffile"
    return f"{doing} 16-bit colour needs {package}, part of a normal install (pip install .)"


def _tiff_page_samples(path: Path, index: int) -> np.ndarray:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[index]
        photometric = int(page.photometric)
        if photometric not in (1, 2):  # MINISBLACK (with alpha), RGB
            name = getattr(page.photometric, "name", photometric)
            raise ImageError(
                path, f"16-bit {name} TIFF is not supported (grey and RGB keep their 16 bits)"
            )
        arr = page.asarray()
        if int(page.planarconfig) == 2 and arr.ndim == 3:  # separate planes: CxHxW
            arr = np.moveaxis(arr, 0, -1)
        return arr


def _icc_profile(im: Image.Image) -> bytes | None:
    if im.format == "TIFF":  # PIL keeps info from earlier pages: read the page's own tag
        icc = im.tag_v2.get(_ICC_TAG)
        return bytes(icc) if icc else None
    return im.info.get("icc_profile") or None


def _dpi(im: Image.Image) -> tuple[float, float] | None:
    """The resolution the frame states, in dots per inch, or None."""
    try:
        if im.format == "TIFF":  # from the page's own tags (PIL keeps earlier pages' info)
            tags = im.tag_v2
            x, y, unit = tags.get(282), tags.get(283), tags.get(296, 2)
            per_inch = {2: 1.0, 3: 2.54}.get(int(unit))
            if not x or not y or per_inch is None:
                return None
            return float(x) * per_inch, float(y) * per_inch
        dpi = im.info.get("dpi")
        if dpi and float(dpi[0]) > 0 and float(dpi[1]) > 0:
            return float(dpi[0]), float(dpi[1])
    except Exception:  # an odd resolution tag must not make a good image unreadable
        pass
    return None


def _coding(path: Path, im: Image.Image) -> dict[str, Any]:
    """How the frame was coded, as far as writing it back the same way needs."""
    if im.format in ("JPEG", "MPO"):
        return {"progressive": bool(im.info.get("progressive") or im.info.get("progression"))}
    if im.format == "WEBP":
        return {"lossless": _webp_is_lossless(path)}
    if im.format == "TIFF":
        return {"compression": im.info.get("compression", "raw")}
    return {}


def _webp_is_lossless(path: Path) -> bool:
    """True if every picture of the WebP file is VP8L (lossless) coded."""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    kinds = set(_riff_chunks(data, 12, len(data)))
    return b"VP8L" in kinds and b"VP8 " not in kinds


def _riff_chunks(data: bytes, start: int, end: int) -> Iterator[bytes]:
    pos = start
    while pos + 8 <= end:
        kind, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        yield kind
        if kind == b"ANMF":  # an animation frame: 16 bytes of placement, then its chunks
            yield from _riff_chunks(data, pos + 24, min(end, pos + 8 + size))
        pos += 8 + size + (size & 1)


def _cmyk_to_rgb(im: Image.Image, icc: bytes | None) -> Image.Image:
    if icc:
        try:
            from PIL import ImageCms

            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
            converted = ImageCms.profileToProfile(im, source, srgb, outputMode="RGB")
            if converted is not None:
                return converted
        except Exception:  # no LittleCMS, or a profile it rejects: PIL's formula still works
            pass
    return im.convert("RGB")


def _upright_exif(im: Image.Image) -> tuple[int, bytes | None]:
    """Return (EXIF orientation, EXIF bytes with orientation reset to 1 or None)."""
    try:
        exif = im.getexif()
        orientation = int(exif.get(_ORIENTATION_TAG, 1))
    except Exception:  # broken EXIF must not make a good image unreadable
        return 1, None
    if orientation not in range(1, 9):
        orientation = 1
    raw = im.info.get("exif")  # TIFF keeps its tags in the file structure, not as EXIF bytes
    if not raw:
        return orientation, None
    if not raw.startswith(b"Exif\x00\x00"):  # WebP stores bare TIFF data; JPEG needs the prefix
        raw = b"Exif\x00\x00" + raw
    if _ORIENTATION_TAG not in exif or exif[_ORIENTATION_TAG] == 1:
        return orientation, raw
    try:
        exif[_ORIENTATION_TAG] = 1
        return orientation, exif.tobytes()
    except Exception:  # dropping EXIF beats having viewers rotate upright pixels again
        return orientation, None


def _apply_orientation(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Make pixels upright for an EXIF orientation (same result as PIL's exif_transpose)."""
    if orientation == 2:
        return arr[:, ::-1]
    if orientation == 3:
        return arr[::-1, ::-1]
    if orientation == 4:
        return arr[::-1]
    if orientation == 5:
        return arr.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(arr, k=-1)
    if orientation == 7:
        return arr[::-1, ::-1].swapaxes(0, 1)
    if orientation == 8:
        return np.rot90(arr, k=1)
    return arr


_pixel_limit_lock = threading.Lock()
_pixel_limit_users = 0
_saved_pixel_limit: int | None = None


@contextlib.contextmanager
def _pil_pixel_limit_disabled() -> Iterator[None]:
    """Switch off PIL's decompression-bomb limit while we read, so that our own limit (checked
    from the header) is the one that applies. Concurrent readers share one switch-off."""
    global _pixel_limit_users, _saved_pixel_limit
    with _pixel_limit_lock:
        if _pixel_limit_users == 0:
            _saved_pixel_limit = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
        _pixel_limit_users += 1
    try:
        yield
    finally:
        with _pixel_limit_lock:
            _pixel_limit_users -= 1
            if _pixel_limit_users == 0:
                Image.MAX_IMAGE_PIXELS = _saved_pixel_limit


# --------------------------------------------------------------------------------------
# Writing


def default_output_suffix(img: LoadedImage) -> str:
    """The input's suffix, unless that format cannot hold the alpha or 16-bit samples."""
    return _default_suffix(img.path, img.alpha is not None, img.bit_depth)


def _default_suffix(path: Path, has_alpha: bool, bit_depth: int) -> str:
    suffix = path.suffix
    fmt = _WRITE_FORMATS.get(suffix.lower())
    if fmt is None:
        return ".png"
    if has_alpha and fmt in _NO_ALPHA_FORMATS:
        return ".png"
    if bit_depth == 16 and fmt not in _SIXTEEN_BIT_FORMATS:
        return ".png"
    return suffix


def output_problem(source: ImageInfo | LoadedFile, suffix: str) -> str | None:
    """Why a file with ``suffix`` cannot hold what ``source`` has (its frames or pages, its
    alpha), as one line; None if it can. Checked from headers, before any work."""
    fmt = _WRITE_FORMATS.get(suffix.lower())
    if fmt is None:
        return _unsupported_output(suffix)
    if isinstance(source, LoadedFile):
        has_alpha = any(f.alpha is not None for f in source.frames)
    else:
        has_alpha = source.has_alpha
    if source.n_frames > 1:
        kind = "frames" if source.animated else "pages"
        if fmt in _NO_ALPHA_FORMATS:
            keep = "PNG, WebP, GIF or TIFF" if source.animated else "TIFF"
            return f"{fmt} holds one image, not {source.n_frames} {kind} (write {keep})"
        if fmt in _ANIMATION_FORMATS and not source.animated:
            return f"{source.n_frames} TIFF pages can only be written as a multi-page TIFF"
    if has_alpha and fmt in _NO_ALPHA_FORMATS:
        return _no_alpha(fmt)
    return None


def _unsupported_output(suffix: str) -> str:
    wanted = suffix or "(no suffix)"
    return f"unsupported output format {wanted} (use .png, .jpg, .webp, .tif, .bmp or .gif)"


def _no_alpha(fmt: str) -> str:
    return f"{fmt} cannot keep the alpha channel; write .png, .webp or .tif instead"


def write_image(
    path: str | os.PathLike,
    rgb: np.ndarray,
    *,
    like: LoadedImage | None = None,
    alpha: np.ndarray | None = None,
    quality: int | None = None,
) -> Path:
    """Atomically write ``rgb`` (HxWx3 float in [0, 1]) to ``path``; the suffix picks the format.

    With ``like`` (the source image) the output keeps its grey mode, 16-bit depth (PNG/TIFF,
    colour included), alpha (resized when the output size differs), ICC profile, EXIF,
    resolution and coding (lossless WebP, TIFF compression, progressive JPEG). ``alpha``
    overrides ``like.alpha``. ``quality`` (1-100) is for lossy outputs: JPEG, lossy WebP, JPEG
    in TIFF (default :data:`DEFAULT_QUALITY`); with it a WebP is written lossy. Returns the
    written path.
    """
    path = Path(path)
    fmt = _output_format(path)
    frame = _prepare_frame(path, fmt, rgb, like, alpha)
    with _writing(path) as tmp:
        if fmt == "TIFF" and frame.sixteen and frame.samples.ndim == 3:
            _write_tiff_pages(tmp, [frame], quality)  # PIL has no 16-bit colour modes
        elif fmt == "PNG" and frame.sixteen and frame.samples.ndim == 3:
            tmp.write_bytes(_encode_png16(frame))
        else:
            _pil_image(frame, fmt).save(tmp, format=fmt, **_pil_options(fmt, frame, quality))
    return path


def write_frames(
    path: str | os.PathLike,
    rgbs: Sequence[np.ndarray],
    *,
    like: LoadedFile,
    quality: int | None = None,
) -> Path:
    """Atomically write one restored array per frame of ``like``: an animation (GIF, APNG,
    WebP) with the input's durations and loop count, or a multi-page TIFF whose pages each
    keep what :func:`write_image` keeps. A single frame is written by :func:`write_image`.

    Raises:
        ValueError: not one array per frame of ``like``.
        ImageError: the file cannot be encoded or written.
    """
    path = Path(path)
    if len(rgbs) != like.n_frames:
        raise ValueError(f"{like.n_frames} frames to write, got {len(rgbs)} arrays")
    if like.n_frames == 1:
        return write_image(path, rgbs[0], like=like.frames[0], quality=quality)
    fmt = _output_format(path)
    problem = output_problem(like, path.suffix)
    if problem:
        raise ImageError(path, problem)
    grey = None if fmt == "TIFF" else all(f.is_grey for f in like.frames)  # one mode
    frames = [
        _prepare_frame(path, fmt, rgb, f, None, grey=grey)
        for rgb, f in zip(rgbs, like.frames, strict=True)
    ]
    if fmt != "TIFF" and len({f.samples.shape for f in frames}) > 1:
        raise ImageError(path, "the frames of an animation must all have one size")
    with _writing(path) as tmp:
        if fmt == "TIFF":
            _write_tiff_pages(tmp, frames, quality)
        else:
            _save_animation(tmp, fmt, frames, like, quality)
    return path


@dataclass
class _Frame:
    """Samples ready to encode (HxW grey or HxWxC, alpha last, float in [0, 1]) and what the
    source had that the encoder keeps."""

    samples: np.ndarray
    has_alpha: bool
    sixteen: bool
    icc: bytes | None = None
    exif: bytes | None = None
    dpi: tuple[float, float] | None = None
    coding: dict[str, Any] = field(default_factory=dict)
    duration: float | None = None


def _output_format(path: Path) -> str:
    fmt = _WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(path, _unsupported_output(path.suffix))
    return fmt


def _prepare_frame(
    path: Path,
    fmt: str,
    rgb: np.ndarray,
    like: LoadedImage | None,
    alpha: np.ndarray | None,
    *,
    grey: bool | None = None,
) -> _Frame:
    colour = _as_unit_array(path, rgb, "rgb")
    if colour.ndim != 3 or colour.shape[2] != 3:
        raise ImageError(path, f"expected an HxWx3 RGB array, got shape {colour.shape}")
    height, width = colour.shape[:2]
    if alpha is None and like is not None:
        alpha = like.alpha
    if alpha is not None:
        if fmt in _NO_ALPHA_FORMATS:
            raise ImageError(path, _no_alpha(fmt))
        alpha = _fit_alpha(path, _as_unit_array(path, alpha, "alpha"), height, width)

    if grey is None:
        grey = like is not None and like.is_grey
    channels = [colour @ (_LUMA / _LUMA.sum())] if grey else [colour[..., i] for i in range(3)]
    if alpha is not None:
        channels.append(alpha)
    samples = np.stack(channels, axis=2) if len(channels) > 1 else channels[0]
    if like is None:
        return _Frame(samples, alpha is not None, sixteen=False)
    return _Frame(
        samples,
        alpha is not None,
        sixteen=like.bit_depth == 16 and fmt in _SIXTEEN_BIT_FORMATS,
        icc=like.icc_profile,
        exif=like.exif,
        dpi=like.dpi,
        coding=like.coding,
        duration=like.duration,
    )


@contextlib.contextmanager
def _writing(path: Path) -> Iterator[Path]:
    """A temporary file that replaces ``path`` only once it is complete; every failure is an
    :class:`ImageError`."""
    try:
        with atomic_path(path) as tmp:
            yield tmp
            _chmod_like_new_file(tmp)
    except ImageError:
        raise
    except ImportError as exc:
        raise ImageError(path, _codec_missing("writing", exc)) from None
    except OSError as exc:
        raise ImageError(path, f"cannot write file ({_os_reason(exc)})") from exc
    except Exception as exc:  # an encoder refusing its input
        raise ImageError(path, f"cannot encode {path.suffix} ({one_line(exc)})") from exc


def _as_unit_array(path: Path, values: Any, what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    if not np.issubdtype(arr.dtype, np.number) and arr.dtype != np.bool_:
        raise ImageError(path, f"{what} must be a numeric array, got {arr.dtype}")
    return np.clip(np.nan_to_num(arr.astype(np.float32)), 0.0, 1.0)


def _fit_alpha(path: Path, alpha: np.ndarray, height: int, width: int) -> np.ndarray:
    if alpha.ndim == 3 and alpha.shape[2] == 1:
        alpha = alpha[..., 0]
    if alpha.ndim != 2:
        raise ImageError(path, f"expected an HxW alpha array, got shape {alpha.shape}")
    if alpha.shape == (height, width):
        return alpha  # same size: untouched, so it round-trips exactly
    resized = Image.fromarray(np.ascontiguousarray(alpha, dtype=np.float32)).resize(
        (width, height), Image.Resampling.BICUBIC
    )
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def _quantize(samples: np.ndarray, bits: int) -> np.ndarray:
    peak, dtype = (65535.0, np.uint16) if bits == 16 else (255.0, np.uint8)
    return np.ascontiguousarray(np.round(samples * peak).astype(dtype))


def _pil_image(frame: _Frame, fmt: str) -> Image.Image:
    # Only 2-D (grey) samples get here at 16 bits: PIL has no 16-bit colour modes.
    samples = frame.samples
    if fmt == "GIF" and frame.has_alpha:  # GIF transparency is on or off
        samples = samples.copy()
        samples[..., -1] = samples[..., -1] >= 0.5
    im = Image.fromarray(_quantize(samples, 16 if frame.sixteen else 8))
    if fmt == "GIF" and im.mode == "LA":
        im = im.convert("RGBA")
    return im


def _pil_options(fmt: str, frame: _Frame, quality: int | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if fmt not in ("BMP", "GIF"):  # neither has a place for them
        if frame.icc:
            options["icc_profile"] = frame.icc
        if frame.exif:
            options["exif"] = frame.exif
    if frame.dpi and fmt in ("PNG", "JPEG", "TIFF", "BMP"):
        options["dpi"] = frame.dpi
    level = DEFAULT_QUALITY if quality is None else quality
    if fmt == "JPEG":
        # 4:4:4 chroma: subsampling would blur away restored colour detail.
        progressive = bool(frame.coding.get("progressive"))
        options.update(quality=level, subsampling=0, progressive=progressive)
    elif fmt == "WEBP":
        if frame.coding.get("lossless") and quality is None:
            options.update(lossless=True, quality=100)  # for lossless, quality is effort
        else:
            options.update(quality=level)
    elif fmt == "TIFF":
        options["compression"] = _tiff_compression(frame)
        if options["compression"] == "jpeg":
            options["quality"] = level
    return options


def _tiff_compression(frame: _Frame) -> str:
    """The input's TIFF compression (Pillow's name), else LZW; JPEG only where it fits."""
    from PIL import features

    compression = frame.coding.get("compression")
    if compression not in _TIFF_COMPRESSIONS:
        compression = "tiff_lzw"
    if compression == "jpeg" and (frame.has_alpha or frame.sixteen):
        compression = "tiff_adobe_deflate"  # JPEG holds 8-bit grey or RGB only
    if compression != "raw" and not features.check("libtiff"):
        compression = "raw"
    return compression


def _encode_png16(frame: _Frame) -> bytes:
    import imagecodecs

    png = imagecodecs.png_encode(_quantize(frame.samples, 16), level=6)
    return _png_with_metadata(png, frame.icc, frame.exif, frame.dpi)


def _write_tiff_pages(tmp: Path, frames: list[_Frame], quality: int | None) -> None:
    """Write pages with tifffile: 16-bit colour, and pages that differ in mode or metadata."""
    import tifffile

    with tifffile.TiffWriter(tmp) as tif:
        for frame in frames:
            data = _quantize(frame.samples, 16 if frame.sixteen else 8)
            if frame.sixteen and data.ndim == 3 and data.shape[2] == 2:
                data = data[..., [0, 0, 0, 1]]  # grey + alpha at 16 bits: PIL only reads RGBA
            channels = 1 if data.ndim == 2 else data.shape[2]
            options: dict[str, Any] = {
                "photometric": "minisblack" if channels <= 2 else "rgb",
                "metadata": None,
            }
            if data.ndim == 3:
                options["planarconfig"] = "contig"
            if frame.has_alpha:
                options["extrasamples"] = ["unassalpha"]
            compression = _TIFFFILE_COMPRESSION[_tiff_compression(frame)]
            if compression:
                options["compression"] = compression
            if compression == "jpeg":
                options["compressionargs"] = {"level": quality or DEFAULT_QUALITY}
            if frame.icc:
                options["extratags"] = [(_ICC_TAG, "B", len(frame.icc), frame.icc, True)]
            if frame.dpi:
                options.update(resolution=frame.dpi, resolutionunit="INCH")
            tif.write(data, **options)


def _save_animation(
    tmp: Path, fmt: str, frames: list[_Frame], like: LoadedFile, quality: int | None
) -> None:
    """Whole-canvas frames as an animation, with the input's durations and loop count."""
    images = [_pil_image(f, fmt) for f in frames]
    timed = frames[1:] if like.default_image else frames  # an APNG's still image has no time
    durations = [f.duration or 0 for f in timed]  # ms; GIF and WebP store whole ms
    options = _pil_options(fmt, frames[0], quality)
    options.update(
        save_all=True,
        append_images=images[1:],
        duration=durations if fmt == "PNG" else [round(d) for d in durations],
    )
    if like.loop is not None:
        options["loop"] = like.loop
    if fmt == "GIF":
        # Each frame is a whole canvas: clear transparent areas of the frame before.
        options["disposal"] = 2 if frames[0].has_alpha else 1
    elif fmt == "PNG":
        options.update(disposal=0, blend=0, default_image=like.default_image)  # replace
    elif fmt == "WEBP":
        if like.background is not None:
            options["background"] = like.background
        if frames[0].has_alpha:
            # Every frame a key frame: with sub-frames libwebp can leave out the file's alpha
            # flag, and readers (PIL included) then drop the transparency.
            options.update(kmin=1, kmax=1)
    images[0].save(tmp, format=fmt, **options)


def _png_with_metadata(
    png: bytes, icc: bytes | None, exif: bytes | None, dpi: tuple[float, float] | None
) -> bytes:
    """Insert iCCP, eXIf and pHYs chunks after IHDR (the 16-bit encoder writes none)."""
    chunks = []
    if icc:
        chunks.append(_png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc)))
    if exif:
        chunks.append(_png_chunk(b"eXIf", exif.removeprefix(b"Exif\x00\x00")))
    if dpi:
        per_metre = [round(d / 0.0254) for d in dpi]
        chunks.append(_png_chunk(b"pHYs", struct.pack(">IIB", *per_metre, 1)))
    if not chunks:
        return png
    ihdr_end = 8 + 8 + struct.unpack(">I", png[8:12])[0] + 4  # signature + IHDR chunk
    return png[:ihdr_end] + b"".join(chunks) + png[ihdr_end:]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _chmod_like_new_file(tmp: Path) -> None:
    # mkstemp creates files 0600; an output should get the permissions of a normal new file.
    with contextlib.suppress(OSError):
        os.chmod(tmp, 0o666 & ~_umask())


@functools.cache
def _umask() -> int:
    try:  # Linux exposes it without the race of setting and restoring it
        status = Path("/proc/self/status").read_text()
        match = re.search(r"^Umask:\s*([0-7]+)", status, re.MULTILINE)
        if match:
            return int(match.group(1), 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# --------------------------------------------------------------------------------------
# Batch inputs and output paths


@dataclass(frozen=True)
class BatchInput:
    """An input file and the sub-folder of the output folder its output goes to (the folder
    it was found in, relative to the folder or glob that found it: outputs mirror the tree)."""

    path: Path
    folder: Path = Path()


def collect_inputs(specs: list[str], *, recursive: bool = False) -> tuple[list[Path], list[str]]:
    """Expand files, folders and glob patterns into image files; see :func:`collect_batch`.
    Returns ``(files, problems)``."""
    items, problems = collect_batch(specs, recursive=recursive)
    return [item.path for item in items], problems


def collect_batch(
    specs: list[str], *, recursive: bool = False, output: str | os.PathLike | None = None
) -> tuple[list[BatchInput], list[str]]:
    """Expand files, folders and glob patterns into image files.

    Files named explicitly are kept whatever their suffix (reading them reports problems);
    folders and globs contribute files with an image suffix, sorted, skipping hidden files
    (such as the temp files of an interrupted atomic write). ``recursive`` descends into
    sub-folders; ``**`` in a pattern always matches across folders. With ``output`` (the
    output folder), files a folder or glob finds inside it are not inputs unless the folder
    or glob starts there, and earlier outputs written beside their inputs (``x_unires.png``)
    never are. Returns ``(inputs, problems)`` with duplicates (same file by any path) removed,
    keeping first-seen order; each problem is a one-line message for a spec that matched
    nothing.
    """
    out_real = os.path.realpath(output) if output is not None else None
    items: list[BatchInput] = []
    seen: set[str] = set()
    problems: list[str] = []

    def wanted(p: Path, root: Path) -> bool:
        if out_real is None or not _inside(os.path.realpath(p.parent), out_real):
            return True
        return _inside(os.path.realpath(root), out_real) and not _OWN_OUTPUT.search(p.stem)

    def add(found: list[Path], root: Path, mirror: bool) -> None:
        for p in found:
            key = os.path.realpath(p)
            if key in seen or not wanted(p, root):
                continue
            seen.add(key)
            folder = Path()
            if mirror:
                with contextlib.suppress(ValueError):
                    folder = p.parent.relative_to(root)
            items.append(BatchInput(p, folder))

    for spec in specs:
        path = Path(spec)
        if path.is_file():
            add([path], path.parent, mirror=False)
        elif path.is_dir():
            found = _images_in_folder(path, recursive=recursive, skip=out_real)
            if not found:
                problems.append(one_line(f"{spec}: folder contains no image files"))
            add(found, path, mirror=True)
        elif glob.has_magic(spec):
            found = []
            for match in sorted(glob.glob(spec, recursive=True)):
                p = Path(match)
                if p.is_dir():
                    found.extend(_images_in_folder(p, recursive=recursive, skip=out_real))
                elif p.is_file() and _is_image_name(p):
                    found.append(p)
            if not found:
                problems.append(one_line(f"{spec}: pattern matches no image files"))
            add(found, _glob_root(spec), mirror=True)
        else:
            problems.append(one_line(f"{spec}: no such file or folder"))
    return items, problems


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _glob_root(pattern: str) -> Path:
    """The folder a pattern starts from: its leading parts without wildcards."""
    parts = Path(pattern).parts
    fixed = [part for part in itertools.takewhile(lambda s: not glob.has_magic(s), parts[:-1])]
    return Path(*fixed) if fixed else Path()


def _is_image_name(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")


def _images_in_folder(folder: Path, *, recursive: bool, skip: str | None = None) -> list[Path]:
    if not recursive:
        return sorted(p for p in folder.iterdir() if _is_image_name(p) and p.is_file())
    found = []
    start = os.path.realpath(folder)
    # os.walk does not follow symlinked folders, so a link loop cannot hang the scan.
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if skip is not None and not _inside(start, skip):  # never descend into the output
            dirs[:] = [d for d in dirs if os.path.realpath(os.path.join(root, d)) != skip]
        found.extend(Path(root, n) for n in names if _is_image_name(Path(n)))
    return sorted(p for p in found if p.is_file())


@dataclass(frozen=True)
class PlannedOutput:
    """One file of a batch: its input, its header facts and the output it will be written to."""

    source: Path
    target: Path
    info: ImageInfo
    exists: bool = False  # a file is already there: replaced, or skipped with skip_existing


@dataclass
class BatchPlan:
    """The outputs of a whole batch, decided before any image is restored."""

    jobs: list[PlannedOutput] = field(default_factory=list)
    skipped: list[PlannedOutput] = field(default_factory=list)  # output exists (skip_existing)
    errors: list[str] = field(default_factory=list)  # one line per input that will not be done
    notes: list[str] = field(default_factory=list)  # one line per output name changed


def plan_batch(
    inputs: Sequence[BatchInput],
    out_dir: str | os.PathLike,
    *,
    output_format: str = "same",
    skip_existing: bool = False,
    allow_huge: bool = False,
    max_frames: int | None = None,
    sidecar: str | None = None,
) -> BatchPlan:
    """Plan a batch: read every input's headers, pick each output's name and check that it
    can be written, all before any image is restored.

    Each input goes to ``out_dir / input.folder`` under its own name with the suffix of
    ``output_format`` ("same": the input's, see :meth:`ImageInfo.default_suffix`). An output
    is never an input (``name_unires.ext`` beside it instead) nor another input's output: a
    later input whose name is taken gets ``name_<its ext>.ext`` or ``name_2.ext`` and a note.
    ``sidecar`` (e.g. ".weights.json"): a file written beside each output, which must not
    clash either. Inputs that cannot be read, cannot be held by the output format, or whose
    output folder cannot be written are errors (one line each, naming the file).
    """
    out_dir = Path(out_dir)
    plan = BatchPlan()
    planned: list[tuple[BatchInput, ImageInfo, Path]] = []  # readable and holdable inputs
    for item in inputs:
        try:
            info = probe_image(item.path, allow_huge=allow_huge, max_frames=max_frames)
        except ImageError as exc:
            plan.errors.append(str(exc))
            continue
        suffix = info.default_suffix() if output_format == "same" else f".{output_format}"
        problem = output_problem(info, suffix)
        if problem:
            plan.errors.append(str(ImageError(item.path, problem)))
            continue
        planned.append((item, info, out_dir / item.folder / f"x{suffix}"))

    # Names: an input whose format is the output's keeps its plain name; the others may
    # have to change theirs (name_<ext>.ext, name_2.ext), each with a note.
    protected = _FileSet([item.path for item in inputs])
    taken: dict[str, Path] = {}  # folded output (and sidecar) path -> the input writing it
    targets: dict[int, Path] = {}
    order = sorted(range(len(planned)), key=lambda i: not _same_format(*planned[i][::2]))
    for i in order:
        item, _, model = planned[i]
        wanted = _output_name(item.path, model.parent, model.suffix, protected)
        target, owner = wanted, _owner(wanted, taken, sidecar)
        if owner is not None:
            target = next(
                t
                for t in _other_names(item.path, wanted)
                if _owner(t, taken, sidecar) is None and t not in protected
            )
            plan.notes.append(
                one_line(f"{item.path}: {wanted} is the output of {owner}; writing {target}")
            )
        for key in _clash_keys(target, sidecar):
            taken[key] = item.path
        targets[i] = target

    folders: dict[Path, str | None] = {}  # output folder -> why it cannot be written
    for i, (item, info, _) in enumerate(planned):
        target = targets[i]
        if target.parent not in folders:
            folders[target.parent] = _folder_problem(target.parent)
        problem = folders[target.parent]
        if problem is None and target.is_dir():
            problem = f"output {target} exists and is a folder"
        if problem:
            plan.errors.append(str(ImageError(item.path, problem)))
            continue
        job = PlannedOutput(item.path, target, info, exists=target.exists())
        (plan.skipped if skip_existing and job.exists else plan.jobs).append(job)
    return plan


def _same_format(item: BatchInput, model: Path) -> bool:
    fmt = _WRITE_FORMATS.get(item.path.suffix.lower())
    return fmt is not None and fmt == _WRITE_FORMATS.get(model.suffix.lower())


def _owner(target: Path, taken: dict[str, Path], sidecar: str | None) -> Path | None:
    return next((taken[k] for k in _clash_keys(target, sidecar) if k in taken), None)


def _clash_keys(target: Path, sidecar: str | None) -> list[str]:
    # Case-folded: two names differing in case are one file on macOS and Windows.
    names = [target] if sidecar is None else [target, target.with_name(target.stem + sidecar)]
    return [os.path.normcase(os.path.abspath(p)).casefold() for p in names]


def _other_names(source: Path, wanted: Path) -> Iterator[Path]:
    """Names for an output whose name another input's output has: name_<ext>, name_2, ..."""
    ext = source.suffix.lower().lstrip(".")
    if ext and ext != wanted.suffix.lower().lstrip("."):
        yield wanted.with_name(f"{wanted.stem}_{ext}{wanted.suffix}")
    for n in itertools.count(2):
        yield wanted.with_name(f"{wanted.stem}_{n}{wanted.suffix}")


def _folder_problem(folder: Path) -> str | None:
    """Why no file can be written in ``folder`` (created if missing), or None."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".unires-write-check-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return f"cannot write to output folder {folder} ({_os_reason(exc)})"
    return None


def plan_output(
    input_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    suffix: str,
    *,
    inputs: Iterable[str | os.PathLike] = (),
) -> Path:
    """Output path for ``input_path`` in ``out_dir``: ``<stem><suffix>``, or
    ``<stem>_unires<suffix>`` when ``out_dir`` is the input's own folder (by any path, symlinks
    included) or the plain name is an input. Never returns ``input_path`` itself nor any of
    ``inputs`` (pass the whole batch so that one input cannot overwrite another)."""
    suffix = suffix if suffix.startswith(".") else f".{suffix}"
    protected = _FileSet([input_path, *inputs])
    return _output_name(Path(input_path), Path(out_dir), suffix, protected)


def _output_name(input_path: Path, folder: Path, suffix: str, protected: _FileSet) -> Path:
    stem = input_path.stem
    candidate = folder / f"{stem}{suffix}"
    if _same_file(folder, input_path.parent) or candidate in protected:
        candidate = folder / f"{stem}_unires{suffix}"
        n = 2
        while candidate in protected:
            candidate = folder / f"{stem}_unires{n}{suffix}"
            n += 1
    return candidate


def ensure_not_input(out_path: str | os.PathLike, inputs: Iterable[str | os.PathLike]) -> None:
    """Raise :class:`ImageError` if writing ``out_path`` would overwrite one of ``inputs``."""
    out_path = Path(out_path)
    for inp in inputs:
        if out_path in _FileSet([inp]):
            raise ImageError(out_path, f"refusing to overwrite input file {inp}")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


class _FileSet:
    """Files by name, and by identity: a path names a member if it is spelt the same or is
    the same existing file reached another way (symlinked folder, hard link, case-insensitive
    file system)."""

    def __init__(self, paths: Iterable[str | os.PathLike]) -> None:
        self.names = set()
        self.inodes = set()
        for p in paths:
            self.names.add(os.path.abspath(p))
            with contextlib.suppress(OSError):
                st = os.stat(p)
                self.inodes.add((st.st_dev, st.st_ino))

    def __contains__(self, candidate: object) -> bool:
        if not isinstance(candidate, (str, os.PathLike)):
            return False
        if os.path.abspath(candidate) in self.names:
            return True
        try:
            st = os.stat(candidate)
        except OSError:  # nothing there yet, so it cannot be an existing input
            return False
        return (st.st_dev, st.st_ino) in self.inodes


# --------------------------------------------------------------------------------------
# Data-set files (training folders, benchmark pairs)


def is_dataset_image(path: Path) -> bool:
    """True for an existing file with a ``DATASET_SUFFIXES`` suffix and no leading dot."""
    return (
        path.is_file() and path.suffix.lower() in DATASET_SUFFIXES and not path.name.startswith(".")
    )


def list_images(roots: Iterable[str | os.PathLike], skip_lr_folders: bool = True) -> list[Path]:
    """Data-set images under ``roots`` (folders searched recursively, files taken as given),
    sorted per root; ``skip_lr_folders`` leaves out folders of low-resolution copies
    (``*_LR_*``, ``X4``). A missing root gives no files; never raises for one."""
    files: list[Path] = []
    for root in roots:
        root = Path(root)
        if root.is_file():
            files.append(root)
            continue
        for p in sorted(root.rglob("*")):
            rel = p.relative_to(root).parts[:-1]
            if skip_lr_folders and any(_LR_FOLDER.search(part) for part in rel):
                continue
            if is_dataset_image(p):
                files.append(p)
    return files


def load_rgb(path: str | os.PathLike) -> torch.Tensor:
    """A data-set image as a (3, H, W) float32 tensor in [0, 1]: grey, palette and alpha
    inputs become RGB, 16-bit grey is scaled by 1/65535 (no colour management, no EXIF
    rotation: the pixels as stored, as the training and benchmark sets were built).

    Raises:
        OSError: the file cannot be opened; PIL's ``UnidentifiedImageError`` (an ``OSError``)
            when it is not an image.
    """
    with Image.open(path) as im:
        im.load()
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(im, dtype=np.float32) / 65535.0
            return torch.from_numpy(np.repeat(arr[None], 3, 0).copy())
        arr = np.asarray(im.convert("RGB"))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255)


# --------------------------------------------------------------------------------------
# Tensors


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """HxWx3 float array -> 1x3xHxW float32 tensor (a copy: the array can be reused).

    Raises:
        ValueError: ``rgb`` is not H x W x 3.
    """
    arr = np.asarray(rgb, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 array, got shape {arr.shape}")
    return torch.from_numpy(np.array(arr.transpose(2, 0, 1), order="C")).unsqueeze(0)


def from_tensor(t: torch.Tensor) -> np.ndarray:
    """1x3xHxW (or 3xHxW) tensor -> HxWx3 float32 array clipped to [0, 1].

    Raises:
        ValueError: ``t`` is not 1 x 3 x H x W or 3 x H x W.
    """
    t = t.detach()
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 3 or t.shape[0] != 3:
        raise ValueError(f"expected a 1x3xHxW or 3xHxW tensor, got shape {tuple(t.shape)}")
    arr = t.to(device="cpu", dtype=torch.float32).permute(1, 2, 0).numpy()
    return np.clip(np.nan_to_num(arr), 0.0, 1.0).astype(np.float32, copy=False)


# --------------------------------------------------------------------------------------
# Messages


def _os_reason(exc: OSError) -> str:
    return exc.strerror or one_line(exc)
