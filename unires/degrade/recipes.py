"""Complete degradation recipes by name, and the recipe each training task uses.

A recipe maps HQ (B, 3, H, W) to LQ (B, 3, H // scale, W // scale) and per-sample params.
``scale=1`` (training) gives LQ at the HQ size: UniRes concatenates the LQ latent with the
noisy latent, so SR recipes shrink by their own factor and bicubic-upscale back. ``scale=4``
writes the small LQ of x4 benchmarks; recipes without resolution loss shrink last.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch

from . import rng
from .complex import ComplexConfig, random_complex
from .defocus import DefocusConfig, random_defocus
from .jpeg import random_jpeg
from .noise import (
    DenoiseNoiseConfig,
    SensorNoiseConfig,
    gaussian_noise,
    random_denoise_noise,
    random_sensor_noise,
)
from .objects import OIDMotionConfig, random_oid_motion
from .realesrgan import RealESRGANConfig, realesrgan_degrade
from .resize import bicubic_resize
from .shake import ShakeConfig, random_shake_blur

Params = list[dict]
Recipe = Callable[..., tuple[torch.Tensor, Params]]

# Shot-noise gains of the `noise-heavy` benchmark set: LQ 24.8 dB on average (21.4-27.0) on
# the 256-px centre crops of val-hq that `unires bench quality` uses.
HEAVY_SHOT_RANGE = (9e-3, 1.3e-2)
# Benchmark recipes of additive white Gaussian noise, colour (independent per channel), at a
# known sigma (0-255 units): the field's standard colour-denoising benchmark (CBSD68 sigma 25).
GAUSSIAN_SIGMAS_255: dict[str, float] = {"gaussian-25": 25.0}


@dataclass
class DegradationConfig:
    """Every recipe's parameter ranges (published defaults where there are any)."""

    sr_factor: int = 4  # the resolution loss of the SR recipes
    # Share of SR-task samples degraded by plain bicubic downscaling instead of Real-ESRGAN's
    # second order: 0 is the paper's data. A model trained only on Real-ESRGAN inputs treats
    # clean bicubic inputs as noisy/JPEG ones and over-sharpens them (docs/TRAINING.md, run 5).
    sr_bicubic_prob: float = 0.0
    realesrgan: RealESRGANConfig = field(default_factory=RealESRGANConfig)
    shake: ShakeConfig = field(default_factory=ShakeConfig)
    oid_motion: OIDMotionConfig = field(default_factory=OIDMotionConfig)
    md_object_prob: float = 0.5  # motion-deblur samples: per-object (OID-Motion) vs global
    defocus: DefocusConfig = field(default_factory=DefocusConfig)
    # The `noise` recipe (the benchmark's `noise` set, `unires degrade --recipe noise`): mild
    # phone-like sensor noise, then JPEG q75-95. Unchanged so that benchmark sets stay
    # byte-identical across sessions; the DN training task draws from the `dn_*` fields.
    sensor_noise: SensorNoiseConfig = field(default_factory=SensorNoiseConfig)
    noise_jpeg_prob: float = 0.7
    noise_jpeg_range: tuple[float, float] = (75.0, 95.0)
    # The `noise-heavy` recipe (benchmark set): sensor noise around 25 dB LQ PSNR.
    heavy_sensor_noise: SensorNoiseConfig = field(
        default_factory=lambda: SensorNoiseConfig(shot_range=HEAVY_SHOT_RANGE)
    )
    # The DN training task (issue 21): sensor noise up to SIDD's heaviest and beyond, additive
    # Gaussian up to sigma 50/255 (colour or grey), spatially correlated or white, then JPEG
    # q30-95 (Real-ESRGAN's range) with dn_jpeg_prob. Measured against real photos in
    # docs/TRAINING.md ("Training data against real photos").
    dn_noise: DenoiseNoiseConfig = field(default_factory=DenoiseNoiseConfig)
    dn_jpeg_prob: float = 0.7
    dn_jpeg_range: tuple[float, float] = (30.0, 95.0)
    complex: ComplexConfig = field(default_factory=ComplexConfig)


def _out_size(hq: torch.Tensor, scale: int) -> tuple[int, int]:
    return hq.shape[-2] // scale, hq.shape[-1] // scale


def _finish(lq: torch.Tensor, hq: torch.Tensor, scale: int) -> torch.Tensor:
    """Bring LQ to HQ / scale with an antialiased bicubic, quantised to 8 bits."""
    lq = bicubic_resize(lq, _out_size(hq, scale))
    return (lq * 255).round() / 255


def sr_bicubic(hq, gen, cfg: DegradationConfig | None = None, scale: int = 1):
    """Classical synthetic SR: antialiased bicubic downscaling by ``sr_factor``."""
    cfg = cfg or DegradationConfig()
    small = _finish(hq, hq, cfg.sr_factor)
    return _finish(small, hq, scale), [
        {"recipe": "sr", "factor": cfg.sr_factor} for _ in range(len(hq))
    ]


