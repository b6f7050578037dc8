"""Per-object motion blur, as in the paper's OID-Motion training set (App. B.2).

Objects move on their own while the camera shakes: each object region gets its own shake
kernel and is composited over a globally shaken background with the layered blur model
(the object's colour and its soft mask are smeared by the same kernel, so it streaks over the
background). Then lens (Gaussian) blur, shot and read-out noise, and JPEG. One ``severity``
draw scales every stage, so samples span almost clean to heavily degraded.

Object regions come from a segmentation that needs nothing downloaded: SLIC-like k-means
superpixels over (colour, position) on a thumbnail, or random elliptical shapes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from . import rng
from .defocus import gaussian_lens_blur
from .jpeg import jpeg_compress
from .kernels import filter2d
from .noise import linear_to_srgb, poisson_gaussian_noise, srgb_to_linear
from .shake import ShakeConfig, random_shake_kernel

THUMBNAIL = 48  # segmentation resolution (longer side): cheap, and regions are coarse anyway


def kmeans_regions(
    img: torch.Tensor, gen: torch.Generator, regions: int, iters: int = 8, xy_weight: float = 0.6
) -> torch.Tensor:
    """Label map (h, w) of a thumbnail of ``img`` (3, H, W): k-means over colour and position,
    so regions are compact and follow colour edges (SLIC without the local search window)."""
    h, w = img.shape[-2:]
    s = THUMBNAIL / max(h, w)
    th, tw = max(4, round(h * s)), max(4, round(w * s))
    small = F.interpolate(img[None].float(), size=(th, tw), mode="area")[0]
    axis_y = torch.linspace(0, 1, th, device=img.device)
    axis_x = torch.linspace(0, 1, tw, device=img.device)
    yy, xx = torch.meshgrid(axis_y, axis_x, indexing="ij")
    feats = torch.cat([small, xy_weight * yy[None], xy_weight * xx[None]]).flatten(1).T
    start = torch.randperm(len(feats), generator=gen)[:regions].to(img.device)
    centres = feats[start].clone()
    for _ in range(iters):
        labels = torch.cdist(feats, centres).argmin(1)
        sums = torch.zeros_like(centres).index_add_(0, labels, feats)
        counts = torch.bincount(labels, minlength=len(centres)).unsqueeze(1)
        # An emptied cluster keeps its centre rather than collapsing to the origin.
        centres = torch.where(counts > 0, sums / counts.clamp_min(1), centres)
    return torch.cdist(feats, centres).argmin(1).view(th, tw)


def random_ellipse_mask(gen: torch.Generator, h: int, w: int) -> tuple[torch.Tensor, dict]:
    """A random ellipse as an (h, w) 0/1 mask, and its parameters (centre, axes, angle)."""
    cy, cx = rng.uniform(gen, 0.2, 0.8), rng.uniform(gen, 0.2, 0.8)
    ay, ax = rng.uniform(gen, 0.1, 0.35), rng.uniform(gen, 0.1, 0.35)
    angle = rng.uniform(gen, 0, math.pi)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    c, s = math.cos(angle), math.sin(angle)
    u, v = c * (xx - cx) + s * (yy - cy), -s * (xx - cx) + c * (yy - cy)
    mask = ((u / ax) ** 2 + (v / ay) ** 2 <= 1).float()
    return mask, {"shape": "ellipse", "centre": [cy, cx], "axes": [ay, ax], "angle": angle}


def soften_mask(mask: torch.Tensor, feather: float) -> torch.Tensor:
    """Hard (H, W) mask -> soft (1, 1, H, W) mask with a Gaussian edge of ``feather`` pixels."""
    return gaussian_lens_blur(mask[None, None].float(), feather).clamp(0, 1)


def blur_per_object(
    img: torch.Tensor,
    masks: list[torch.Tensor],
    object_kernels: list[torch.Tensor],
    background_kernel: torch.Tensor,
) -> torch.Tensor:
    """Layered motion blur of one image (1, 3, H, W): background, then each object in turn,
    its colour and its soft mask (1, 1, H, W) blurred by its kernel, composited over."""
    out = filter2d(img, background_kernel)
    for mask, kernel in zip(masks, object_kernels, strict=True):
        layer = filter2d(torch.cat([img * mask, mask], 1), kernel)
        colour, alpha = layer[:, :3], layer[:, 3:].clamp(0, 1)
        out = colour + (1 - alpha) * out
    return out


@dataclass
class OIDMotionConfig:
    severity_range: tuple[float, float] = (0.0, 1.0)
    objects_range: tuple[int, int] = (1, 3)
    segment_prob: float = 0.7  # else random ellipses
    superpixels: int = 10
    feather_range: tuple[float, float] = (1.0, 4.0)
    background_shake_prob: float = 0.7
    # Blur extents in pixels at full severity: objects move more than the camera shakes.
    object_blur_px: tuple[float, float] = (8.0, 40.0)
    background_blur_px: tuple[float, float] = (0.0, 16.0)
    shake: ShakeConfig = field(default_factory=ShakeConfig)
    lens_sigma_max: float = 1.5
    shot_max: float = 0.01  # linear-light Poisson gain at full severity
    read_std_max: float = 0.02
    jpeg_prob: float = 0.8
    jpeg_quality_range: tuple[float, float] = (30.0, 95.0)


def _object_masks(
    x: torch.Tensor, gen: torch.Generator, cfg: OIDMotionConfig
) -> tuple[list[torch.Tensor], list[dict]]:
    h, w = x.shape[-2:]
    n = rng.randint(gen, *cfg.objects_range)
    hard, info = [], []
    if rng.bernoulli(gen, cfg.segment_prob):
        labels = kmeans_regions(x[0], gen, cfg.superpixels)
        picked = torch.randperm(cfg.superpixels, generator=gen)[:n].tolist()
        for label in picked:
            small = (labels == label).float()[None, None]
            hard.append(F.interpolate(small, size=(h, w), mode="nearest")[0, 0].cpu())
            info.append({"shape": "superpixel", "label": int(label)})
    else:
        for _ in range(n):
            m, i = random_ellipse_mask(gen, h, w)
            hard.append(m)
            info.append(i)
    masks = []
    for m, i in zip(hard, info, strict=True):
        i["feather"] = rng.uniform(gen, *cfg.feather_range)
        i["area"] = float(m.mean())
        masks.append(soften_mask(m, i["feather"]).to(x.device))
    return masks, info


def random_object_motion_blur(
    x: torch.Tensor, gen: torch.Generator, cfg: OIDMotionConfig, severity: float = 1.0
) -> tuple[torch.Tensor, dict, list[torch.Tensor]]:
    """The blur stage alone: objects with their own shake over a shaken background."""
    masks, objects = _object_masks(x, gen, cfg)
    kernels = []
    for obj in objects:
        extent = severity * rng.uniform(gen, *cfg.object_blur_px)
        k, obj["kernel"] = random_shake_kernel(gen, cfg.shake, extent=extent)
        kernels.append(k)
    if rng.bernoulli(gen, cfg.background_shake_prob):
        extent = severity * rng.uniform(gen, *cfg.background_blur_px)
        bg, bg_info = random_shake_kernel(gen, cfg.shake, extent=extent)
    else:
        bg, bg_info = torch.ones(1, 1), {"kernel": "none"}
    out = blur_per_object(x, masks, kernels, bg)
    return out, {"objects": objects, "background_kernel": bg_info}, masks


def oid_motion_with_masks(
    x: torch.Tensor, gen: torch.Generator, cfg: OIDMotionConfig | None = None
) -> tuple[torch.Tensor, dict, list[torch.Tensor]]:
    """One image (1, 3, H, W) -> (degraded, params, the objects' soft masks)."""
    cfg = cfg or OIDMotionConfig()
    sev = rng.uniform(gen, *cfg.severity_range)
    p: dict = {"recipe": "oid-motion", "severity": sev}
    out, p["blur"], masks = random_object_motion_blur(x, gen, cfg, sev)
    p["lens_sigma"] = sev * rng.uniform(gen, 0.0, cfg.lens_sigma_max)
    out = gaussian_lens_blur(out, p["lens_sigma"])
    # Sensor noise in linear light: photon shot noise and read-out noise.
    p["shot"] = max(1e-6, sev * rng.uniform(gen, 0.0, cfg.shot_max))
    p["read_std"] = sev * rng.uniform(gen, 0.0, cfg.read_std_max)
    lin = poisson_gaussian_noise(srgb_to_linear(out), gen, p["shot"], p["read_std"] ** 2)
    out = linear_to_srgb(lin.clamp(0, 1))
    if rng.bernoulli(gen, cfg.jpeg_prob):
        hi = cfg.jpeg_quality_range[1]
        p["jpeg_quality"] = round(hi - sev * rng.uniform(gen, 0.0, hi - cfg.jpeg_quality_range[0]))
        out = jpeg_compress(out, p["jpeg_quality"])
    return out.clamp(0, 1), p, masks


def random_oid_motion(
    img: torch.Tensor, gen: torch.Generator, cfg: OIDMotionConfig | None = None
) -> tuple[torch.Tensor, list[dict]]:
    """OID-Motion degradation of each sample of (B, 3, H, W)."""
    outs, params = [], []
    for i in range(img.shape[0]):
        out, p, _ = oid_motion_with_masks(img[i : i + 1], gen, cfg)
        outs.append(out)
        params.append(p)
    return torch.cat(outs), params
