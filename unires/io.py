"""Safe image input/output: decode any supported file into float RGB (+ alpha), write it back.

Reading never lets a PIL/OS exception escape: every failure becomes an :class:`ImageError`
whose message is one line naming the file and the reason. Writing is atomic and keeps what
the input carried (alpha, 16-bit depth, grey mode, ICC profile, EXIF) where the target
format allows it. The path helpers make sure a batch run can never overwrite an input.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import io
import os
import re
import struct
import threading
import warnings
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from unires.utils import atomic_path

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageError",
    "LoadedImage",
    "collect_inputs",
    "default_output_suffix",
    "ensure_not_input",
    "from_tensor",
    "plan_output",
    "read_image",
    "to_tensor",
    "write_image",
]

# Suffixes a folder or glob expansion picks up.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif"})

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
}
_SIXTEEN_BIT_FORMATS = frozenset({"PNG", "TIFF"})
# JPEG has no alpha channel; BMP alpha is written but dropped by most readers (PIL included).
_NO_ALPHA_FORMATS = frozenset({"JPEG", "BMP"})

_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "F", "I;16", "I;16B", "I;16L", "I;16N"})
_GREY16_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})

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
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as PIL's RGB->L


class ImageError(ValueError):
    """An image that cannot be read or written; ``str()`` is one line ``"<path>: <reason>"``."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        # Both parts go to args so the exception pickles across worker processes.
        super().__init__(str(path), reason)
        self.path = Path(path)
        self.reason = reason

    def __str__(self) -> str:
        return _one_line(f"{self.args[0]}: {self.args[1]}")


@dataclass(eq=False)
class LoadedImage:
    """A decoded image: upright float RGB in [0, 1], plus what is needed to write it back."""

    path: Path
    rgb: np.ndarray = field(repr=False)  # HxWx3 float32 in [0, 1]
    alpha: np.ndarray | None = field(repr=False)  # HxW float32 in [0, 1], or None
    bit_depth: int  # 8 or 16: the precision of the source samples
    mode: str  # PIL mode of the file as opened (16-bit RGB PNGs still report "RGB")
    format: str  # PIL format name, e.g. "PNG", "JPEG"
    icc_profile: bytes | None = field(default=None, repr=False)
    exif: bytes | None = field(default=None, repr=False)  # orientation already reset to 1

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def is_grey(self) -> bool:
        """True for single-channel inputs, which are written back as grey."""
        return self.mode in _GREY_MODES


# --------------------------------------------------------------------------------------
# Reading


def read_image(
    path: str | os.PathLike,
    *,
    allow_huge: bool = False,
    max_pixels: int = 100_000_000,
    min_side: int = 16,
) -> LoadedImage:
    """Decode the first frame of ``path`` into a :class:`LoadedImage`.

    The size limits are checked from the header, before any pixel is decoded.
    Raises :class:`ImageError` (and nothing else) for any unreadable input.
    """
    path = Path(path)
    _check_file(path)
    with _pil_pixel_limit_disabled():
        try:
            im = Image.open(path, formats=_READ_FORMATS)
        except UnidentifiedImageError:
            raise ImageError(path, _identify_failure(path)) from None
        except OSError as exc:
            if exc.errno is not None:  # a real I/O error, not a parse error PIL raised
                raise ImageError(path, f"cannot read file ({_os_reason(exc)})") from exc
            raise ImageError(path, _damaged_header(path, exc)) from exc
        except Exception as exc:  # a plugin choking on a malformed header
            raise ImageError(path, _damaged_header(path, exc)) from exc
        with im:
            _check_size(
                path, im.size, allow_huge=allow_huge, max_pixels=max_pixels, min_side=min_side
            )
            return _decode(path, im)


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
    return f"truncated or corrupt {_sniff_format(path) or 'image'} header ({_one_line(exc)})"


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


