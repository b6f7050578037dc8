"""Noise models: Real-ESRGAN's Gaussian and Poisson noise, a camera-like sensor noise, and the
denoise task's mixture of both.

Images are (B, 3, H, W) float in [0, 1]; noise levels called ``sigma`` are in [0, 1] units
unless the name says ``_255``.

Sensor noise follows the heteroscedastic Poisson-Gaussian model in linear light
(variance = shot * x + read, Foi et al. 2008; the shot/read relation of Brooks et al. 2019,
"Unprocessing Images for Learned Raw Denoising"), then the tone curve and gamma bring the
image back to display values, where the noise becomes signal-dependent in a non-trivial way.

Real photos' noise is also spatially correlated (demosaicing and the camera's own filtering):
on the SIDD pairs the lag-1 correlation of LQ - GT is 0.3-0.6 per channel
(``tools/probes/noise_levels.py``). ``correlate_noise`` reproduces that from white noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from . import rng
from .kernels import filter2d, gaussian_kernel

# ITU-R BT.601 luma weights, as Real-ESRGAN's grey noise uses.
_LUMA = (0.299, 0.587, 0.114)


def to_grey(img: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 1, H, W) luma (ITU-R 601 weights)."""
    w = torch.tensor(_LUMA, dtype=img.dtype, device=img.device).view(1, 3, 1, 1)
    return (img * w).sum(1, keepdim=True)