def sr_realesrgan(hq, gen, cfg: DegradationConfig | None = None, scale: int = 1):
    """Real-ESRGAN second order at ``sr_factor``, then to HQ / scale (bicubic)."""
    cfg = cfg or DegradationConfig()
    re_cfg = cfg.realesrgan
    if re_cfg.scale != cfg.sr_factor:
        re_cfg = replace(re_cfg, scale=cfg.sr_factor)
    small, params = realesrgan_degrade(hq, gen, re_cfg)
    return _finish(small, hq, scale), params


def camera_shake(hq, gen, cfg: DegradationConfig | None = None, scale: int = 1):
    """The "motion" recipe: camera-shake blur; (LQ at HQ / scale, parameter records)."""
    cfg = cfg or DegradationConfig()
    lq, params = random_shake_blur(hq, gen, cfg.shake)
    return _finish(lq, hq, scale), [{"recipe": "motion", **p} for p in params]


def oid_motion(hq, gen, cfg: DegradationConfig | None = None, scale: int = 1):
    """The "oid-motion" recipe: moving objects on a still background; (LQ, parameter records)."""
    cfg = cfg or DegradationConfig()
    lq, params = random_oid_motion(hq, gen, cfg.oid_motion)
    return _finish(lq, hq, scale), params


def defocus(hq, gen, cfg: DegradationConfig | None = None, scale: int = 1):
    """The "defocus" recipe: lens defocus blur; (LQ at HQ / scale, parameter records)."""
    cfg = cfg or DegradationConfig()
    lq, params = random_defocus(hq, gen, cfg.defocus)
    return _finish(lq, hq, scale), [{"recipe": "defocus", **p} for p in params]


def _noise_then_jpeg(
    hq: torch.Tensor,
    gen: torch.Generator,
    scale: int,
    recipe: str,
    add_noise: Callable[[torch.Tensor, torch.Generator], tuple[torch.Tensor, Params]],
    jpeg_prob: float,
    jpeg_range: tuple[float, float],
) -> tuple[torch.Tensor, Params]:
    """``add_noise(hq, gen) -> (noisy, params)``, then JPEG with ``jpeg_prob`` per sample, then
    8-bit quantisation; params are tagged with ``recipe``. Noise is born at the sensor's
    resolution: with ``scale`` > 1 the HQ is shrunk first."""
    if scale > 1:
        hq = _finish(hq, hq, scale)
    lq, params = add_noise(hq, gen)
    outs = []
    for i, p in enumerate(params):
        p["recipe"] = recipe
        x = lq[i : i + 1]
        if rng.bernoulli(gen, jpeg_prob):
            x, (jp,) = random_jpeg(x, gen, jpeg_range)
            p.update(jp)
        outs.append((x * 255).round() / 255)
    return torch.cat(outs), params


def _sensor_then_jpeg(hq, gen, cfg: DegradationConfig, sensor: SensorNoiseConfig, name, scale):
    def add(x, g):
        return random_sensor_noise(x, g, sensor)

    return _noise_then_jpeg(hq, gen, scale, name, add, cfg.noise_jpeg_prob, cfg.noise_jpeg_range)


def sensor_noise(hq, gen, cfg: DegradationConfig | None = None, scale: int = 1):
    """Mild phone-like sensor noise (``sensor_noise``), then JPEG with ``noise_jpeg_prob``."""
    cfg = cfg or DegradationConfig()
    return _sensor_then_jpeg(hq, gen, cfg, cfg.sensor_noise, "noise", scale)


def heavy_sensor_noise(hq, gen, cfg: DegradationConfig | None = None, scale: int = 1):
    """The `noise` recipe with heavier sensor noise (``heavy_sensor_noise``): LQ ~25 dB."""
    cfg = cfg or DegradationConfig()
    return _sensor_then_jpeg(hq, gen, cfg, cfg.heavy_sensor_noise, "noise-heavy", scale)


def denoise_mix(hq, gen, cfg: DegradationConfig | None = None, scale: int = 1):
    """DN-task training data: ``dn_noise`` (sensor or Gaussian, colour or grey, white or
    correlated), then JPEG with ``dn_jpeg_prob`` at a quality in ``dn_jpeg_range``."""
    cfg = cfg or DegradationConfig()

    def add(x, g):
        return random_denoise_noise(x, g, cfg.dn_noise)

    return _noise_then_jpeg(hq, gen, scale, "dn-mix", add, cfg.dn_jpeg_prob, cfg.dn_jpeg_range)