def _decode(path: Path, im: Image.Image) -> LoadedImage:
    fmt = im.format or "image"
    mode = im.mode
    stored_16bit = _stored_at_16_bits(im)  # before load(), which clears the tile list
    try:
        # Decoding everything with PIL first also validates the stream for the OpenCV path,
        # which would otherwise return a partially decoded image for a truncated file.
        im.load()
        orientation, exif = _upright_exif(im)
        icc = im.info.get("icc_profile") or None
        if mode == "CMYK":
            im = _cmyk_to_rgb(im, icc)
            icc = None  # pixels are sRGB now: the CMYK profile no longer describes them
        samples, bit_depth = _samples(path, im, stored_16bit)
    except ImageError:
        raise
    except MemoryError:
        raise ImageError(path, f"not enough memory to decode {im.width}x{im.height} px") from None
    except Exception as exc:  # PIL reports damage as OSError, SyntaxError, ValueError, ...
        raise ImageError(path, f"truncated or corrupt {fmt} data ({_one_line(exc)})") from exc

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


def _samples(path: Path, im: Image.Image, stored_16bit: bool) -> tuple[np.ndarray, int]:
    """Return (HxW or HxWxC float32 in [0, 1] with alpha last, bit depth) of an opened image."""
    mode = im.mode
    if mode in _GREY16_MODES:
        return np.asarray(im).astype(np.float32) / 65535.0, 16
    if mode == "I":  # 32-bit integer grey; PNG/TIFF use it for 16-bit samples
        return np.clip(np.asarray(im, dtype=np.float64) / 65535.0, 0, 1).astype(np.float32), 16
    if mode == "F":
        return _float_grey(np.asarray(im, dtype=np.float32)), 16
    if mode in ("RGB", "RGBA", "LA") and stored_16bit:
        sixteen = _read_16bit_with_cv2(path, im)
        if sixteen is not None:
            return sixteen, 16
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
    """True if the file holds 16-bit samples (PIL decodes 16-bit colour ones to 8 bits)."""
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


def _read_16bit_with_cv2(path: Path, im: Image.Image) -> np.ndarray | None:
    cv2 = _cv2()
    if cv2 is None:
        warnings.warn(
            f"{path}: 16-bit {im.format} read at 8 bits because OpenCV is not installed "
            "(pip install opencv-python-headless)",
            stacklevel=5,
        )
        return None
    # imdecode on the bytes (not imread on the name) works with any file name and reads the
    # first page of a multi-page TIFF; orientation is applied later from PIL's EXIF.
    data = np.fromfile(path, dtype=np.uint8)
    arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if arr is None or arr.shape[:2] != (im.height, im.width):
        raise ImageError(path, f"OpenCV could not decode this 16-bit {im.format} file")
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = arr[..., ::-1]  # BGR -> RGB
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[..., [2, 1, 0, 3]]  # BGRA -> RGBA
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    return np.clip(np.nan_to_num(arr.astype(np.float32)), 0, 1)


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


@functools.cache
def _cv2() -> Any:
    """OpenCV if installed (optional: only 16-bit colour PNG/TIFF need it), else None."""
    try:
        import cv2
    except ImportError:
        return None
    return cv2


# --------------------------------------------------------------------------------------
# Writing


def default_output_suffix(img: LoadedImage) -> str:
    """The input's suffix, unless that format cannot hold the alpha or 16-bit samples."""
    suffix = img.path.suffix
    fmt = _WRITE_FORMATS.get(suffix.lower())
    if fmt is None:  # e.g. .gif: read-only here
        return ".png"
    if img.alpha is not None and fmt in _NO_ALPHA_FORMATS:
        return ".png"
    if img.bit_depth == 16 and fmt not in _SIXTEEN_BIT_FORMATS:
        return ".png"
    return suffix


