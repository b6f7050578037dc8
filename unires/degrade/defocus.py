"""Defocus blur: the image of the lens aperture, a disk or a regular polygon (iris blades).

Kernels are anti-aliased by supersampling pixel coverage. The blur can vary across the image:
the image is blurred at a few radii and blended by a smooth depth-like map, which stands in
for a scene whose distance to the focal plane changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import rng
from .kernels import filter2d, identity_kernel

SUPERSAMPLE = 8


def _subpixel_grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sub-pixel sample centres, (size*S, size*S), in pixel units about the kernel centre."""
    n = size * SUPERSAMPLE
    r = (torch.arange(n, dtype=torch.float64) + 0.5) / SUPERSAMPLE - size / 2
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    return xx, yy


def _coverage_to_kernel(inside: torch.Tensor, size: int) -> torch.Tensor:
    cover = inside.double().view(size, SUPERSAMPLE, size, SUPERSAMPLE).mean((1, 3))
    if cover.sum() <= 0:
        return identity_kernel(size)
    return (cover / cover.sum()).float()


def kernel_size_for(radius: float) -> int:
    """Odd kernel side that holds a disc of ``radius`` pixels."""
    return 2 * math.ceil(radius + 0.5) + 1


def disk_kernel(radius: float, size: int | None = None) -> torch.Tensor:
    """Uniform disk of ``radius`` pixels, pixel values = covered area fraction."""
    size = size or kernel_size_for(radius)
    if radius < 0.5:
        return identity_kernel(size)
    xx, yy = _subpixel_grid(size)
    return _coverage_to_kernel(xx**2 + yy**2 <= radius**2, size)


def polygon_kernel(
    radius: float, blades: int, rotation: float = 0.0, size: int | None = None
) -> torch.Tensor:
    """Regular ``blades``-gon inscribed in a circle of ``radius`` (an iris diaphragm)."""
    size = size or kernel_size_for(radius)
    if radius < 0.5:
        return identity_kernel(size)
    xx, yy = _subpixel_grid(size)
    apothem = radius * math.cos(math.pi / blades)
    inside = torch.ones_like(xx, dtype=torch.bool)
    for i in range(blades):  # a point is inside if it is behind every edge
        a = rotation + (2 * i + 1) * math.pi / blades
        inside &= xx * math.cos(a) + yy * math.sin(a) <= apothem
    return _coverage_to_kernel(inside, size)


def aperture_kernel(radius: float, blades: int, rotation: float, size: int | None = None):
    """Disk if ``blades`` is 0, else a polygon."""
    if blades == 0:
        return disk_kernel(radius, size)
    return polygon_kernel(radius, blades, rotation, size)


def random_depth_map(gen: torch.Generator, h: int, w: int) -> tuple[torch.Tensor, dict]:
    """A smooth map in [0, 1]: a tilted plane (ground receding) or a radial falloff."""
    yy, xx = torch.meshgrid(
        torch.linspace(-1, 1, h, dtype=torch.float64),
        torch.linspace(-1, 1, w, dtype=torch.float64),
        indexing="ij",
    )
    if rng.bernoulli(gen, 0.5):
        angle = rng.uniform(gen, -math.pi, math.pi)
        d = xx * math.cos(angle) + yy * math.sin(angle)
        info = {"map": "plane", "angle": angle}
    else:
        cx, cy = rng.uniform(gen, -0.5, 0.5), rng.uniform(gen, -0.5, 0.5)
        d = torch.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
        info = {"map": "radial", "centre": [cx, cy]}
    d = (d - d.min()) / (d.max() - d.min()).clamp_min(1e-9)
    return d.float(), info


def varying_defocus(
    img: torch.Tensor, depth: torch.Tensor, radii: list[float], blades: int, rotation: float
) -> torch.Tensor:
    """Blur one image (1, 3, H, W) at each radius and blend linearly along ``depth`` in [0, 1]."""
    levels = torch.stack([filter2d(img, aperture_kernel(r, blades, rotation))[0] for r in radii])
    pos = depth.to(img.device) * (len(radii) - 1)
    lo = pos.floor().long().clamp(max=len(radii) - 2)
    frac = (pos - lo).unsqueeze(0)
    below = torch.gather(levels, 0, lo.expand(1, 3, -1, -1).clone())[0]
    above = torch.gather(levels, 0, (lo + 1).expand(1, 3, -1, -1).clone())[0]
    return ((1 - frac) * below + frac * above).unsqueeze(0)


@dataclass
class DefocusConfig:
    radius_range: tuple[float, float] = (1.0, 8.0)  # pixels, at the HQ resolution
    polygon_prob: float = 0.5
    blades_range: tuple[int, int] = (5, 9)
    varying_prob: float = 0.3
    varying_levels: int = 4


def random_defocus(
    img: torch.Tensor, gen: torch.Generator, cfg: DefocusConfig | None = None
) -> tuple[torch.Tensor, list[dict]]:
    """Defocus blur of each image of (B, 3, H, W) in [0, 1] with a random disc or polygon
    aperture (sometimes varying across the image); returns the blurred batch and one parameter
    record per image.
    """
    cfg = cfg or DefocusConfig()
    outs, params = [], []
    for i in range(img.shape[0]):
        x = img[i : i + 1]
        radius = rng.uniform(gen, *cfg.radius_range)
        blades = rng.randint(gen, *cfg.blades_range) if rng.bernoulli(gen, cfg.polygon_prob) else 0
        rotation = rng.uniform(gen, 0.0, 2 * math.pi / max(blades, 1)) if blades else 0.0
        p = {"blur": "defocus", "radius": radius, "blades": blades, "rotation": rotation}
        if rng.bernoulli(gen, cfg.varying_prob):
            # Part of the image stays near focus, the far end reaches ``radius``.
            near = rng.uniform(gen, 0.0, radius / 2)
            n = cfg.varying_levels
            radii = [near + (radius - near) * j / (n - 1) for j in range(n)]
            depth, p["varying"] = random_depth_map(gen, *x.shape[-2:])
            p["varying"]["radii"] = radii
            outs.append(varying_defocus(x, depth, radii, blades, rotation))
        else:
            outs.append(filter2d(x, aperture_kernel(radius, blades, rotation)))
        params.append(p)
    return torch.cat(outs).clamp(0, 1), params


def gaussian_lens_blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur (a lens's residual aberrations); sigma in pixels."""
    if sigma < 0.05:
        return img
    r = max(1, math.ceil(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=torch.float32, device=img.device)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    c = img.shape[1]
    mode = "reflect" if r < min(img.shape[-2:]) else "replicate"
    x = F.pad(img, (r, r, r, r), mode=mode)
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