def correlate_noise(noise: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Blur zero-mean noise (B, C, H, W) with a Gaussian of ``sigma_px`` pixels, rescaled so
    that white noise keeps its standard deviation; 0 returns ``noise`` unchanged.

    White noise comes out with a lag-1 correlation of 0.26 at 0.5 px, 0.45 at 0.6 px and 0.67
    at 0.8 px (the sampled kernel; exp(-1 / (4 sigma_px^2)) once sigma_px is above ~0.8).
    """
    if sigma_px <= 0:
        return noise
    kernel = gaussian_kernel(2 * math.ceil(3 * sigma_px) + 1, sigma_px, sigma_px)
    return filter2d(noise, kernel) / float(kernel.square().sum().sqrt())


def gaussian_noise(
    img: torch.Tensor,
    gen: torch.Generator,
    sigma: float,
    grey: bool = False,
    correlation_px: float = 0.0,
) -> torch.Tensor:
    """Additive Gaussian noise of standard deviation ``sigma`` ([0, 1] units), not clipped.

    ``grey``: the same noise on every channel (else independent per channel);
    ``correlation_px`` > 0: spatially correlated (``correlate_noise``), same per-pixel std.
    """
    shape = (img.shape[0], 1, *img.shape[2:]) if grey else img.shape
    n = torch.randn(shape, generator=gen, device=gen.device).to(img.device)
    return img + sigma * correlate_noise(n, correlation_px)


def poisson_noise(
    img: torch.Tensor, gen: torch.Generator, scale: float, grey: bool = False
) -> torch.Tensor:
    """Real-ESRGAN's Poisson noise: photon counts at the image's own number of grey levels.

    The number of levels is the next power of two above the count of distinct 8-bit values,
    and the noise (counts / levels - image) is multiplied by ``scale``.
    """
    src = to_grey(img) if grey else img
    q = (src.clamp(0, 1) * 255).round() / 255
    levels = torch.tensor(
        [2 ** math.ceil(math.log2(max(2, int(torch.unique(q[i]).numel())))) for i in range(len(q))],
        dtype=img.dtype,
        device=img.device,
    ).view(-1, 1, 1, 1)
    counts = torch.poisson((q * levels).cpu(), generator=gen).to(img.device)
    return img + scale * (counts / levels - q)


@dataclass
class NoiseStageConfig:
    """One Real-ESRGAN noise stage (first-stage defaults)."""

    gaussian_noise_prob: float = 0.5
    noise_range: tuple[float, float] = (1.0, 30.0)  # sigma in 8-bit units
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4


def random_realesrgan_noise(
    img: torch.Tensor, gen: torch.Generator, cfg: NoiseStageConfig
) -> tuple[torch.Tensor, list[dict]]:
    """Gaussian or Poisson noise, colour or grey, per sample; clipped to [0, 1]."""
    outs, params = [], []
    for i in range(img.shape[0]):
        x = img[i : i + 1]
        grey = rng.bernoulli(gen, cfg.gray_noise_prob)
        if rng.bernoulli(gen, cfg.gaussian_noise_prob):
            sigma = rng.uniform(gen, *cfg.noise_range)
            outs.append(gaussian_noise(x, gen, sigma / 255, grey))
            params.append({"noise": "gaussian", "sigma_255": sigma, "grey": grey})
        else:
            scale = rng.uniform(gen, *cfg.poisson_scale_range)
            outs.append(poisson_noise(x, gen, scale, grey))
            params.append({"noise": "poisson", "scale": scale, "grey": grey})
    return torch.cat(outs).clamp(0, 1), params


# --- camera-like sensor noise ------------------------------------------------------------


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    """sRGB-encoded values in [0, 1] -> linear light (IEC 61966-2-1)."""
    x = x.clamp(0, 1)
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    """Linear light in [0, 1] -> sRGB-encoded values (IEC 61966-2-1)."""
    x = x.clamp(0, 1)
    return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.clamp_min(1e-8) ** (1 / 2.4) - 0.055)


def smoothstep_tone(x: torch.Tensor) -> torch.Tensor:
    """The global tone curve cameras apply (Brooks et al. 2019 invert this S-curve)."""
    x = x.clamp(0, 1)
    return 3 * x**2 - 2 * x**3


def inverse_smoothstep_tone(y: torch.Tensor) -> torch.Tensor:
    """The inverse of the smoothstep tone curve 3x^2 - 2x^3 (Brooks et al., unprocessing)."""
    y = y.clamp(0, 1)
    return 0.5 - torch.sin(torch.asin(1.0 - 2.0 * y) / 3.0)


def poisson_gaussian_noise(
    linear: torch.Tensor, gen: torch.Generator, shot: float, read: float
) -> torch.Tensor:
    """Photon shot noise (Poisson, variance ``shot * x``) plus Gaussian read noise (variance
    ``read``) on a linear-light image. Not clipped: the caller decides where clipping happens."""
    counts = torch.poisson((linear.clamp_min(0) / shot).cpu(), generator=gen).to(linear.device)
    return counts * shot + math.sqrt(read) * rng.randn_like(linear, gen)


def poisson_gaussian_variance(linear: torch.Tensor, shot: float, read: float) -> torch.Tensor:
    """The model's predicted per-pixel variance of ``poisson_gaussian_noise``."""
    return shot * linear.clamp_min(0) + read


@dataclass
class SensorNoiseConfig:
    # Brooks et al.: log shot ~ U(log 1e-4, log 1.2e-2); log read = 2.18 log shot + 1.2 + N(0, .26)
    shot_range: tuple[float, float] = (1e-4, 1.2e-2)
    read_slope: float = 2.18
    read_intercept: float = 1.20
    read_log_std: float = 0.26
    tone_curve_prob: float = 0.5  # else plain sRGB gamma


def _draw_sensor_params(gen: torch.Generator, cfg: SensorNoiseConfig) -> dict:
    shot = rng.log_uniform(gen, *cfg.shot_range)
    log_read = (
        cfg.read_slope * math.log(shot)
        + cfg.read_intercept
        + cfg.read_log_std * float(torch.randn((), generator=gen, dtype=torch.float64))
    )
    tone = rng.bernoulli(gen, cfg.tone_curve_prob)
    return {"noise": "sensor", "shot": shot, "read": math.exp(log_read), "tone_curve": tone}


def render_sensor_noise(
    x: torch.Tensor,
    gen: torch.Generator,
    shot: float,
    read: float,
    tone_curve: bool,
    correlation_px: float = 0.0,
) -> torch.Tensor:
    """sRGB (B, 3, H, W) in [0, 1] -> linear light -> Poisson-Gaussian noise (correlated over
    ``correlation_px`` if > 0) -> tone curve / gamma -> sRGB in [0, 1]."""
    # Undo the display rendering to reach linear light, add noise there, render again.
    lin = srgb_to_linear(inverse_smoothstep_tone(x) if tone_curve else x)
    noisy = poisson_gaussian_noise(lin, gen, shot, read)
    if correlation_px > 0:
        noisy = lin + correlate_noise(noisy - lin, correlation_px)
    out = linear_to_srgb(noisy.clamp(0, 1))
    return smoothstep_tone(out) if tone_curve else out


def random_sensor_noise(
    img: torch.Tensor, gen: torch.Generator, cfg: SensorNoiseConfig | None = None
) -> tuple[torch.Tensor, list[dict]]:
    """sRGB image -> linear light -> Poisson-Gaussian noise -> tone curve / gamma -> sRGB."""
    cfg = cfg or SensorNoiseConfig()
    outs, params = [], []
    for i in range(img.shape[0]):
        p = _draw_sensor_params(gen, cfg)
        outs.append(render_sensor_noise(img[i : i + 1], gen, p["shot"], p["read"], p["tone_curve"]))
        params.append(p)
    return torch.cat(outs).clamp(0, 1), params


# --- the denoise task's noise --------------------------------------------------------------


def _dn_sensor_noise() -> SensorNoiseConfig:
    # Shot 4e-2 gives LQ - HQ ~ 37/255 std (16.9 dB) on train-hq crops: beyond SIDD's
    # noisiest pairs (31/255, 18.0 dB); tools/probes/noise_levels.py measures both.
    return SensorNoiseConfig(shot_range=(1e-4, 4e-2))


@dataclass
class DenoiseNoiseConfig:
    """The denoise (DN) training task's noise, per sample (issue 21: cover real photos).

    Additive Gaussian with ``gaussian_prob`` (sigma uniform in ``gaussian_sigma_range``, 0-255
    units; grey with ``grey_prob``, else independent per channel), else sensor noise from
    ``sensor``; either is spatially correlated with ``correlated_prob`` (Gaussian blur of the
    noise, sigma uniform in ``correlation_px_range`` pixels, same per-pixel std).
    """

    gaussian_prob: float = 0.4
    gaussian_sigma_range: tuple[float, float] = (1.0, 50.0)
    grey_prob: float = 0.3
    sensor: SensorNoiseConfig = field(default_factory=_dn_sensor_noise)
    correlated_prob: float = 0.5
    # Lag-1 correlation 0.26-0.67; SIDD's LQ - GT shows 0.29-0.61 per channel.
    correlation_px_range: tuple[float, float] = (0.5, 0.8)


def random_denoise_noise(
    img: torch.Tensor, gen: torch.Generator, cfg: DenoiseNoiseConfig | None = None
) -> tuple[torch.Tensor, list[dict]]:
    """The DN task's noise on (B, 3, H, W) in [0, 1]; clipped to [0, 1], not quantised."""
    cfg = cfg or DenoiseNoiseConfig()
    outs, params = [], []
    for i in range(img.shape[0]):
        x = img[i : i + 1]
        if rng.bernoulli(gen, cfg.gaussian_prob):
            p = {
                "noise": "gaussian",
                "sigma_255": rng.uniform(gen, *cfg.gaussian_sigma_range),
                "grey": rng.bernoulli(gen, cfg.grey_prob),
            }
        else:
            p = _draw_sensor_params(gen, cfg.sensor)
        corr = (
            rng.uniform(gen, *cfg.correlation_px_range)
            if rng.bernoulli(gen, cfg.correlated_prob)
            else 0.0
        )
        p["correlation_px"] = corr
        if p["noise"] == "gaussian":
            outs.append(gaussian_noise(x, gen, p["sigma_255"] / 255, p["grey"], corr))
        else:
            outs.append(render_sensor_noise(x, gen, p["shot"], p["read"], p["tone_curve"], corr))
        params.append(p)
    return torch.cat(outs).clamp(0, 1), params