def gaussian_recipe(sigma_255: float) -> Recipe:
    """A recipe adding white Gaussian noise of ``sigma_255`` (0-255 units), independent per
    channel, clipped to [0, 1] and quantised to 8 bits (no JPEG)."""

    def recipe(hq, gen, cfg: DegradationConfig | None = None, scale: int = 1):
        if scale > 1:
            hq = _finish(hq, hq, scale)
        lq = gaussian_noise(hq, gen, sigma_255 / 255).clamp(0, 1)
        params = [
            {"recipe": f"gaussian-{sigma_255:g}", "noise": "gaussian", "sigma_255": sigma_255}
            for _ in range(len(hq))
        ]
        return (lq * 255).round() / 255, params

    return recipe


def complex_mixture(hq, gen, cfg: DegradationConfig | None = None, scale: int = 1):
    """The "complex" recipe: several degradations in a random order; (LQ, parameter records)."""
    cfg = cfg or DegradationConfig()
    lq, params = random_complex(hq, gen, cfg.complex)
    return _finish(lq, hq, scale), params


def motion_mix(hq, gen, cfg: DegradationConfig | None = None, scale: int = 1):
    """Motion-deblur training data: OID-Motion per-object blur or global camera shake."""
    cfg = cfg or DegradationConfig()
    outs, params = [], []
    for i in range(hq.shape[0]):
        fn = oid_motion if rng.bernoulli(gen, cfg.md_object_prob) else camera_shake
        lq, p = fn(hq[i : i + 1], gen, cfg, scale)
        outs.append(lq)
        params += p
    return torch.cat(outs), params


def sr_mix(hq, gen, cfg: DegradationConfig | None = None, scale: int = 1):
    """SR-task training data: Real-ESRGAN second order, or bicubic with ``sr_bicubic_prob``."""
    cfg = cfg or DegradationConfig()
    if cfg.sr_bicubic_prob <= 0:  # the paper's data, and the same random stream as before
        return sr_realesrgan(hq, gen, cfg, scale)
    outs, params = [], []
    for i in range(hq.shape[0]):
        fn = sr_bicubic if rng.bernoulli(gen, cfg.sr_bicubic_prob) else sr_realesrgan
        lq, p = fn(hq[i : i + 1], gen, cfg, scale)
        outs.append(lq)
        params += p
    return torch.cat(outs), params


# Recipe name (as ``unires degrade --recipe`` spells it) -> function(hq, gen, cfg, scale).
RECIPES: dict[str, Recipe] = {
    "sr": sr_bicubic,
    "realesrgan": sr_realesrgan,
    "motion": camera_shake,
    "oid-motion": oid_motion,
    "defocus": defocus,
    "noise": sensor_noise,
    "noise-heavy": heavy_sensor_noise,
    "dn-mix": denoise_mix,  # the DN training task's distribution, to look at
    **{name: gaussian_recipe(sigma) for name, sigma in GAUSSIAN_SIGMAS_255.items()},
    "complex": complex_mixture,
}

# Training task code (unires.tasks) -> recipe. The paper trains the four isolated tasks and
# learns blind restoration (BR, the empty prompt) only from the 10% of samples whose prompt is
# dropped. "br" is this project's addition, used only when a config gives it a probability
# (`data.task_probs`): BR samples of their own whose LQ is a `complex` mixture of 2-4
# degradations, as Real-ESRGAN and DiffBIR train their blind models on degradation chains.
TASK_RECIPES: dict[str, Recipe] = {
    "sr": sr_mix,
    "md": motion_mix,
    "dd": defocus,
    "dn": denoise_mix,
    "br": complex_mixture,
}


def task_recipe(task_code: str) -> Recipe:
    """The training recipe of a task code (``TASK_RECIPES``).

    Raises:
        ValueError: a task with no training recipe.
    """
    try:
        return TASK_RECIPES[task_code]
    except KeyError:
        raise ValueError(
            f"task {task_code!r} has no training recipe (have {', '.join(TASK_RECIPES)})"
        ) from None


def degrade_for_task(
    task_code: str,
    hq: torch.Tensor,
    gen: torch.Generator | int,
    cfg: DegradationConfig | None = None,
) -> tuple[torch.Tensor, Params]:
    """LQ for a training task (``TASK_RECIPES``: the paper's four and "br"), at the HQ's size.

    Raises:
        ValueError: a task with no training recipe.
    """
    lq, params = task_recipe(task_code)(hq, rng.as_generator(gen), cfg, 1)
    for p in params:
        p["task"] = task_code
    return lq, params


def run_recipe(
    name: str,
    hq: torch.Tensor,
    gen: torch.Generator | int,
    cfg: DegradationConfig | None = None,
    scale: int = 1,
) -> tuple[torch.Tensor, Params]:
    """The recipe ``name`` on (B, 3, H, W) in [0, 1]: (LQ (B, 3, H/scale, W/scale), one parameter
    record per image). ``gen``: a generator or a seed.

    Raises:
        ValueError: an unknown recipe.
    """
    try:
        recipe = RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown recipe {name!r} (have {', '.join(RECIPES)})") from None
    return recipe(hq, rng.as_generator(gen), cfg, scale)
