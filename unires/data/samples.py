"""Sample photos that ship with scikit-image (the ``demo`` extra): inputs for the README's
examples and for benchmarks run without a photo folder of one's own.

astronaut (NASA, public domain), coffee (Rachel Michetti, CC0), chelsea (Stefan van der
Walt, CC0) and rocket (SpaceX, public domain), as scikit-image's docstrings state;
centre crops, written as PNG.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..extras import require
from .crops import centre_crop

SAMPLE_NAMES = ("astronaut", "coffee", "chelsea", "rocket")
SAMPLE_SIDE = 256


def sample_photos(side: int = SAMPLE_SIDE) -> dict[str, np.ndarray]:
    """name -> H x W x 3 uint8 centre crop (at most ``side`` a side) of each sample photo."""
    require("demo", "the sample photos")
    from skimage import data

    return {name: centre_crop(getattr(data, name)(), side, axes=(0, 1)) for name in SAMPLE_NAMES}


def write_sample_photos(folder: str | Path, side: int = SAMPLE_SIDE) -> list[Path]:
    """Write the sample photos as ``folder/<name>.png``; returns their paths."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, rgb in sample_photos(side).items():
        path = folder / f"{name}.png"
        Image.fromarray(np.ascontiguousarray(rgb)).save(path)
        paths.append(path)
    return paths