def write_image(
    path: str | os.PathLike,
    rgb: np.ndarray,
    *,
    like: LoadedImage | None = None,
    alpha: np.ndarray | None = None,
    quality: int = 95,
) -> Path:
    """Atomically write ``rgb`` (HxWx3 float in [0, 1]) to ``path``; the suffix picks the format.

    With ``like`` (the source image) the output keeps its grey mode, 16-bit depth (PNG/TIFF),
    alpha (resized when the output size differs), ICC profile and EXIF. ``alpha`` overrides
    ``like.alpha``. Returns the written path.
    """
    path = Path(path)
    fmt = _WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        wanted = path.suffix or "(no suffix)"
        raise ImageError(
            path, f"unsupported output format {wanted} (use .png, .jpg, .webp, .tif or .bmp)"
        )
    colour = _as_unit_array(path, rgb, "rgb")
    if colour.ndim != 3 or colour.shape[2] != 3:
        raise ImageError(path, f"expected an HxWx3 RGB array, got shape {colour.shape}")
    height, width = colour.shape[:2]
    if alpha is None and like is not None:
        alpha = like.alpha
    if alpha is not None:
        if fmt in _NO_ALPHA_FORMATS:
            raise ImageError(
                path, f"{fmt} cannot keep the alpha channel; write .png (or .webp/.tif) instead"
            )
        alpha = _fit_alpha(path, _as_unit_array(path, alpha, "alpha"), height, width)

    grey = like is not None and like.is_grey
    channels = [colour @ (_LUMA / _LUMA.sum())] if grey else [colour[..., i] for i in range(3)]
    if alpha is not None:
        channels.append(alpha)
    samples = np.stack(channels, axis=2) if len(channels) > 1 else channels[0]

    sixteen = like is not None and like.bit_depth == 16 and fmt in _SIXTEEN_BIT_FORMATS
    icc = like.icc_profile if like is not None else None
    exif = like.exif if like is not None else None
    if sixteen and samples.ndim == 3 and _cv2() is None:
        warnings.warn(
            f"{path}: written at 8 bits because OpenCV is not installed "
            "(pip install opencv-python-headless)",
            stacklevel=2,
        )
        sixteen = False
    try:
        with atomic_path(path) as tmp:
            if sixteen and samples.ndim == 3:
                tmp.write_bytes(_encode_16bit_colour(fmt, samples, icc, exif))
            else:
                _save_with_pil(tmp, fmt, samples, sixteen, icc, exif, quality)
            _chmod_like_new_file(tmp)
    except OSError as exc:
        raise ImageError(path, f"cannot write file ({_os_reason(exc)})") from exc
    return path


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


def _save_with_pil(
    tmp: Path,
    fmt: str,
    samples: np.ndarray,
    sixteen: bool,
    icc: bytes | None,
    exif: bytes | None,
    quality: int,
) -> None:
    # Only 2-D (grey) samples get here at 16 bits: PIL has no 16-bit colour modes.
    im = Image.fromarray(_quantize(samples, 16 if sixteen else 8))
    options: dict[str, Any] = {}
    if fmt != "BMP":  # BMP has no place for either
        if icc:
            options["icc_profile"] = icc
        if exif:
            options["exif"] = exif
    if fmt == "JPEG":
        # 4:4:4 chroma: subsampling would blur away restored colour detail.
        options.update(quality=quality, subsampling=0)
    elif fmt == "WEBP":
        options.update(quality=quality)
    elif fmt == "TIFF":
        from PIL import features

        if features.check("libtiff"):
            options.update(compression="tiff_lzw")
    im.save(tmp, format=fmt, **options)


def _encode_16bit_colour(
    fmt: str, samples: np.ndarray, icc: bytes | None, exif: bytes | None
) -> bytes:
    cv2 = _cv2()
    arr = _quantize(samples, 16)
    if arr.shape[2] == 2:  # grey + alpha: OpenCV writes 1, 3 or 4 channels only
        arr = arr[..., [0, 0, 0, 1]]
    arr = np.ascontiguousarray(arr[..., [2, 1, 0, 3]] if arr.shape[2] == 4 else arr[..., ::-1])
    ext = ".png" if fmt == "PNG" else ".tif"
    params = [cv2.IMWRITE_PNG_COMPRESSION, 6] if fmt == "PNG" else []
    ok, buf = cv2.imencode(ext, arr, params)
    if not ok:
        raise OSError(f"OpenCV could not encode a 16-bit {fmt}")
    data = buf.tobytes()
    if fmt == "PNG":
        data = _png_with_metadata(data, icc, exif)
    return data


def _png_with_metadata(png: bytes, icc: bytes | None, exif: bytes | None) -> bytes:
    """Insert iCCP/eXIf chunks after IHDR (OpenCV cannot write them)."""
    chunks = []
    if icc:
        chunks.append(_png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc)))
    if exif:
        chunks.append(_png_chunk(b"eXIf", exif.removeprefix(b"Exif\x00\x00")))
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


