"""Tiling for large images: overlapping tiles blended with smooth windows.

During sampling the mixed model output is computed per latent tile at every step and the
tiles are blended before the scheduler step, so neighbouring tiles agree on one latent and
no seam can form (MultiDiffusion-style). Encoding and decoding are tiled the same way.
On out-of-memory, ``with_oom_retry`` halves the tile and tries again.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")


def tile_starts(size: int, tile: int, overlap: int, align: int = 1) -> list[int]:
    """Start offsets of tiles of length ``tile`` covering [0, size) with >= ``overlap``
    overlap; the last tile ends exactly at ``size``. Starts are multiples of ``align``.

    Raises:
        ValueError: ``size`` is not a multiple of ``align``.
    """
    if tile >= size:
        return [0]
    stride = max(align, (tile - overlap) // align * align)
    starts = list(range(0, size - tile, stride))
    last = (size - tile) // align * align
    if not starts or starts[-1] != last:
        starts.append(last)
    if last + tile < size:
        raise ValueError(f"size {size} is not a multiple of the alignment {align}")
    return starts


def _ramp(n: int, length: int, rise: bool, fall: bool) -> torch.Tensor:
    """1-D window: cosine ramps of ``length`` at the ends that meet another tile."""
    w = torch.ones(n, dtype=torch.float64)
    if length <= 0:
        return w
    r = torch.arange(length, dtype=torch.float64)
    ramp = 0.5 - 0.5 * torch.cos(math.pi * (r + 0.5) / length)  # in (0, 1), never 0
    if rise:
        w[:length] = ramp
    if fall:
        w[n - length :] = ramp.flip(0)
    return w


def blend_window(h: int, w: int, overlap: int, edges: tuple[bool, bool, bool, bool]):
    """Separable blending window; ``edges`` = (top, bottom, left, right) neighbour flags."""
    top, bottom, left, right = edges
    oy = min(overlap, h // 2)
    ox = min(overlap, w // 2)
    wy = _ramp(h, oy, top, bottom)
    wx = _ramp(w, ox, left, right)
    return (wy[:, None] * wx[None, :]).float()


def tiled_apply(
    fn: Callable[[torch.Tensor, tuple[slice, slice]], torch.Tensor],
    x: torch.Tensor,
    tile: int,
    overlap: int,
    scale: float = 1.0,
    align: int = 1,
) -> torch.Tensor:
    """Apply ``fn(crop, (rows, cols))`` over overlapping tiles of ``x`` and blend.

    ``fn`` maps a (B, C, h, w) crop to (B, C', h*scale, w*scale): scale 1 for the
    denoiser, 1/8 for an f=8 encoder, 8 for its decoder. Tile, overlap and offsets are in
    input pixels; starts are multiples of ``align`` so scaled offsets stay integral.
    """
    h, w = x.shape[-2:]
    if tile >= h and tile >= w:
        return fn(x, (slice(0, h), slice(0, w)))
    ys = tile_starts(h, tile, overlap, align)
    xs = tile_starts(w, tile, overlap, align)
    out = weight = None
    for y in ys:
        for x0 in xs:
            rows, cols = slice(y, min(y + tile, h)), slice(x0, min(x0 + tile, w))
            res = fn(x[..., rows, cols], (rows, cols))
            if out is None:
                oh, ow = round(h * scale), round(w * scale)
                out = torch.zeros(*res.shape[:-2], oh, ow, dtype=res.dtype, device=res.device)
                weight = torch.zeros(oh, ow, dtype=res.dtype, device=res.device)
            th, tw = res.shape[-2:]
            oy, ox = round(y * scale), round(x0 * scale)
            edges = (y > 0, y + tile < h, x0 > 0, x0 + tile < w)
            win = blend_window(th, tw, round(overlap * scale), edges).to(res)
            out[..., oy : oy + th, ox : ox + tw] += res * win
            weight[oy : oy + th, ox : ox + tw] += win
    return out / weight


class TiledDenoiser:
    """Wraps a ``TaskMixture``: the mixed output is computed per tile, then blended."""

    def __init__(self, mixture, tile: int, overlap: int, align: int = 1):
        self.mixture = mixture
        self.tile = tile
        self.overlap = overlap
        self.align = align  # the UNet's downsampling: tiles must stay divisible by it

    def __call__(self, z_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        cond = self.mixture.cond

        def region(crop: torch.Tensor, where: tuple[slice, slice]) -> torch.Tensor:
            rows, cols = where
            return self.mixture.predict(crop, t, cond[..., rows, cols])

        return tiled_apply(region, z_t, self.tile, self.overlap, align=self.align)


def is_out_of_memory(err: BaseException) -> bool:
    """True for a CUDA / MPS out-of-memory error (which tiling smaller can avoid)."""
    if isinstance(err, torch.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


def with_oom_retry(run: Callable[[int], T], tile: int, min_tile: int, align: int = 8) -> T:
    """Call ``run(tile)``; on out-of-memory halve the tile and retry down to ``min_tile``."""
    while True:
        try:
            return run(tile)
        except (RuntimeError, torch.OutOfMemoryError) as err:
            if not is_out_of_memory(err) or tile // 2 < min_tile:
                raise
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            tile = max(min_tile, tile // 2 // align * align)


def latent_tile_for_budget(
    n_tasks: int, bytes_per_latent_pixel: float, budget_bytes: float, align: int = 8
) -> int:
    """Largest square latent tile whose batched UNet call fits ``budget_bytes``."""
    side = math.sqrt(budget_bytes / max(1.0, n_tasks * bytes_per_latent_pixel))
    return max(align * 2, int(side) // align * align)
