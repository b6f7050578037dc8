"""Procedural photo-like images: for tests and benchmarks that must not need real data.

Smooth colour gradients, filled shapes with hard edges and fine texture: the three things
degradations act on differently (noise shows on flat areas, blur on edges and texture).
"""

from __future__ import annotations

import math

import torch

from ..degrade.rng import as_generator


def procedural_photo(seed: int | torch.Generator, height: int, width: int) -> torch.Tensor:
    """(3, height, width) float32 in [0, 1]."""
    gen = as_generator(seed)
    yy, xx = torch.meshgrid(
        torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij"
    )
    coef = torch.rand(3, 3, generator=gen)
    img = coef[:, :1, None] * 0.5 + 0.25 * (coef[:, 1:2, None] * xx + coef[:, 2:3, None] * yy)
    for _ in range(6):  # discs and rectangles with flat colours
        colour = torch.rand(3, 1, 1, generator=gen)
        cy, cx, r = torch.rand(3, generator=gen).tolist()
        r = 0.08 + 0.25 * r
        if torch.rand((), generator=gen) < 0.5:
            inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        else:
            inside = ((yy - cy).abs() <= r) & ((xx - cx).abs() <= r * 0.7)
        img = torch.where(inside, colour, img)
    freq = 20 + 40 * float(torch.rand((), generator=gen))
    texture = 0.08 * torch.sin(2 * math.pi * freq * (xx + 0.3 * yy)) * (xx > 0.5)
    grain = 0.04 * torch.rand(1, height, width, generator=gen)
    return (img + texture + grain).clamp(0, 1).float()
