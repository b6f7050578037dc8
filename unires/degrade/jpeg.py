"""JPEG compression through a real codec (Pillow's libjpeg), one image at a time.

Encoding needs 8-bit pixels, so the image is quantised first, exactly as a camera or a web
upload would. libjpeg is deterministic, so the same input and quality give the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from . import rng


def to_uint8_hwc(img: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (H, W, 3) uint8."""
    return (img.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def from_uint8_hwc(arr: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """H x W x 3 uint8 -> (3, H, W) float32 in [0, 1] on ``device``."""
    return torch.from_numpy(np.array(arr, copy=True)).permute(2, 0, 1).float().div(255).to(device)


def jpeg_bytes(img: torch.Tensor, quality: int) -> bytes:
    """(3, H, W) in [0, 1] as JPEG bytes at ``quality`` (1-100)."""
    buf = io.BytesIO()
    Image.fromarray(to_uint8_hwc(img)).save(buf, format="JPEG", quality=int(quality))
    return buf.getvalue()


def jpeg_compress(img: torch.Tensor, quality: int | Sequence[int]) -> torch.Tensor:
    """Encode and decode each image of (B, 3, H, W) at its quality (1-100)."""
    qualities = [quality] * img.shape[0] if isinstance(quality, int | float) else list(quality)
    out = []
    for x, q in zip(img, qualities, strict=True):
        with Image.open(io.BytesIO(jpeg_bytes(x, int(q)))) as im:
            out.append(from_uint8_hwc(np.asarray(im.convert("RGB")), img.device))
    return torch.stack(out).to(img.dtype)


def random_jpeg(
    img: torch.Tensor, gen: torch.Generator, quality_range: tuple[float, float] = (30, 95)
) -> tuple[torch.Tensor, list[dict]]:
    """JPEG at a quality drawn uniformly per sample (Real-ESRGAN: 30-95)."""
    qualities = [round(rng.uniform(gen, *quality_range)) for _ in range(img.shape[0])]
    return jpeg_compress(img, qualities), [{"jpeg_quality": q} for q in qualities]
