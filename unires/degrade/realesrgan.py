"""Real-ESRGAN's second-order degradation (Wang et al. 2021), with its published defaults.

blur -> random resize -> noise -> JPEG, twice, then the final resize to HQ/scale with a sinc
filter and a JPEG in random order. Defaults are those of xinntao/Real-ESRGAN
``options/train_realesrgan_x4plus.yml``. Resize choices are drawn per sample (Real-ESRGAN
draws them per batch; per sample gives more variety and lets samples be generated alone).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from . import rng
from .jpeg import random_jpeg
from .kernels import KernelConfig, filter2d, identity_kernel, random_blur_kernel, sinc_kernel
from .noise import NoiseStageConfig, random_realesrgan_noise
from .resize import random_resize_mode, resize


@dataclass
class ResizeStageConfig:
    resize_prob: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep
    resize_range: tuple[float, float] = (0.15, 1.5)


@dataclass
class RealESRGANConfig:
    scale: int = 4
    kernel1: KernelConfig = field(default_factory=KernelConfig)
    resize1: ResizeStageConfig = field(default_factory=ResizeStageConfig)
    noise1: NoiseStageConfig = field(default_factory=NoiseStageConfig)
    jpeg_range: tuple[float, float] = (30.0, 95.0)
    second_blur_prob: float = 0.8
    kernel2: KernelConfig = field(default_factory=lambda: KernelConfig(blur_sigma=(0.2, 1.5)))
    resize2: ResizeStageConfig = field(
        default_factory=lambda: ResizeStageConfig((0.3, 0.4, 0.3), (0.3, 1.2))
    )
    noise2: NoiseStageConfig = field(
        default_factory=lambda: NoiseStageConfig(0.5, (1.0, 25.0), (0.05, 2.5), 0.4)
    )
    jpeg_range2: tuple[float, float] = (30.0, 95.0)
    final_sinc_prob: float = 0.8
    final_kernel_size: int = 21


def _random_scale(gen: torch.Generator, cfg: ResizeStageConfig) -> tuple[str, float]:
    direction = rng.choice(gen, ("up", "down", "keep"), cfg.resize_prob)
    if direction == "up":
        return direction, rng.uniform(gen, 1.0, cfg.resize_range[1])
    if direction == "down":
        return direction, rng.uniform(gen, cfg.resize_range[0], 1.0)
    return direction, 1.0


def _final_sinc(gen: torch.Generator, cfg: RealESRGANConfig) -> tuple[torch.Tensor, dict]:
    if not rng.bernoulli(gen, cfg.final_sinc_prob):
        return identity_kernel(1), {"kernel": "none"}
    size = rng.odd_size(gen, 7, cfg.final_kernel_size)
    cutoff = rng.uniform(gen, math.pi / 3, math.pi)
    return sinc_kernel(size, cutoff), {"kernel": "sinc", "size": size, "cutoff": cutoff}


def _degrade_one(x: torch.Tensor, gen: torch.Generator, cfg: RealESRGANConfig) -> tuple:
    h, w = x.shape[-2:]
    p: dict = {"recipe": "realesrgan", "scale": cfg.scale}
    # First order.
    k1, p["blur1"] = random_blur_kernel(gen, cfg.kernel1)
    out = filter2d(x, k1)
    direction, s1 = _random_scale(gen, cfg.resize1)
    mode = random_resize_mode(gen)
    out = resize(out, (round(h * s1), round(w * s1)), mode)
    p["resize1"] = {"direction": direction, "scale": s1, "mode": mode}
    out, (p["noise1"],) = random_realesrgan_noise(out, gen, cfg.noise1)
    out, (p["jpeg1"],) = random_jpeg(out, gen, cfg.jpeg_range)
    # Second order.
    if rng.bernoulli(gen, cfg.second_blur_prob):
        k2, p["blur2"] = random_blur_kernel(gen, cfg.kernel2)
        out = filter2d(out, k2)
    else:
        p["blur2"] = {"kernel": "none"}
    direction, s2 = _random_scale(gen, cfg.resize2)
    mode = random_resize_mode(gen)
    out = resize(out, (int(h / cfg.scale * s2), int(w / cfg.scale * s2)), mode)
    p["resize2"] = {"direction": direction, "scale": s2, "mode": mode}
    out, (p["noise2"],) = random_realesrgan_noise(out, gen, cfg.noise2)
    # Final: resize back to HQ/scale with a sinc filter, and JPEG, in random order.
    sinc, p["final_sinc"] = _final_sinc(gen, cfg)
    mode = random_resize_mode(gen)
    jpeg_first = rng.bernoulli(gen, 0.5)
    p["final"] = {"order": "jpeg_then_resize" if jpeg_first else "resize_then_jpeg", "mode": mode}
    if jpeg_first:
        out, (p["jpeg2"],) = random_jpeg(out.clamp(0, 1), gen, cfg.jpeg_range2)
    out = filter2d(resize(out, (h // cfg.scale, w // cfg.scale), mode), sinc)
    if not jpeg_first:
        out, (p["jpeg2"],) = random_jpeg(out.clamp(0, 1), gen, cfg.jpeg_range2)
    return (out.clamp(0, 1) * 255).round() / 255, p


def realesrgan_degrade(
    hq: torch.Tensor, gen: torch.Generator, cfg: RealESRGANConfig | None = None
) -> tuple[torch.Tensor, list[dict]]:
    """HQ (B, 3, H, W) -> LQ (B, 3, H // scale, W // scale), second-order degraded."""
    cfg = cfg or RealESRGANConfig()
    outs, params = [], []
    for i in range(hq.shape[0]):
        out, p = _degrade_one(hq[i : i + 1], gen, cfg)
        outs.append(out)
        params.append(p)
    return torch.cat(outs), params
