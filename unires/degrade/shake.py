"""Camera-shake blur kernels from random trajectories (Boracchi & Foi, "Modeling the
Performance of Image Restoration from Motion Blur", IEEE TIP 2012).

A 2-D random walk with inertia: a constant-speed velocity nudged by Gaussian jitter, pulled
back to the start (centripetal term) and sometimes reversed (abrupt shakes), all scaled by
the photographer's "anxiety". The camera integrates light along the first ``exposure``
fraction of the path; the kernel is that path splatted bilinearly onto a pixel grid, scaled
so it reaches ``intensity`` of the kernel's half-size and centred on its centroid (so the
blurred image is not shifted against the sharp one).
"""

from __future__ import annotations

import cmath
import math
from dataclasses import dataclass

import torch

from . import rng
from .kernels import filter2d

TRAJECTORY_STEPS = 1000


def shake_trajectory(
    gen: torch.Generator,
    anxiety: float,
    centripetal: float,
    big_shake_prob: float,
    gaussian_shake: float,
    steps: int = TRAJECTORY_STEPS,
) -> torch.Tensor:
    """Complex positions (steps,) of the camera's optical axis, in units of path length."""
    step_len = 60.0 / (steps - 1)  # Boracchi & Foi's total length 60 over the path
    draws = torch.rand((steps, 4), generator=gen, dtype=torch.float64)
    normals = torch.randn((steps, 2), generator=gen, dtype=torch.float64).tolist()
    uniforms = draws.tolist()
    angle = 2 * math.pi * uniforms[0][0]
    v = cmath.exp(1j * angle) * step_len
    x = 0j
    path = [x]
    for t in range(steps - 1):
        u_shake, u_dir = uniforms[t][1], uniforms[t][2]
        jump = 0j
        if u_shake < big_shake_prob * anxiety:  # an abrupt shake: turn roughly around
            jump = 2 * v * cmath.exp(1j * (math.pi + (u_dir - 0.5)))
        jitter = gaussian_shake * complex(normals[t][0], normals[t][1])
        v = v + jump + anxiety * (jitter - centripetal * x) * step_len
        v = v / max(abs(v), 1e-12) * step_len  # constant speed: only the direction changes
        x = x + v
        path.append(x)
    return torch.tensor(path, dtype=torch.complex128)


def trajectory_to_kernel(path: torch.Tensor, size: int, intensity: float) -> torch.Tensor:
    """Splat a path onto a (size, size) grid, centred on its centroid, reaching
    ``intensity`` * (size - 3) / 2 pixels from the centre along the longer axis."""
    pts = torch.stack([path.real, path.imag], 1)
    pts = pts - pts.mean(0)
    reach = pts.abs().max().clamp_min(1e-9)
    radius = max(0.0, min(1.0, intensity)) * (size - 3) / 2
    pts = pts * (radius / reach) + (size - 1) / 2
    x0, y0 = pts[:, 0].floor(), pts[:, 1].floor()
    fx, fy = pts[:, 0] - x0, pts[:, 1] - y0
    x0, y0 = x0.long(), y0.long()
    kernel = torch.zeros(size, size, dtype=torch.float64)
    for dx, dy, wgt in (
        (0, 0, (1 - fx) * (1 - fy)),
        (1, 0, fx * (1 - fy)),
        (0, 1, (1 - fx) * fy),
        (1, 1, fx * fy),
    ):
        kernel.index_put_((y0 + dy, x0 + dx), wgt, accumulate=True)
    return (kernel / kernel.sum()).float()


@dataclass
class ShakeConfig:
    """Ranges of the camera-shake kernel draw."""

    size_range: tuple[int, int] = (9, 41)  # kernel side in pixels (odd)
    intensity_range: tuple[float, float] = (0.2, 1.0)  # reach, as a fraction of the half-size
    anxiety_range: tuple[float, float] = (0.0, 0.1)  # Boracchi & Foi: 0.1 * U(0, 1)
    exposure_range: tuple[float, float] = (0.25, 1.0)  # fraction of the path integrated


def random_shake_kernel(
    gen: torch.Generator,
    cfg: ShakeConfig | None = None,
    size: int | None = None,
    extent: float | None = None,
) -> tuple[torch.Tensor, dict]:
    """A trajectory kernel of a random size and intensity from ``cfg``, or, given ``extent``
    (pixels), one whose path spans about ``extent`` pixels along its longer axis."""
    cfg = cfg or ShakeConfig()
    if extent is not None:
        size, intensity = (math.ceil(extent) + 3) | 1, 1.0
    else:
        size = size or rng.odd_size(gen, *cfg.size_range)
        intensity = rng.uniform(gen, *cfg.intensity_range)
    p = {
        "kernel": "shake",
        "size": size,
        "intensity": intensity,
        "anxiety": rng.uniform(gen, *cfg.anxiety_range),
        "exposure": rng.uniform(gen, *cfg.exposure_range),
        "centripetal": rng.uniform(gen, 0.0, 0.7),
        "big_shake_prob": rng.uniform(gen, 0.0, 0.2),
        "gaussian_shake": rng.uniform(gen, 0.0, 10.0),
    }
    path = shake_trajectory(
        gen, p["anxiety"], p["centripetal"], p["big_shake_prob"], p["gaussian_shake"]
    )
    path = path[: max(2, round(p["exposure"] * len(path)))]
    return trajectory_to_kernel(path, size, p["intensity"]), p


def random_shake_blur(
    img: torch.Tensor, gen: torch.Generator, cfg: ShakeConfig | None = None
) -> tuple[torch.Tensor, list[dict]]:
    """Global camera shake: one trajectory kernel per sample."""
    outs, params = [], []
    for i in range(img.shape[0]):
        k, p = random_shake_kernel(gen, cfg)
        outs.append(filter2d(img[i : i + 1], k))
        params.append(p)
    return torch.cat(outs).clamp(0, 1), params
