"""Crops of images for the data sets: centre, random (with flip) and padding to a size.

Finding and reading the image files is ``unires.io`` (``list_images``, ``load_rgb``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..degrade import rng


def centre_crop(image, side: int, axes: tuple[int, int] = (-2, -1)):
    """The centre ``side`` x ``side`` window of ``image`` (at most: a shorter axis is kept
    whole), as a view. ``axes``: the (height, width) axes -- (-2, -1) for (..., H, W)
    tensors, (0, 1) for H x W x C arrays. Works on numpy arrays and torch tensors alike."""
    h, w = image.shape[axes[0]], image.shape[axes[1]]
    ch, cw = min(h, side), min(w, side)
    y, x = (h - ch) // 2, (w - cw) // 2
    index = [slice(None)] * image.ndim
    index[axes[0]], index[axes[1]] = slice(y, y + ch), slice(x, x + cw)
    return image[tuple(index)]


def crop_box(gen: torch.Generator, h: int, w: int, size: int) -> tuple[int, int]:
    """Top-left corner of a random ``size`` crop (0 where the image is smaller)."""
    return rng.randint(gen, 0, max(0, h - size)), rng.randint(gen, 0, max(0, w - size))


def pad_to(img: torch.Tensor, size: int) -> torch.Tensor:
    """Reflect-pad (C, H, W) up to at least ``size`` on each side (small images still crop)."""
    h, w = img.shape[-2:]
    ph, pw = max(0, size - h), max(0, size - w)
    if ph == 0 and pw == 0:
        return img
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(img[None], (0, pw, 0, ph), mode=mode)[0]


def random_crop(
    images: list[torch.Tensor], size: int, gen: torch.Generator, flip: bool = True
) -> tuple[list[torch.Tensor], dict]:
    """The same random crop (and horizontal flip) of aligned images."""
    images = [pad_to(x, size) for x in images]
    h, w = images[0].shape[-2:]
    top, left = crop_box(gen, h, w, size)
    flipped = flip and rng.bernoulli(gen, 0.5)
    out = []
    for x in images:
        c = x[:, top : top + size, left : left + size]
        out.append((c.flip(-1) if flipped else c).contiguous())
    return out, {"crop": [top, left, size], "flip": flipped}
