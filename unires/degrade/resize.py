"""Resizing with the interpolation modes the degradation models draw from."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import rng

RESIZE_MODES = ("area", "bilinear", "bicubic")


def resize(
    img: torch.Tensor, size: tuple[int, int], mode: str = "bicubic", antialias: bool = False
) -> torch.Tensor:
    """Resize (B, C, H, W) to ``size`` = (h, w). ``antialias`` low-passes when shrinking,
    like MATLAB's imresize; Real-ESRGAN shrinks without it (aliasing is a degradation too)."""
    size = (max(1, int(size[0])), max(1, int(size[1])))
    if tuple(img.shape[-2:]) == size:
        return img
    if mode == "area":
        return F.interpolate(img, size=size, mode="area")
    use_aa = antialias and (size[0] < img.shape[-2] or size[1] < img.shape[-1])
    return F.interpolate(img, size=size, mode=mode, align_corners=False, antialias=use_aa)


def bicubic_resize(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Antialiased bicubic resize, clipped to [0, 1] (bicubic overshoots)."""
    return resize(img, size, "bicubic", antialias=True).clamp(0, 1)


def random_resize_mode(gen: torch.Generator) -> str:
    """One of ``RESIZE_MODES``, uniformly."""
    return rng.choice(gen, RESIZE_MODES)
