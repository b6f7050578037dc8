"""Finding and reading image files, and cropping them, for the data sets."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..degrade import rng

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})
# Folders of low-resolution copies that HQ data sets ship beside the HQ images
# (DIV2K_train_LR_bicubic/X4, LSDIR's X4, ...): never training targets.
_LR_FOLDER = re.compile(r"(^|[_-])(LR|lr)([_-]|$)|^[Xx][2-8]$")


def is_image(path: Path) -> bool:
    return (
        path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
    )


def list_images(roots: Iterable[str | Path], skip_lr_folders: bool = True) -> list[Path]:
    """Images under ``roots`` (recursive), sorted, without low-resolution copies."""
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
            if is_image(p):
                files.append(p)
    return files


def load_rgb(path: str | Path) -> torch.Tensor:
    """(3, H, W) float32 in [0, 1]; grey, palette, alpha and 16-bit inputs become 8-bit RGB."""
    with Image.open(path) as im:
        im.load()
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(im, dtype=np.float32) / 65535.0
            return torch.from_numpy(np.repeat(arr[None], 3, 0).copy())
        arr = np.asarray(im.convert("RGB"))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255)


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