def collect_inputs(specs: list[str], *, recursive: bool = False) -> tuple[list[Path], list[str]]:
    """Expand files, folders and glob patterns into image files.

    Files named explicitly are kept whatever their suffix (reading them reports problems);
    folders and globs contribute files with an image suffix, sorted, skipping hidden files
    (such as the temp files of an interrupted atomic write). ``recursive`` descends into
    sub-folders; ``**`` in a pattern always matches across folders. Returns ``(files,
    problems)`` with duplicates (same file by any path) removed, keeping first-seen order;
    each problem is a one-line message for a spec that matched nothing.
    """
    files: list[Path] = []
    seen: set[str] = set()
    problems: list[str] = []

    def add(p: Path) -> None:
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            files.append(p)

    for spec in specs:
        path = Path(spec)
        if path.is_file():
            add(path)
        elif path.is_dir():
            found = _images_in_folder(path, recursive=recursive)
            if not found:
                problems.append(_one_line(f"{spec}: folder contains no image files"))
            for p in found:
                add(p)
        elif glob.has_magic(spec):
            found = []
            for match in sorted(glob.glob(spec, recursive=True)):
                p = Path(match)
                if p.is_dir():
                    found.extend(_images_in_folder(p, recursive=recursive))
                elif p.is_file() and _is_image_name(p):
                    found.append(p)
            if not found:
                problems.append(_one_line(f"{spec}: pattern matches no image files"))
            for p in found:
                add(p)
        else:
            problems.append(_one_line(f"{spec}: no such file or folder"))
    return files, problems


def _is_image_name(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")


def _images_in_folder(folder: Path, *, recursive: bool) -> list[Path]:
    if not recursive:
        return sorted(p for p in folder.iterdir() if _is_image_name(p) and p.is_file())
    found = []
    # os.walk does not follow symlinked folders, so a link loop cannot hang the scan.
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(root, n) for n in names if _is_image_name(Path(n)))
    return sorted(p for p in found if p.is_file())


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
    input_path, out_dir = Path(input_path), Path(out_dir)
    suffix = suffix if suffix.startswith(".") else f".{suffix}"
    protected = [input_path, *map(Path, inputs)]
    stem = input_path.stem
    candidate = out_dir / f"{stem}{suffix}"
    if _same_file(out_dir, input_path.parent) or _matches_any(candidate, protected):
        candidate = out_dir / f"{stem}_unires{suffix}"
        n = 2
        while _matches_any(candidate, protected):
            candidate = out_dir / f"{stem}_unires{n}{suffix}"
            n += 1
    return candidate


def ensure_not_input(out_path: str | os.PathLike, inputs: Iterable[str | os.PathLike]) -> None:
    """Raise :class:`ImageError` if writing ``out_path`` would overwrite one of ``inputs``."""
    out_path = Path(out_path)
    for inp in inputs:
        if _matches_any(out_path, [Path(inp)]):
            raise ImageError(out_path, f"refusing to overwrite input file {inp}")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def _matches_any(candidate: Path, paths: list[Path]) -> bool:
    """True if ``candidate`` names one of ``paths``: the same spelling, or the same existing file
    reached another way (symlinked folder, hard link, case-insensitive file system)."""
    name = os.path.abspath(candidate)
    if any(name == os.path.abspath(p) for p in paths):
        return True
    try:
        st = os.stat(candidate)
    except OSError:  # nothing there yet, so it cannot be an existing input
        return False
    for p in paths:
        try:
            other = os.stat(p)
        except OSError:
            continue
        if (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
            return True
    return False


# --------------------------------------------------------------------------------------
# Tensors


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """HxWx3 float array -> 1x3xHxW float32 tensor (a copy: the array can be reused)."""
    arr = np.asarray(rgb, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 array, got shape {arr.shape}")
    return torch.from_numpy(np.array(arr.transpose(2, 0, 1), order="C")).unsqueeze(0)


def from_tensor(t: torch.Tensor) -> np.ndarray:
    """1x3xHxW (or 3xHxW) tensor -> HxWx3 float32 array clipped to [0, 1]."""
    t = t.detach()
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 3 or t.shape[0] != 3:
        raise ValueError(f"expected a 1x3xHxW or 3xHxW tensor, got shape {tuple(t.shape)}")
    arr = t.to(device="cpu", dtype=torch.float32).permute(1, 2, 0).numpy()
    return np.clip(np.nan_to_num(arr), 0.0, 1.0).astype(np.float32, copy=False)


# --------------------------------------------------------------------------------------
# Messages


def _one_line(value: object) -> str:
    return " ".join(str(value).split()) or type(value).__name__


def _os_reason(exc: OSError) -> str:
    return exc.strerror or _one_line(exc)
