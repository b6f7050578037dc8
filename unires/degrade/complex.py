"""``complex``: random mixtures of 2-4 degradations, applied in the order light meets them.

motion blur -> defocus blur -> resolution loss -> noise -> compression. Real photos rarely
have one degradation alone (the paper's DiversePhotos has at least two per image); these
mixtures are for evaluation sets and for widening the training distribution.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from . import rng
from .defocus import DefocusConfig, random_defocus
from .jpeg import random_jpeg
from .noise import NoiseStageConfig, SensorNoiseConfig, random_realesrgan_noise, random_sensor_noise
from .objects import OIDMotionConfig, random_object_motion_blur
from .resize import bicubic_resize, random_resize_mode, resize
from .shake import ShakeConfig, random_shake_blur

# Physical order; the recipe keeps this order whatever subset it draws.
COMPLEX_STAGES = ("motion", "defocus", "resolution", "noise", "jpeg")


@dataclass
class ComplexConfig:
    stages_range: tuple[int, int] = (2, 4)
    object_motion_prob: float = 0.4  # of the motion stage; else global camera shake
    shake: ShakeConfig = field(default_factory=lambda: ShakeConfig(size_range=(9, 31)))
    oid_motion: OIDMotionConfig = field(default_factory=OIDMotionConfig)
    defocus: DefocusConfig = field(default_factory=lambda: DefocusConfig(radius_range=(1.0, 5.0)))
    downscale_range: tuple[float, float] = (1.5, 4.0)
    sensor_noise_prob: float = 0.5  # of the noise stage; else Real-ESRGAN Gaussian/Poisson
    sensor_noise: SensorNoiseConfig = field(default_factory=SensorNoiseConfig)
    noise: NoiseStageConfig = field(
        default_factory=lambda: NoiseStageConfig(
            noise_range=(1.0, 20.0), poisson_scale_range=(0.05, 2.0)
        )
    )
    jpeg_range: tuple[float, float] = (30.0, 95.0)


def random_complex(
    img: torch.Tensor, gen: torch.Generator, cfg: ComplexConfig | None = None
) -> tuple[torch.Tensor, list[dict]]:
    """Each sample of (B, 3, H, W) gets its own subset of stages; output keeps the size."""
    cfg = cfg or ComplexConfig()
    outs, params = [], []
    for i in range(img.shape[0]):
        x = img[i : i + 1]
        n = rng.randint(gen, *cfg.stages_range)
        picked = sorted(torch.randperm(len(COMPLEX_STAGES), generator=gen)[:n].tolist())
        stages = [COMPLEX_STAGES[j] for j in picked]
        p: dict = {"recipe": "complex", "stages": stages}
        for stage in stages:
            x, p[stage] = _apply_stage(stage, x, gen, cfg)
        outs.append(x.clamp(0, 1))
        params.append(p)
    return torch.cat(outs), params


def _apply_stage(stage: str, x: torch.Tensor, gen: torch.Generator, cfg: ComplexConfig):
    if stage == "motion":
        if rng.bernoulli(gen, cfg.object_motion_prob):
            severity = rng.uniform(gen, 0.3, 1.0)
            out, p, _ = random_object_motion_blur(x, gen, cfg.oid_motion, severity)
            return out, {"kind": "objects", "severity": severity, **p}
        out, (p,) = random_shake_blur(x, gen, cfg.shake)
        return out, {"kind": "camera_shake", **p}
    if stage == "defocus":
        out, (p,) = random_defocus(x, gen, cfg.defocus)
        return out, p
    if stage == "resolution":
        h, w = x.shape[-2:]
        factor = rng.uniform(gen, *cfg.downscale_range)
        mode = random_resize_mode(gen)
        small = resize(x, (max(1, round(h / factor)), max(1, round(w / factor))), mode)
        return bicubic_resize(small, (h, w)), {"factor": factor, "mode": mode}
    if stage == "noise":
        if rng.bernoulli(gen, cfg.sensor_noise_prob):
            out, (p,) = random_sensor_noise(x, gen, cfg.sensor_noise)
        else:
            out, (p,) = random_realesrgan_noise(x, gen, cfg.noise)
        return out, p
    if stage == "jpeg":
        out, (p,) = random_jpeg(x, gen, cfg.jpeg_range)
        return out, p
    raise ValueError(f"unknown stage {stage!r}")
